# Matrix products with a narrow right-hand side, register-blocked without packing (csrc/gemm_narrow.c).

cdef extern from "fastnn.h" nogil:
    void gemm_narrow_f64(const double *a, const double *b, double *c, Py_ssize_t m, Py_ssize_t k,
                         Py_ssize_t n, int trans_a)
    void gemm_narrow_f32(const float *a, const float *b, float *c, Py_ssize_t m, Py_ssize_t k,
                         Py_ssize_t n, int trans_a)


cdef int _apart(cnp.ndarray out, cnp.ndarray a, str name) except -1:
    """Checks that out's bytes do not overlap a's (both contiguous)."""
    cdef char *po = <char *> cnp.PyArray_DATA(out)
    cdef char *pa = <char *> cnp.PyArray_DATA(a)
    if po < pa + cnp.PyArray_NBYTES(a) and pa < po + cnp.PyArray_NBYTES(out):
        raise ValueError(f"c: overlaps {name}")
    return 0


def gemm_narrow(cnp.ndarray a not None, cnp.ndarray b not None, cnp.ndarray c not None,
                bint trans_a=False):
    """c = a b, a (M, K), or c = a^T b, a (K, M) (trans_a); b (K, N), c (M, N): C-contiguous
    arrays of one float dtype, c apart from both inputs."""
    cdef int typenum = _float_array(a, "a")
    if cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_NDIM(b) != 2 or cnp.PyArray_NDIM(c) != 2:
        raise ValueError(f"gemm_narrow: expected 2-D a, b, c, got shapes {(<object> a).shape}, "
                         f"{(<object> b).shape}, {(<object> c).shape}")
    cdef Py_ssize_t m = cnp.PyArray_DIM(a, 1 if trans_a else 0)
    cdef Py_ssize_t k = cnp.PyArray_DIM(a, 0 if trans_a else 1)
    cdef Py_ssize_t n = cnp.PyArray_DIM(b, 1)
    if cnp.PyArray_DIM(b, 0) != k or cnp.PyArray_DIM(c, 0) != m or cnp.PyArray_DIM(c, 1) != n:
        raise ValueError(f"gemm_narrow: shapes {(<object> a).shape}{'^T' if trans_a else ''}, "
                         f"{(<object> b).shape} -> {(<object> c).shape} do not match")
    _like(b, "b", typenum, k * n, False)
    _like(c, "c", typenum, m * n, True)
    _apart(c, a, "a")
    _apart(c, b, "b")
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(c)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            gemm_narrow_f64(<double *> pa, <double *> pb, <double *> pc, m, k, n, trans_a)
        else:
            gemm_narrow_f32(<float *> pa, <float *> pb, <float *> pc, m, k, n, trans_a)
