# Elementwise and reduction kernels: sigmoid, fused softmax-cross-entropy, bias gradient, SGD,
# Adam.

cdef extern from "fastnn.h" nogil:
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
    Py_ssize_t bias_grad_f64(const double *dout, Py_ssize_t n, Py_ssize_t d, double *db)
    Py_ssize_t bias_grad_f32(const float *dout, Py_ssize_t n, Py_ssize_t d, float *db)
    void sgd_update_f64(double *p, const double *g, double lr, Py_ssize_t n)
    void sgd_update_f32(float *p, const float *g, double lr, Py_ssize_t n)
    void weight_decay_grad_f64(const double *dW, const double *W, double lam, double *out,
                               Py_ssize_t n)
    void weight_decay_grad_f32(const float *dW, const float *W, double lam, float *out,
                               Py_ssize_t n)
    void adam_update_f64(double *p, const double *g, double *m, double *v, double lr_t,
                         double one_minus_beta1, double one_minus_beta2, int wide, Py_ssize_t n)
    void adam_update_f32(float *p, const float *g, float *m, float *v, double lr_t,
                         double one_minus_beta1, double one_minus_beta2, int wide, Py_ssize_t n)


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
    cdef Py_ssize_t n, c, status
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
            status = softmax_ce_forward_f64(<double *> px, <double *> pb, pt, <double *> py, n, c,
                                            &loss)
        else:
            status = softmax_ce_forward_f32(<float *> px, <float *> pb, pt, <float *> py, n, c,
                                            &loss)
    _check_status(status, "softmax_ce_forward", t, c)
    return loss, y


def softmax_ce_backward(cnp.ndarray y not None, cnp.ndarray t not None, double dout):
    """Returns dx = (y - onehot(t)) * dout / N, a new (N, C) array; y (N, C) float buffer,
    t (N,) int64 labels, checked."""
    cdef int typenum = _float_array(y, "y")
    cdef Py_ssize_t n, c, status
    n, c = _rows(y, "y")
    _labels(t, n)
    cdef cnp.ndarray dx = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(y), typenum, 0)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef void *px = cnp.PyArray_DATA(dx)
    cdef const int64_t *pt = <int64_t *> cnp.PyArray_DATA(t)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = softmax_ce_backward_f64(<double *> py, pt, dout, <double *> px, n, c)
        else:
            status = softmax_ce_backward_f32(<float *> py, pt, dout, <float *> px, n, c)
    _check_status(status, "softmax_ce_backward", t, c)
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
    cdef Py_ssize_t status
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = bias_grad_f64(<double *> pd, n, d, <double *> pb)
        else:
            status = bias_grad_f32(<float *> pd, n, d, <float *> pb)
    _check_status(status, "bias_grad")


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


def sgd_update_ready(p, g, double lr, bint float32_too):
    """p -= lr * g in place, returning True, when p and g are arrays the kernel takes as they are
    (for the optimizer's every parameter: one call, no reshapes): float64, or float32 when
    float32_too, of one dtype and shape, not 0-d, native, C-contiguous, aligned, p writable, the
    two not overlapping. Else False, and nothing is written."""
    if not (isinstance(p, cnp.ndarray) and isinstance(g, cnp.ndarray)):
        return False
    cdef cnp.ndarray pa = <cnp.ndarray> p, ga = <cnp.ndarray> g
    cdef int typenum = cnp.PyArray_TYPE(pa)
    if typenum != cnp.PyArray_TYPE(ga) or not (typenum == cnp.NPY_DOUBLE
                                               or (float32_too and typenum == cnp.NPY_FLOAT)):
        return False
    if (cnp.PyArray_NDIM(pa) == 0 or not cnp.PyArray_SAMESHAPE(pa, ga)
            or not (cnp.PyArray_IS_C_CONTIGUOUS(pa) and cnp.PyArray_IS_C_CONTIGUOUS(ga))
            or not (cnp.PyArray_ISALIGNED(pa) and cnp.PyArray_ISALIGNED(ga))
            or not (cnp.PyArray_ISNOTSWAPPED(pa) and cnp.PyArray_ISNOTSWAPPED(ga))
            or not cnp.PyArray_ISWRITEABLE(pa)):
        return False
    cdef Py_ssize_t n = cnp.PyArray_SIZE(pa), nbytes = n * cnp.PyArray_ITEMSIZE(pa)
    cdef char *pp = <char *> cnp.PyArray_DATA(pa)
    cdef char *pg = <char *> cnp.PyArray_DATA(ga)
    if n == 0 or (pp < pg + nbytes and pg < pp + nbytes):  # the kernel reads g after writing p
        return False
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            sgd_update_f64(<double *> pp, <double *> pg, lr, n)
        else:
            sgd_update_f32(<float *> pp, <float *> pg, lr, n)
    return True


def weight_decay_grad(cnp.ndarray dW not None, cnp.ndarray W not None, double lam,
                      cnp.ndarray out not None):
    """out = dW + lam * W (lam * W rounded first, as NumPy's); flat float buffers of one dtype and
    size, out may be dW."""
    cdef int typenum = _float_array(dW, "dW")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dW)
    _like(W, "W", typenum, n, False)
    _like(out, "out", typenum, n, True)
    cdef void *pd = cnp.PyArray_DATA(dW)
    cdef void *pw = cnp.PyArray_DATA(W)
    cdef char *po = <char *> cnp.PyArray_DATA(out)
    cdef Py_ssize_t nbytes = n * cnp.PyArray_ITEMSIZE(out)
    if po < <char *> pw + nbytes and <char *> pw < po + nbytes:
        raise ValueError("out: overlaps W")
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            weight_decay_grad_f64(<double *> pd, <double *> pw, lam, <double *> po, n)
        else:
            weight_decay_grad_f32(<float *> pd, <float *> pw, lam, <float *> po, n)


def adam_update(cnp.ndarray p not None, cnp.ndarray g not None, cnp.ndarray m not None,
                cnp.ndarray v not None, double lr_t, double one_minus_beta1,
                double one_minus_beta2, bint wide):
    """One Adam step in place: m += c1 * (g - m); v += c2 * (g * g - v);
    p -= lr_t * m / (sqrt(v) + 1e-7), c1 and c2 the given 1 - beta, rounded to the arrays' dtype.
    p, g, m, v: flat float buffers of one dtype and size, not overlapping. wide: for float32,
    compute the step in float64 and round p - step to float32 (NumPy >= 2 with a float64 lr_t);
    no effect on float64."""
    cdef int typenum = _float_array(p, "p", True)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(p)
    _like(g, "g", typenum, n, False)
    _like(m, "m", typenum, n, True)
    _like(v, "v", typenum, n, True)
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef void *pg = cnp.PyArray_DATA(g)
    cdef void *pm = cnp.PyArray_DATA(m)
    cdef void *pv = cnp.PyArray_DATA(v)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            adam_update_f64(<double *> pp, <double *> pg, <double *> pm, <double *> pv, lr_t,
                            one_minus_beta1, one_minus_beta2, wide, n)
        else:
            adam_update_f32(<float *> pp, <float *> pg, <float *> pm, <float *> pv, lr_t,
                            one_minus_beta1, one_minus_beta2, wide, n)
