"""Shape, dtype and label validation shared by every public entry of the fast half.

Every check runs before anything is written and raises an exception that names the problem and
prints the offending value.
"""
import numpy as np

from . import _core

_INT64_MAX = np.uint64(np.iinfo(np.int64).max)


def as_float(x, name):
    """x as an aligned C-contiguous float32 or float64 array (a copy only when needed).

    bool and integer inputs are promoted to float64, as NumPy would; float16, complex, object and
    anything else raise TypeError naming the dtype.
    """
    x = np.asarray(x)
    check_real_dtype(x, name)
    dtype = x.dtype
    if dtype.kind in "biu":
        dtype = np.dtype(np.float64)
    elif not dtype.isnative:
        dtype = dtype.newbyteorder("=")
    if x.dtype != dtype or not (x.flags.c_contiguous and x.flags.aligned):
        x = np.array(x, dtype=dtype, order="C")
    return x


def as_buffer(a, dtype):
    """a as an aligned C-contiguous array of dtype: a itself when it already is one."""
    if type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.require(a, dtype, ["C", "A"])


def check_real_dtype(x, name):
    """Raises TypeError unless x (an array) holds bool, integers, float32 or float64."""
    kind, size = x.dtype.kind, x.dtype.itemsize
    if not (kind in "biu" or (kind == "f" and size in (4, 8))):
        raise TypeError(f"{name} must be float32 or float64 (integers and bool are promoted), "
                        f"got dtype {x.dtype}")


def as_logits(x, name="x"):
    """Logits as a C-contiguous float (N, C) array; 1-D x is one sample. Rejects empty input."""
    if _core.is_float_buffer(x, 2) and x.size:
        return x
    x = as_float(x, name)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 1-D (one sample) or 2-D (N, C), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    return x


def as_labels(t, shape):
    """int64 index labels (N,) for a batch of logits of the given (N, C) shape.

    t is index labels of any integer dtype, shape (N,) (a scalar, (1,) or (1, 1) for one sample),
    or one-hot of shape (N, C) (any dtype; the argmax is taken, as in the book). Values are
    range-checked by the kernels, which report the first bad row.
    """
    n, c = shape
    if _core.is_label_buffer(t, n):
        return t
    t = np.asarray(t)
    if t.shape == (1, 1) and n == 1 and c > 1 and t.dtype.kind in "iu":
        t = t.reshape(1)  # one index label as (1, 1), as the book's ch07/gradient_check.py gives
    if t.ndim == 2 or (n == 1 and t.ndim == 1 and t.size == c > 1):
        if t.size != n * c:
            raise ValueError(f"one-hot labels must have shape ({n}, {c}), got {t.shape}")
        if t.dtype.kind not in "biuf":
            raise TypeError(f"one-hot labels must be numeric, got dtype {t.dtype}")
        return t.reshape(n, c).argmax(axis=1)
    if t.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers (index labels) or one-hot of shape ({n}, {c}), "
                        f"got dtype {t.dtype} with shape {t.shape}")
    if t.ndim > 1 or t.size != n:
        raise ValueError(f"batch-size mismatch: {n} rows of logits, labels of shape {t.shape}")
    if t.dtype == np.uint64 and t.max() > _INT64_MAX:  # uint64 with uint64: exact on NumPy 1.x too
        i = int(np.argmax(t > _INT64_MAX))
        raise ValueError(f"label out of range: t[{i}] = {t.reshape(-1)[i]}, classes are 0..{c - 1}")
    return t.reshape(n).astype(np.int64)  # a new contiguous, aligned, native int64 array


def check_label_range(t, c):
    """Raises ValueError naming the first label of t (int64, (N,)) outside 0..c-1."""
    bad = (t < 0) | (t >= c)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"label out of range: t[{i}] = {t[i]}, classes are 0..{c - 1}")


def as_scalar(value, name):
    """A real number (Python or NumPy, or a 0-d array of one) as a float; TypeError for strings,
    complex and other objects, ValueError for arrays with more than one element."""
    if type(value) in (int, float):
        return float(value)
    a = np.asarray(value) if not isinstance(value, (str, bytes)) else np.asarray(None)
    if a.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(a)


def check_step(h, name="h"):
    """A finite, positive step size as a float."""
    h = as_scalar(h, name)
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {h}")
    return h
