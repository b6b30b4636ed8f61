# Numerical gradients: the generic one, central differences of a Python f at every element of x,
# and the two-layer models' own in one compiled call (csrc/numgrad_twolayer.c).

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


cdef extern from "fastnn.h" nogil:
    Py_ssize_t twolayer_numerical_gradient_c "twolayer_numerical_gradient"(const double *x, const int64_t *t, const double *W1,
                                           const double *b1, const double *W2, const double *b2,
                                           const double *a1, const double *z1, const double *s,
                                           Py_ssize_t n, Py_ssize_t inp, Py_ssize_t hid,
                                           Py_ssize_t out, int relu, int f32, double h,
                                           double *gW1, double *gb1, double *gW2, double *gb2)


def twolayer_numerical_gradient(cnp.ndarray x not None, cnp.ndarray t not None,
                                cnp.ndarray W1 not None, cnp.ndarray b1 not None,
                                cnp.ndarray W2 not None, cnp.ndarray b2 not None,
                                cnp.ndarray a1 not None, cnp.ndarray z1 not None,
                                cnp.ndarray s not None, bint relu, bint f32, double h):
    """The model's numerical gradient (csrc/numgrad_twolayer.c): returns new gW1, gb1, gW2, gb2.

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
