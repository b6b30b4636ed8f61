"""Volume 1's ``common/util.py``, fast: the same functions and results as `fastnn.reference.util`.

``smooth_curve``, ``shuffle_dataset`` and ``clip_grads`` are the reference's NumPy: each is one or
two whole-array NumPy calls (a convolution of a short curve, a gather, a sum of squares and a
scale) that a compiled kernel would not make faster enough to matter next to a training step.

Convolution helpers (chapter 7): im2col and col2im run compiled kernels (csrc/conv.c);
conv_output_size is the reference's integer arithmetic. float16 arrays are computed the
reference's NumPy way, as the book's code does.
"""
import numpy as np

from . import _core
from ._checks import as_float
from .reference import util as _reference
from .reference.util import (_image_shape, clip_grads, conv_output_size, shuffle_dataset,
                             smooth_curve)

__all__ = ["smooth_curve", "shuffle_dataset", "clip_grads"]


# --------------------------------------------------------------------------- convolution helpers

__all__ += ["conv_output_size", "im2col", "col2im"]


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """The filter windows of a batch of images as rows: input_data (N, C, H, W) ->
    col (N*out_h*out_w, C*filter_h*filter_w), row (n, i, j) the zero-padded window at
    (i*stride, j*stride) of image n, ordered channel, filter row, filter column.

    float32 stays float32, float16 float16; integers and bool become float64.
    """
    x = np.asarray(input_data)
    N, C, H, W = _image_shape(x.shape, "input_data")
    if x.dtype == np.float16:
        return _reference.im2col(x, filter_h, filter_w, stride, pad)
    x = as_float(x, "input_data")
    out_h = conv_output_size(H, filter_h, stride, pad)
    out_w = conv_output_size(W, filter_w, stride, pad)
    col = np.empty((N * out_h * out_w, C * filter_h * filter_w), x.dtype)
    if col.size:
        _core.im2col(x, filter_h, filter_w, stride, pad, col)
    return col


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """im2col's adjoint: col (N*out_h*out_w, C*filter_h*filter_w) -> (N, C, H, W) images in
    which each pixel is the sum of its copies in col (overlapping windows add up; the padding's
    share is dropped), so <im2col(x), c> == <x, col2im(c)>."""
    col = np.asarray(col)
    N, C, H, W = _image_shape(input_shape, "input_shape")
    if col.dtype == np.float16:
        return _reference.col2im(col, input_shape, filter_h, filter_w, stride, pad)
    col = as_float(col, "col")
    out_h = conv_output_size(H, filter_h, stride, pad)
    out_w = conv_output_size(W, filter_w, stride, pad)
    expected = (N * out_h * out_w, C * filter_h * filter_w)
    if col.shape != expected:
        raise ValueError(f"col must have shape {expected} for input_shape {(N, C, H, W)}, "
                         f"filter {filter_h}x{filter_w}, stride {stride}, pad {pad}; "
                         f"got {col.shape}")
    img = np.empty((N, C, H, W), col.dtype)
    if img.size:  # every plane is written (zeros where no window reaches)
        _core.col2im(col, img, filter_h, filter_w, stride, pad)
    return img
