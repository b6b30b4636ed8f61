"""csrc/sigmoid.c through fastnn.sigmoid and fastnn.layers.Sigmoid, against fastnn.reference.

Forward: within 4 ulps of the reference for every input (the kernel's exp is about 1 ulp, the
reference's NumPy exp too, and the kernel multiplies by 1 / (1 + e) where the reference divides);
ulps are counted on the subnormal grid too, so a subnormal result may differ by a few of the
smallest subnormals. Backward: bit-identical to the book's dout * (1 - out) * out evaluated by NumPy
(the build turns off FMA contraction), and within rounding of the reference layer.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import reference
from helpers import (FLOATS, LAYOUTS, MAX_ULPS, PARALLEL_MIN, VECTOR_PATHS, examples, num_threads,
                     vector_path, with_layout)

# Any overflow, divide or invalid-value warning is a failure.
pytestmark = pytest.mark.filterwarnings("error")


# --------------------------------------------------------------------------- helpers

def assert_ulp_close(actual, desired, max_ulps=MAX_ULPS):
    """actual and desired have one dtype and shape, NaN at the same places, the same infinities,
    and differ elsewhere by at most max_ulps units in the last place of the larger magnitude
    (np.spacing, which is the smallest subnormal at and below the subnormal range)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.dtype == desired.dtype, (actual.dtype, desired.dtype)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    assert_array_equal(np.isnan(actual), np.isnan(desired), err_msg="NaN at different places")
    a, d = actual[~np.isnan(actual)], desired[~np.isnan(desired)]
    infinite = np.isinf(a) | np.isinf(d)
    assert_array_equal(a[infinite], d[infinite])
    a, d = a[~infinite], d[~infinite]
    ulp = np.spacing(np.maximum(np.abs(a), np.abs(d))).astype(np.float64)
    ulps = np.abs(a.astype(np.float64) - d.astype(np.float64)) / ulp
    if ulps.size and ulps.max() > max_ulps:
        i = int(np.argmax(ulps))
        raise AssertionError(f"{ulps.max()} ulps apart (> {max_ulps}): actual {a[i]!r}, "
                             f"desired {d[i]!r}")


@st.composite
def float_arrays(draw, dtype, shapes, max_abs):
    """Arrays of dtype with magnitudes spread over many decades up to max_abs, both signs.

    Small arrays come element by element from hypothesis (subnormals, signed zeros, the bounds);
    large ones (say C >= 1000) from a seeded generator, so they are not mostly one fill value.
    """
    shape = draw(shapes)
    if np.prod(shape) <= 64:
        width = 8 * np.dtype(dtype).itemsize
        return draw(hnp.arrays(dtype, shape, elements=st.floats(-max_abs, max_abs, width=width)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    magnitude = 10.0 ** rng.uniform(-6, np.log10(max_abs), shape)
    return (rng.choice([-1.0, 1.0], shape) * magnitude).astype(dtype)


def shapes(min_dims=1, max_dims=4):
    """N = 1, C = 1, small shapes, and rows of 1000+ elements."""
    return st.one_of(
        hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=5),
        st.sampled_from([(1,), (1, 1), (1, 1500), (3, 1024), (2, 1, 1001), (4097,)]),
    )


# --------------------------------------------------------------------------- forward

@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(100), deadline=None)
def test_forward_matches_reference(dtype, path, data):
    # float64 up to the edge of exp's range (subnormal results near -745), float32 up to -104
    x = data.draw(float_arrays(dtype, shapes(), 800.0 if dtype == np.float64 else 120.0))
    before = x.copy()
    with vector_path(path):
        y = fastnn.sigmoid(x)
    assert y.dtype == dtype and y.shape == x.shape
    assert_ulp_close(y, reference.sigmoid(x))
    assert np.all((0 <= y) & (y <= 1))
    assert_array_equal(x, before)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_forward_subnormal_results(dtype, path):
    # e = exp(x) is subnormal here, and so is sigmoid(x) = e / (1 + e)
    lo, hi = (-746.0, -700.0) if dtype == np.float64 else (-104.0, -85.0)
    x = np.linspace(lo, hi, 20001, dtype=dtype)
    with vector_path(path):
        y = fastnn.sigmoid(x)
    assert np.any((y > 0) & (y < np.finfo(dtype).tiny))  # the range really is subnormal
    assert_ulp_close(y, reference.sigmoid(x))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_forward_any_layout_equals_contiguous_copy(dtype, layout):
    x0 = np.random.default_rng(5).standard_normal((6, 7)).astype(dtype) * 20
    x = with_layout(x0, layout)
    before = x.copy()
    y = fastnn.sigmoid(x)
    assert y.dtype == dtype  # a byte-swapped input gives a native result of the same precision
    assert_array_equal(y, fastnn.sigmoid(np.ascontiguousarray(x0)))
    assert_ulp_close(y, reference.sigmoid(x).astype(dtype))
    assert_array_equal(x, before)
    assert x.dtype == before.dtype


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.int16, np.int32, np.int64,
                                   np.uint64], ids=lambda d: np.dtype(d).name)
@given(data=st.data())
@settings(max_examples=examples(30), deadline=None)
def test_forward_promotes_integers_and_bool_to_float64(dtype, data):
    x = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5)))
    y = fastnn.sigmoid(x)
    assert y.dtype == np.float64
    assert_array_equal(y, fastnn.sigmoid(x.astype(np.float64)))
    assert_ulp_close(y, reference.sigmoid(x))


@pytest.mark.parametrize("dtype", [np.float16, np.complex128, object],
                         ids=["float16", "complex128", "object"])
def test_forward_rejects_other_dtypes_naming_them(dtype):
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        fastnn.sigmoid(np.zeros(3, dtype=dtype))


EXTREMES = {
    # name: (dtype, inputs, exact outputs)
    "f64_pm1000": (np.float64, [-1000.0, 1000.0], [0.0, 1.0]),
    "f64_pm1e308": (np.float64, [-1e308, 1e308], [0.0, 1.0]),
    "f64_max": (np.float64, [-np.finfo(np.float64).max, np.finfo(np.float64).max], [0.0, 1.0]),
    "f64_inf": (np.float64, [-np.inf, np.inf], [0.0, 1.0]),
    "f64_zeros": (np.float64, [-0.0, 0.0], [0.5, 0.5]),
    "f64_tiny": (np.float64, [-5e-324, 5e-324], [0.5, 0.5]),
    "f32_pm1000": (np.float32, [-1000.0, 1000.0], [0.0, 1.0]),
    "f32_pm3e38": (np.float32, [-3e38, 3e38], [0.0, 1.0]),
    "f32_max": (np.float32, [-np.finfo(np.float32).max, np.finfo(np.float32).max], [0.0, 1.0]),
    "f32_inf": (np.float32, [-np.inf, np.inf], [0.0, 1.0]),
    "f32_zeros": (np.float32, [-0.0, 0.0], [0.5, 0.5]),
}


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("case", list(EXTREMES))
def test_forward_saturates_exactly_without_warnings(case, path):
    dtype, x, expected = EXTREMES[case]
    x = np.array(x, dtype=dtype)
    with warnings.catch_warnings(), vector_path(path):
        warnings.simplefilter("error")
        y = fastnn.sigmoid(x)
        assert_array_equal(y, reference.sigmoid(x))
    assert y.dtype == dtype
    assert_array_equal(y, np.array(expected, dtype=dtype))


@pytest.mark.parametrize("dtype", FLOATS)
def test_forward_float32_pm90_as_reference(dtype):
    # sigmoid(-90) = 8.2e-40 is subnormal in float32
    x = np.array([-90.0, -89.5, 89.5, 90.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = fastnn.sigmoid(x)
    assert_ulp_close(y, reference.sigmoid(x))
    assert y[0] > 0 and y[-1] == 1.0


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_forward_nan_in_nan_out(dtype, path):
    x = np.array([[np.nan, 0.0], [1.0, -np.nan]], dtype=dtype)
    with vector_path(path):
        y = fastnn.sigmoid(x)
    assert_array_equal(np.isnan(y), [[True, False], [False, True]])
    assert_ulp_close(y, reference.sigmoid(x))


@pytest.mark.parametrize("dtype", FLOATS)
def test_forward_thread_counts_agree(dtype, threads):
    # about 3 * PARALLEL_MIN elements, not a whole number of the kernel's 16384-element chunks
    x = np.random.default_rng(11).standard_normal((3 * PARALLEL_MIN // 7 + 1, 7)).astype(dtype)
    x *= 30
    y = fastnn.sigmoid(x)
    with num_threads(1):
        serial = fastnn.sigmoid(x)
    assert_array_equal(y, serial)  # elementwise: every thread count gives the same bits
    assert_ulp_close(y, reference.sigmoid(x))


# --------------------------------------------------------------------------- the Sigmoid layer

def assert_backward_close(actual, desired, dout, dtype):
    """Backward results whose `out` differs by a few ulps: d/d(out) of (1 - out) * out is at most
    1 in magnitude, so the difference is within a few eps * |dout| plus rounding."""
    eps = np.finfo(dtype).eps
    tolerance = 4 * eps * np.abs(desired) + 2 * MAX_ULPS * eps * np.abs(dout)
    assert_array_equal(np.isnan(actual), np.isnan(desired))
    assert np.all(np.abs(actual - desired)[~np.isnan(desired)] <= tolerance[~np.isnan(desired)])


@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(100), deadline=None)
def test_layer_forward_backward_match_reference(dtype, data):
    x = data.draw(float_arrays(dtype, shapes(), 60.0))
    dout = data.draw(float_arrays(dtype, st.just(x.shape), 10.0))
    x_before, dout_before = x.copy(), dout.copy()
    fast, ref = fastnn.layers.Sigmoid(), reference.layers.Sigmoid()
    out = fast.forward(x)
    assert_array_equal(out, fastnn.sigmoid(x))
    assert_ulp_close(out, ref.forward(x))

    dx = fast.backward(dout)
    assert dx.dtype == dtype and dx.shape == x.shape
    # the book's order of operations, in NumPy, on the same `out`: bit-identical
    assert_array_equal(dx, dout * (1 - out) * out)
    assert_backward_close(dx, ref.backward(dout), dout, dtype)
    assert_array_equal(x, x_before)
    assert_array_equal(dout, dout_before)
    assert fast.out is out


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layer_backward_any_layout_of_dout(dtype, layout):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 8)).astype(dtype) * 4
    dout0 = rng.standard_normal((5, 8)).astype(dtype)
    layer = fastnn.layers.Sigmoid()
    out = layer.forward(x)
    out_before = out.copy()
    dout = with_layout(dout0, layout)
    dout_before = dout.copy()
    dx = layer.backward(dout)
    assert dx.dtype == dtype
    assert_array_equal(dx, layer.backward(np.ascontiguousarray(dout0)))
    assert_array_equal(dx, dout0 * (1 - out) * out)
    assert_array_equal(dout, dout_before)
    assert_array_equal(layer.out, out_before)


@pytest.mark.parametrize("dtype", FLOATS)
def test_layer_backward_thread_counts_agree(dtype, threads):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((PARALLEL_MIN // 64 + 3, 128)).astype(dtype) * 5
    dout = rng.standard_normal(x.shape).astype(dtype)
    layer = fastnn.layers.Sigmoid()
    out = layer.forward(x)
    dx = layer.backward(dout)
    assert_array_equal(dx, dout * (1 - out) * out)


@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                    elements=st.floats(-8, 8)),
       seed=st.integers(0, 2**32 - 1))
@settings(max_examples=examples(30), deadline=None)
def test_layer_backward_is_the_numerical_gradient(x, seed):
    dout = np.random.default_rng(seed).standard_normal(x.shape)
    layer = fastnn.layers.Sigmoid()
    layer.forward(x)
    dx = layer.backward(dout)

    def f(_):
        return np.sum(layer.forward(x) * dout)

    # central differences: truncation h^2 / 6 * max|sigmoid'''| * |dout| < 1e-9 * |dout|,
    # rounding about eps * sum|dout| / h
    numerical = reference.numerical_gradient(f, x)
    assert_allclose(dx, numerical, rtol=1e-6, atol=1e-9 + 1e-11 * np.sum(np.abs(dout)))


@pytest.mark.parametrize("dout", [pytest.param(np.float64(1.0), id="scalar"),
                                  pytest.param("float64_on_float32", id="float64_dout")])
def test_layer_backward_promotes_and_broadcasts_like_reference(dout):
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    if isinstance(dout, str):
        dout = np.random.default_rng(2).standard_normal((3, 4))  # float64
    fast, ref = fastnn.layers.Sigmoid(), reference.layers.Sigmoid()
    fast.forward(x)
    ref.forward(x)
    expected = ref.backward(dout)
    dx = fast.backward(dout)
    assert dx.dtype == expected.dtype
    assert_allclose(dx, expected, rtol=1e-6)
