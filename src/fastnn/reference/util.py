"""Volume 1's ``common/util.py`` (and volume 2's ``clip_grads``): helpers for training and for
convolutions.

Training: a smoothed loss curve and a data shuffle (volume 1), gradient clipping (volume 2).
Convolution helpers (chapter 7). Images are (N, C, H, W) arrays; a filter is FH x FW. im2col
unrolls every filter-sized window of the zero-padded images into one row, so a convolution becomes
one matrix product; col2im is its adjoint and sends rows back onto the images, adding where
windows overlap.
"""

import operator

import numpy as np

__all__ = ["smooth_curve", "shuffle_dataset", "clip_grads"]

_SMOOTH_WINDOW = 11  # the book's window: a Kaiser window of 11 points, beta 2


def smooth_curve(x):
    """A loss curve smoothed for plotting (volume 1, chapter 6): the mean over a normalised
    Kaiser window of 11 points, the ends mirrored so the result is as long as ``x`` (1-D, at
    least 11 values; a list or an array). Returns a float array."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or len(x) < _SMOOTH_WINDOW:
        raise ValueError(f"smooth_curve needs a 1-D curve of at least {_SMOOTH_WINDOW} values, "
                         f"got shape {x.shape}")
    half = _SMOOTH_WINDOW // 2
    # 10 mirrored values at each end, as the book pads: x[10], ..., x[1] before the start (the
    # first value not repeated) and x[-1], ..., x[-10] after the end (the last value repeated)
    left = x[_SMOOTH_WINDOW - 1:0:-1]
    right = x[-1:-_SMOOTH_WINDOW:-1]
    padded = np.concatenate([left, x, right])
    window = np.kaiser(_SMOOTH_WINDOW, 2)
    smoothed = np.convolve(window / window.sum(), padded, mode="valid")
    return smoothed[half:len(smoothed) - half]


def shuffle_dataset(x, t):
    """x and t in one random order along their first axis: ``np.random.permutation(len(x))``
    from NumPy's global state, as the book does (volume 1, chapter 6). x is (N, ...) -- the book
    takes (N, D) and (N, C, H, W) -- and t has N rows. Returns new arrays (x, t)."""
    x, t = np.asarray(x), np.asarray(t)
    if x.ndim == 0 or t.ndim == 0 or x.shape[0] != t.shape[0]:
        raise ValueError(f"x and t need the same number of rows: x.shape={x.shape}, "
                         f"t.shape={t.shape}")
    permutation = np.random.permutation(x.shape[0])
    return x[permutation], t[permutation]


def clip_grads(grads, max_norm):
    """Scale every gradient in place by max_norm / (total norm + 1e-6) when that is below 1
    (volume 2, chapter 5): the total norm is the square root of the sum of every squared element
    of every array. grads: a list (or dict) of writable float arrays; returns None."""
    arrays = list(grads.values()) if isinstance(grads, dict) else list(grads)
    for i, grad in enumerate(arrays):
        if not (isinstance(grad, np.ndarray) and np.issubdtype(grad.dtype, np.floating)):
            raise TypeError(f"clip_grads: gradient {i} must be a float array, got "
                            f"{type(grad).__name__} {getattr(grad, 'dtype', '')}".rstrip())
        if not grad.flags.writeable:
            raise ValueError(f"clip_grads: gradient {i} is read-only (clipping is in place)")
    if not max_norm > 0:  # also NaN
        raise ValueError(f"clip_grads: max_norm must be positive, got {max_norm!r}")

    total_norm = 0
    for grad in arrays:
        total_norm += np.sum(grad ** 2)
    total_norm = np.sqrt(total_norm)

    rate = max_norm / (total_norm + 1e-6)
    if rate < 1:
        for grad in arrays:
            grad *= rate



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
