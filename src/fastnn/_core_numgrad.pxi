# The generic numerical gradient: central differences of a Python f at every element of x.

cdef extern from "numpy/ndarraytypes.h":
    char NPY_NATBYTE  # '<' or '>': the byte-order character of a buffer format that is native

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

    x: a writable buffer of native float64 / float32 (an ndarray, a memoryview, ...) of any shape
    and strides, perturbed in place one element at a time and restored bit-exactly (also when f
    raises); grad: C-contiguous, x's dtype and size, filled in x's C (row-major) index order.
    """
    cdef Py_buffer view
    cdef int typenum = _float_array(grad, "grad", True)
    PyObject_GetBuffer(x, &view, PyBUF_STRIDES | PyBUF_WRITABLE | PyBUF_FORMAT)
    try:
        if view.ndim > 64:
            raise ValueError(f"x has {view.ndim} dimensions; at most 64 are supported")
        # the format, not only the item size: an int64 or a byte-swapped x is 8 bytes too
        fmt = (<bytes> view.format).decode("ascii") if view.format != NULL else "B"
        if fmt[:1] in ("@", "=", chr(NPY_NATBYTE)):
            fmt = fmt[1:]
        if fmt != ("d" if typenum == cnp.NPY_DOUBLE else "f"):
            raise TypeError(f"numerical_gradient: x has buffer format {fmt!r}, grad has dtype "
                            f"{(<object> grad).dtype}: expected native float64 or float32, one "
                            "dtype for both")
        if view.len // view.itemsize != cnp.PyArray_SIZE(grad):
            raise ValueError(f"numerical_gradient: x has {view.len // view.itemsize} elements, "
                             f"grad {cnp.PyArray_SIZE(grad)}")
        if typenum == cnp.NPY_DOUBLE:
            _central_differences(f, x, h, &view, <double *> cnp.PyArray_DATA(grad))
        else:
            _central_differences(f, x, h, &view, <float *> cnp.PyArray_DATA(grad))
    finally:
        PyBuffer_Release(&view)
