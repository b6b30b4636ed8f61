# Products of a sparse x with a dense matrix, from x's nonzeros indexed once (csrc/sparse.c).

cdef extern from "fastnn.h" nogil:
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


cdef class SparseX:
    """The nonzeros of a float (N, I) array, by rows and by columns, for sparse_matmul and
    sparse_t_matmul (csrc/sparse.c). Built only by fill(x) and opaque to Python, so the kernels
    can trust every index in it. A fill reuses the buffers of an earlier one of the same I and
    dtype that had N' rows, N <= N' <= 4 N: a model's training batches and its evaluations of a
    few times that many rows (a search's every epoch) share them instead of reallocating."""
    cdef readonly Py_ssize_t n, inp
    cdef readonly int typenum
    cdef readonly bint finite  # every nonzero of the last fill is finite
    cdef Py_ssize_t held_n  # the rows the buffers have room for
    cdef cnp.ndarray rowptr, cols, vals, colptr, rows, cvals, bits

    def __init__(self):
        self.n = self.inp = self.held_n = -1

    def fill(self, cnp.ndarray x not None):
        """Index the nonzeros of x (N, I); returns their count."""
        cdef int typenum = _float_array(x, "x")
        cdef Py_ssize_t n, inp
        n, inp = _rows(x, "x")
        if (inp, typenum) != (self.inp, self.typenum) or not n <= self.held_n <= 4 * n:
            self.rowptr, self.colptr = _empty(n + 1, cnp.NPY_INT64), _empty(inp + 1, cnp.NPY_INT64)
            size = n * inp + 16  # the vector compaction stores whole registers past the count
            self.cols, self.rows = _empty(size, cnp.NPY_INT64), _empty(size, cnp.NPY_INT64)
            self.vals, self.cvals = _empty(size, typenum), _empty(size, typenum)
            self.bits = _empty((n + 63) // 64 * inp, cnp.NPY_UINT64)  # a bit per element of x
            self.held_n, self.inp, self.typenum = n, inp, typenum
        self.n = n
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
