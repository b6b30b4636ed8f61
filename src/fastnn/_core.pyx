# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Typed entry points into the C kernels of csrc/.

Design: the Python face (functions.py, layers.py, optimizers.py, models.py) validates shapes,
dtypes and labels, makes inputs contiguous and allocates outputs. This module takes ndarrays,
re-checks with NumPy's C-API macros (nanoseconds, where typed memoryviews cost ~0.3 us each) that
every buffer has the dtype, layout and size the kernel will touch, releases the GIL and calls the
float32 or float64 instance of the kernel. Read-only inputs are fine; outputs must be writable.
Label values are range-checked inside the kernels.

These checks hold whoever the caller is: every entry checks the dtype, size and writability of every
array it hands to C (tests/test_core_boundary.py calls them directly), and a kernel's status
(csrc/real.h: FASTNN_OK, FASTNN_NO_MEMORY or the first bad row) becomes an exception in one place,
_check_status. A new entry's signature goes into _core.pyi too.

This file holds the checks every entry shares; each kernel family's entries are in its own
_core_<family>.pxi, included at the end.
"""
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_STRIDES, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cython cimport floating
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

cimport numpy as cnp

cnp.import_array()

cdef extern from "real.h" nogil:
    enum: FASTNN_PARALLEL_MIN
    enum: FASTNN_OK
    enum: FASTNN_NO_MEMORY

# elements from which the kernels start OpenMP threads (csrc/real.h)
PARALLEL_MIN = FASTNN_PARALLEL_MIN

cdef extern from "fastnn.h" nogil:
    void fastnn_set_num_threads(int n)
    int fastnn_get_num_threads()
    int fastnn_set_simd(int level)

def set_num_threads(int n):
    """Threads for the kernels' large inputs; 0 returns to the default: OMP_NUM_THREADS when it is
    set, else 1 (csrc/threads.c says why)."""
    if n < 0:
        raise ValueError(f"number of threads must be >= 0, got {n}")
    fastnn_set_num_threads(n)


def get_num_threads():
    """Threads the kernels use for large inputs (1 when built without OpenMP)."""
    return fastnn_get_num_threads()


SIMD_PATHS = ("portable", "avx2", "avx512")


def set_simd(str path):
    """For the tests: the widest explicit vector code the kernels may run, "avx512" (the
    default: the widest the CPU has), "avx2" or "portable" (none). Returns whether the CPU has it
    (else the kernels run the widest narrower one it has)."""
    if path not in SIMD_PATHS:
        raise ValueError(f"path must be one of {', '.join(SIMD_PATHS)}, got {path!r}")
    level = SIMD_PATHS.index(path)
    return fastnn_set_simd(level) == level


# ---------------------------------------------------------------------------- buffer checks

cdef int _float_array(cnp.ndarray a, str name, bint writable=False) except -1:
    """The type number (NPY_DOUBLE or NPY_FLOAT) of a, once a is known to be usable as a flat
    native float buffer: C-contiguous, aligned, and writable when it is an output."""
    cdef int typenum = cnp.PyArray_TYPE(a)
    if (typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT) or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{name}: expected native float32 or float64, got dtype {(<object> a).dtype}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)):
        raise ValueError(f"{name}: expected a C-contiguous aligned array")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name}: output array is read-only")
    return typenum


cdef int _like(cnp.ndarray a, str name, int typenum, Py_ssize_t size, bint writable) except -1:
    """Checks that a is a flat float buffer of the given type and number of elements."""
    if _float_array(a, name, writable) != typenum:
        raise TypeError(f"{name}: dtype {(<object> a).dtype} differs from the other operands'")
    if cnp.PyArray_SIZE(a) != size:
        raise ValueError(f"{name}: {cnp.PyArray_SIZE(a)} elements, expected {size}")
    return 0


cdef Py_ssize_t _labels(cnp.ndarray t, Py_ssize_t n) except -1:
    """Checks that t is n contiguous native int64 labels."""
    if (cnp.PyArray_TYPE(t) != cnp.NPY_INT64 or not cnp.PyArray_ISNOTSWAPPED(t)
            or not cnp.PyArray_IS_C_CONTIGUOUS(t) or not cnp.PyArray_ISALIGNED(t)):
        raise TypeError(f"labels: expected contiguous int64, got dtype {(<object> t).dtype}")
    if cnp.PyArray_NDIM(t) != 1 or cnp.PyArray_DIM(t, 0) != n:
        raise ValueError(f"batch-size mismatch: {n} rows, labels of shape {(<object> t).shape}")
    return 0


cdef (Py_ssize_t, Py_ssize_t) _rows(cnp.ndarray x, str name) except *:
    """(N, C) of a non-empty 2-D array."""
    if cnp.PyArray_NDIM(x) != 2:
        raise ValueError(f"{name}: expected 2-D (N, C), got shape {(<object> x).shape}")
    cdef Py_ssize_t n = cnp.PyArray_DIM(x, 0), c = cnp.PyArray_DIM(x, 1)
    if n == 0 or c == 0:
        raise ValueError(f"{name}: empty input of shape ({n}, {c})")
    return n, c


cdef int _check_status(Py_ssize_t status, str entry, cnp.ndarray t=None, Py_ssize_t c=0) except -1:
    """Raises the exception a kernel's status (csrc/real.h) stands for: MemoryError, or a
    ValueError naming the first bad label t[status] (classes 0..c-1)."""
    if status == FASTNN_OK:
        return 0
    if status == FASTNN_NO_MEMORY:
        raise MemoryError(f"{entry}: out of memory")
    if t is not None and 0 <= status < cnp.PyArray_SIZE(t):
        raise ValueError(f"label out of range: t[{status}] = "
                         f"{(<int64_t *> cnp.PyArray_DATA(t))[status]}, classes are 0..{c - 1}")
    raise SystemError(f"{entry}: the kernel returned an unknown status {status}")


def is_float_buffer(a, int ndim):
    """True when a is an ndarray of ndim dimensions that the kernels take as it is: native float32
    or float64, C-contiguous, aligned. The face's fast path; anything else goes through _checks."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray> a
    cdef int typenum = cnp.PyArray_TYPE(arr)
    return ((typenum == cnp.NPY_DOUBLE or typenum == cnp.NPY_FLOAT) and cnp.PyArray_NDIM(arr) == ndim
            and cnp.PyArray_ISNOTSWAPPED(arr) and cnp.PyArray_IS_C_CONTIGUOUS(arr)
            and cnp.PyArray_ISALIGNED(arr))


def is_label_buffer(t, Py_ssize_t n):
    """True when t is n index labels the kernels take as they are: a 1-D native int64 ndarray,
    C-contiguous and aligned (the face's fast path; values are checked by the kernels)."""
    if type(t) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray> t
    return (cnp.PyArray_TYPE(arr) == cnp.NPY_INT64 and cnp.PyArray_NDIM(arr) == 1
            and cnp.PyArray_DIM(arr, 0) == n and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr))


cdef cnp.ndarray _empty(Py_ssize_t size, int typenum, Py_ssize_t cols=-1):
    """A new C-contiguous array: (size,), or (size, cols) when cols >= 0."""
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = size, cols
    return cnp.PyArray_EMPTY(1 if cols < 0 else 2, dims, typenum, 0)


# ---------------------------------------------------------------------------- kernel families
# One include per family; each holds its own extern declarations and entry points.
include "_core_elementwise.pxi"
include "_core_finite.pxi"
include "_core_bias_act.pxi"
include "_core_sparse.pxi"
include "_core_train_steps.pxi"
include "_core_numgrad.pxi"
include "_core_layers.pxi"
include "_core_conv.pxi"
include "_core_gemm.pxi"
include "_core_random.pxi"
