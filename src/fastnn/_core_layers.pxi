# The layers of chapter 6: batch normalization, ReLU and dropout with their masks
# (csrc/batchnorm.c, csrc/masks.c). Masks are NumPy bool arrays (one byte, 0 or 1); batch
# statistics are float64 for both precisions.

cdef extern from "layers.h" nogil:
    Py_ssize_t batchnorm_forward_train_f64(const double *x, Py_ssize_t n, Py_ssize_t d,
                                    const double *gamma, const double *beta, double eps, int relu,
                                    double *out, double *mean, double *var, double *rstd)
    Py_ssize_t batchnorm_forward_train_f32(const float *x, Py_ssize_t n, Py_ssize_t d,
                                    const float *gamma, const float *beta, double eps, int relu,
                                    float *out, double *mean, double *var, double *rstd)
    Py_ssize_t batchnorm_forward_test_f64(const double *x, Py_ssize_t n, Py_ssize_t d,
                                   const double *gamma, const double *beta, const double *mean,
                                   const double *var, double eps, int relu, double *out)
    Py_ssize_t batchnorm_forward_test_f32(const float *x, Py_ssize_t n, Py_ssize_t d,
                                   const float *gamma, const float *beta, const double *mean,
                                   const double *var, double eps, int relu, float *out)
    Py_ssize_t batchnorm_backward_f64(const double *dout, const double *y, const double *x,
                               Py_ssize_t n, Py_ssize_t d, const double *gamma,
                               const double *mean, const double *rstd, double *dx,
                               double *dgamma, double *dbeta)
    Py_ssize_t batchnorm_backward_f32(const float *dout, const float *y, const float *x, Py_ssize_t n,
                               Py_ssize_t d, const float *gamma, const double *mean,
                               const double *rstd, float *dx, float *dgamma, float *dbeta)
    void relu_forward_f64(const double *x, double *out, unsigned char *mask, Py_ssize_t n)
    void relu_forward_f32(const float *x, float *out, unsigned char *mask, Py_ssize_t n)
    void relu_backward_f64(const double *dout, const unsigned char *mask, double *dx, Py_ssize_t n)
    void relu_backward_f32(const float *dout, const unsigned char *mask, float *dx, Py_ssize_t n)
    void dropout_forward_f64(const double *x, const double *u, double ratio, double *out,
                             unsigned char *mask, Py_ssize_t n)
    void dropout_forward_f32(const float *x, const double *u, double ratio, float *out,
                             unsigned char *mask, Py_ssize_t n)
    void dropout_backward_f64(const double *dout, const unsigned char *mask, double *dx,
                              Py_ssize_t n)
    void dropout_backward_f32(const float *dout, const unsigned char *mask, float *dx,
                              Py_ssize_t n)


cdef int _mask(cnp.ndarray m, str name, Py_ssize_t size, bint writable) except -1:
    """Checks that m is a C-contiguous bool array of size elements (writable for an output)."""
    if cnp.PyArray_TYPE(m) != cnp.NPY_BOOL:
        raise TypeError(f"{name}: expected a bool mask, got dtype {(<object> m).dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(m):
        raise ValueError(f"{name}: expected a C-contiguous array")
    if writable and not cnp.PyArray_ISWRITEABLE(m):
        raise ValueError(f"{name}: output array is read-only")
    if cnp.PyArray_SIZE(m) != size:
        raise ValueError(f"{name}: {cnp.PyArray_SIZE(m)} elements, expected {size}")
    return 0


cdef inline double *_doubles(cnp.ndarray a, str name, Py_ssize_t size, bint writable) except NULL:
    """The data of a float64 buffer of size elements (at least one, so never NULL)."""
    _like(a, name, cnp.NPY_DOUBLE, size, writable)
    return <double *> cnp.PyArray_DATA(a)


def batchnorm_forward_train(cnp.ndarray x not None, cnp.ndarray gamma not None,
                            cnp.ndarray beta not None, double eps, bint relu,
                            cnp.ndarray out not None, cnp.ndarray mean not None,
                            cnp.ndarray var not None, cnp.ndarray rstd not None):
    """Training forward of batch normalization over the rows of x (N, D): out (N, D) =
    gamma (x - mean) rstd + beta (relu: then max(0, .)); mean, var (the batch's, population) and
    rstd = 1 / sqrt(var + eps) written as float64 (D,). gamma, beta (D,) of x's dtype."""
    cdef int typenum = _float_array(x, "x")
    cdef Py_ssize_t n, d
    n, d = _rows(x, "x")
    _like(gamma, "gamma", typenum, d, False)
    _like(beta, "beta", typenum, d, False)
    _like(out, "out", typenum, n * d, True)
    cdef double *pm = _doubles(mean, "mean", d, True)
    cdef double *pv = _doubles(var, "var", d, True)
    cdef double *pr = _doubles(rstd, "rstd", d, True)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pg = cnp.PyArray_DATA(gamma)
    cdef void *pb = cnp.PyArray_DATA(beta)
    cdef void *po = cnp.PyArray_DATA(out)
    cdef int status
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = batchnorm_forward_train_f64(<double *> px, n, d, <double *> pg,
                                                 <double *> pb, eps, relu, <double *> po, pm, pv,
                                                 pr)
        else:
            status = batchnorm_forward_train_f32(<float *> px, n, d, <float *> pg, <float *> pb,
                                                 eps, relu, <float *> po, pm, pv, pr)
    _check_status(status, "batchnorm_forward_train")


def batchnorm_forward_test(cnp.ndarray x not None, cnp.ndarray gamma not None,
                           cnp.ndarray beta not None, cnp.ndarray mean not None,
                           cnp.ndarray var not None, double eps, bint relu,
                           cnp.ndarray out not None):
    """Test-time forward: out (N, D) = gamma (x - mean) / sqrt(var + eps) + beta (relu: then
    max(0, .)) with the given float64 (D,) mean and var. gamma, beta (D,) of x's dtype."""
    cdef int typenum = _float_array(x, "x")
    cdef Py_ssize_t n, d
    n, d = _rows(x, "x")
    _like(gamma, "gamma", typenum, d, False)
    _like(beta, "beta", typenum, d, False)
    _like(out, "out", typenum, n * d, True)
    cdef double *pm = _doubles(mean, "running_mean", d, False)
    cdef double *pv = _doubles(var, "running_var", d, False)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pg = cnp.PyArray_DATA(gamma)
    cdef void *pb = cnp.PyArray_DATA(beta)
    cdef void *po = cnp.PyArray_DATA(out)
    cdef int status
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = batchnorm_forward_test_f64(<double *> px, n, d, <double *> pg, <double *> pb,
                                                pm, pv, eps, relu, <double *> po)
        else:
            status = batchnorm_forward_test_f32(<float *> px, n, d, <float *> pg, <float *> pb,
                                                pm, pv, eps, relu, <float *> po)
    _check_status(status, "batchnorm_forward_test")


def batchnorm_backward(cnp.ndarray dout not None, cnp.ndarray y, cnp.ndarray x not None,
                       cnp.ndarray gamma not None, cnp.ndarray mean not None,
                       cnp.ndarray rstd not None, cnp.ndarray dx not None,
                       cnp.ndarray dgamma not None, cnp.ndarray dbeta not None):
    """Backward of batchnorm_forward_train(x): dx (N, D), dgamma, dbeta (D,) from dout (N, D),
    the forward's x, gamma, and its float64 mean and rstd. y: None, or the forward's output with
    relu, to count dout only where the fused ReLU passed it."""
    cdef int typenum = _float_array(x, "x")
    cdef Py_ssize_t n, d
    n, d = _rows(x, "x")
    _like(dout, "dout", typenum, n * d, False)
    cdef void *py = NULL
    if y is not None:
        _like(y, "y", typenum, n * d, False)
        py = cnp.PyArray_DATA(y)
    _like(gamma, "gamma", typenum, d, False)
    _like(dx, "dx", typenum, n * d, True)
    _like(dgamma, "dgamma", typenum, d, True)
    _like(dbeta, "dbeta", typenum, d, True)
    cdef double *pm = _doubles(mean, "mean", d, False)
    cdef double *pr = _doubles(rstd, "rstd", d, False)
    cdef void *pd = cnp.PyArray_DATA(dout)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pg = cnp.PyArray_DATA(gamma)
    cdef void *pdx = cnp.PyArray_DATA(dx)
    cdef void *pdg = cnp.PyArray_DATA(dgamma)
    cdef void *pdb = cnp.PyArray_DATA(dbeta)
    cdef int status
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = batchnorm_backward_f64(<double *> pd, <double *> py, <double *> px, n, d,
                                            <double *> pg, pm, pr, <double *> pdx,
                                            <double *> pdg, <double *> pdb)
        else:
            status = batchnorm_backward_f32(<float *> pd, <float *> py, <float *> px, n, d,
                                            <float *> pg, pm, pr, <float *> pdx, <float *> pdg,
                                            <float *> pdb)
    _check_status(status, "batchnorm_backward")


def relu_forward(cnp.ndarray x not None, cnp.ndarray out not None, cnp.ndarray mask not None):
    """mask = x <= 0, out = x where not mask else 0: flat buffers of one size, mask bool."""
    cdef int typenum = _float_array(x, "x")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    _like(out, "out", typenum, n, True)
    _mask(mask, "mask", n, True)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *po = cnp.PyArray_DATA(out)
    cdef unsigned char *pm = <unsigned char *> cnp.PyArray_DATA(mask)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            relu_forward_f64(<double *> px, <double *> po, pm, n)
        else:
            relu_forward_f32(<float *> px, <float *> po, pm, n)


def relu_backward(cnp.ndarray dout not None, cnp.ndarray mask not None, cnp.ndarray dx not None):
    """dx = dout where not mask else 0: flat buffers of one size, mask bool."""
    cdef int typenum = _float_array(dout, "dout")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dout)
    _mask(mask, "mask", n, False)
    _like(dx, "dx", typenum, n, True)
    cdef void *pd = cnp.PyArray_DATA(dout)
    cdef const unsigned char *pm = <unsigned char *> cnp.PyArray_DATA(mask)
    cdef void *px = cnp.PyArray_DATA(dx)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            relu_backward_f64(<double *> pd, pm, <double *> px, n)
        else:
            relu_backward_f32(<float *> pd, pm, <float *> px, n)


def dropout_forward(cnp.ndarray x not None, cnp.ndarray u not None, double ratio,
                    cnp.ndarray out not None, cnp.ndarray mask not None):
    """mask = u > ratio, out = x * mask: x, out flat buffers of one dtype and size, u float64
    draws of that size, mask bool."""
    cdef int typenum = _float_array(x, "x")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    _like(out, "out", typenum, n, True)
    _mask(mask, "mask", n, True)
    if n == 0:
        return
    cdef double *pu = _doubles(u, "u", n, False)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *po = cnp.PyArray_DATA(out)
    cdef unsigned char *pm = <unsigned char *> cnp.PyArray_DATA(mask)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            dropout_forward_f64(<double *> px, pu, ratio, <double *> po, pm, n)
        else:
            dropout_forward_f32(<float *> px, pu, ratio, <float *> po, pm, n)


def dropout_backward(cnp.ndarray dout not None, cnp.ndarray mask not None,
                     cnp.ndarray dx not None):
    """dx = dout * mask: flat buffers of one size, mask bool."""
    cdef int typenum = _float_array(dout, "dout")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dout)
    _mask(mask, "mask", n, False)
    _like(dx, "dx", typenum, n, True)
    cdef void *pd = cnp.PyArray_DATA(dout)
    cdef const unsigned char *pm = <unsigned char *> cnp.PyArray_DATA(mask)
    cdef void *px = cnp.PyArray_DATA(dx)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            dropout_backward_f64(<double *> pd, pm, <double *> px, n)
        else:
            dropout_backward_f32(<float *> pd, pm, <float *> px, n)
