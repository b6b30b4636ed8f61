# Matrix products with a narrow right-hand side, register-blocked without packing (csrc/gemm_narrow.c),
# and the transposes that bring the convolutions' operands to them (csrc/transpose.c).

cdef extern from "fastnn.h" nogil:
    void gemm_narrow_f64(const double *a, const double *b, double *c, Py_ssize_t m, Py_ssize_t k,
                         Py_ssize_t n, int trans_a)
    void gemm_narrow_f32(const float *a, const float *b, float *c, Py_ssize_t m, Py_ssize_t k,
                         Py_ssize_t n, int trans_a)
    void transpose_f64(const double *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds,
                       double *dst, Py_ssize_t ldd)
    void transpose_f32(const float *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds,
                       float *dst, Py_ssize_t ldd)


cdef int _apart(cnp.ndarray out, str out_name, cnp.ndarray a, str name) except -1:
    """Checks that out's bytes do not overlap a's (both contiguous)."""
    cdef char *po = <char *> cnp.PyArray_DATA(out)
    cdef char *pa = <char *> cnp.PyArray_DATA(a)
    if po < pa + cnp.PyArray_NBYTES(a) and pa < po + cnp.PyArray_NBYTES(out):
        raise ValueError(f"{out_name}: overlaps {name}")
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
    _apart(c, "c", a, "a")
    _apart(c, "c", b, "b")
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(c)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            gemm_narrow_f64(<double *> pa, <double *> pb, <double *> pc, m, k, n, trans_a)
        else:
            gemm_narrow_f32(<float *> pa, <float *> pb, <float *> pc, m, k, n, trans_a)


def transpose(cnp.ndarray tall not None, cnp.ndarray wide not None, Py_ssize_t start,
              bint to_wide):
    """Between tall (R, C) and the columns [start, start + R) of wide (C, L), C-contiguous 2-D
    arrays of one float dtype, apart: wide[:, start:start + R] = tall^T (to_wide), else
    tall = wide[:, start:start + R]^T."""
    cdef int typenum = _float_array(tall, "tall", not to_wide)
    if _float_array(wide, "wide", to_wide) != typenum:
        raise TypeError(f"transpose: dtypes {(<object> tall).dtype} and {(<object> wide).dtype} "
                        f"differ")
    if cnp.PyArray_NDIM(tall) != 2 or cnp.PyArray_NDIM(wide) != 2:
        raise ValueError(f"transpose: expected 2-D arrays, got shapes {(<object> tall).shape}, "
                         f"{(<object> wide).shape}")
    cdef Py_ssize_t r = cnp.PyArray_DIM(tall, 0), c = cnp.PyArray_DIM(tall, 1)
    cdef Py_ssize_t l = cnp.PyArray_DIM(wide, 1)
    if cnp.PyArray_DIM(wide, 0) != c or not 0 <= start <= l - r:
        raise ValueError(f"transpose: columns [{start}, {start + r}) of {(<object> wide).shape} "
                         f"do not fit {(<object> tall).shape} transposed")
    _apart(wide, "wide", tall, "tall")
    cdef char *pt = <char *> cnp.PyArray_DATA(tall)
    cdef char *pw = <char *> cnp.PyArray_DATA(wide) + start * cnp.PyArray_ITEMSIZE(wide)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            if to_wide:
                transpose_f64(<double *> pt, r, c, c, <double *> pw, l)
            else:
                transpose_f64(<double *> pw, c, r, l, <double *> pt, c)
        else:
            if to_wide:
                transpose_f32(<float *> pt, r, c, c, <float *> pw, l)
            else:
                transpose_f32(<float *> pw, c, r, l, <float *> pt, c)
