# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Typed entry points into the C kernels of csrc/.

Design: the Python face (functions.py, layers.py, optimizers.py, models.py) validates shapes,
dtypes and labels, makes inputs contiguous and allocates outputs. This module takes ndarrays,
re-checks with NumPy's C-API macros (nanoseconds, where typed memoryviews cost ~0.3 us each) that
every buffer has the dtype, layout and size the kernel will touch, releases the GIL and calls the
float32 or float64 instance of the kernel. Read-only inputs are fine; outputs must be writable.
Label values are range-checked inside the kernels.
"""
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_STRIDES, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cython cimport floating
from libc.stdint cimport int64_t

cimport numpy as cnp

cnp.import_array()

cdef extern from "fastnn.h" nogil:
    void fastnn_set_num_threads(int n)
    int fastnn_get_num_threads()
    void sigmoid_forward_f64(const double *x, double *y, Py_ssize_t n)
    void sigmoid_forward_f32(const float *x, float *y, Py_ssize_t n)
    void sigmoid_backward_f64(const double *dout, const double *out, double *dx, Py_ssize_t n)
    void sigmoid_backward_f32(const float *dout, const float *out, float *dx, Py_ssize_t n)
    Py_ssize_t softmax_ce_forward_f64(const double *x, const int64_t *t, double *y, Py_ssize_t n,
                                      Py_ssize_t c, double *loss)
    Py_ssize_t softmax_ce_forward_f32(const float *x, const int64_t *t, float *y, Py_ssize_t n,
                                      Py_ssize_t c, double *loss)
    Py_ssize_t softmax_ce_backward_f64(const double *y, const int64_t *t, double dout, double *dx,
                                       Py_ssize_t n, Py_ssize_t c)
    Py_ssize_t softmax_ce_backward_f32(const float *y, const int64_t *t, double dout, float *dx,
                                       Py_ssize_t n, Py_ssize_t c)
    int bias_grad_f64(const double *dout, Py_ssize_t n, Py_ssize_t d, double *db)
    int bias_grad_f32(const float *dout, Py_ssize_t n, Py_ssize_t d, float *db)
    void sgd_update_f64(double *p, const double *g, double lr, Py_ssize_t n)
    void sgd_update_f32(float *p, const float *g, double lr, Py_ssize_t n)


def set_num_threads(int n):
    """Threads for the kernels; 0 returns to OpenMP's default (OMP_NUM_THREADS)."""
    if n < 0:
        raise ValueError(f"number of threads must be >= 0, got {n}")
    fastnn_set_num_threads(n)


def get_num_threads():
    """Threads the kernels use for large inputs (1 when built without OpenMP)."""
    return fastnn_get_num_threads()


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


cdef _label_error(cnp.ndarray t, Py_ssize_t bad, Py_ssize_t c):
    raise ValueError(f"label out of range: t[{bad}] = {(<int64_t *> cnp.PyArray_DATA(t))[bad]}, "
                     f"classes are 0..{c - 1}")


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


# ---------------------------------------------------------------------------- kernels

def sigmoid_forward(cnp.ndarray x not None, cnp.ndarray y not None):
    """y = sigmoid(x): flat float buffers of one dtype and size."""
    cdef int typenum = _float_array(x, "x")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    _like(y, "y", typenum, n, True)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *py = cnp.PyArray_DATA(y)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            sigmoid_forward_f64(<double *> px, <double *> py, n)
        else:
            sigmoid_forward_f32(<float *> px, <float *> py, n)


def sigmoid_backward(cnp.ndarray dout not None, cnp.ndarray out not None, cnp.ndarray dx not None):
    """dx = dout * (1 - out) * out: flat float buffers of one dtype and size."""
    cdef int typenum = _float_array(out, "out")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(out)
    _like(dout, "dout", typenum, n, False)
    _like(dx, "dx", typenum, n, True)
    cdef void *pd = cnp.PyArray_DATA(dout)
    cdef void *po = cnp.PyArray_DATA(out)
    cdef void *px = cnp.PyArray_DATA(dx)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            sigmoid_backward_f64(<double *> pd, <double *> po, <double *> px, n)
        else:
            sigmoid_backward_f32(<float *> pd, <float *> po, <float *> px, n)


def softmax_ce_forward(cnp.ndarray x not None, cnp.ndarray t not None):
    """Fused softmax + cross-entropy: returns (mean loss, y = softmax(x)), y a new (N, C) array.

    x: (N, C) float buffer; t: (N,) int64 index labels, each checked to lie in [0, C) before
    anything is written.
    """
    cdef int typenum = _float_array(x, "x")
    cdef Py_ssize_t n, c, bad
    n, c = _rows(x, "x")
    _labels(t, n)
    cdef cnp.ndarray y = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(x), typenum, 0)
    cdef double loss = 0
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef const int64_t *pt = <int64_t *> cnp.PyArray_DATA(t)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            bad = softmax_ce_forward_f64(<double *> px, pt, <double *> py, n, c, &loss)
        else:
            bad = softmax_ce_forward_f32(<float *> px, pt, <float *> py, n, c, &loss)
    if bad >= 0:
        _label_error(t, bad, c)
    return loss, y


def softmax_ce_backward(cnp.ndarray y not None, cnp.ndarray t not None, double dout):
    """Returns dx = (y - onehot(t)) * dout / N, a new (N, C) array; y (N, C) float buffer,
    t (N,) int64 labels, checked."""
    cdef int typenum = _float_array(y, "y")
    cdef Py_ssize_t n, c, bad
    n, c = _rows(y, "y")
    _labels(t, n)
    cdef cnp.ndarray dx = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(y), typenum, 0)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef void *px = cnp.PyArray_DATA(dx)
    cdef const int64_t *pt = <int64_t *> cnp.PyArray_DATA(t)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            bad = softmax_ce_backward_f64(<double *> py, pt, dout, <double *> px, n, c)
        else:
            bad = softmax_ce_backward_f32(<float *> py, pt, dout, <float *> px, n, c)
    if bad >= 0:
        _label_error(t, bad, c)
    return dx


def bias_grad(cnp.ndarray dout not None, cnp.ndarray db not None):
    """db[j] = sum_i dout[i, j], accumulated in float64; dout (N, D), db (D,), one dtype."""
    cdef int typenum = _float_array(dout, "dout")
    if cnp.PyArray_NDIM(dout) != 2:
        raise ValueError(f"dout: expected 2-D (N, D), got shape {(<object> dout).shape}")
    cdef Py_ssize_t n = cnp.PyArray_DIM(dout, 0), d = cnp.PyArray_DIM(dout, 1)
    _like(db, "db", typenum, d, True)
    if d == 0:
        return
    cdef void *pd = cnp.PyArray_DATA(dout)
    cdef void *pb = cnp.PyArray_DATA(db)
    cdef int status
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = bias_grad_f64(<double *> pd, n, d, <double *> pb)
        else:
            status = bias_grad_f32(<float *> pd, n, d, <float *> pb)
    if status != 0:
        raise MemoryError("bias_grad: no memory for the accumulator")


def sgd_update(cnp.ndarray p not None, cnp.ndarray g not None, double lr):
    """p -= lr * g in place; flat float buffers of one dtype and size."""
    cdef int typenum = _float_array(p, "p", True)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(p)
    _like(g, "g", typenum, n, False)
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef void *pg = cnp.PyArray_DATA(g)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            sgd_update_f64(<double *> pp, <double *> pg, lr, n)
        else:
            sgd_update_f32(<float *> pp, <float *> pg, lr, n)


# ---------------------------------------------------------------------------- numerical gradient

cdef double _call_scalar(f, x) except? -1.0:
    r = f(x)
    try:
        return float(r)
    except TypeError:
        raise TypeError(f"f must return a scalar, got {type(r).__name__} "
                        f"with shape {getattr(r, 'shape', '?')}") from None


cdef _central_differences(f, x, double h, Py_buffer *view, floating *grad):
    """The loop of numerical_gradient for one dtype: elements of the buffer in C index order."""
    cdef Py_ssize_t ndim = view.ndim, d, i, size = 1
    cdef Py_ssize_t idx[64]
    cdef char *p = <char *> view.buf
    cdef double fxh1, fxh2
    cdef floating saved
    for d in range(ndim):
        size *= view.shape[d]
        idx[d] = 0
    for i in range(size):
        saved = (<floating *> p)[0]
        try:
            (<floating *> p)[0] = <double> saved + h
            fxh1 = _call_scalar(f, x)
            (<floating *> p)[0] = <double> saved - h
            fxh2 = _call_scalar(f, x)
        finally:
            (<floating *> p)[0] = saved
        grad[i] = (fxh1 - fxh2) / (2 * h)
        # the next multi-index in C order; p follows it through the strides
        d = ndim - 1
        while d >= 0:
            idx[d] += 1
            p += view.strides[d]
            if idx[d] < view.shape[d]:
                break
            p -= view.strides[d] * view.shape[d]
            idx[d] = 0
            d -= 1


def numerical_gradient(f, x, double h, cnp.ndarray grad not None):
    """Central differences of f at every element of x, (f(x+h) - f(x-h)) / 2h.

    x: a writable float64 / float32 array of any shape and strides, perturbed in place one element
    at a time and restored bit-exactly (also when f raises); grad: C-contiguous, x's dtype and size,
    filled in x's C (row-major) index order.
    """
    cdef Py_buffer view
    cdef int typenum = _float_array(grad, "grad", True)
    PyObject_GetBuffer(x, &view, PyBUF_STRIDES | PyBUF_WRITABLE | PyBUF_FORMAT)
    try:
        if view.ndim > 64:
            raise ValueError(f"x has {view.ndim} dimensions; at most 64 are supported")
        if view.itemsize != cnp.PyArray_ITEMSIZE(grad) or view.len // view.itemsize != cnp.PyArray_SIZE(grad):
            raise ValueError("numerical_gradient: x and grad differ in dtype or size")
        if typenum == cnp.NPY_DOUBLE:
            _central_differences(f, x, h, &view, <double *> cnp.PyArray_DATA(grad))
        else:
            _central_differences(f, x, h, &view, <float *> cnp.PyArray_DATA(grad))
    finally:
        PyBuffer_Release(&view)
