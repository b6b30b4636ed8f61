"""csrc/batchnorm.c through fastnn.BatchNormalization and _core, against fastnn.reference.

- forward (training and test time, 2-D and 4-D input), running statistics, backward: within a few
  ulps of float64 (rtol 1e-12 relative to the scale of each quantity) / float32 (1e-5) of the
  reference, over shapes, layouts, read-only inputs and 1 or 2 threads; every backward against a
  numerical gradient of the reference's forward.
- the one-pass statistics with a large mean (1e8 + N(0, 1)): the shifted sums do not cancel.
- the fused ReLU of the kernel (the models' path) against BatchNormalization then Relu.
- big batches split over OpenMP threads by columns: the same bits on 1 and 2 threads.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import fastnn
from fastnn import _core, reference
from helpers import FLOATS, LAYOUTS, num_threads, with_layout

pytestmark = pytest.mark.filterwarnings("error")

TOL = {np.float64: 1e-12, np.float32: 2e-5}
SHAPES = st.one_of(
    st.tuples(st.integers(2, 40), st.integers(1, 40)),
    st.tuples(st.integers(2, 6), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)))


def close(actual, expected, dtype, scale=None):
    """Equal within TOL of the magnitude of expected (or of scale)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = np.max(np.abs(expected)) if scale is None else scale
    assert_allclose(actual, expected, rtol=0, atol=TOL[dtype] * 10 * max(scale, 1e-30))


def pair(rng, shape, dtype, running=False):
    """A fast and a reference layer from the same gamma, beta (and running statistics)."""
    d = int(np.prod(shape[1:]))
    gamma = (rng.random(d) + 0.5).astype(dtype)
    beta = rng.standard_normal(d).astype(dtype)
    stats = ([rng.standard_normal(d).astype(dtype), (rng.random(d) + 0.1).astype(dtype)]
             if running else [None, None])
    fast = fastnn.BatchNormalization(gamma.copy(), beta.copy(), 0.9,
                                     *[None if s is None else s.copy() for s in stats])
    ref = reference.BatchNormalization(gamma.copy(), beta.copy(), 0.9,
                                       *[None if s is None else s.copy() for s in stats])
    return fast, ref


@settings(max_examples=60, deadline=None)
@given(shape=SHAPES, dtype=st.sampled_from([np.float64, np.float32]), layout=st.sampled_from(LAYOUTS),
       train=st.booleans(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_batchnorm_against_reference(shape, dtype, layout, train, threads, seed):
    rng = np.random.default_rng(seed)
    fast, ref = pair(rng, shape, dtype, running=not train)
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    with num_threads(threads):
        for step in range(2):  # twice: the running statistics are updated from the first step
            out = fast.forward(with_layout(x, layout), train)
            expected = ref.forward(x, train)
            assert out.dtype == expected.dtype == dtype
            close(out, expected, dtype)
            for name in ("running_mean", "running_var"):
                close(getattr(fast, name), getattr(ref, name), dtype)
            dx = fast.backward(with_layout(dout, layout))
            expected_dx = ref.backward(dout)
            close(dx, expected_dx, dtype, scale=np.abs(dout).max() * np.abs(ref.gamma).max() /
                  np.min(ref.std))
            close(fast.dgamma, ref.dgamma, dtype, scale=np.abs(dout).sum(axis=0).max() * 3)
            close(fast.dbeta, ref.dbeta, dtype, scale=np.abs(dout).sum(axis=0).max())
            assert fast.dgamma is fast.grads[0] and fast.gamma is fast.params[0]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("shape", [(5, 4), (4, 2, 2, 3)], ids=["2d", "4d"])
def test_batchnorm_backward_against_numerical_gradient(shape, train, dtype):
    # the reference's forward in float64 differentiated numerically; the fast backward in dtype
    rng = np.random.default_rng(7)
    fast, _ = pair(rng, shape, np.float64, running=not train)
    x = rng.standard_normal(shape) * 2 + 1
    dout = rng.standard_normal(shape)
    probe = reference.BatchNormalization(fast.gamma.copy(), fast.beta.copy(), 0.9,
                                         None if fast.running_mean is None else fast.running_mean.copy(),
                                         None if fast.running_var is None else fast.running_var.copy())

    def f(_):
        return float(np.sum(probe.forward(x, train) * dout))

    fast_dtype = fastnn.BatchNormalization(fast.gamma.astype(dtype), fast.beta.astype(dtype), 0.9,
                                           *(None if s is None else s.astype(dtype)
                                             for s in (fast.running_mean, fast.running_var)))
    fast_dtype.forward(x.astype(dtype), train)
    dx = fast_dtype.backward(dout.astype(dtype))
    tol = 1e-6 if dtype == np.float64 else 2e-3
    assert_allclose(dx, reference.numerical_gradient(f, x), rtol=tol, atol=tol)
    for param, grad in ((probe.gamma, fast_dtype.dgamma), (probe.beta, fast_dtype.dbeta)):
        assert_allclose(grad, reference.numerical_gradient(f, param), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_statistics_of_a_large_mean(dtype):
    # one pass of plain sums of squares would give var = E[x^2] - E[x]^2 ~ 1e16 - 1e16
    rng = np.random.default_rng(3)
    x = (1e4 + rng.standard_normal((1000, 8))).astype(dtype)
    if dtype == np.float64:
        x = 1e8 + rng.standard_normal((1000, 8))
    layer = fastnn.BatchNormalization(np.ones(8, dtype), np.zeros(8, dtype))
    out = layer.forward(x)
    xd = x.astype(np.float64)
    expected = (xd - xd.mean(0)) / np.sqrt(xd.var(0) + 10e-7)
    assert_allclose(out, expected, rtol=0, atol=1e-6 if dtype == np.float64 else 1e-3)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(3003, 701), (203, 3001)], ids=["tall", "wide"])
def test_big_batches_over_threads(shape, dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    runs = []
    for threads in (1, 2):
        fast, ref = pair(np.random.default_rng(3), shape, dtype)
        with num_threads(threads):
            runs.append((fast.forward(x), fast.backward(dout), fast.dgamma.copy(),
                         fast.dbeta.copy(), fast.running_var))
    for one, two in zip(*runs):  # threads split the columns: each column's sums are the same
        np.testing.assert_array_equal(one, two)
    out, dx, dgamma = runs[0][:3]
    close(out, ref.forward(x), dtype)
    close(dx, ref.backward(dout), dtype, scale=np.abs(dout).max() * np.abs(ref.gamma).max() / np.min(ref.std))
    close(dgamma, ref.dgamma, dtype, scale=np.abs(dout).sum(axis=0).max() * 3)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_fused_relu(train, dtype):
    # the models' path: batch norm and ReLU in one kernel, forward and backward
    rng = np.random.default_rng(5)
    n, d = 9, 17
    x = rng.standard_normal((n, d)).astype(dtype)
    gamma, beta = (rng.random(d) + 0.5).astype(dtype), rng.standard_normal(d).astype(dtype)
    rm, rv = rng.standard_normal(d), rng.random(d) + 0.5
    out = np.empty_like(x)
    if train:
        mean, var, rstd = np.empty(d), np.empty(d), np.empty(d)
        _core.batchnorm_forward_train(x, gamma, beta, 10e-7, True, out, mean, var, rstd)
    else:
        _core.batchnorm_forward_test(x, gamma, beta, rm, rv, 10e-7, True, out)
    bn = reference.BatchNormalization(gamma.copy(), beta.copy(), 0.9, rm.astype(dtype), rv.astype(dtype))
    relu = reference.Relu()
    expected = relu.forward(bn.forward(x, train))
    close(out, expected, dtype)
    if train:
        dout = rng.standard_normal((n, d)).astype(dtype)
        dx, dg, db = np.empty_like(x), np.empty(d, dtype), np.empty(d, dtype)
        _core.batchnorm_backward(dout, out, x, gamma, mean, rstd, dx, dg, db)
        close(dx, bn.backward(relu.backward(dout)), dtype, scale=10 * np.abs(dout).max())
        close(dg, bn.dgamma, dtype, scale=np.abs(dout).sum(0).max() * 3)
        close(db, bn.dbeta, dtype, scale=np.abs(dout).sum(0).max())


def test_nan_in_nan_out():
    x = np.ones((4, 3))
    x[1, 2] = np.nan
    layer = fastnn.BatchNormalization(np.ones(3), np.zeros(3))
    out = layer.forward(x)
    assert np.isnan(out[:, 2]).all() and np.isfinite(out[:, :2]).all()
    assert np.isnan(layer.running_mean[2])


def test_forward_returns_new_arrays_and_leaves_inputs():
    rng = np.random.default_rng(0)
    layer = fastnn.BatchNormalization(np.ones(5), np.zeros(5))
    x = rng.standard_normal((4, 5))
    x.flags.writeable = False
    first = layer.forward(x)
    kept = first.copy()
    layer.forward(x * 2)
    layer.backward(np.ones((4, 5)))
    assert np.array_equal(first, kept)
