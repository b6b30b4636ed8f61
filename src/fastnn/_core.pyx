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
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

cimport numpy as cnp

cnp.import_array()

cdef extern from "real.h" nogil:
    enum: FASTNN_PARALLEL_MIN

# elements from which the kernels start OpenMP threads (csrc/real.h)
PARALLEL_MIN = FASTNN_PARALLEL_MIN

cdef extern from "fastnn.h" nogil:
    void fastnn_set_num_threads(int n)
    int fastnn_get_num_threads()
    void fastnn_set_avx512(int on)
    int fastnn_avx512()
    void sigmoid_forward_f64(const double *x, double *y, Py_ssize_t n)
    void sigmoid_forward_f32(const float *x, float *y, Py_ssize_t n)
    void sigmoid_backward_f64(const double *dout, const double *out, double *dx, Py_ssize_t n)
    void sigmoid_backward_f32(const float *dout, const float *out, float *dx, Py_ssize_t n)
    Py_ssize_t softmax_ce_forward_f64(const double *x, const double *bias, const int64_t *t,
                                      double *y, Py_ssize_t n, Py_ssize_t c, double *loss)
    Py_ssize_t softmax_ce_forward_f32(const float *x, const float *bias, const int64_t *t,
                                      float *y, Py_ssize_t n, Py_ssize_t c, double *loss)
    Py_ssize_t softmax_ce_backward_f64(const double *y, const int64_t *t, double dout, double *dx,
                                       Py_ssize_t n, Py_ssize_t c)
    Py_ssize_t softmax_ce_backward_f32(const float *y, const int64_t *t, double dout, float *dx,
                                       Py_ssize_t n, Py_ssize_t c)
    int bias_grad_f64(const double *dout, Py_ssize_t n, Py_ssize_t d, double *db)
    int bias_grad_f32(const float *dout, Py_ssize_t n, Py_ssize_t d, float *db)
    void sgd_update_f64(double *p, const double *g, double lr, Py_ssize_t n)
    void sgd_update_f32(float *p, const float *g, double lr, Py_ssize_t n)
    void bias_act_forward_f64(double *a, const double *b, Py_ssize_t n, Py_ssize_t h, int relu)
    void bias_act_forward_f32(float *a, const float *b, Py_ssize_t n, Py_ssize_t h, int relu)
    int act_backward_bias_f64(double *dz, const double *z, Py_ssize_t n, Py_ssize_t h, int relu,
                              double *db)
    int act_backward_bias_f32(float *dz, const float *z, Py_ssize_t n, Py_ssize_t h, int relu,
                              float *db)
    int all_finite_f64(const double *a, Py_ssize_t n)
    int all_finite_f32(const float *a, Py_ssize_t n)
    int sparse_index_f64(const double *x, Py_ssize_t n, Py_ssize_t inp, int64_t *rowptr,
                          int64_t *cols, double *vals, int64_t *colptr, int64_t *rows,
                          double *cvals, uint64_t *bits)
    int sparse_index_f32(const float *x, Py_ssize_t n, Py_ssize_t inp, int64_t *rowptr,
                          int64_t *cols, float *vals, int64_t *colptr, int64_t *rows, float *cvals,
                          uint64_t *bits)
    void sparse_combine_f64(const int64_t *ptr, const int64_t *idx, const double *a,
                            const double *X, double *out, Py_ssize_t rows, Py_ssize_t x_rows,
                            Py_ssize_t h)
    void sparse_combine_f32(const int64_t *ptr, const int64_t *idx, const float *a,
                            const float *X, float *out, Py_ssize_t rows, Py_ssize_t x_rows,
                            Py_ssize_t h)
    Py_ssize_t twolayer_numerical_gradient_c "twolayer_numerical_gradient"(const double *x, const int64_t *t, const double *W1,
                                           const double *b1, const double *W2, const double *b2,
                                           const double *a1, const double *z1, const double *s,
                                           Py_ssize_t n, Py_ssize_t inp, Py_ssize_t hid,
                                           Py_ssize_t out, int relu, int f32, double h,
                                           double *gW1, double *gb1, double *gW2, double *gb2)


def set_num_threads(int n):
    """Threads for the kernels' large inputs; 0 returns to the default: OMP_NUM_THREADS when it is
    set, else 1 (csrc/threads.c says why)."""
    if n < 0:
        raise ValueError(f"number of threads must be >= 0, got {n}")
    fastnn_set_num_threads(n)


def get_num_threads():
    """Threads the kernels use for large inputs (1 when built without OpenMP)."""
    return fastnn_get_num_threads()


def set_avx512(bint on):
    """For the tests: on runs the explicit AVX-512 code where the CPU has it (the default), off
    the portable code. Returns whether the AVX-512 code now runs."""
    fastnn_set_avx512(on)
    return bool(fastnn_avx512())


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


def all_finite(cnp.ndarray a not None):
    """True when every element of a (a contiguous float32 / float64 buffer) is finite."""
    cdef int typenum = _float_array(a, "a")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(a)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef int finite
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            finite = all_finite_f64(<double *> pa, n)
        else:
            finite = all_finite_f32(<float *> pa, n)
    return bool(finite)


def is_label_buffer(t, Py_ssize_t n):
    """True when t is n index labels the kernels take as they are: a 1-D native int64 ndarray,
    C-contiguous and aligned (the face's fast path; values are checked by the kernels)."""
    if type(t) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray> t
    return (cnp.PyArray_TYPE(arr) == cnp.NPY_INT64 and cnp.PyArray_NDIM(arr) == 1
            and cnp.PyArray_DIM(arr, 0) == n and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr))


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


def softmax_ce_forward(cnp.ndarray x not None, cnp.ndarray t not None, cnp.ndarray bias=None):
    """Fused softmax + cross-entropy: returns (mean loss, y = softmax(x + bias)), y a new (N, C)
    array.

    x: (N, C) float buffer; bias: None or (C,) of x's dtype (the last Affine's bias, fused);
    t: (N,) int64 index labels, each checked to lie in [0, C) before anything is written.
    """
    cdef int typenum = _float_array(x, "x")
    cdef Py_ssize_t n, c, bad
    n, c = _rows(x, "x")
    _labels(t, n)
    cdef void *pb = NULL
    if bias is not None:
        _like(bias, "bias", typenum, c, False)
        pb = cnp.PyArray_DATA(bias)
    cdef cnp.ndarray y = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(x), typenum, 0)
    cdef double loss = 0
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef const int64_t *pt = <int64_t *> cnp.PyArray_DATA(t)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            bad = softmax_ce_forward_f64(<double *> px, <double *> pb, pt, <double *> py, n, c, &loss)
        else:
            bad = softmax_ce_forward_f32(<float *> px, <float *> pb, pt, <float *> py, n, c, &loss)
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


# ---------------------------------------------------------------------------- two-layer network

def bias_act_forward(cnp.ndarray a not None, cnp.ndarray b not None, bint relu):
    """a (N, H) <- act(a + b) in place, act = relu or sigmoid; b (H,), a's dtype."""
    cdef int typenum = _float_array(a, "a", True)
    cdef Py_ssize_t n, h
    n, h = _rows(a, "a")
    _like(b, "b", typenum, h, False)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            bias_act_forward_f64(<double *> pa, <double *> pb, n, h, relu)
        else:
            bias_act_forward_f32(<float *> pa, <float *> pb, n, h, relu)


def act_backward_bias(cnp.ndarray dz not None, cnp.ndarray z not None, bint relu,
                      cnp.ndarray db not None):
    """dz (N, H) <- dz * act'(z) in place (z = act(a), the forward's output); db (H,) <- the
    column sums of the new dz (float64 accumulation). One dtype throughout."""
    cdef int typenum = _float_array(dz, "dz", True)
    cdef Py_ssize_t n, h
    n, h = _rows(dz, "dz")
    _like(z, "z", typenum, n * h, False)
    _like(db, "db", typenum, h, True)
    cdef void *pd = cnp.PyArray_DATA(dz)
    cdef void *pz = cnp.PyArray_DATA(z)
    cdef void *pb = cnp.PyArray_DATA(db)
    cdef int status
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = act_backward_bias_f64(<double *> pd, <double *> pz, n, h, relu, <double *> pb)
        else:
            status = act_backward_bias_f32(<float *> pd, <float *> pz, n, h, relu, <float *> pb)
    if status != 0:
        raise MemoryError("act_backward_bias: no memory for the accumulator")


cdef class SparseX:
    """The nonzeros of a float (N, I) array, by rows and by columns, for sparse_matmul and
    sparse_t_matmul (csrc/twolayer.c). Built only by fill(x) and opaque to Python, so the kernels
    can trust every index in it; the next fill of the same shape and dtype reuses the buffers."""
    cdef readonly Py_ssize_t n, inp
    cdef readonly int typenum
    cdef readonly bint finite  # every nonzero of the last fill is finite
    cdef cnp.ndarray rowptr, cols, vals, colptr, rows, cvals, bits

    def __init__(self):
        self.n = self.inp = -1

    def fill(self, cnp.ndarray x not None):
        """Index the nonzeros of x (N, I); returns their count."""
        cdef int typenum = _float_array(x, "x")
        cdef Py_ssize_t n, inp
        n, inp = _rows(x, "x")
        if (n, inp, typenum) != (self.n, self.inp, self.typenum):
            self.rowptr, self.colptr = _empty(n + 1, cnp.NPY_INT64), _empty(inp + 1, cnp.NPY_INT64)
            size = n * inp + 16  # the vector compaction stores whole registers past the count
            self.cols, self.rows = _empty(size, cnp.NPY_INT64), _empty(size, cnp.NPY_INT64)
            self.vals, self.cvals = _empty(size, typenum), _empty(size, typenum)
            self.bits = _empty((n + 63) // 64 * inp, cnp.NPY_UINT64)  # a bit per element of x
            self.n, self.inp, self.typenum = n, inp, typenum
        cdef void *px = cnp.PyArray_DATA(x)
        cdef int64_t *pr = <int64_t *> cnp.PyArray_DATA(self.rowptr)
        cdef int64_t *pc = <int64_t *> cnp.PyArray_DATA(self.cols)
        cdef void *pv = cnp.PyArray_DATA(self.vals)
        cdef int64_t *qc = <int64_t *> cnp.PyArray_DATA(self.colptr)
        cdef int64_t *qr = <int64_t *> cnp.PyArray_DATA(self.rows)
        cdef void *qv = cnp.PyArray_DATA(self.cvals)
        cdef uint64_t *bits = <uint64_t *> cnp.PyArray_DATA(self.bits)
        cdef int finite
        with nogil:
            if typenum == cnp.NPY_DOUBLE:
                finite = sparse_index_f64(<double *> px, n, inp, pr, pc, <double *> pv, qc, qr,
                                          <double *> qv, bits)
            else:
                finite = sparse_index_f32(<float *> px, n, inp, pr, pc, <float *> pv, qc, qr,
                                          <float *> qv, bits)
        self.finite = finite
        return pr[n]


cdef cnp.ndarray _empty(Py_ssize_t size, int typenum, Py_ssize_t cols=-1):
    """A new C-contiguous array: (size,), or (size, cols) when cols >= 0."""
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = size, cols
    return cnp.PyArray_EMPTY(1 if cols < 0 else 2, dims, typenum, 0)


cdef _sparse_combine(cnp.ndarray ptr, cnp.ndarray idx, cnp.ndarray a, cnp.ndarray X,
                     cnp.ndarray out, Py_ssize_t rows, Py_ssize_t x_rows, Py_ssize_t h, int typenum):
    cdef const int64_t *pp = <int64_t *> cnp.PyArray_DATA(ptr)
    cdef const int64_t *pi = <int64_t *> cnp.PyArray_DATA(idx)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *px = cnp.PyArray_DATA(X)
    cdef void *po = cnp.PyArray_DATA(out)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            sparse_combine_f64(pp, pi, <double *> pa, <double *> px, <double *> po, rows, x_rows, h)
        else:
            sparse_combine_f32(pp, pi, <float *> pa, <float *> px, <float *> po, rows, x_rows, h)


def sparse_matmul(SparseX x not None, cnp.ndarray W not None, cnp.ndarray out not None):
    """out = x W: x a filled SparseX (N, I), W (I, H), out (N, H), x's dtype."""
    if x.n < 0:
        raise ValueError("sparse_matmul: the SparseX has not been filled")
    if cnp.PyArray_NDIM(W) != 2 or cnp.PyArray_DIM(W, 0) != x.inp:
        raise ValueError(f"W: expected ({x.inp}, H), got shape {(<object> W).shape}")
    cdef Py_ssize_t h = cnp.PyArray_DIM(W, 1)
    _like(W, "W", x.typenum, x.inp * h, False)
    _like(out, "out", x.typenum, x.n * h, True)
    _sparse_combine(x.rowptr, x.cols, x.vals, W, out, x.n, x.inp, h, x.typenum)


def sparse_t_matmul(SparseX x not None, cnp.ndarray d not None, cnp.ndarray dW not None):
    """dW = x^T d: x a filled SparseX (N, I), d (N, H), dW (I, H), x's dtype."""
    if x.n < 0:
        raise ValueError("sparse_t_matmul: the SparseX has not been filled")
    if cnp.PyArray_NDIM(d) != 2 or cnp.PyArray_DIM(d, 0) != x.n:
        raise ValueError(f"d: expected ({x.n}, H), got shape {(<object> d).shape}")
    cdef Py_ssize_t h = cnp.PyArray_DIM(d, 1)
    _like(d, "d", x.typenum, x.n * h, False)
    _like(dW, "dW", x.typenum, x.inp * h, True)
    _sparse_combine(x.colptr, x.rows, x.cvals, d, dW, x.inp, x.n, h, x.typenum)


def twolayer_numerical_gradient(cnp.ndarray x not None, cnp.ndarray t not None,
                                cnp.ndarray W1 not None, cnp.ndarray b1 not None,
                                cnp.ndarray W2 not None, cnp.ndarray b2 not None,
                                cnp.ndarray a1 not None, cnp.ndarray z1 not None,
                                cnp.ndarray s not None, bint relu, bint f32, double h):
    """The model's numerical gradient (csrc/twolayer.c): returns new gW1, gb1, gW2, gb2.

    float64 throughout: x (N, I), t (N,) int64, W1 (I, H), b1 (H,), W2 (H, O), b2 (O,), and the
    unperturbed network a1 = x W1 + b1, z1 = act(a1) (N, H), s = z1 W2 + b2 (N, O). f32: the
    parameters are float32, so a perturbed value is rounded to float32 as the book's loop stores it.
    """
    cdef Py_ssize_t n, inp, hid, out, bad
    _float_array(x, "x")
    n, inp = _rows(x, "x")
    _labels(t, n)
    _rows(W1, "W1")
    hid, out = cnp.PyArray_DIM(W1, 1), cnp.PyArray_DIM(W2, 1) if cnp.PyArray_NDIM(W2) == 2 else 0
    for arr, name, size in ((W1, "W1", inp * hid), (b1, "b1", hid), (W2, "W2", hid * out),
                            (b2, "b2", out), (a1, "a1", n * hid), (z1, "z1", n * hid),
                            (s, "s", n * out)):
        _like(arr, name, cnp.NPY_DOUBLE, size, False)
    if out == 0:
        raise ValueError(f"W2: expected a non-empty (H, O) array, got shape {(<object> W2).shape}")
    # shapes from the sizes, not from the arrays: a bias may be (1, H) or 0-d
    cdef cnp.ndarray gW1 = _empty(inp, cnp.NPY_DOUBLE, hid), gb1 = _empty(hid, cnp.NPY_DOUBLE)
    cdef cnp.ndarray gW2 = _empty(hid, cnp.NPY_DOUBLE, out), gb2 = _empty(out, cnp.NPY_DOUBLE)
    with nogil:
        bad = twolayer_numerical_gradient_c(
            <double *> cnp.PyArray_DATA(x), <int64_t *> cnp.PyArray_DATA(t),
            <double *> cnp.PyArray_DATA(W1), <double *> cnp.PyArray_DATA(b1),
            <double *> cnp.PyArray_DATA(W2), <double *> cnp.PyArray_DATA(b2),
            <double *> cnp.PyArray_DATA(a1), <double *> cnp.PyArray_DATA(z1),
            <double *> cnp.PyArray_DATA(s), n, inp, hid, out, relu, f32, h,
            <double *> cnp.PyArray_DATA(gW1), <double *> cnp.PyArray_DATA(gb1),
            <double *> cnp.PyArray_DATA(gW2), <double *> cnp.PyArray_DATA(gb2))
    if bad == -2:
        raise MemoryError("twolayer_numerical_gradient: out of memory")
    if bad >= 0:
        _label_error(t, bad, out)
    return gW1, gb1, gW2, gb2


# ---------------------------------------------------------------------------- numerical gradient

cdef double _call_scalar(f, x) except? -1.0:
    """f(x) as a double: f must return a real number (Python, NumPy, or a 0-d array of one)."""
    r = f(x)
    if isinstance(r, float):  # also np.float64
        return r
    if isinstance(r, (int, cnp.floating, cnp.integer)) or (
            isinstance(r, cnp.ndarray) and r.ndim == 0 and r.dtype.kind in "biuf"):
        return float(r)
    raise TypeError(f"f must return a real scalar, got {type(r).__name__} "
                    f"with shape {getattr(r, 'shape', '()')}")


cdef _central_differences(f, x, double h, Py_buffer *view, floating *grad):
    """The loop of numerical_gradient for one dtype: elements of the buffer in C index order."""
    cdef Py_ssize_t ndim = view.ndim, d, i, size = 1
    cdef Py_ssize_t idx[64]
    cdef char *p = <char *> view.buf
    cdef double fxh1, fxh2
    cdef floating saved, moved
    for d in range(ndim):
        size *= view.shape[d]
        idx[d] = 0
    for i in range(size):
        # memcpy, not a pointer dereference: x may be unaligned (np.frombuffer at an offset)
        memcpy(&saved, p, sizeof(floating))
        try:
            moved = <floating> (<double> saved + h)
            memcpy(p, &moved, sizeof(floating))
            fxh1 = _call_scalar(f, x)
            moved = <floating> (<double> saved - h)
            memcpy(p, &moved, sizeof(floating))
            fxh2 = _call_scalar(f, x)
        finally:
            memcpy(p, &saved, sizeof(floating))
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
