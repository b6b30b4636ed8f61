"""fastnn.reference's convolution helpers and layers (volume 1, chapter 7) against definitions
written here as explicit loops, and every backward against a numerical gradient.

im2col / col2im / Convolution / Pooling are checked element by element against nested loops over
(n, c, i, j, y, x), which say what the book's vectorised code means; col2im also through the
adjoint identity <im2col(x), c> = <x, col2im(c)>.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from fastnn import reference
from fastnn.reference import Convolution, Pooling, col2im, conv_output_size, im2col

pytestmark = pytest.mark.filterwarnings("error")


# --------------------------------------------------------------------------- loop definitions

def padded(x, pad):
    N, C, H, W = x.shape
    img = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    img[:, :, pad:pad + H, pad:pad + W] = x
    return img


def loop_im2col(x, fh, fw, stride, pad):
    """Row (n, i, j), column (c, y, x) = padded image n, channel c, pixel (i*stride + y,
    j*stride + x)."""
    N, C, H, W = x.shape
    out_h = (H + 2 * pad - fh) // stride + 1
    out_w = (W + 2 * pad - fw) // stride + 1
    img = padded(x, pad)
    col = np.zeros((N * out_h * out_w, C * fh * fw))
    for n in range(N):
        for i in range(out_h):
            for j in range(out_w):
                row = (n * out_h + i) * out_w + j
                for c in range(C):
                    for y in range(fh):
                        for x_ in range(fw):
                            col[row, (c * fh + y) * fw + x_] = \
                                img[n, c, i * stride + y, j * stride + x_]
    return col


def loop_col2im(col, shape, fh, fw, stride, pad):
    """Every element of col added onto the padded-image pixel it was read from; padding dropped."""
    N, C, H, W = shape
    out_h = (H + 2 * pad - fh) // stride + 1
    out_w = (W + 2 * pad - fw) // stride + 1
    img = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    for n in range(N):
        for i in range(out_h):
            for j in range(out_w):
                row = (n * out_h + i) * out_w + j
                for c in range(C):
                    for y in range(fh):
                        for x_ in range(fw):
                            img[n, c, i * stride + y, j * stride + x_] += \
                                col[row, (c * fh + y) * fw + x_]
    return img[:, :, pad:pad + H, pad:pad + W]


def loop_convolution(x, W, b, stride, pad):
    """out[n, f, i, j] = b[f] + sum over c, y, x of W[f, c, y, x] * padded x[n, c, i*s + y,
    j*s + x]."""
    N, C, H, Wd = x.shape
    FN, _, FH, FW = W.shape
    out_h = (H + 2 * pad - FH) // stride + 1
    out_w = (Wd + 2 * pad - FW) // stride + 1
    img = padded(x, pad)
    out = np.zeros((N, FN, out_h, out_w))
    for n in range(N):
        for f in range(FN):
            for i in range(out_h):
                for j in range(out_w):
                    window = img[n, :, i * stride:i * stride + FH, j * stride:j * stride + FW]
                    out[n, f, i, j] = np.sum(window * W[f]) + b[f]
    return out


def loop_max_pool(x, ph, pw, stride, pad):
    """Max of each window of the zero-padded images, and the flat index of its first maximum."""
    N, C, H, W = x.shape
    out_h = (H + 2 * pad - ph) // stride + 1
    out_w = (W + 2 * pad - pw) // stride + 1
    img = padded(x, pad)
    out = np.zeros((N, C, out_h, out_w))
    first = np.zeros((N, C, out_h, out_w), dtype=int)
    for n in range(N):
        for c in range(C):
            for i in range(out_h):
                for j in range(out_w):
                    best, best_k = None, 0
                    for y in range(ph):
                        for x_ in range(pw):
                            v = img[n, c, i * stride + y, j * stride + x_]
                            if best is None or v > best or (np.isnan(v) and not np.isnan(best)):
                                best, best_k = v, y * pw + x_
                    out[n, c, i, j], first[n, c, i, j] = best, best_k
    return out, first


# --------------------------------------------------------------------------- shapes

@st.composite
def conv_cases(draw):
    """(N, C, H, W), (FH, FW), stride 1-3, pad 0-2 with a filter that fits the padded input."""
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, 2))
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 3))
    H = draw(st.integers(1, 9))
    W = draw(st.integers(1, 9))
    fh = draw(st.integers(1, min(5, H + 2 * pad)))
    fw = draw(st.integers(1, min(5, W + 2 * pad)))
    return (N, C, H, W), (fh, fw), stride, pad


def numerical(f, x):
    return reference.functions.numerical_gradient(lambda _: f(), x)


# --------------------------------------------------------------------------- conv_output_size

@pytest.mark.parametrize("args, expected", [
    ((28, 5), 24), ((28, 5, 1, 2), 28), ((7, 3, 2), 3), ((8, 3, 2), 3), ((8, 3, 3, 1), 3),
    ((1, 1), 1), ((1, 3, 1, 1), 1), ((2, 2, 5), 1),
])
def test_conv_output_size(args, expected):
    size = conv_output_size(*args)
    assert size == expected and type(size) is int


@pytest.mark.parametrize("args, error, match", [
    ((4, 5), ValueError, "filter size 5 is larger than the padded input: 4"),
    ((4, 7, 1, 1), ValueError, "larger than the padded input: 4 \\+ 2\\*1 = 6"),
    ((4, 3, 0), ValueError, "stride must be >= 1, got 0"),
    ((4, 3, -1), ValueError, "stride must be >= 1, got -1"),
    ((4, 3, 1, -1), ValueError, "pad must be >= 0, got -1"),
    ((0, 1), ValueError, "input_size must be >= 1, got 0"),
    ((4, 0), ValueError, "filter_size must be >= 1, got 0"),
    ((4.0, 3), TypeError, "input_size must be an integer"),
    ((4, 3, 1.5), TypeError, "stride must be an integer"),
])
def test_conv_output_size_errors(args, error, match):
    with pytest.raises(error, match=match):
        conv_output_size(*args)


# --------------------------------------------------------------------------- im2col / col2im

@settings(max_examples=150, deadline=None)
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_im2col_col2im_against_loops(case, seed):
    shape, (fh, fw), stride, pad = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    col = im2col(x, fh, fw, stride, pad)
    assert_array_equal(col, loop_im2col(x, fh, fw, stride, pad))

    c = rng.standard_normal(col.shape)
    img = col2im(c, shape, fh, fw, stride, pad)
    assert img.shape == shape
    assert_allclose(img, loop_col2im(c, shape, fh, fw, stride, pad), rtol=1e-13, atol=1e-13)
    # adjoint: <im2col(x), c> = <x, col2im(c)>
    assert_allclose(np.sum(col * c), np.sum(x * img), rtol=1e-12, atol=1e-12)


def test_col2im_accumulates_overlaps():
    # 3x3 windows with stride 1 over a 4x4 image: a pixel's count is the number of windows over it
    ones = np.ones((4, 9))
    counts = col2im(ones, (1, 1, 4, 4), 3, 3)
    assert_array_equal(counts[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])
    # stride 2 leaves row/column 4 of a 5x5 image in no 2x2 window: it gets 0
    counts = col2im(np.ones((4, 4)), (1, 1, 5, 5), 2, 2, stride=2)
    assert_array_equal(counts[0, 0, 4], 0)
    assert_array_equal(counts[0, 0, :, 4], 0)
    assert_array_equal(counts[0, 0, :4, :4], 1)


@pytest.mark.parametrize("dtype, expected", [
    (np.float64, np.float64), (np.float32, np.float32), (np.float16, np.float16),
    (np.int32, np.float64), (np.bool_, np.float64),
])
def test_im2col_dtypes(dtype, expected):
    x = (np.arange(2 * 3 * 5 * 4) % 7).reshape(2, 3, 5, 4).astype(dtype)
    col = im2col(x, 3, 2, 1, 1)
    assert col.dtype == expected
    assert_array_equal(col, loop_im2col(x.astype(np.float64), 3, 2, 1, 1))
    img = col2im(col, x.shape, 3, 2, 1, 1)
    assert img.dtype == expected


def test_im2col_layouts():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 8))
    expected = im2col(x, 3, 3, 2, 1)
    readonly = x.copy()
    readonly.flags.writeable = False
    for view in (np.asfortranarray(x), np.repeat(x, 2, axis=3)[..., ::2], x[::-1][::-1],
                 readonly):
        assert_array_equal(im2col(view, 3, 3, 2, 1), expected)


def test_im2col_col2im_errors():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="input_data must be 4-D .* got shape \\(4, 4\\)"):
        im2col(x[0, 0], 2, 2)
    with pytest.raises(ValueError, match="filter size 5 is larger than the padded input"):
        im2col(x, 5, 2)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        im2col(x, 2, 2, stride=0)
    with pytest.raises(ValueError, match="pad must be >= 0"):
        im2col(x, 2, 2, pad=-1)
    with pytest.raises(TypeError, match="dtype complex128"):
        im2col(x.astype(complex), 2, 2)
    with pytest.raises(ValueError, match="input_shape must be 4-D"):
        col2im(np.zeros((9, 4)), (1, 4, 4), 2, 2)
    with pytest.raises(ValueError, match=r"col must have shape \(9, 4\) .* got \(9, 5\)"):
        col2im(np.zeros((9, 5)), (1, 1, 4, 4), 2, 2)
    with pytest.raises(ValueError, match="filter size 3 is larger"):
        col2im(np.zeros((9, 4)), (1, 1, 2, 2), 3, 3)


# --------------------------------------------------------------------------- Convolution

@settings(max_examples=60, deadline=None)
@given(conv_cases(), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_convolution_forward_against_loop(case, FN, seed):
    shape, (fh, fw), stride, pad = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    W = rng.standard_normal((FN, shape[1], fh, fw))
    b = rng.standard_normal(FN)
    layer = Convolution(W, b, stride, pad)
    out = layer.forward(x)
    assert_allclose(out, loop_convolution(x, W, b, stride, pad), rtol=1e-12, atol=1e-12)
    assert out.shape[2:] == (conv_output_size(shape[2], fh, stride, pad),
                             conv_output_size(shape[3], fw, stride, pad))
    # what the book keeps for backward
    assert layer.x is x
    assert_array_equal(layer.col, im2col(x, fh, fw, stride, pad))
    assert_array_equal(layer.col_W, W.reshape(FN, -1).T)


@pytest.mark.parametrize("shape, FN, filt, stride, pad", [
    ((2, 3, 5, 6), 4, (3, 3), 1, 0), ((1, 1, 7, 7), 2, (3, 2), 2, 1),
    ((3, 2, 6, 5), 3, (2, 2), 3, 2),
    ((2, 1, 4, 4), 1, (5, 5), 1, 2), ((1, 2, 3, 8), 2, (1, 1), 2, 0),
], ids=str)
def test_convolution_backward_against_numerical(shape, FN, filt, stride, pad):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    W = rng.standard_normal((FN, shape[1]) + filt)
    b = rng.standard_normal(FN)
    layer = Convolution(W, b, stride, pad)
    dout = rng.standard_normal(layer.forward(x).shape)
    dout_before = dout.copy()
    grads = list(layer.grads)

    dx = layer.backward(dout)

    assert_array_equal(dout, dout_before)
    assert layer.grads[0] is grads[0] and layer.grads[1] is grads[1]  # written in place
    assert layer.dW is layer.grads[0] and layer.db is layer.grads[1]

    def f():
        return np.sum(layer.forward(x) * dout)

    assert_allclose(dx, numerical(f, x), rtol=1e-6, atol=1e-7)
    assert_allclose(layer.dW, numerical(f, W), rtol=1e-6, atol=1e-7)
    assert_allclose(layer.db, numerical(f, b), rtol=1e-6, atol=1e-7)


def test_convolution_attributes_and_setters():
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((2, 1, 3, 3)), np.zeros(2)
    layer = Convolution(W, b, stride=2, pad=1)
    assert layer.W is W and layer.b is b and layer.params[0] is W and layer.params[1] is b
    assert (layer.stride, layer.pad) == (2, 1)
    assert layer.dW.shape == W.shape and layer.db.shape == b.shape

    # volume 1's load_params rebinds W and b; forward and params follow, grads keep matching shapes
    W2, b2 = rng.standard_normal((3, 1, 2, 2)), rng.standard_normal(3)
    layer.W, layer.b = W2, b2
    assert layer.params[0] is W2 and layer.params[1] is b2
    x = rng.standard_normal((2, 1, 5, 5))
    assert_allclose(layer.forward(x), loop_convolution(x, W2, b2, 2, 1), rtol=1e-12)
    layer.backward(np.ones((2, 3, 3, 3)))
    assert layer.dW.shape == W2.shape and layer.db.shape == b2.shape


def test_convolution_float32_stays_float32():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    W = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    layer = Convolution(W, b, 1, 1)
    out = layer.forward(x)
    assert out.dtype == np.float32
    assert_allclose(out, loop_convolution(x.astype(float), W.astype(float), b, 1, 1),
                    rtol=1e-5, atol=1e-5)
    dx = layer.backward(np.ones(out.shape, np.float32))
    assert dx.dtype == np.float32 and layer.dW.dtype == np.float32


def test_convolution_nan_propagates():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    out = Convolution(np.ones((1, 1, 2, 2)), np.zeros(1)).forward(x)
    assert_array_equal(np.isnan(out[0, 0]), [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_convolution_errors():
    W, b = np.zeros((2, 3, 3, 3)), np.zeros(2)
    with pytest.raises(ValueError, match=r"W must be 4-D \(FN, C, FH, FW\), got shape \(2, 27\)"):
        Convolution(W.reshape(2, 27), b)
    with pytest.raises(ValueError, match=r"b must have shape \(2,\) .* got \(3,\)"):
        Convolution(W, np.zeros(3))
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        Convolution(W, b, stride=0)
    with pytest.raises(ValueError, match="pad must be >= 0, got -2"):
        Convolution(W, b, pad=-2)
    layer = Convolution(W, b)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.zeros((1, 2, 1, 1)))
    with pytest.raises(ValueError, match=r"x has 2 channels \(shape \(1, 2, 5, 5\)\) but W has 3"):
        layer.forward(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\), got shape \(3, 5, 5\)"):
        layer.forward(np.zeros((3, 5, 5)))
    with pytest.raises(ValueError, match="empty batch"):
        layer.forward(np.zeros((0, 3, 5, 5)))
    with pytest.raises(ValueError, match="filter size 3 is larger than the padded input: 2"):
        layer.forward(np.zeros((1, 3, 2, 5)))
    with pytest.raises(TypeError, match="dtype complex128"):
        layer.forward(np.zeros((1, 3, 5, 5), complex))
    layer.forward(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"last output \(1, 2, 3, 3\), got \(1, 2, 3, 4\)"):
        layer.backward(np.zeros((1, 2, 3, 4)))


# --------------------------------------------------------------------------- Pooling

@settings(max_examples=80, deadline=None)
@given(conv_cases(), st.integers(0, 2**32 - 1), st.booleans())
def test_pooling_against_loop(case, seed, ties):
    shape, (ph, pw), stride, pad = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if ties:  # few distinct values: most windows have tied maxima
        x = np.round(x)
    layer = Pooling(ph, pw, stride, pad)
    out = layer.forward(x)
    expected, first = loop_max_pool(x, ph, pw, stride, pad)
    assert_array_equal(out, expected)
    assert_array_equal(layer.arg_max, first.transpose(0, 2, 3, 1).ravel())

    # backward: each window's dout lands on its first maximum, shares of a pixel add up
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    N, C, H, W = shape
    grad = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    for n, c, i, j in np.ndindex(*out.shape):
        y, x_ = divmod(first[n, c, i, j], pw)
        grad[n, c, i * stride + y, j * stride + x_] += dout[n, c, i, j]
    assert_allclose(dx, grad[:, :, pad:pad + H, pad:pad + W], rtol=1e-13, atol=1e-13)


def test_pooling_backward_against_numerical():
    rng = np.random.default_rng(5)
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0  # distinct values: no ties
    for ph, pw, stride, pad in [(2, 2, 2, 0), (3, 3, 1, 0), (3, 2, 2, 1), (2, 3, 3, 0)]:
        layer = Pooling(ph, pw, stride, pad)
        dout = rng.standard_normal(layer.forward(x).shape)
        dx = layer.backward(dout)
        assert_allclose(dx, numerical(lambda: np.sum(layer.forward(x) * dout), x),
                        rtol=1e-6, atol=1e-8)


def test_pooling_ties_first_maximum_gets_gradient():
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])
    layer = Pooling(2, 2)
    assert_array_equal(layer.forward(x), [[[[3.0]]]])
    assert_array_equal(layer.backward(np.array([[[[5.0]]]])), [[[[0.0, 5.0], [0.0, 0.0]]]])


def test_pooling_nan_wins():
    x = np.array([[[[1.0, 2.0, 9.0, 4.0], [np.nan, 0.0, 1.0, np.nan]]]])
    layer = Pooling(2, 2)
    out = layer.forward(x)
    assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out[0, 0, 0, 1])
    dx = layer.backward(np.array([[[[1.0, 2.0]]]]))
    assert_array_equal(dx, [[[[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 2.0]]]])


def test_pooling_attributes_and_dtypes():
    layer = Pooling(3, 2, stride=1, pad=1)
    assert (layer.pool_h, layer.pool_w, layer.stride, layer.pad) == (3, 2, 1, 1)
    assert layer.params == [] and layer.grads == []
    assert Pooling(2, 2).stride == 2  # the book's default
    for dtype in (np.float32, np.float16):
        x = np.arange(32, dtype=dtype).reshape(1, 2, 4, 4)
        out = Pooling(2, 2).forward(x)
        assert out.dtype == dtype
        assert_array_equal(out, [[[[5, 7], [13, 15]], [[21, 23], [29, 31]]]])


def test_pooling_errors():
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        Pooling(2, 2, stride=0)
    with pytest.raises(ValueError, match="pad must be >= 0, got -1"):
        Pooling(2, 2, pad=-1)
    with pytest.raises(ValueError, match="must be >= 1, got 0"):
        Pooling(0, 2)
    layer = Pooling(3, 3)
    with pytest.raises(ValueError, match=r"x must be 4-D .* got shape \(2, 5, 5\)"):
        layer.forward(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="filter size 3 is larger than the padded input: 2"):
        layer.forward(np.zeros((1, 1, 2, 5)))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 1, 1, 1)))
    layer.forward(np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"last output \(1, 1, 2, 2\), got \(1, 1, 2, 1\)"):
        layer.backward(np.zeros((1, 1, 2, 1)))


def test_layers_namespace():
    assert reference.layers.Convolution is Convolution and reference.layers.Pooling is Pooling
    assert reference.util.im2col is im2col
    for name in ("Convolution", "Pooling", "im2col", "col2im", "conv_output_size"):
        assert name in reference.__all__
