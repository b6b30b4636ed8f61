# The two-layer network: fused bias + activation, sparse products, its numerical gradient
# (csrc/twolayer.c).

cdef extern from "fastnn.h" nogil:
    void bias_act_forward_f64(double *a, const double *b, Py_ssize_t n, Py_ssize_t h, int relu)
    void bias_act_forward_f32(float *a, const float *b, Py_ssize_t n, Py_ssize_t h, int relu)
    Py_ssize_t act_backward_bias_f64(double *dz, const double *z, Py_ssize_t n, Py_ssize_t h,
                                     int relu, double *db)
    Py_ssize_t act_backward_bias_f32(float *dz, const float *z, Py_ssize_t n, Py_ssize_t h,
                                     int relu, float *db)
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
    cdef Py_ssize_t status
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = act_backward_bias_f64(<double *> pd, <double *> pz, n, h, relu, <double *> pb)
        else:
            status = act_backward_bias_f32(<float *> pd, <float *> pz, n, h, relu, <float *> pb)
    _check_status(status, "act_backward_bias")


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
    cdef Py_ssize_t n, inp, hid, out, status
    if _float_array(x, "x") != cnp.NPY_DOUBLE:
        raise TypeError(f"x: expected float64, got dtype {(<object> x).dtype}")
    n, inp = _rows(x, "x")
    _labels(t, n)
    hid, out = _rows(W1, "W1")[1], _rows(W2, "W2")[1]
    if cnp.PyArray_DIM(W1, 0) != inp or cnp.PyArray_DIM(W2, 0) != hid:
        raise ValueError(f"W1 {(<object> W1).shape}, W2 {(<object> W2).shape}: expected "
                         f"({inp}, H) and (H, O) for x of shape {(<object> x).shape}")
    # the biases by their sizes: a bias may be (1, H) or 0-d
    for arr, name, size in ((W1, "W1", inp * hid), (b1, "b1", hid), (W2, "W2", hid * out),
                            (b2, "b2", out), (a1, "a1", n * hid), (z1, "z1", n * hid),
                            (s, "s", n * out)):
        _like(arr, name, cnp.NPY_DOUBLE, size, False)
    # the gradients' shapes from the sizes, not from the arrays
    cdef cnp.ndarray gW1 = _empty(inp, cnp.NPY_DOUBLE, hid), gb1 = _empty(hid, cnp.NPY_DOUBLE)
    cdef cnp.ndarray gW2 = _empty(hid, cnp.NPY_DOUBLE, out), gb2 = _empty(out, cnp.NPY_DOUBLE)
    with nogil:
        status = twolayer_numerical_gradient_c(
            <double *> cnp.PyArray_DATA(x), <int64_t *> cnp.PyArray_DATA(t),
            <double *> cnp.PyArray_DATA(W1), <double *> cnp.PyArray_DATA(b1),
            <double *> cnp.PyArray_DATA(W2), <double *> cnp.PyArray_DATA(b2),
            <double *> cnp.PyArray_DATA(a1), <double *> cnp.PyArray_DATA(z1),
            <double *> cnp.PyArray_DATA(s), n, inp, hid, out, relu, f32, h,
            <double *> cnp.PyArray_DATA(gW1), <double *> cnp.PyArray_DATA(gb1),
            <double *> cnp.PyArray_DATA(gW2), <double *> cnp.PyArray_DATA(gb2))
    _check_status(status, "twolayer_numerical_gradient", t, out)
    return gW1, gb1, gW2, gb2
