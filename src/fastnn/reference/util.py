"""Volume 1's ``common/util.py``: helpers for training and for convolutions.

Convolution helpers (chapter 7). Images are (N, C, H, W) arrays; a filter is FH x FW. im2col
unrolls every filter-sized window of the zero-padded images into one row, so a convolution becomes
one matrix product; col2im is its adjoint and sends rows back onto the images, adding where
windows overlap.
"""

import operator

import numpy as np

__all__ = []


# --------------------------------------------------------------------------- convolution helpers

__all__ += ["conv_output_size", "im2col", "col2im"]


def _positive_int(value, name, minimum):
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def conv_output_size(input_size, filter_size, stride=1, pad=0):
    """Number of filter positions along one axis: (input_size + 2*pad - filter_size) // stride + 1.

    The division rounds down, as the book's im2col does: when the stride does not fit exactly, the
    last input rows (or columns) that no whole window reaches are left out. (The book's own
    conv_output_size divides with ``/`` and returns a float; this one returns the int that its
    im2col, Convolution and Pooling use.) A filter larger than the padded input, a stride < 1 or a
    pad < 0 raises ValueError.
    """
    input_size = _positive_int(input_size, "input_size", 1)
    filter_size = _positive_int(filter_size, "filter_size", 1)
    stride = _positive_int(stride, "stride", 1)
    pad = _positive_int(pad, "pad", 0)
    if filter_size > input_size + 2 * pad:
        raise ValueError(f"filter size {filter_size} is larger than the padded input: "
                         f"{input_size} + 2*{pad} = {input_size + 2 * pad}")
    return (input_size + 2 * pad - filter_size) // stride + 1


def _float_dtype(x, name):
    """The dtype the helpers compute in: a float dtype is kept (float16, float32, float64),
    integers and booleans become float64 as NumPy would; anything else is a TypeError."""
    if x.dtype.kind == "f":
        return x.dtype
    if x.dtype.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(f"{name} must be a real number array, got dtype {x.dtype}")


def _image_shape(shape, name):
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {shape}")
    return shape


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """Unroll the filter windows of a batch of images into rows.

    input_data: (N, C, H, W). Returns col (N*out_h*out_w, C*filter_h*filter_w): row
    (n*out_h + i)*out_w + j holds the window whose top-left corner is at (i*stride, j*stride) of
    the zero-padded image n, ordered channel, then filter row, then filter column.
    out_h, out_w = conv_output_size(H, filter_h, stride, pad), conv_output_size(W, ...).
    """
    input_data = np.asarray(input_data)
    N, C, H, W = _image_shape(input_data.shape, "input_data")
    dtype = _float_dtype(input_data, "input_data")
    out_h = conv_output_size(H, filter_h, stride, pad)
    out_w = conv_output_size(W, filter_w, stride, pad)

    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], mode="constant")
    col = np.empty((N, C, filter_h, filter_w, out_h, out_w), dtype=dtype)

    # Filter element (y, x) meets image pixel (y + i*stride, x + j*stride) at output (i, j): one
    # strided slice of the image per filter element.
    for y in range(filter_h):
        y_end = y + stride * out_h
        for x in range(filter_w):
            x_end = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_end:stride, x:x_end:stride]

    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The adjoint of im2col: add every row of col back onto the window it came from.

    col: (N*out_h*out_w, C*filter_h*filter_w) laid out as im2col returns it; input_shape:
    (N, C, H, W). Returns an (N, C, H, W) array in which each pixel is the sum of its copies in
    col (pixels in several windows get several terms, pixels in none get 0); the padding's share
    is dropped. So <im2col(x), c> == <x, col2im(c)> for every x and c.
    """
    col = np.asarray(col)
    N, C, H, W = _image_shape(input_shape, "input_shape")
    dtype = _float_dtype(col, "col")
    out_h = conv_output_size(H, filter_h, stride, pad)
    out_w = conv_output_size(W, filter_w, stride, pad)
    expected = (N * out_h * out_w, C * filter_h * filter_w)
    if col.shape != expected:
        raise ValueError(f"col must have shape {expected} for input_shape {(N, C, H, W)}, "
                         f"filter {filter_h}x{filter_w}, stride {stride}, pad {pad}; "
                         f"got {col.shape}")

    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dtype)

    # The same slices as im2col's, now accumulated: overlapping windows add up.
    for y in range(filter_h):
        y_end = y + stride * out_h
        for x in range(filter_w):
            x_end = x + stride * out_w
            img[:, :, y:y_end:stride, x:x_end:stride] += col[:, :, y, x, :, :]

    return img[:, :, pad:H + pad, pad:W + pad]
