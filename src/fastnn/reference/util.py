"""Helpers of the books' ``common/util.py``: a smoothed loss curve and a data shuffle (volume 1),
gradient clipping (volume 2)."""

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
