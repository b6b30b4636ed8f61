# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Typed entry points into the C kernels of csrc/.

Design: the Python face (functions.py, layers.py) validates shapes, dtypes and labels, makes inputs
contiguous and allocates outputs; this module only checks that the buffers it is handed fit together,
releases the GIL and calls the float32 or float64 instance of a kernel. Inputs are const memoryviews,
so read-only arrays are accepted.
"""
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_STRIDES, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cython cimport floating
from libc.stdint cimport int64_t

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


cdef inline void _same_size(Py_ssize_t a, Py_ssize_t b, str what) except *:
    if a != b:
        raise ValueError(f"{what}: sizes differ ({a} != {b})")


def sigmoid_forward(const floating[::1] x, floating[::1] y):
    """y = sigmoid(x); 1-D contiguous, same size and dtype."""
    _same_size(x.shape[0], y.shape[0], "sigmoid_forward")
    if x.shape[0] == 0:
        return
    with nogil:
        if floating is double:
            sigmoid_forward_f64(&x[0], &y[0], x.shape[0])
        else:
            sigmoid_forward_f32(&x[0], &y[0], x.shape[0])


def sigmoid_backward(const floating[::1] dout, const floating[::1] out, floating[::1] dx):
    """dx = dout * (1 - out) * out; 1-D contiguous, same size and dtype."""
    _same_size(dout.shape[0], out.shape[0], "sigmoid_backward")
    _same_size(dout.shape[0], dx.shape[0], "sigmoid_backward")
    if dout.shape[0] == 0:
        return
    with nogil:
        if floating is double:
            sigmoid_backward_f64(&dout[0], &out[0], &dx[0], dout.shape[0])
        else:
            sigmoid_backward_f32(&dout[0], &out[0], &dx[0], dout.shape[0])


cdef _check_rows(Py_ssize_t n, Py_ssize_t c, Py_ssize_t nt, str what):
    if n == 0 or c == 0:
        raise ValueError(f"{what}: empty input of shape ({n}, {c})")
    if nt != n:
        raise ValueError(f"{what}: {nt} labels for a batch of {n}")


cdef _label_error(const int64_t[::1] t, Py_ssize_t bad, Py_ssize_t c):
    raise ValueError(f"label out of range: t[{bad}] = {t[bad]}, classes are 0..{c - 1}")


def softmax_ce_forward(const floating[:, ::1] x, const int64_t[::1] t, floating[:, ::1] y):
    """Fused softmax + cross-entropy: fills y (N, C) with softmax(x), returns the mean loss.

    x, y: C-contiguous (N, C), same dtype; t: (N,) int64 index labels, each checked to lie in [0, C).
    """
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], bad
    cdef double loss = 0
    _check_rows(n, c, t.shape[0], "softmax_ce_forward")
    _same_size(y.shape[0] * y.shape[1], n * c, "softmax_ce_forward")
    with nogil:
        if floating is double:
            bad = softmax_ce_forward_f64(&x[0, 0], &t[0], &y[0, 0], n, c, &loss)
        else:
            bad = softmax_ce_forward_f32(&x[0, 0], &t[0], &y[0, 0], n, c, &loss)
    if bad >= 0:
        _label_error(t, bad, c)
    return loss


def softmax_ce_backward(const floating[:, ::1] y, const int64_t[::1] t, double dout, floating[:, ::1] dx):
    """dx = (y - onehot(t)) * dout / N; y, dx C-contiguous (N, C), t (N,) int64, labels checked."""
    cdef Py_ssize_t n = y.shape[0], c = y.shape[1], bad
    _check_rows(n, c, t.shape[0], "softmax_ce_backward")
    _same_size(dx.shape[0] * dx.shape[1], n * c, "softmax_ce_backward")
    with nogil:
        if floating is double:
            bad = softmax_ce_backward_f64(&y[0, 0], &t[0], dout, &dx[0, 0], n, c)
        else:
            bad = softmax_ce_backward_f32(&y[0, 0], &t[0], dout, &dx[0, 0], n, c)
    if bad >= 0:
        _label_error(t, bad, c)


def bias_grad(const floating[:, ::1] dout, floating[::1] db):
    """db[j] = sum_i dout[i, j], accumulated in float64; dout C-contiguous (N, D), db (D,)."""
    cdef Py_ssize_t n = dout.shape[0], d = dout.shape[1]
    cdef int status
    _same_size(db.shape[0], d, "bias_grad")
    if d == 0:
        return
    if n == 0:
        db[:] = 0
        return
    with nogil:
        if floating is double:
            status = bias_grad_f64(&dout[0, 0], n, d, &db[0])
        else:
            status = bias_grad_f32(&dout[0, 0], n, d, &db[0])
    if status != 0:
        raise MemoryError("bias_grad: no memory for the accumulator")


def sgd_update(floating[::1] p, const floating[::1] g, double lr):
    """p -= lr * g in place; 1-D contiguous, same size and dtype."""
    _same_size(p.shape[0], g.shape[0], "sgd_update")
    if p.shape[0] == 0:
        return
    with nogil:
        if floating is double:
            sgd_update_f64(&p[0], &g[0], lr, p.shape[0])
        else:
            sgd_update_f32(&p[0], &g[0], lr, p.shape[0])


cdef double _call_scalar(f, x) except? -1.0:
    r = f(x)
    try:
        return float(r)
    except TypeError:
        raise TypeError(f"f must return a scalar, got {type(r).__name__} "
                        f"with shape {getattr(r, 'shape', '?')}") from None


def numerical_gradient(f, x, double h, floating[::1] grad):
    """Central differences of f at every element of x, in x's memory order (the reference's nditer).

    x: a writable float64 / float32 ndarray of any shape and strides, perturbed in place and restored
    bit-exactly (also when f raises); grad: C-contiguous, x.size elements of x's dtype, filled in x's
    C (row-major) index order. The loop itself is C; its cost next to the 2 * x.size calls of f is
    measured in bench/.
    """
    cdef Py_buffer view
    cdef Py_ssize_t ndim, d, i, size = grad.shape[0]
    cdef Py_ssize_t idx[64]
    cdef char *p
    cdef floating saved
    cdef double fxh1, fxh2
    PyObject_GetBuffer(x, &view, PyBUF_STRIDES | PyBUF_WRITABLE | PyBUF_FORMAT)
    try:
        ndim = view.ndim
        if view.itemsize != sizeof(floating):
            raise TypeError("numerical_gradient: x and grad have different dtypes")
        n_elements = 1
        for d in range(ndim):
            n_elements *= view.shape[d]
            idx[d] = 0
        _same_size(n_elements, size, "numerical_gradient")
        p = <char *> view.buf
        for i in range(size):
            saved = (<floating *> p)[0]
            try:
                (<floating *> p)[0] = <floating> (<double> saved + h)
                fxh1 = _call_scalar(f, x)
                (<floating *> p)[0] = <floating> (<double> saved - h)
                fxh2 = _call_scalar(f, x)
            finally:
                (<floating *> p)[0] = saved
            grad[i] = <floating> ((fxh1 - fxh2) / (2 * h))
            # next multi-index in C order, moving p by the strides
            d = ndim - 1
            while d >= 0:
                idx[d] += 1
                p += view.strides[d]
                if idx[d] < view.shape[d]:
                    break
                p -= view.strides[d] * view.shape[d]
                idx[d] = 0
                d -= 1
    finally:
        PyBuffer_Release(&view)
