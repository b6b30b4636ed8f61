# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Typed entry points into the C kernels of csrc/.

Design: the Python face (functions.py, layers.py) validates shapes, dtypes and labels, makes inputs
contiguous and allocates outputs; this module only checks that the buffers it is handed fit together,
releases the GIL and calls the float32 or float64 instance of a kernel. Inputs are const memoryviews,
so read-only arrays are accepted.
"""
from cython cimport floating

cdef extern from "fastnn.h" nogil:
    void fastnn_set_num_threads(int n)
    int fastnn_get_num_threads()
    void sigmoid_forward_f64(const double *x, double *y, Py_ssize_t n)
    void sigmoid_forward_f32(const float *x, float *y, Py_ssize_t n)
    void sigmoid_backward_f64(const double *dout, const double *out, double *dx, Py_ssize_t n)
    void sigmoid_backward_f32(const float *dout, const float *out, float *dx, Py_ssize_t n)


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
