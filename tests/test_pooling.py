"""fastnn.Pooling (csrc/pooling.c: maxpool_forward, maxpool_backward) against
fastnn.reference.Pooling: shapes, strides, pads, dtypes, layouts, thread counts, ties (the first
maximum wins, as np.argmax), NaN (it wins, as np.max), backward against numerical gradients, and
the (C, N, H, W) planes path the models run."""

import numpy as np
import pytest
from helpers import FLOATS, LAYOUTS, PARALLEL_MIN, VECTOR_PATHS, conv_case, vector_path, with_layout
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import _core, reference


def case(data, dtype, ties=False):
    shape, (ph, pw), stride, pad, _ = conv_case(data.draw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape)
    if ties:  # few distinct values: many windows with several maxima, and zeros like the pad's
        x = np.round(x)
    return x.astype(dtype), (ph, pw), stride, pad, rng


def test_fast_layer_is_not_the_reference():
    assert fastnn.Pooling is not reference.Pooling
    assert not issubclass(fastnn.Pooling, reference.Pooling)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_forward_backward(dtype, ties, data):
    x, (ph, pw), stride, pad, rng = case(data, dtype, ties)
    fast, ref = fastnn.Pooling(ph, pw, stride, pad), reference.Pooling(ph, pw, stride, pad)
    x_layout, d_layout = data.draw(st.sampled_from(LAYOUTS)), data.draw(st.sampled_from(LAYOUTS))
    out, expected = fast.forward(with_layout(x, x_layout)), ref.forward(x)
    assert out.dtype == expected.dtype == dtype
    assert_array_equal(out, expected)
    assert_array_equal(fast.arg_max, ref.arg_max)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, expected_dx = fast.backward(with_layout(dout, d_layout)), ref.backward(dout)
    assert dx.dtype == dtype and dx.shape == x.shape
    tol = 1e-12 if dtype == np.float64 else 1e-5  # overlapping windows add in another order
    assert_allclose(dx, expected_dx, rtol=tol, atol=tol)


def test_ties_first_maximum_wins():
    x = np.array([[[[1.0, 1.0], [1.0, 1.0]]]])
    layer = fastnn.Pooling(2, 2)
    assert_array_equal(layer.forward(x), [[[[1.0]]]])
    assert_array_equal(layer.arg_max, [0])
    assert_array_equal(layer.backward(np.array([[[[5.0]]]])), [[[[5.0, 0], [0, 0]]]])
    # a maximum in the padding (zeros) wins over negative pixels and gets no gradient
    x = -np.ones((1, 1, 2, 2))
    layer, ref = fastnn.Pooling(2, 2, 2, 1), reference.Pooling(2, 2, 2, 1)
    assert_array_equal(layer.forward(x), ref.forward(x))
    assert_array_equal(layer.arg_max, ref.arg_max)
    assert_array_equal(layer.backward(np.ones((1, 1, 2, 2))), 0)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("where", [0, 1, 3], ids=["first", "second", "last"])
def test_nan_wins(dtype, where):
    x = np.array([[[[1.0, 2.0], [-np.inf, np.inf]]]], dtype)
    x.reshape(-1)[where] = np.nan
    x2 = np.concatenate([x, x], axis=3)
    x2[0, 0, 1, 3] = np.nan  # the second window: two NaNs, the first wins
    for data in (x, x2):
        fast, ref = fastnn.Pooling(2, 2), reference.Pooling(2, 2)
        with np.errstate(invalid="ignore"):
            expected = ref.forward(data)
        out = fast.forward(data)
        assert np.isnan(out[0, 0, 0, 0])
        assert_array_equal(out, expected)
        assert_array_equal(fast.arg_max, ref.arg_max)
        dout = np.arange(1, out.size + 1, dtype=dtype).reshape(out.shape)
        assert_array_equal(fast.backward(dout), ref.backward(dout))


def test_infinities():
    x = np.array([[[[-np.inf, -np.inf], [-np.inf, -np.inf]]]])
    fast, ref = fastnn.Pooling(2, 2), reference.Pooling(2, 2)
    assert_array_equal(fast.forward(x), ref.forward(x))
    assert_array_equal(fast.arg_max, ref.arg_max)


@pytest.mark.parametrize("stride, pad, size", [(2, 0, 2), (1, 0, 3), (2, 1, 3), (3, 2, 2)])
def test_backward_against_numerical_gradients(stride, pad, size):
    rng = np.random.default_rng(stride + 10 * pad)
    x = rng.permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6) / 7.0  # distinct values, no ties
    layer = fastnn.Pooling(size, size, stride, pad)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    numeric = reference.functions.numerical_gradient(
        lambda _: float(np.sum(layer.forward(x) * dout)), x, h=1e-3)
    assert_allclose(dx, numeric, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("stride", [1, 2])
def test_threads(dtype, stride, threads):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((100, 30, 24, 24)).astype(dtype)
    assert x.size >= PARALLEL_MIN
    fast, ref = fastnn.Pooling(2, 2, stride), reference.Pooling(2, 2, stride)
    out = fast.forward(x)
    assert_array_equal(out, ref.forward(x))
    dout = rng.standard_normal(out.shape).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(fast.backward(dout), ref.backward(dout), rtol=tol, atol=tol)


def test_outputs_are_new_arrays():
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 6))
    layer = fastnn.Pooling(2, 2)
    out = layer.forward(x)
    kept = out.copy()
    dx = layer.backward(np.ones_like(out))
    kept_dx = dx.copy()
    layer.forward(-x)
    layer.backward(2 * np.ones_like(out))
    assert_array_equal(out, kept)
    assert_array_equal(dx, kept_dx)
    assert layer.x is not None and layer.params == [] and layer.grads == []
    assert (layer.pool_h, layer.pool_w, layer.stride, layer.pad) == (2, 2, 2, 0)


def test_float16_as_the_reference():
    x = np.random.default_rng(5).standard_normal((2, 2, 5, 5)).astype(np.float16)
    fast, ref = fastnn.Pooling(3, 3, 1), reference.Pooling(3, 3, 1)
    out = fast.forward(x)
    assert out.dtype == np.float16
    assert_array_equal(out, ref.forward(x))
    dout = np.ones_like(out)
    assert_array_equal(fast.backward(dout), ref.backward(dout))


@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_planes_path(dtype, data):
    """(N, C, H, W) or (C, N, H, W) in, either layout out, as the models chain the layers."""
    x, (ph, pw), stride, pad, rng = case(data, dtype, data.draw(st.booleans()))
    x_cnhw, out_cnhw = data.draw(st.booleans()), data.draw(st.booleans())
    fast, ref = fastnn.Pooling(ph, pw, stride, pad), reference.Pooling(ph, pw, stride, pad)

    def planes(a, cnhw):
        return np.ascontiguousarray(a.transpose(1, 0, 2, 3)) if cnhw else a

    def images(a, cnhw):
        return a.transpose(1, 0, 2, 3) if cnhw else a

    out = fast._forward_planes(planes(x, x_cnhw), x_cnhw, out_cnhw)
    expected = ref.forward(x)
    assert_array_equal(images(out, out_cnhw), expected)
    assert_array_equal(fast.arg_max, ref.arg_max)
    dout = rng.standard_normal(expected.shape).astype(dtype)
    dx = fast._backward_planes(planes(dout, out_cnhw))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(images(dx, x_cnhw), ref.backward(dout), rtol=tol, atol=tol)


def test_backward_checks_the_window_indices():
    x = np.zeros((1, 1, 4, 4))
    out, arg = np.empty((1, 1, 2, 2)), np.empty((1, 1, 2, 2), np.int32)
    _core.maxpool_forward(x, 2, 2, 2, 0, out, arg)
    arg[0, 0, 1, 1] = 4  # outside the 2x2 window
    dx = np.full((1, 1, 4, 4), 7.0)
    with pytest.raises(ValueError, match=r"arg.flat\[3\] = 4 is outside the 2x2 window"):
        _core.maxpool_backward(np.ones((1, 1, 2, 2)), arg, dx, 2, 2, 2, 0)
    assert (dx == 7).all()  # checked before anything is written


@pytest.mark.parametrize("bad", [-1, -2**31, 9, 2**31 - 1])
@pytest.mark.parametrize("where", [0, 16383, 16384, 33000, 50 * 3 * 16 * 16 - 1])
def test_backward_finds_the_first_bad_window_index(bad, where):
    """The check runs over chunks of 16384 args: a bad index at either end of one, in a later
    chunk, negative or too large, with a second bad one after it; nothing written."""
    x = np.random.default_rng(where).standard_normal((50, 3, 32, 32))
    out, arg = np.empty((50, 3, 16, 16)), np.empty((50, 3, 16, 16), np.int32)
    _core.maxpool_forward(x, 3, 3, 2, 1, out, arg)
    arg.flat[where] = bad
    arg.flat[where + 1:] = 9  # later bad ones
    dx = np.full(x.shape, 7.0)
    with pytest.raises(ValueError, match=rf"arg.flat\[{where}\] = {bad} is outside the 3x3"):
        _core.maxpool_backward(out, arg, dx, 3, 3, 2, 1)
    assert (dx == 7).all()


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("height", [6, 7], ids=lambda h: f"h{h}")
@pytest.mark.parametrize("width", [2, 3, 7, 8, 9, 10, 14, 16, 17, 18, 22, 24, 33, 48],
                         ids=lambda w: f"w{w}")
def test_2x2_stride_2_vector_and_portable_paths(path, dtype, height, width):
    """The models' 2x2 stride-2 pooling has its own AVX-512 forward loop (whole registers and a
    masked last block), AVX2 forward and backward loops (rows of at least a register, the last
    block moved back to overlap the one before; shorter rows: the AVX-512 backward loop, one
    masked block, or the portable code), and the vector backward writes each dx element once:
    output widths 1-24 around both register widths, odd heights and widths (a last row or column
    in no window, still zeroed in a dx full of NaN); ties, NaN and +-inf in every lane position,
    -0 in dout (dx +0, as the reference's scatter into zeros), against the reference."""
    rng = np.random.default_rng(width + 100 * height)
    x = np.round(rng.standard_normal((3, 2, height, width)))
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = np.inf
    x[rng.random(x.shape) < 0.05] = -np.inf
    x = x.astype(dtype)
    fast, ref = fastnn.Pooling(2, 2), reference.Pooling(2, 2)
    with vector_path(path), np.errstate(invalid="ignore"):
        out, expected = fast.forward(x), ref.forward(x)
        assert_array_equal(out, expected)
        assert_array_equal(fast.arg_max, ref.arg_max)
        dout = rng.standard_normal(out.shape).astype(dtype)
        dout[rng.random(out.shape) < 0.2] = -0.0
        expected_dx = ref.backward(dout)
        dx = fast.backward(dout)
        assert_array_equal(dx, expected_dx)
        assert_array_equal(np.signbit(dx), np.signbit(expected_dx))
        arg = np.empty(out.shape, np.int32)
        _core.maxpool_forward(x, 2, 2, 2, 0, np.empty_like(out), arg)
        dx = np.full_like(x, np.nan)
        _core.maxpool_backward(dout, arg, dx, 2, 2, 2, 0)
        assert_array_equal(dx, expected_dx)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_2x2_stride_2_layouts(path, dtype, layout):
    """The models' 2x2 stride-2 loops behind every input layout of the layer (x and dout) and
    every (N, C, H, W) / (C, N, H, W) pairing of the planes path, odd sizes, ties."""
    rng = np.random.default_rng(len(layout))
    x = np.round(2 * rng.standard_normal((3, 4, 11, 19))).astype(dtype)
    ref = reference.Pooling(2, 2)
    expected = ref.forward(x)
    dout = rng.standard_normal(expected.shape).astype(dtype)
    expected_dx = ref.backward(dout)
    with vector_path(path):
        fast = fastnn.Pooling(2, 2)
        assert_array_equal(fast.forward(with_layout(x, layout)), expected)
        assert_array_equal(fast.arg_max, ref.arg_max)
        assert_array_equal(fast.backward(with_layout(dout, layout)), expected_dx)
        for x_cnhw in (False, True):
            for out_cnhw in (False, True):
                fast = fastnn.Pooling(2, 2)
                xp = np.ascontiguousarray(x.transpose(1, 0, 2, 3)) if x_cnhw else x
                out = fast._forward_planes(xp, x_cnhw, out_cnhw)
                assert_array_equal(out.transpose(1, 0, 2, 3) if out_cnhw else out, expected)
                dp = np.ascontiguousarray(dout.transpose(1, 0, 2, 3)) if out_cnhw else dout
                dx = fast._backward_planes(dp)
                assert_array_equal(dx.transpose(1, 0, 2, 3) if x_cnhw else dx, expected_dx)
