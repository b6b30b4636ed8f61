"""The numerical-gradient loop of src/fastnn/_core.pyx through fastnn.numerical_gradient, against
fastnn.reference.numerical_gradient, the closed form of f = sum(x**2) and the bits of x.

Both halves set x[i] = dtype(float(x[i]) + h), call f, set x[i] = dtype(float(x[i]) - h), call f,
restore x[i] and divide in float64: when f returns a float64 the two gradients are the same bits,
for any dtype, shape and strides. When f returns a float32 the reference divides in float32 (NumPy
2 keeps np.float32 / float in float32) and the kernel in float64, so they differ by an ulp or two.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import reference
from helpers import FLOATS, examples

pytestmark = pytest.mark.filterwarnings("error")

UINT = {np.dtype(np.float64): np.uint64, np.dtype(np.float32): np.uint32}


# --------------------------------------------------------------------------- helpers

def bits(a):
    """The raw bits of a float array, in its index order (NaN payloads and -0.0 included); a raw
    byte buffer as it is."""
    a = np.ascontiguousarray(a)
    return a.view(UINT[a.dtype]).copy() if a.dtype in UINT else a.copy()


def make_x(values, layout):
    """(x, base): x equals `values` in shape and value with the given memory layout; base is the
    whole buffer x lives in (bits outside x must not change either). Gaps hold NaN."""
    values = np.asarray(values)
    if layout == "c" or values.ndim == 0:
        x = np.array(values, order="C")
        return x, x
    if layout == "fortran":
        x = np.asfortranarray(values)
        return x, x
    if layout == "strided":  # every other element along every axis
        base = np.full(tuple(2 * s for s in values.shape), np.nan, dtype=values.dtype)
        x = base[(slice(None, None, 2),) * values.ndim]
        x[...] = values
        return x, base
    if layout == "reversed":
        index = (slice(None, None, -1),) * values.ndim
        base = np.array(values[index], order="C")
        return base[index], base
    if layout == "transposed":  # axes permuted: neither C nor Fortran order for ndim >= 3
        axes = tuple(range(values.ndim))[1:] + (0,)
        base = np.array(np.transpose(values, np.argsort(axes)), order="C")
        x = np.transpose(base, axes)
        assert x.shape == values.shape
        return x, base
    if layout == "unaligned":  # a buffer that starts one byte off
        raw = np.zeros(values.nbytes + 1, dtype=np.uint8)
        x = np.frombuffer(raw.data, dtype=values.dtype, count=values.size, offset=1)
        x = x.reshape(values.shape)
        x[...] = values
        assert not x.flags.aligned
        return x, raw
    raise ValueError(layout)


LAYOUTS = ["c", "fortran", "strided", "reversed", "transposed", "unaligned"]


def weighted_sin(x):
    """A smooth f with a different derivative for every element, returning a float64."""
    weights = np.arange(1, x.size + 1, dtype=np.float64).reshape(x.shape) / 7
    return np.sum(np.sin(x.astype(np.float64)) * weights)


def sum_of_squares_native(x):
    """f in x's own precision: a np.float32 for float32 x."""
    return np.sum(x * x)


def shapes():
    """0-d to 3-d, at least one element (the reference's nditer refuses an empty x; see
    test_empty_x_never_calls_f)."""
    return hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def float_values(dtype, shape, max_abs=10.0):
    width = 8 * np.dtype(dtype).itemsize
    return hnp.arrays(dtype, shape, elements=st.floats(-max_abs, max_abs, width=width))


# --------------------------------------------------------------------------- against the reference

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", LAYOUTS)
@given(data=st.data())
@settings(max_examples=examples(25), deadline=None)
def test_matches_reference_bit_for_bit(dtype, layout, data):
    values = data.draw(float_values(dtype, data.draw(shapes())))
    x, base = make_x(values, layout)
    base_bits = bits(base)
    grad = fastnn.numerical_gradient(weighted_sin, x)
    assert_array_equal(bits(base), base_bits)  # x and its surroundings restored
    expected = reference.numerical_gradient(weighted_sin, x)  # the same x, the same layout
    assert grad.shape == x.shape and grad.dtype == dtype
    assert_array_equal(grad, expected)
    assert_array_equal(bits(base), base_bits)


@given(data=st.data())
@settings(max_examples=examples(40), deadline=None)
def test_float32_f_matches_reference_within_an_ulp_or_two(data):
    values = data.draw(float_values(np.float32, data.draw(shapes())))
    x = values.copy()
    grad = fastnn.numerical_gradient(sum_of_squares_native, x)
    expected = reference.numerical_gradient(sum_of_squares_native, x)
    assert grad.dtype == np.float32
    assert_allclose(grad, expected, rtol=3 * np.finfo(np.float32).eps, atol=0)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["c", "fortran", "strided", "reversed"])
@given(data=st.data())
@settings(max_examples=examples(15), deadline=None)
def test_perturbs_every_element_by_plus_then_minus_h_once(dtype, layout, data):
    # the protocol, observed from inside f: one element at a time is dtype(float(x) + h), then
    # dtype(float(x) - h); all others are untouched. Same calls as the reference (which may visit
    # the elements in another order).
    values = data.draw(float_values(dtype, data.draw(shapes())))
    h = data.draw(st.sampled_from([1e-4, 1e-2, 0.5]))
    x, _ = make_x(values, layout)
    original = np.array(x, order="C")

    def recorder(log):
        def f(a):
            assert a is x
            changed = np.flatnonzero(bits(a) != bits(original))
            assert len(changed) <= 1
            if len(changed):
                log.append((int(changed[0]), a.reshape(-1)[changed[0]].item()))
            else:
                log.append(None)
            return 0.0
        return f

    fast_log, ref_log = [], []
    fastnn.numerical_gradient(recorder(fast_log), x, h=h)
    reference.numerical_gradient(recorder(ref_log), x, h=h)
    flat = original.reshape(-1)
    expected = [(i, dtype(float(flat[i]) + h).item()) for i in range(flat.size)]
    expected += [(i, dtype(float(flat[i]) - h).item()) for i in range(flat.size)]
    # |x| <= 10 and h >= 1e-4 > ulp(10) in float32: every perturbation changes the element
    assert None not in fast_log
    assert sorted(fast_log) == sorted(expected)
    assert sorted(ref_log) == sorted(fast_log)
    pairs = [fast_log[k:k + 2] for k in range(0, len(fast_log), 2)]
    assert all(plus[0] == minus[0] and plus[1] > minus[1] for plus, minus in pairs)


def test_0d_array_as_reference():
    x = np.array(1.5)
    grad = fastnn.numerical_gradient(lambda a: float(a) ** 3, x)
    assert grad.shape == ()
    assert_array_equal(grad, reference.numerical_gradient(lambda a: float(a) ** 3, np.array(1.5)))
    assert_allclose(grad, 3 * 1.5**2, rtol=1e-8)


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3, 1)], ids=["0", "2x0", "0x3x1"])
def test_empty_x_never_calls_f(shape):
    # the gradient of f with respect to no variables is empty (the reference's np.nditer raises
    # "Iteration of zero-sized operands is not enabled" here instead)
    def f(_):
        raise AssertionError("f called for an empty x")

    grad = fastnn.numerical_gradient(f, np.zeros(shape))
    assert grad.shape == shape and grad.dtype == np.float64


@pytest.mark.parametrize("view", ["row", "column", "block"])
def test_a_view_into_the_array_f_reads(view):
    # f ignores its argument and reads the whole parameter W, as a model's loss does; x is part
    # of W: only that part is differentiated, and W comes back unchanged
    W = np.random.default_rng(61).standard_normal((4, 5))
    index = {"row": np.s_[1], "column": np.s_[:, 2], "block": np.s_[1:4:2, ::-2]}[view]
    W_bits = bits(W)
    grad = fastnn.numerical_gradient(lambda _: np.sum(W**3), W[index])
    assert_array_equal(bits(W), W_bits)
    assert_array_equal(grad, reference.numerical_gradient(lambda _: np.sum(W**3), W[index]))
    assert_allclose(grad, 3 * W[index] ** 2, rtol=1e-7, atol=1e-7)  # truncation h^2 = 1e-8


# --------------------------------------------------------------------------- closed form

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["c", "fortran", "strided", "reversed", "transposed"])
@given(data=st.data())
@settings(max_examples=examples(25), deadline=None)
def test_sum_of_squares_gives_2x(dtype, layout, data):
    values = data.draw(float_values(dtype, data.draw(shapes())))
    h = data.draw(st.sampled_from([1e-4, 1e-3, 1e-2]))
    x, _ = make_x(values, layout)

    def f(a):
        return np.sum(a.astype(np.float64) ** 2)

    grad = fastnn.numerical_gradient(f, x, h=h)
    # For a quadratic the central difference is exact but for rounding: x +- h is rounded to
    # dtype (each side by at most half an ulp of |x| + h), which scales the result by
    # (h+ + h-) / 2h and shifts it by h+ - h-; f's float64 sum rounds by about eps * f / h.
    x64 = values.astype(np.float64)
    ulp = np.spacing(np.abs(values) + dtype(h)).astype(np.float64)
    S = float(np.sum(x64**2)) + 1
    bound = (2 * np.abs(x64) + 1) * ulp / h + 8 * np.finfo(np.float64).eps * S / h
    bound += np.spacing(np.abs(2 * values).astype(dtype)).astype(np.float64)  # result's rounding
    assert grad.shape == values.shape
    assert np.all(np.abs(grad - 2 * x64) <= bound)


# --------------------------------------------------------------------------- x comes back bit-exact

@st.composite
def raw_floats(draw, dtype):
    """Arrays of arbitrary bit patterns: NaNs with payloads, signalling NaNs, infinities, -0.0,
    subnormals."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    return draw(hnp.arrays(UINT[np.dtype(dtype)], shape)).view(dtype)


class Boom(Exception):
    pass


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["c", "fortran", "strided", "reversed", "unaligned"])
@given(data=st.data())
@settings(max_examples=examples(25), deadline=None)
def test_restores_every_bit_when_f_raises(dtype, layout, data):
    values = data.draw(raw_floats(dtype))
    x, base = make_x(values, layout)
    base_bits = bits(base)
    failing_call = data.draw(st.integers(1, 2 * x.size))
    calls = 0

    def f(_):
        nonlocal calls
        calls += 1
        if calls == failing_call:
            raise Boom(calls)
        return 0.0

    with pytest.raises(Boom):
        fastnn.numerical_gradient(f, x)
    assert calls == failing_call  # no call after the exception
    assert_array_equal(bits(base), base_bits)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["c", "fortran", "strided", "reversed", "unaligned"])
@given(data=st.data())
@settings(max_examples=examples(25), deadline=None)
def test_restores_every_bit_after_success(dtype, layout, data):
    values = data.draw(raw_floats(dtype))
    x, base = make_x(values, layout)
    base_bits = bits(base)
    grad = fastnn.numerical_gradient(lambda a: 1.0, x)
    assert_array_equal(grad, np.zeros(x.shape))
    assert_array_equal(bits(base), base_bits)


# --------------------------------------------------------------------------- rejected input

def never_called(_):
    raise AssertionError("f must not be called for an input that is rejected")


@pytest.mark.parametrize("h", [0, 0.0, -0.0, -1e-4, np.nan, np.inf, -np.inf],
                         ids=["int0", "zero", "minus_zero", "negative", "nan", "inf", "minus_inf"])
def test_bad_step_raises_value_error(h):
    x = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="h"):
        fastnn.numerical_gradient(never_called, x, h=h)
    assert_array_equal(x, [1.0, 2.0])


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.float16,
                                   np.complex128], ids=lambda d: np.dtype(d).name)
def test_other_dtypes_raise_type_error_naming_them(dtype):
    x = np.ones(3, dtype=dtype)
    before = x.copy()
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        fastnn.numerical_gradient(never_called, x)
    assert_array_equal(x, before)


def test_read_only_x_raises_value_error():
    x = np.array([1.0, 2.0])
    x.flags.writeable = False
    with pytest.raises(ValueError, match="writ"):
        fastnn.numerical_gradient(never_called, x)


@pytest.mark.parametrize("result", [
    pytest.param(np.zeros(2), id="array2"),
    pytest.param(np.zeros((2, 2)), id="array2x2"),
    pytest.param([1.0, 2.0], id="list"),
    pytest.param(None, id="None"),
])
def test_f_returning_a_non_scalar_raises_type_error(result):
    x = np.array([[0.5, -1.5], [np.nan, -0.0]])
    x_bits = bits(x)
    with pytest.raises(TypeError, match="scalar"):
        fastnn.numerical_gradient(lambda _: result, x)
    assert_array_equal(bits(x), x_bits)


def test_byteswapped_x_as_reference():
    x = np.array([[0.5, -1.5], [2.0, 3.0]]).astype(">f8")
    grad = fastnn.numerical_gradient(weighted_sin, x)
    assert_array_equal(grad, reference.numerical_gradient(weighted_sin, x))
