"""csrc/bias_grad.c through fastnn.bias_grad and fastnn.layers.Affine's db, against
fastnn.reference and the exactly rounded sum (math.fsum).

A sum of n terms computed in any order is within about n * eps * sum|terms| of the exact sum; the
tests use that bound (per column) rather than a blanket rtol, so a cancelling column cannot make
them flaky and a dropped or doubled row (an error of the order of one term) cannot hide. The
kernel accumulates float32 input in float64, so its float32 result is within half an ulp (plus
the float64 rounding) of the exact sum, while the float32 reference accumulates in float32.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import reference
from helpers import FLOATS, PARALLEL_MIN, examples, num_threads, with_layout

pytestmark = pytest.mark.filterwarnings("error")


# --------------------------------------------------------------------------- helpers

def exact_sum(dout):
    """The exactly rounded float64 column sums of dout (..., D) and the column sums of |dout|."""
    rows = np.asarray(dout, dtype=np.float64).reshape(-1, np.shape(dout)[-1])
    exact = np.array([math.fsum(column) for column in rows.T])
    return exact, np.abs(rows).sum(axis=0), rows.shape[0]


def assert_sum_close(db, dout, dtype, accumulator=np.float64):
    """db within the bound of an n-term sum accumulated in `accumulator`, rounded to dtype."""
    exact, abs_sum, n = exact_sum(dout)
    bound = (n + 1) * np.finfo(accumulator).eps * abs_sum
    bound += np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)  # the final rounding
    error = np.abs(db.astype(np.float64) - exact)
    assert np.all(error <= bound), f"max excess {np.max(error - bound)} over the bound"


LAYOUTS = ["c", "fortran", "strided", "strided_last", "reversed", "transposed", "readonly",
           "byteswapped"]


@st.composite
def douts(draw, dtype, min_dims=1, max_dims=4):
    """Upstream gradients (..., D): N = 1, D = 1, small shapes of 1-4 axes, and D of 1000+.

    Small arrays element by element from hypothesis; large ones from a seeded generator with
    magnitudes spread over several decades (so columns cancel and round).
    """
    shape = draw(st.one_of(
        hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=5),
        st.sampled_from([(1, 1), (1, 1500), (7, 1), (3, 1024), (2, 3, 1001), (33, 40)]),
    ))
    if np.prod(shape) <= 64:
        width = 8 * np.dtype(dtype).itemsize
        return draw(hnp.arrays(dtype, shape, elements=st.floats(-1e3, 1e3, width=width)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3, shape)).astype(dtype)


# --------------------------------------------------------------------------- bias_grad

@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(100), deadline=None)
def test_matches_reference_and_exact_sum(dtype, data):
    dout = data.draw(douts(dtype))
    before = dout.copy()
    db = fastnn.bias_grad(dout)
    assert db.dtype == dtype and db.shape == (dout.shape[-1],)
    # accumulated in float64 for both dtypes: close to the exact sum
    assert_sum_close(db, dout, dtype)
    # and to the reference, which accumulates in dout's dtype
    ref = reference.bias_grad(dout)
    exact, abs_sum, n = exact_sum(dout)
    bound = 2 * (n + 1) * np.finfo(dtype).eps * abs_sum + np.spacing(np.abs(ref))
    assert np.all(np.abs(db.astype(np.float64) - ref) <= bound)
    assert_array_equal(dout, before)


@pytest.mark.parametrize("offset", range(8))
@pytest.mark.parametrize("n", [1, 15, 16, 17, 33, 100])
@pytest.mark.parametrize("d", [1, 7, 8, 9, 16, 24, 1000])
def test_rows_are_added_in_order_float64(d, n, offset):
    # float64 rows added one after the other into a float64 sum: the kernel's result to the bit,
    # whatever its blocks of rows and wherever the array starts (offset: another alignment)
    buffer = np.random.default_rng(n * d + offset).standard_normal(n * d + offset)
    buffer *= 10.0 ** (np.arange(buffer.size) % 7)  # magnitudes that make the order matter
    dout = buffer[offset:].reshape(n, d)
    expected = np.zeros(d)
    for row in dout:
        expected = expected + row
    assert_array_equal(fastnn.bias_grad(dout), expected)  # no NaN here: == is bitwise enough


@pytest.mark.parametrize("dtype", FLOATS)
def test_float32_accumulates_in_float64(dtype):
    # 1 + 4096 * 2^-24 needs more than float32's 24 bits while it is summed: added in float32
    # row by row each 2^-24 is lost (1 + 2^-24 rounds to 1); in float64 the column is exact.
    dout = np.full((4097, 3), 2.0**-24, dtype=dtype)
    dout[0] = 1.0
    db = fastnn.bias_grad(dout)
    assert_array_equal(db, np.full(3, 1 + 4096 * 2.0**-24, dtype=dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_any_layout_equals_contiguous_copy(dtype, layout):
    dout0 = (np.random.default_rng(3).standard_normal((6, 4, 5)) * 10).astype(dtype)
    dout = with_layout(dout0, layout)
    before = dout.copy()
    db = fastnn.bias_grad(dout)
    assert db.dtype == dtype
    assert_array_equal(db, fastnn.bias_grad(np.ascontiguousarray(dout0)))
    assert_sum_close(db, dout0, dtype)
    assert_array_equal(dout, before)
    assert dout.dtype == before.dtype


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.int32, np.int64, np.uint64],
                         ids=lambda d: np.dtype(d).name)
@given(data=st.data())
@settings(max_examples=examples(20), deadline=None)
def test_integers_and_bool_promote_to_float64(dtype, data):
    info_max = 1 if dtype == np.bool_ else min(np.iinfo(dtype).max, 2**40)
    info_min = 0 if dtype == np.bool_ else max(np.iinfo(dtype).min, -(2**40))
    dout = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                                elements=st.integers(info_min, info_max)
                                if dtype != np.bool_ else st.booleans()))
    db = fastnn.bias_grad(dout)
    assert db.dtype == np.float64
    assert_array_equal(db, fastnn.bias_grad(dout.astype(np.float64)))
    # |entries| <= 2^40 and at most 125 rows: every partial sum is an exact float64 integer
    assert_array_equal(db, reference.bias_grad(dout).astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float16, np.complex128, object],
                         ids=["float16", "complex128", "object"])
def test_other_dtypes_raise_type_error_naming_them(dtype):
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        fastnn.bias_grad(np.zeros((3, 2), dtype=dtype))


def test_zero_rows_give_zeros():
    # an (0, D) upstream gradient: the empty sum, as the reference
    db = fastnn.bias_grad(np.zeros((0, 4)))
    assert_array_equal(db, reference.bias_grad(np.zeros((0, 4))))
    assert_array_equal(db, np.zeros(4))


def test_0d_dout_raises_value_error():
    with pytest.raises(ValueError, match="0-d"):
        fastnn.bias_grad(np.array(1.0))


@pytest.mark.parametrize("shape", [(3, 0), (0, 0), (0,), (2, 3, 0)],
                         ids=["3x0", "0x0", "0", "2x3x0"])
def test_no_columns_gives_an_empty_gradient(shape):
    db = fastnn.bias_grad(np.zeros(shape))
    assert db.shape == (0,)
    assert_array_equal(db, reference.bias_grad(np.zeros(shape)))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(PARALLEL_MIN // 1000 * 2 + 1, 1000),
                                   (3 * PARALLEL_MIN // 100, 100)], ids=["wide", "narrow"])
def test_thread_counts_agree(dtype, shape, threads):
    rng = np.random.default_rng(47)
    dout = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3, shape)).astype(dtype)
    db = fastnn.bias_grad(dout)
    with num_threads(1):
        serial = fastnn.bias_grad(dout)
    exact, abs_sum, n = exact_sum(dout)
    assert np.all(np.abs(db.astype(np.float64) - serial) <= 2 * (n + 1) * 2.0**-52 * abs_sum
                  + np.spacing(np.abs(serial)))
    assert_sum_close(db, dout, dtype)


# --------------------------------------------------------------------------- Affine's db

@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(40), deadline=None)
def test_affine_backward_db_matches_reference(dtype, data):
    n = data.draw(st.sampled_from([1, 2, 5]))
    in_shape = data.draw(st.sampled_from([(3,), (1,), (2, 3), (2, 1, 2)]))
    h = data.draw(st.sampled_from([1, 4, 1001]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    d = int(np.prod(in_shape))
    W = rng.standard_normal((d, h)).astype(dtype)
    b = rng.standard_normal(h).astype(dtype)
    x = rng.standard_normal((n,) + in_shape).astype(dtype)
    dout = (rng.standard_normal((n, h)) * 10).astype(dtype)
    fast = fastnn.layers.Affine(W.copy(), b.copy())
    ref = reference.layers.Affine(W.copy(), b.copy())
    dW_array, db_array = fast.grads
    rtol = 1e-13 if dtype == np.float64 else 1e-5

    assert_allclose(fast.forward(x), ref.forward(x), rtol=rtol, atol=rtol)
    dx = fast.backward(dout)
    ref_dx = ref.backward(dout)
    assert fast.grads[0] is dW_array and fast.grads[1] is db_array  # written in place
    assert_sum_close(fast.grads[1], dout, dtype)
    exact, abs_sum, _ = exact_sum(dout)
    assert np.all(np.abs(fast.grads[1].astype(np.float64) - ref.grads[1])
                  <= 2 * (n + 1) * np.finfo(dtype).eps * abs_sum + np.spacing(np.abs(ref.grads[1])))
    assert_allclose(fast.grads[0], ref.grads[0], rtol=rtol, atol=rtol * np.abs(dout).max())
    assert dx.shape == x.shape
    assert_allclose(dx, ref_dx, rtol=rtol, atol=rtol * np.abs(dout).max())
    assert_array_equal(fast.params[1], b)  # backward leaves the parameters alone


@pytest.mark.parametrize("layout", ["fortran", "strided", "reversed", "readonly"])
def test_affine_backward_db_any_layout_of_dout(layout):
    rng = np.random.default_rng(53)
    W, b = rng.standard_normal((4, 6)), rng.standard_normal(6)
    x = rng.standard_normal((5, 4))
    dout0 = rng.standard_normal((5, 6))
    layer = fastnn.layers.Affine(W, b)
    layer.forward(x)
    layer.backward(np.ascontiguousarray(dout0))
    expected = layer.grads[1].copy()
    dout = with_layout(dout0, layout)
    before = dout.copy()
    layer.backward(dout)
    assert_array_equal(layer.grads[1], expected)
    assert_array_equal(dout, before)
    assert_sum_close(layer.grads[1], dout0, np.float64)


def test_affine_db_is_the_numerical_gradient():
    # d/db sum(forward(x) * dout) = sum of dout over the rows, numerically (forward is linear in b,
    # so the central difference is exact up to rounding)
    rng = np.random.default_rng(59)
    W, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    x, dout = rng.standard_normal((6, 3)), rng.standard_normal((6, 4))
    layer = fastnn.layers.Affine(W, b)
    layer.forward(x)
    layer.backward(dout)
    numerical = reference.numerical_gradient(lambda _: np.sum(layer.forward(x) * dout), b)
    assert_allclose(layer.grads[1], numerical, rtol=1e-8, atol=1e-10)
