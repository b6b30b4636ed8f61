# A hidden layer's bias add + activation, and the activation's backward + bias gradient, fused
# (csrc/bias_act.c).

cdef extern from "fastnn.h" nogil:
    void bias_act_forward_f64(double *a, const double *b, Py_ssize_t n, Py_ssize_t h, int relu)
    void bias_act_forward_f32(float *a, const float *b, Py_ssize_t n, Py_ssize_t h, int relu)
    Py_ssize_t act_backward_bias_f64(double *dz, const double *z, Py_ssize_t n, Py_ssize_t h,
                                     int relu, double *db)
    Py_ssize_t act_backward_bias_f32(float *dz, const float *z, Py_ssize_t n, Py_ssize_t h,
                                     int relu, float *db)


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
