# Whether a buffer is all finite: the sparse products' precondition (csrc/finite.c).

cdef extern from "fastnn.h" nogil:
    int all_finite_f64(const double *a, Py_ssize_t n)
    int all_finite_f32(const float *a, Py_ssize_t n)


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
