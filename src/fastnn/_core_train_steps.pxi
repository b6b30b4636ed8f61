# The two-layer network's multi-step SGD training and accuracy, one call each
# (csrc/train_steps.c).

cdef extern from "train_steps.h" nogil:
    enum: FASTNN_BAD_INDEX
    enum: TWOLAYER_EVAL_ROWS
    Py_ssize_t twolayer_work_bytes_f64(Py_ssize_t rows, Py_ssize_t inp, Py_ssize_t hid,
                                       Py_ssize_t out)
    Py_ssize_t twolayer_work_bytes_f32(Py_ssize_t rows, Py_ssize_t inp, Py_ssize_t hid,
                                       Py_ssize_t out)
    Py_ssize_t twolayer_sgd_steps_f64(const double *x, const int64_t *t, Py_ssize_t rows,
                                      Py_ssize_t inp, Py_ssize_t hid, Py_ssize_t out,
                                      const int64_t *batches, Py_ssize_t steps, Py_ssize_t batch,
                                      double *W1, double *b1, double *W2, double *b2, int relu,
                                      double lr, double *losses, double *gW1, double *gb1,
                                      double *gW2, double *gb2, void *work, Py_ssize_t work_bytes)
    Py_ssize_t twolayer_sgd_steps_f32(const float *x, const int64_t *t, Py_ssize_t rows,
                                      Py_ssize_t inp, Py_ssize_t hid, Py_ssize_t out,
                                      const int64_t *batches, Py_ssize_t steps, Py_ssize_t batch,
                                      float *W1, float *b1, float *W2, float *b2, int relu,
                                      double lr, double *losses, float *gW1, float *gb1,
                                      float *gW2, float *gb2, void *work, Py_ssize_t work_bytes)
    Py_ssize_t twolayer_accuracy_f64(const double *x, const int64_t *t, Py_ssize_t rows,
                                     Py_ssize_t inp, Py_ssize_t hid, Py_ssize_t out,
                                     const double *W1, const double *b1, const double *W2,
                                     const double *b2, int relu, int64_t *correct, void *work,
                                     Py_ssize_t work_bytes)
    Py_ssize_t twolayer_accuracy_f32(const float *x, const int64_t *t, Py_ssize_t rows,
                                     Py_ssize_t inp, Py_ssize_t hid, Py_ssize_t out,
                                     const float *W1, const float *b1, const float *W2,
                                     const float *b2, int relu, int64_t *correct, void *work,
                                     Py_ssize_t work_bytes)


cdef class TwoLayerWork:
    """Scratch of the two-layer kernels of csrc/train_steps.c for one network shape and dtype,
    opaque to Python; sized for batches of up to `rows` rows (grown on demand)."""
    cdef readonly Py_ssize_t rows, inp, hid, out
    cdef readonly int typenum
    cdef cnp.ndarray buf

    def __init__(self):
        self.rows = -1

    cdef Py_ssize_t ready(self, Py_ssize_t rows, Py_ssize_t inp, Py_ssize_t hid, Py_ssize_t out,
                          int typenum) except -1:
        """The buffer for these sizes; returns its size in bytes."""
        rows = max(rows, TWOLAYER_EVAL_ROWS)
        if (inp, hid, out, typenum) != (self.inp, self.hid, self.out, self.typenum) or rows > self.rows:
            size = (twolayer_work_bytes_f64(rows, inp, hid, out) if typenum == cnp.NPY_DOUBLE
                    else twolayer_work_bytes_f32(rows, inp, hid, out))
            self.buf = _empty(size, cnp.NPY_UINT8)
            self.rows, self.inp, self.hid, self.out, self.typenum = rows, inp, hid, out, typenum
        return cnp.PyArray_SIZE(self.buf)


cdef (Py_ssize_t, Py_ssize_t) _twolayer_params(cnp.ndarray W1, cnp.ndarray b1, cnp.ndarray W2,
                                               cnp.ndarray b2, int typenum, Py_ssize_t inp,
                                               bint writable) except *:
    """(hid, out) once W1 (inp, hid), b1 (hid), W2 (hid, out), b2 (out) are checked."""
    if cnp.PyArray_NDIM(W1) != 2 or cnp.PyArray_NDIM(W2) != 2 or cnp.PyArray_DIM(W1, 0) != inp \
            or cnp.PyArray_DIM(W2, 0) != cnp.PyArray_DIM(W1, 1):
        raise ValueError(f"W1 {(<object> W1).shape}, W2 {(<object> W2).shape}: expected "
                         f"({inp}, H) and (H, O)")
    cdef Py_ssize_t hid = cnp.PyArray_DIM(W1, 1), out = cnp.PyArray_DIM(W2, 1)
    if hid == 0 or out == 0:
        raise ValueError(f"empty layers: W1 {(<object> W1).shape}, W2 {(<object> W2).shape}")
    for arr, name, size in ((W1, "W1", inp * hid), (b1, "b1", hid), (W2, "W2", hid * out),
                            (b2, "b2", out)):
        _like(arr, name, typenum, size, writable)
    return hid, out


def twolayer_sgd_steps(cnp.ndarray x not None, cnp.ndarray t not None,
                       cnp.ndarray batches not None, cnp.ndarray W1 not None,
                       cnp.ndarray b1 not None, cnp.ndarray W2 not None, cnp.ndarray b2 not None,
                       bint relu, double lr, cnp.ndarray gW1 not None, cnp.ndarray gb1 not None,
                       cnp.ndarray gW2 not None, cnp.ndarray gb2 not None,
                       TwoLayerWork work not None):
    """len(batches) SGD steps of the two-layer net on x (R, I) with labels t (R,) int64: step s
    trains on the rows batches[s] (batches (S, B) int64, every entry in [0, R)). W1 (I, H), b1 (H,),
    W2 (H, O), b2 (O,) are updated in place, gW1..gb2 (the same shapes) get the last step's
    gradients; returns the S losses (float64). One float dtype for x, parameters and gradients."""
    cdef int typenum = _float_array(x, "x")
    cdef Py_ssize_t rows, inp, hid, out, steps, batch
    rows, inp = _rows(x, "x")
    _labels(t, rows)
    if (cnp.PyArray_TYPE(batches) != cnp.NPY_INT64 or not cnp.PyArray_ISNOTSWAPPED(batches)
            or not cnp.PyArray_IS_C_CONTIGUOUS(batches) or not cnp.PyArray_ISALIGNED(batches)):
        raise TypeError(f"batches: expected contiguous int64, got dtype {(<object> batches).dtype}")
    if cnp.PyArray_NDIM(batches) != 2 or cnp.PyArray_DIM(batches, 1) == 0:
        raise ValueError(f"batches: expected (steps, batch size >= 1), got shape "
                         f"{(<object> batches).shape}")
    steps, batch = cnp.PyArray_DIM(batches, 0), cnp.PyArray_DIM(batches, 1)
    if not (lr - lr == 0):
        raise ValueError(f"lr must be finite, got {lr}")
    hid, out = _twolayer_params(W1, b1, W2, b2, typenum, inp, True)
    _twolayer_params(gW1, gb1, gW2, gb2, typenum, inp, True)
    cdef cnp.ndarray losses = _empty(steps, cnp.NPY_DOUBLE)
    cdef Py_ssize_t size = work.ready(batch, inp, hid, out, typenum), status
    cdef void *px = cnp.PyArray_DATA(x)
    cdef int64_t *pt = <int64_t *> cnp.PyArray_DATA(t)
    cdef int64_t *pb = <int64_t *> cnp.PyArray_DATA(batches)
    cdef void *p1 = cnp.PyArray_DATA(W1)
    cdef void *p2 = cnp.PyArray_DATA(b1)
    cdef void *p3 = cnp.PyArray_DATA(W2)
    cdef void *p4 = cnp.PyArray_DATA(b2)
    cdef void *g1 = cnp.PyArray_DATA(gW1)
    cdef void *g2 = cnp.PyArray_DATA(gb1)
    cdef void *g3 = cnp.PyArray_DATA(gW2)
    cdef void *g4 = cnp.PyArray_DATA(gb2)
    cdef double *pl = <double *> cnp.PyArray_DATA(losses)
    cdef void *pw = cnp.PyArray_DATA(work.buf)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = twolayer_sgd_steps_f64(
                <double *> px, pt, rows, inp, hid, out, pb, steps, batch, <double *> p1,
                <double *> p2, <double *> p3, <double *> p4, relu, lr, pl, <double *> g1,
                <double *> g2, <double *> g3, <double *> g4, pw, size)
        else:
            status = twolayer_sgd_steps_f32(
                <float *> px, pt, rows, inp, hid, out, pb, steps, batch, <float *> p1,
                <float *> p2, <float *> p3, <float *> p4, relu, lr, pl, <float *> g1,
                <float *> g2, <float *> g3, <float *> g4, pw, size)
    if status == FASTNN_BAD_INDEX:
        flat = (<object> batches).reshape(-1)
        i = int(((flat < 0) | (flat >= rows)).argmax())
        raise IndexError(f"batch index out of range: batches[{i // batch}, {i % batch}] = "
                         f"{flat[i]}, x has {rows} rows")
    _check_status(status, "twolayer_sgd_steps", t, out)
    return losses


def twolayer_accuracy(cnp.ndarray x not None, cnp.ndarray t not None, cnp.ndarray W1 not None,
                      cnp.ndarray b1 not None, cnp.ndarray W2 not None, cnp.ndarray b2 not None,
                      bint relu, TwoLayerWork work not None):
    """The number of rows of x (R, I) whose highest score act(x W1 + b1) W2 + b2 is the label t
    (R,) int64. One float dtype for x and the parameters."""
    cdef int typenum = _float_array(x, "x")
    cdef Py_ssize_t rows, inp, hid, out
    rows, inp = _rows(x, "x")
    _labels(t, rows)
    hid, out = _twolayer_params(W1, b1, W2, b2, typenum, inp, False)
    cdef Py_ssize_t size = work.ready(0, inp, hid, out, typenum), status
    cdef int64_t correct = 0
    cdef void *px = cnp.PyArray_DATA(x)
    cdef int64_t *pt = <int64_t *> cnp.PyArray_DATA(t)
    cdef void *p1 = cnp.PyArray_DATA(W1)
    cdef void *p2 = cnp.PyArray_DATA(b1)
    cdef void *p3 = cnp.PyArray_DATA(W2)
    cdef void *p4 = cnp.PyArray_DATA(b2)
    cdef void *pw = cnp.PyArray_DATA(work.buf)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = twolayer_accuracy_f64(<double *> px, pt, rows, inp, hid, out, <double *> p1,
                                           <double *> p2, <double *> p3, <double *> p4, relu,
                                           &correct, pw, size)
        else:
            status = twolayer_accuracy_f32(<float *> px, pt, rows, inp, hid, out, <float *> p1,
                                           <float *> p2, <float *> p3, <float *> p4, relu,
                                           &correct, pw, size)
    _check_status(status, "twolayer_accuracy", t, out)
    return correct
