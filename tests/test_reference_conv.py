"""fastnn.reference's convolution helpers and layers (volume 1, chapter 7) against definitions
written here as explicit loops, and every backward against a numerical gradient.

im2col / col2im / Convolution / Pooling are checked element by element against nested loops over
(n, c, i, j, y, x), which say what the book's vectorised code means; col2im also through the
adjoint identity <im2col(x), c> = <x, col2im(c)>.
"""

import pickle

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


# --------------------------------------------------------------------------- SimpleConvNet

TINY = dict(input_dim=(2, 8, 7), conv_param={'filter_num': 3, 'filter_size': 3, 'pad': 1,
                                              'stride': 1},
            hidden_size=5, output_size=4, weight_init_std=0.3)
SIMPLE_KEYS = ["W1", "b1", "W2", "b2", "W3", "b3"]


def tiny_batch(rng, model, n=6):
    x = rng.random((n,) + model.input_dim)
    t = rng.integers(0, model.params["b" + str(len(model.params) // 2)].size, n)
    return x, t


def test_simple_convnet_structure():
    net = reference.SimpleConvNet(seed=0)
    assert list(net.layers) == ["Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    assert isinstance(net.last_layer, reference.SoftmaxWithLoss)
    shapes = {key: val.shape for key, val in net.params.items()}
    assert shapes == {"W1": (30, 1, 5, 5), "b1": (30,), "W2": (4320, 100), "b2": (100,),
                      "W3": (100, 10), "b3": (10,)}
    conv, pool = net.layers["Conv1"], net.layers["Pool1"]
    assert conv.W is net.params["W1"] and conv.b is net.params["b1"]
    assert net.layers["Affine1"].params[0] is net.params["W2"]
    assert net.layers["Affine2"].params[1] is net.params["b3"]
    assert (conv.stride, conv.pad) == (1, 0)
    assert (pool.pool_h, pool.pool_w, pool.stride, pool.pad) == (2, 2, 2, 0)
    assert reference.models.SimpleConvNet is reference.SimpleConvNet


def test_simple_convnet_odd_sizes():
    # a 9x7 conv output pools to 4x3 (the last row is left out, as Pooling does)
    net = reference.SimpleConvNet(input_dim=(1, 11, 9), conv_param={'filter_num': 2,
                                  'filter_size': 3, 'pad': 0, 'stride': 1}, seed=0)
    assert net.params["W2"].shape == (2 * 4 * 3, 100)
    assert net.predict(np.zeros((2, 1, 11, 9))).shape == (2, 10)


def test_simple_convnet_draws_as_the_book():
    """seed=None: np.random.randn for W1, W2, W3 in that order, scaled; biases zero."""
    np.random.seed(11)
    net = reference.SimpleConvNet(**TINY)
    np.random.seed(11)
    W1 = 0.3 * np.random.randn(3, 2, 3, 3)
    W2 = 0.3 * np.random.randn(3 * 4 * 3, 5)
    W3 = 0.3 * np.random.randn(5, 4)
    after = np.random.rand()
    assert_array_equal(net.params["W1"], W1)
    assert_array_equal(net.params["W2"], W2)
    assert_array_equal(net.params["W3"], W3)
    for key, size in (("b1", 3), ("b2", 5), ("b3", 4)):
        assert_array_equal(net.params[key], np.zeros(size))

    # a seed draws from its own generator and leaves the global state alone
    np.random.seed(11)
    a = reference.SimpleConvNet(**TINY, seed=4)
    b = reference.SimpleConvNet(**TINY, seed=np.random.default_rng(4))
    np.random.seed(11)
    np.random.randn(3 * 2 * 3 * 3 + 36 * 5 + 5 * 4)
    assert np.random.rand() == after
    for key in SIMPLE_KEYS:
        assert_array_equal(a.params[key], b.params[key])
    assert not np.array_equal(a.params["W1"], W1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_simple_convnet_gradient_against_numerical(dtype):
    rng = np.random.default_rng(8)
    net = reference.SimpleConvNet(**TINY, dtype=dtype, seed=8)
    x, t = tiny_batch(rng, net)
    if dtype == np.float32:  # the loss in float64 arithmetic on float32-representable params
        net32 = net
        net = reference.SimpleConvNet(**TINY, seed=8)
        for key in SIMPLE_KEYS:
            net.params[key][...] = net32.params[key]
        grads32 = net32.gradient(x, t)
        assert all(g.dtype == np.float32 for g in grads32.values())
        assert net32.predict(x).dtype == np.float32

    grads = net.gradient(x, t)
    numeric = net.numerical_gradient(x, t)
    assert sorted(grads) == sorted(numeric) == sorted(SIMPLE_KEYS)
    for key in SIMPLE_KEYS:
        assert_allclose(grads[key], numeric[key], rtol=1e-5, atol=1e-8, err_msg=key)
        if dtype == np.float32:
            assert_allclose(grads32[key], grads[key], rtol=2e-3, atol=1e-5, err_msg=key)


def test_simple_convnet_gradient_returns_new_arrays():
    rng = np.random.default_rng(9)
    net = reference.SimpleConvNet(**TINY, seed=9)
    x, t = tiny_batch(rng, net)
    first = net.gradient(x, t)
    kept = {key: val.copy() for key, val in first.items()}
    net.gradient(x[::-1], t)
    for key in SIMPLE_KEYS:
        assert_array_equal(first[key], kept[key])  # not overwritten by the next call


def test_convnet_accuracy():
    rng = np.random.default_rng(10)
    net = reference.SimpleConvNet(**TINY, seed=10)
    x, _ = tiny_batch(rng, net, n=7)
    predicted = np.argmax(net.predict(x), axis=1)
    t = predicted.copy()
    t[[1, 6]] = (t[[1, 6]] + 1) % 4  # two wrong, one of them in the short last batch
    for batch_size in (1, 3, 7, 100):
        assert net.accuracy(x, t, batch_size=batch_size) == 5 / 7
    assert net.accuracy(x, np.eye(4)[t]) == 5 / 7  # one-hot
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        net.accuracy(x, t, batch_size=0)
    with pytest.raises(ValueError, match="x has 7 images but t has 6 labels"):
        net.accuracy(x, t[:6])


def test_convnet_input_errors():
    net = reference.SimpleConvNet(**TINY, seed=0)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2, 8, 7\) for input_dim "
                                         r"\(2, 8, 7\), got \(3, 112\)"):
        net.predict(np.zeros((3, 112)))
    with pytest.raises(ValueError, match=r"got \(3, 1, 8, 7\)"):
        net.predict(np.zeros((3, 1, 8, 7)))
    with pytest.raises(ValueError, match="empty batch"):
        net.predict(np.zeros((0, 2, 8, 7)))
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got float16"):
        reference.SimpleConvNet(dtype=np.float16)
    with pytest.raises(ValueError, match="input_dim must be"):
        reference.SimpleConvNet(input_dim=(28, 28))
    with pytest.raises(ValueError, match="filter size 5 is larger than the padded input: 4"):
        reference.SimpleConvNet(input_dim=(1, 4, 4))


# --------------------------------------------------------------------------- save / load

def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(12)
    src = reference.SimpleConvNet(**TINY, seed=1)
    x, _ = tiny_batch(rng, src)
    path = tmp_path / "params.pkl"
    src.save_params(str(path))
    with open(path, "rb") as f:
        saved = pickle.load(f)
    assert type(saved) is dict and sorted(saved) == sorted(SIMPLE_KEYS)

    dst = reference.SimpleConvNet(**TINY, seed=2)
    dst.load_params(str(path))
    assert_array_equal(dst.predict(x), src.predict(x))
    assert dst.layers["Conv1"].W is dst.params["W1"]
    assert dst.layers["Affine2"].params[0] is dst.params["W3"]


def test_load_book_format(tmp_path):
    """The book's files are pickled dicts of float64 arrays keyed W1, b1, ...; a float32 network
    converts them."""
    rng = np.random.default_rng(13)
    ref = reference.SimpleConvNet(**TINY, seed=3)
    params = {key: rng.standard_normal(val.shape) for key, val in ref.params.items()}
    path = tmp_path / "book.pkl"
    with open(path, "wb") as f:
        pickle.dump(params, f)
    x, _ = tiny_batch(rng, ref)

    ref.load_params(str(path))
    for key in SIMPLE_KEYS:
        assert_array_equal(ref.params[key], params[key])
    expected = loop_convolution(x, params["W1"], params["b1"], 1, 1)
    assert_allclose(ref.layers["Conv1"].forward(x), expected, rtol=1e-12, atol=1e-12)

    net32 = reference.SimpleConvNet(**TINY, dtype=np.float32, seed=3)
    net32.load_params(str(path))
    assert all(val.dtype == np.float32 for val in net32.params.values())
    assert_allclose(net32.predict(x), ref.predict(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("change, error, match", [
    (lambda p: p.pop("b2"), ValueError, r"missing parameters \['b2'\], unknown parameters \[\]"),
    (lambda p: p.update(W9=np.zeros(3)), ValueError, r"unknown parameters \['W9'\]"),
    (lambda p: p.update(W2=np.zeros((37, 5))), ValueError,
     r"parameter W2 has shape \(37, 5\), this network's is \(36, 5\)"),
    (lambda p: p.update(b3=np.zeros(4, complex)), TypeError, "parameter b3 has dtype complex128"),
], ids=["missing", "unknown", "misshaped", "complex"])
def test_load_params_errors(tmp_path, change, error, match):
    net = reference.SimpleConvNet(**TINY, seed=5)
    params = {key: np.ones_like(val) for key, val in net.params.items()}
    change(params)
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as f:
        pickle.dump(params, f)
    before = {key: val.copy() for key, val in net.params.items()}
    with pytest.raises(error, match=match):
        net.load_params(str(path))
    for key in SIMPLE_KEYS:  # nothing loaded
        assert_array_equal(net.params[key], before[key])
        assert net.layers["Conv1"].W is net.params["W1"]


def test_load_params_not_a_dict(tmp_path):
    path = tmp_path / "list.pkl"
    with open(path, "wb") as f:
        pickle.dump([np.zeros(3)], f)
    with pytest.raises(TypeError, match="expected a pickled dict of arrays, got list"):
        reference.SimpleConvNet(**TINY, seed=0).load_params(str(path))


def test_half_float_inference():
    """ch08/half_float_network.py: params rounded to float16 in place, float16 images; NumPy
    computes that in float64 (float16 * float64 -> float64)."""
    rng = np.random.default_rng(14)
    net = reference.SimpleConvNet(**TINY, seed=6)
    x, t = tiny_batch(rng, net, n=20)
    for param in net.params.values():
        param[...] = param.astype(np.float16)
    x16 = x.astype(np.float16)

    y = net.predict(x16)
    assert y.dtype == np.float64
    assert_array_equal(y, net.predict(x16.astype(np.float64)))
    # the in-place rounding reached the layers: a network loaded with rounded values agrees
    other = reference.SimpleConvNet(**TINY, seed=7)
    for key in SIMPLE_KEYS:
        other.params[key][...] = net.params[key]
    assert_array_equal(other.predict(x16.astype(np.float64)), y)
    assert net.accuracy(x16, t) == np.mean(np.argmax(y, axis=1) == t)


# --------------------------------------------------------------------------- DeepConvNet

def small_conv(filter_num, pad=1):
    return {'filter_num': filter_num, 'filter_size': 3, 'pad': pad, 'stride': 1}


DEEP_TINY = dict(input_dim=(1, 8, 8), conv_param_1=small_conv(2), conv_param_2=small_conv(2),
                 conv_param_3=small_conv(3), conv_param_4=small_conv(3, pad=2),
                 conv_param_5=small_conv(2), conv_param_6=small_conv(2), hidden_size=6,
                 output_size=3)
DEEP_KEYS = [f"{p}{i}" for i in range(1, 9) for p in "Wb"]


def test_deep_convnet_structure():
    net = reference.DeepConvNet(seed=0)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Convolution", "Relu", "Convolution", "Relu", "Pooling"] * 3 + [
        "Affine", "Relu", "Dropout", "Affine", "Dropout"]
    assert net.layers[17].dropout_ratio == net.layers[19].dropout_ratio == 0.5
    shapes = {key: val.shape for key, val in net.params.items()}
    assert shapes == {
        "W1": (16, 1, 3, 3), "b1": (16,), "W2": (16, 16, 3, 3), "b2": (16,),
        "W3": (32, 16, 3, 3), "b3": (32,), "W4": (32, 32, 3, 3), "b4": (32,),
        "W5": (64, 32, 3, 3), "b5": (64,), "W6": (64, 64, 3, 3), "b6": (64,),
        "W7": (1024, 50), "b7": (50,), "W8": (50, 10), "b8": (10,)}
    for i, idx in enumerate((0, 2, 5, 7, 10, 12, 15, 18), start=1):
        assert net.layers[idx].params[0] is net.params[f"W{i}"]
        assert net.layers[idx].params[1] is net.params[f"b{i}"]
    assert net.layers[7].pad == 2 and net.layers[5].pad == 1
    assert reference.models.DeepConvNet is reference.DeepConvNet


def test_deep_convnet_he_init_as_the_book():
    """seed=None: np.random.randn for W1..W8 in order, scaled by sqrt(2 / fan_in) with the
    book's fan-ins 1*3*3, 16*3*3, 16*3*3, 32*3*3, 32*3*3, 64*3*3, 64*4*4, 50."""
    np.random.seed(21)
    net = reference.DeepConvNet()
    np.random.seed(21)
    shapes = [(16, 1, 3, 3), (16, 16, 3, 3), (32, 16, 3, 3), (32, 32, 3, 3), (64, 32, 3, 3),
              (64, 64, 3, 3), (1024, 50), (50, 10)]
    fan_ins = [9, 144, 144, 288, 288, 576, 1024, 50]
    for i, (shape, fan_in) in enumerate(zip(shapes, fan_ins), start=1):
        assert_array_equal(net.params[f"W{i}"], np.sqrt(2.0 / fan_in) * np.random.randn(*shape))
        assert_array_equal(net.params[f"b{i}"], np.zeros(shape[0] if i < 7 else shape[1]))


def test_deep_convnet_dropout():
    rng = np.random.default_rng(22)
    net = reference.DeepConvNet(**DEEP_TINY, seed=22)
    x, t = tiny_batch(rng, net)
    # test mode: deterministic, each Dropout scales by 0.5
    assert_array_equal(net.predict(x), net.predict(x, train_flg=False))
    # training mode with NumPy's global state, as the book: np.random.seed repeats the masks
    np.random.seed(0)
    net_global = reference.DeepConvNet(**DEEP_TINY)
    np.random.seed(1)
    first = net_global.loss(x, t)
    np.random.seed(1)
    assert net_global.loss(x, t) == first
    assert net_global.loss(x, t, train_flg=False) == net_global.last_layer.forward(
        net_global.predict(x), t)
    # with a seed the masks come from the network's generator: global state untouched
    state = np.random.get_state()[1].copy()
    net.loss(x, t)
    assert_array_equal(np.random.get_state()[1], state)
    assert net.layers[17].mask is not None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_deep_convnet_gradient_against_numerical(dtype):
    rng = np.random.default_rng(23)
    np.random.seed(23)
    net = reference.DeepConvNet(**DEEP_TINY)  # masks from the global state, reseeded per loss
    x, t = tiny_batch(rng, net)
    # biases away from 0: with the initial zeros, a pixel whose inputs are all 0 (after a ReLU)
    # sits exactly on the next ReLU's kink, where the two sides' derivatives differ
    for i in range(1, 9):
        net.params[f"b{i}"][...] = rng.uniform(0.05, 0.2, net.params[f"b{i}"].shape)

    np.random.seed(5)
    grads = net.gradient(x, t)
    assert sorted(grads) == sorted(DEEP_KEYS)

    def loss(_):
        np.random.seed(5)
        return net.loss(x, t)

    for key in DEEP_KEYS:
        numeric = reference.functions.numerical_gradient(loss, net.params[key])
        # (the loss's -log(y + 1e-7) differs from the backward's -log(y) by ~1e-7 / y)
        assert_allclose(grads[key], numeric, rtol=1e-4, atol=1e-6, err_msg=key)

    if dtype == np.float32:
        net32 = reference.DeepConvNet(**DEEP_TINY, dtype=np.float32, seed=0)
        for key in DEEP_KEYS:
            net32.params[key][...] = net.params[key]
        np.random.seed(5)
        net32.layers[17].rng = net32.layers[19].rng = None  # the same masks as above
        grads32 = net32.gradient(x, t)
        for key in DEEP_KEYS:
            assert grads32[key].dtype == np.float32
            assert_allclose(grads32[key], grads[key], rtol=2e-3, atol=1e-5, err_msg=key)


def test_deep_convnet_save_load(tmp_path):
    rng = np.random.default_rng(24)
    src = reference.DeepConvNet(**DEEP_TINY, seed=1)
    x, t = tiny_batch(rng, src)
    path = tmp_path / "deep_convnet_params.pkl"
    src.save_params(str(path))
    dst = reference.DeepConvNet(**DEEP_TINY, seed=2)
    dst.load_params(str(path))
    assert_array_equal(dst.predict(x), src.predict(x))
    assert dst.accuracy(x, t, batch_size=4) == src.accuracy(x, t)

    # a SimpleConvNet's file: the keys it lacks are named, nothing is loaded
    simple = tmp_path / "params.pkl"
    reference.SimpleConvNet(input_dim=(1, 8, 8), seed=0).save_params(str(simple))
    with pytest.raises(ValueError, match=r"missing parameters \['W4', 'b4', 'W5', 'b5', 'W6', "
                                         r"'b6', 'W7', 'b7', 'W8', 'b8'\]"):
        dst.load_params(str(simple))
    assert_array_equal(dst.predict(x), src.predict(x))
