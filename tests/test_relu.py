"""csrc/masks.c's ReLU through fastnn.Relu and fastnn.relu_grad, against fastnn.reference.

Bit-exact: forward max(0, x) with NaN kept, the bool mask x <= 0, backward dout zeroed where the
mask is set (also NaN and inf there); over shapes, dtypes, layouts, read-only inputs and 1 or 2
threads (sizes past PARALLEL_MIN run in chunks on OpenMP threads); backward against a numerical
gradient.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import reference
from helpers import FLOATS, LAYOUTS, PARALLEL_MIN, num_threads, with_layout

pytestmark = pytest.mark.filterwarnings("error")


def arrays(dtype):
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=4, max_side=9),
                      elements=st.floats(-1e3, 1e3, width=32)
                      | st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf]))


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert_array_equal(a, b)
    assert np.array_equal(np.signbit(a), np.signbit(b))


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float64, np.float32]),
       layout=st.sampled_from(LAYOUTS), threads=st.sampled_from([1, 2]))
def test_relu_against_reference(data, dtype, layout, threads):
    x = data.draw(arrays(dtype))
    dout = data.draw(hnp.arrays(dtype, x.shape, elements=st.floats(-10, 10, width=32)
                                | st.sampled_from([np.nan, np.inf])))
    fast, ref = fastnn.Relu(), reference.Relu()
    with num_threads(threads):
        out = fast.forward(with_layout(x, layout))
        expected = ref.forward(x)
        same(out, expected)
        same(fast.mask, ref.mask)
        kept = dout.copy()
        dx = fast.backward(with_layout(dout, layout))
    same(dx, ref.backward(dout))
    same(dout, kept)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", FLOATS)
def test_relu_in_chunks(dtype, threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(3 * PARALLEL_MIN + 5).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    fast, ref = fastnn.Relu(), reference.Relu()
    with num_threads(threads):
        same(fast.forward(x), ref.forward(x))
        same(fast.backward(dout), (ref.forward(x), ref.backward(dout))[1])


@pytest.mark.parametrize("dtype", FLOATS)
def test_relu_backward_against_numerical_gradient(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 7))
    x[np.abs(x) < 1e-2] = 0.5  # away from the kink, where the difference quotient is 1/2
    dout = rng.standard_normal(x.shape)
    layer = fastnn.Relu()
    layer.forward(x.astype(dtype))
    dx = layer.backward(dout.astype(dtype))
    numerical = reference.numerical_gradient(lambda _: float(np.sum(reference.relu(x) * dout)), x)
    assert_allclose(dx, numerical, rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.float64) | arrays(np.float32))
def test_relu_grad(x):
    same(fastnn.relu_grad(x), reference.relu_grad(x))


def test_relu_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        fastnn.Relu().backward(np.ones(3))
