"""csrc/weight_decay.c through _core.weight_decay_grad and the networks' gradient, against NumPy.

The kernel computes out = dW + lam * W with lam * W rounded first (the build turns FMA contraction
off), in the arrays' precision: the operations of the reference's `affine.dW + lam * affine.W`,
so the comparisons are of the bits (NaN, inf and signed zeros included), across the chunk and
thread boundaries of large arrays. Through MultiLayerNet(Extend).gradient, each weight's gradient
is the reference's and Affine.dW stays the gradient without the decay, as the book's.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import _core, reference
from helpers import PARALLEL_MIN, examples, num_threads

pytestmark = pytest.mark.filterwarnings("error")


def bits(a):
    return np.ascontiguousarray(a).tobytes()


@settings(max_examples=examples(80))
@given(data=st.data(), dtype=st.sampled_from([np.float64, np.float32]),
       n=st.integers(1, 3000) | st.sampled_from([PARALLEL_MIN - 1, PARALLEL_MIN + 17]),
       lam=st.sampled_from([0.1, 1e-8, 5.0, -0.3, 0.0]) | st.floats(-10, 10),
       threads=st.sampled_from([1, 2]))
def test_weight_decay_grad_is_numpys(data, dtype, n, lam, threads):
    values = hnp.from_dtype(np.dtype(dtype), allow_subnormal=False)
    small = n <= 64
    dW = data.draw(hnp.arrays(dtype, n, elements=values)) if small else \
        np.random.default_rng(n).standard_normal(n).astype(dtype)
    W = data.draw(hnp.arrays(dtype, n, elements=values)) if small else \
        np.random.default_rng(n + 1).standard_normal(n).astype(dtype)
    before = dW.copy(), W.copy()
    out = np.full(n, 7, dtype)
    with num_threads(threads), np.errstate(all="ignore"):
        _core.weight_decay_grad(dW, W, lam, out)
        expected = dW + dtype(lam) * W
    assert bits(out) == bits(expected)
    assert bits(dW) == bits(before[0]) and bits(W) == bits(before[1])


def test_weight_decay_grad_in_place_of_dW():
    dW, W = np.arange(5.0), np.linspace(-1, 1, 5)
    expected = dW + 0.5 * W
    _core.weight_decay_grad(dW, W, 0.5, dW)
    assert_array_equal(dW, expected)


def test_weight_decay_grad_refuses_out_overlapping_W():
    dW, W = np.ones(6), np.arange(7.0)
    with pytest.raises(ValueError, match="overlaps W"):
        _core.weight_decay_grad(dW, W[:6], 0.1, W[1:])
    assert_array_equal(W, np.arange(7.0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("extend", [False, True])
def test_network_gradients_with_weight_decay_are_the_references(dtype, extend):
    rng = np.random.default_rng(4)
    x, t = rng.random((12, 20)), rng.integers(0, 5, 12)
    kwargs = dict(weight_decay_lambda=0.3, dtype=dtype, seed=2)
    if extend:
        kwargs.update(use_batchnorm=True)
    cls = "MultiLayerNetExtend" if extend else "MultiLayerNet"
    fast = getattr(fastnn, cls)(20, [8, 6], 5, **kwargs)
    ref = getattr(reference, cls)(20, [8, 6], 5, **kwargs)
    got, want = fast.gradient(x, t), ref.gradient(x, t)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name in want:
        assert got[name].dtype == dtype
        assert_allclose(got[name], want[name], rtol=tol, atol=tol, err_msg=name)
    for idx in (1, 2, 3):  # the layer's own dW is the gradient before the decay
        W, dW = fast.params[f"W{idx}"], fast.layers[f"Affine{idx}"].dW
        assert_allclose(got[f"W{idx}"], dW + dtype(0.3) * W, rtol=tol, atol=tol)
        assert not np.shares_memory(got[f"W{idx}"], dW)
