"""Volume 1's convolution and max-pooling layers (chapter 7), on im2col.

Images are (N, C, H, W). Both layers follow the layer conventions of ``layers.py`` (``params`` and
``grads`` lists, gradients written in place, the caller's ``dout`` never modified) and keep the
attributes the book's code reads: ``Convolution.W/.b/.dW/.db`` (views of params and grads, with
setters, since the book's ``load_params`` assigns ``layer.W = ...``), ``.x/.col/.col_W`` for the
backward pass; ``Pooling.pool_h/.pool_w/.stride/.pad/.x/.arg_max``.
"""

import numpy as np

from .functions import bias_grad
from .util import col2im, conv_output_size, im2col

__all__ = ["Convolution", "Pooling"]


def _images(x, name="x"):
    """x as an array, checked to be a non-empty (N, C, H, W) batch of real numbers."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch: shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real number array, got dtype {x.dtype}")
    return x


def _check_dout(dout, shape, layer):
    if shape is None:
        raise RuntimeError(f"{layer}.backward called before forward")
    dout = np.asarray(dout)
    if dout.shape != shape:
        raise ValueError(f"dout must have the shape of {layer}'s last output {shape}, "
                         f"got {dout.shape}")
    if dout.dtype.kind not in "biuf":
        raise TypeError(f"dout must be a real number array, got dtype {dout.dtype}")
    return dout


def _param(i):
    """params[i] as an attribute. Assigning rebinds params[i], as the book's ``layer.W = ...``
    does; grads[i] is reallocated when the new array's shape or dtype differ from it."""
    def set_param(self, value):
        value = np.asarray(value)
        if value.shape != self.grads[i].shape or value.dtype != self.grads[i].dtype:
            self.grads[i] = np.zeros_like(value)
        self.params[i] = value
    return property(lambda self: self.params[i], set_param)


def _grad(i):
    """grads[i] as an attribute; assigning rebinds grads[i]."""
    def set_grad(self, value):
        self.grads[i] = value
    return property(lambda self: self.grads[i], set_grad)


def bias_shape_ok(b_shape, FN):
    """True for the shapes of b the book's ``out + self.b`` adds to each output pixel's FN
    values as one bias per filter: (FN,), or () and (1,) for one bias shared by all filters."""
    return tuple(b_shape) in ((FN,), (), (1,))


def check_bias(W, b):
    """b (a number, or shape (FN,) or (1,)) as an array, checked against W (FN, C, FH, FW) (4-D).
    A Python number takes a floating W's dtype, as NumPy's ``out + 0`` keeps out's."""
    weak = type(b) in (int, float) and W.dtype.kind == "f"
    b = np.asarray(b, W.dtype) if weak else np.asarray(b)
    if not bias_shape_ok(b.shape, W.shape[0]):
        raise ValueError(f"b must have shape ({W.shape[0]},) (or be one number) for W of shape "
                         f"{W.shape}, got {b.shape}")
    return b


def bias_grad_as(db, shape):
    """db (FN,), the per-filter sums, as the gradient of a b of ``shape``: a shared bias (shape ()
    or (1,)) gets their total."""
    return db if db.shape == tuple(shape) else db.sum().reshape(shape)


class Convolution:
    """Convolution (cross-correlation, as the book) of FN filters W (FN, C, FH, FW) plus bias b
    ((FN,), or one number for all filters, as the book's ch07/apply_filter.py passes), with a
    stride and zero padding; params = [W, b], grads = [dW, db] (db of b's shape)."""

    def __init__(self, W, b, stride=1, pad=0):
        W = np.asarray(W)
        if W.ndim != 4:
            raise ValueError(f"W must be 4-D (FN, C, FH, FW), got shape {W.shape}")
        b = check_bias(W, b)
        conv_output_size(1, 1, stride, pad)  # stride >= 1 and pad >= 0, or raise
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.stride = stride
        self.pad = pad

        # kept by forward for backward
        self.x = None
        self.col = None
        self.col_W = None
        self.out_shape = None

    # volume 1's names for the same arrays
    W, b = _param(0), _param(1)
    dW, db = _grad(0), _grad(1)

    def forward(self, x):
        """x: (N, C, H, W) -> (N, FN, out_h, out_w), out_h = conv_output_size(H, FH, stride, pad),
        out_w likewise."""
        W, b = self.params
        FN, C, FH, FW = W.shape
        x = _images(x)
        N, x_C, H, x_W = x.shape
        if x_C != C:
            raise ValueError(f"x has {x_C} channels (shape {x.shape}) but W has {C} "
                             f"(shape {W.shape})")
        out_h = conv_output_size(H, FH, self.stride, self.pad)
        out_w = conv_output_size(x_W, FW, self.stride, self.pad)

        col = im2col(x, FH, FW, self.stride, self.pad)  # (N*out_h*out_w, C*FH*FW)
        col_W = W.reshape(FN, -1).T                       # (C*FH*FW, FN)
        out = np.dot(col, col_W) + b                      # one row per output pixel
        out = out.reshape(N, out_h, out_w, FN).transpose(0, 3, 1, 2)

        self.x = x
        self.col = col
        self.col_W = col_W
        self.out_shape = out.shape
        return out

    def backward(self, dout):
        """dout: (N, FN, out_h, out_w) -> dx (N, C, H, W); writes grads = [dW (FN, C, FH, FW),
        db (b's shape)]."""
        dout = _check_dout(dout, self.out_shape, "Convolution")
        W, b = self.params
        FN, C, FH, FW = W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)  # rows as forward's out rows

        db = bias_grad(dout)
        dW = np.dot(self.col.T, dout).T.reshape(FN, C, FH, FW)
        dcol = np.dot(dout, self.col_W.T)
        dx = col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)

        self.grads[0][...] = dW
        self.grads[1][...] = bias_grad_as(db, self.grads[1].shape)
        return dx


class Pooling:
    """Max pooling over pool_h x pool_w windows, moved by ``stride``; no parameters.

    With pad > 0 the images are zero-padded first, as im2col pads (the book's formula for the
    output size ignores pad, so its Pooling fails there). The first maximum of a window wins (as
    np.argmax) and alone gets the gradient; a NaN in a window is its maximum (np.max propagates
    it, np.argmax picks it).
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        conv_output_size(pool_h, pool_h, stride, pad)  # sizes >= 1, stride >= 1, pad >= 0
        conv_output_size(pool_w, pool_w, stride, pad)
        self.params, self.grads = [], []
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad

        # kept by forward for backward
        self.x = None
        self.arg_max = None
        self.out_shape = None

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, out_h, out_w), out_h = conv_output_size(H, pool_h, stride,
        pad), out_w likewise."""
        x = _images(x)
        N, C, H, W = x.shape
        out_h = conv_output_size(H, self.pool_h, self.stride, self.pad)
        out_w = conv_output_size(W, self.pool_w, self.stride, self.pad)

        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)  # one window of one channel per row

        arg_max = np.argmax(col, axis=1)
        out = np.max(col, axis=1)
        out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)

        self.x = x
        self.arg_max = arg_max
        self.out_shape = out.shape
        return out

    def backward(self, dout):
        """dout: (N, C, out_h, out_w) -> dx (N, C, H, W): each window's dout goes to its first
        maximum; pixels in several windows (stride < pool size) add their shares."""
        dout = _check_dout(dout, self.out_shape, "Pooling")
        dout = dout.transpose(0, 2, 3, 1)  # rows as forward's windows
        pool_size = self.pool_h * self.pool_w
        dtype = np.result_type(dout, self.x.dtype, np.float16)

        dmax = np.zeros((dout.size, pool_size), dtype=dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max] = dout.ravel()
        dcol = dmax.reshape(-1, self.x.shape[1] * pool_size)
        dx = col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)
        return dx
