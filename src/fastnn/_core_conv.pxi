# The convolutional layers: im2col / col2im in two layouts, the bias + ReLU around the
# convolution's matrix product, max pooling (csrc/conv.c, csrc/pooling.c, declared in conv.h).
#
# A batch of planes is (N, C, H, W), or (C, N, H, W) when cnhw is true: the array's own shape
# says which sizes are which. Every entry checks dtypes, sizes, contiguity and writability of what
# it hands to C, the stride (>= 1), the pad (>= 0) and that the window fits the padded plane.

from libc.stdint cimport int32_t

cdef extern from "conv.h" nogil:
    void im2col_f64(const double *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                    int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p, double *col)
    void im2col_f32(const float *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                    int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p, float *col)
    void im2col_t_f64(const double *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                      int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p,
                      Py_ssize_t i0, Py_ssize_t i1, double *col)
    void im2col_t_f32(const float *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                      int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p,
                      Py_ssize_t i0, Py_ssize_t i1, float *col)
    void col2im_f64(const double *col, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                    int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p, double *dx)
    void col2im_f32(const float *col, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                    int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p, float *dx)
    void col2im_t_f64(const double *col, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                      int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p,
                      Py_ssize_t i0, Py_ssize_t i1, double *dx)
    void col2im_t_f32(const float *col, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                      int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p,
                      Py_ssize_t i0, Py_ssize_t i1, float *dx)
    void swap_outer_f64(const double *src, Py_ssize_t a, Py_ssize_t b, Py_ssize_t q,
                        const double *bias, double *dst)
    void swap_outer_f32(const float *src, Py_ssize_t a, Py_ssize_t b, Py_ssize_t q,
                        const float *bias, float *dst)
    Py_ssize_t conv_direct1_f64(const double *x, Py_ssize_t n, Py_ssize_t h, Py_ssize_t w,
                                const double *wt, const double *b, Py_ssize_t fn, Py_ssize_t fh,
                                Py_ssize_t fw, Py_ssize_t p, int relu, int nchw, double *y)
    Py_ssize_t conv_direct1_f32(const float *x, Py_ssize_t n, Py_ssize_t h, Py_ssize_t w,
                                const float *wt, const float *b, Py_ssize_t fn, Py_ssize_t fh,
                                Py_ssize_t fw, Py_ssize_t p, int relu, int nchw, float *y)
    Py_ssize_t conv_direct1_grads_f64(const double *x, Py_ssize_t n, Py_ssize_t h, Py_ssize_t w,
                                      double *dy, const double *y, Py_ssize_t fn, Py_ssize_t fh,
                                      Py_ssize_t fw, Py_ssize_t p, double *dw, double *db)
    Py_ssize_t conv_direct1_grads_f32(const float *x, Py_ssize_t n, Py_ssize_t h, Py_ssize_t w,
                                      float *dy, const float *y, Py_ssize_t fn, Py_ssize_t fh,
                                      Py_ssize_t fw, Py_ssize_t p, float *dw, float *db)
    void conv_bias_act_f64(double *y, const double *b, Py_ssize_t rows, Py_ssize_t ld,
                           Py_ssize_t c0, Py_ssize_t c1, int relu)
    void conv_bias_act_f32(float *y, const float *b, Py_ssize_t rows, Py_ssize_t ld,
                           Py_ssize_t c0, Py_ssize_t c1, int relu)
    void conv_act_backward_bias_f64(double *dy, const double *y, Py_ssize_t rows, Py_ssize_t len,
                                    double *db)
    void conv_act_backward_bias_f32(float *dy, const float *y, Py_ssize_t rows, Py_ssize_t len,
                                    float *db)
    void maxpool_forward_f64(const double *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h,
                             Py_ssize_t w, int x_cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s,
                             Py_ssize_t p, double *out, int32_t *arg, int out_cnhw)
    void maxpool_forward_f32(const float *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h,
                             Py_ssize_t w, int x_cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s,
                             Py_ssize_t p, float *out, int32_t *arg, int out_cnhw)
    Py_ssize_t maxpool_backward_f64(const double *dout, const int32_t *arg, Py_ssize_t n,
                                    Py_ssize_t c, Py_ssize_t h, Py_ssize_t w, int x_cnhw,
                                    Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p,
                                    double *dx, int out_cnhw)
    Py_ssize_t maxpool_backward_f32(const float *dout, const int32_t *arg, Py_ssize_t n,
                                    Py_ssize_t c, Py_ssize_t h, Py_ssize_t w, int x_cnhw,
                                    Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p,
                                    float *dx, int out_cnhw)

    Py_ssize_t conv_gemm_work_f64(Py_ssize_t c, Py_ssize_t h, Py_ssize_t w, Py_ssize_t fh,
                                  Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p, Py_ssize_t m,
                                  Py_ssize_t fn, int wgrad)
    void conv_gemm_f64(const double *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                       int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p,
                       const double *wm, Py_ssize_t fn, const double *bias, int relu,
                       Py_ssize_t m, double *work, Py_ssize_t work_threads, double *y)
    void conv_gemm_f32(const float *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                       int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s, Py_ssize_t p,
                       const float *wm, Py_ssize_t fn, const float *bias, int relu,
                       Py_ssize_t m, float *work, Py_ssize_t work_threads, float *y)
    void conv_gemm_wgrad_f64(const double *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h,
                             Py_ssize_t w, int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s,
                             Py_ssize_t p, const double *dy, Py_ssize_t fn, Py_ssize_t m,
                             double *work, Py_ssize_t work_threads, double *dwt)
    void conv_gemm_wgrad_f32(const float *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h,
                             Py_ssize_t w, int cnhw, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t s,
                             Py_ssize_t p, const float *dy, Py_ssize_t fn, Py_ssize_t m,
                             float *work, Py_ssize_t work_threads, float *dwt)

cdef struct Geometry:
    Py_ssize_t n, c, h, w, fh, fw, s, p, oh, ow, cols  # cols: im2col's N * OH * OW * C * FH * FW

# window sizes, strides and pads beyond this are refused: the sizes computed from them then fit
# in a Py_ssize_t
cdef Py_ssize_t _WINDOW_MAX = 1 << 24


cdef Geometry _geometry(cnp.ndarray x, str name, bint cnhw, Py_ssize_t fh, Py_ssize_t fw,
                        Py_ssize_t s, Py_ssize_t p) except *:
    """The sizes of a 4-D batch of planes x and of its windows' outputs, checked."""
    cdef Geometry g
    if cnp.PyArray_NDIM(x) != 4:
        raise ValueError(f"{name}: expected 4-D, got shape {(<object> x).shape}")
    if s < 1 or p < 0 or fh < 1 or fw < 1 or max(fh, fw, s, p) > _WINDOW_MAX:
        raise ValueError(f"window {fh}x{fw}, stride {s}, pad {p}: need sizes and stride in "
                         f"[1, {_WINDOW_MAX}], pad in [0, {_WINDOW_MAX}]")
    g.n, g.c = cnp.PyArray_DIM(x, 1 if cnhw else 0), cnp.PyArray_DIM(x, 0 if cnhw else 1)
    g.h, g.w = cnp.PyArray_DIM(x, 2), cnp.PyArray_DIM(x, 3)
    g.fh, g.fw, g.s, g.p = fh, fw, s, p
    if g.n == 0 or g.c == 0 or g.h == 0 or g.w == 0:
        raise ValueError(f"{name}: empty batch of planes, shape {(<object> x).shape}")
    if fh > g.h + 2 * p or fw > g.w + 2 * p:
        raise ValueError(f"window {fh}x{fw} larger than the padded input "
                         f"{g.h + 2 * p}x{g.w + 2 * p} ({name} shape {(<object> x).shape}, pad {p})")
    g.oh, g.ow = (g.h + 2 * p - fh) // s + 1, (g.w + 2 * p - fw) // s + 1
    cols = (<object> g.n) * g.oh * g.ow * g.c * fh * fw  # in Python integers: no overflow
    if cols > (1 << 62):
        raise ValueError(f"im2col of {name} shape {(<object> x).shape}, window {fh}x{fw}, "
                         f"stride {s}, pad {p} would have {cols} elements")
    g.cols = cols
    return g


cdef Py_ssize_t _samples(Geometry g, Py_ssize_t start, Py_ssize_t stop, bint transposed) except -1:
    """The number of samples in [start, stop) (stop -1: to the end), checked to lie in the batch;
    only the transposed layout takes a part of the batch."""
    if stop == -1:
        stop = g.n
    if not 0 <= start < stop <= g.n:
        raise ValueError(f"samples [{start}, {stop}): need 0 <= start < stop <= {g.n}")
    if not transposed and stop - start != g.n:
        raise ValueError("a part of the batch is only taken in the transposed layout")
    return stop - start


def im2col(cnp.ndarray x not None, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t stride,
           Py_ssize_t pad, cnp.ndarray col not None, bint transposed=False, bint cnhw=False,
           Py_ssize_t start=0, Py_ssize_t stop=-1):
    """col <- the windows of x: (N * OH * OW, C * FH * FW) as the book's im2col, or its transpose
    (C * FH * FW, M * OH * OW) when transposed, of the M samples [start, stop) (stop -1: to the
    end). x (N, C, H, W), or (C, N, H, W) when cnhw."""
    cdef int typenum = _float_array(x, "x")
    cdef Geometry g = _geometry(x, "x", cnhw, fh, fw, stride, pad)
    cdef Py_ssize_t m = _samples(g, start, stop, transposed)
    _like(col, "col", typenum, g.cols // g.n * m, True)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pc = cnp.PyArray_DATA(col)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            if transposed:
                im2col_t_f64(<double *> px, g.n, g.c, g.h, g.w, cnhw,
                             fh, fw, stride, pad, start, start + m, <double *> pc)
            else:
                im2col_f64(<double *> px, g.n, g.c, g.h, g.w, cnhw,
                           fh, fw, stride, pad, <double *> pc)
        else:
            if transposed:
                im2col_t_f32(<float *> px, g.n, g.c, g.h, g.w, cnhw,
                             fh, fw, stride, pad, start, start + m, <float *> pc)
            else:
                im2col_f32(<float *> px, g.n, g.c, g.h, g.w, cnhw,
                           fh, fw, stride, pad, <float *> pc)


def col2im(cnp.ndarray col not None, cnp.ndarray dx not None, Py_ssize_t fh, Py_ssize_t fw,
           Py_ssize_t stride, Py_ssize_t pad, bint transposed=False, bint cnhw=False,
           Py_ssize_t start=0, Py_ssize_t stop=-1):
    """dx <- im2col's adjoint applied to col (overlaps accumulate); col and dx as in im2col, the
    planes of the samples [start, stop) of dx overwritten (the others untouched)."""
    cdef int typenum = _float_array(dx, "dx", True)
    cdef Geometry g = _geometry(dx, "dx", cnhw, fh, fw, stride, pad)
    cdef Py_ssize_t m = _samples(g, start, stop, transposed)
    _like(col, "col", typenum, g.cols // g.n * m, False)
    cdef void *pc = cnp.PyArray_DATA(col)
    cdef void *px = cnp.PyArray_DATA(dx)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            if transposed:
                col2im_t_f64(<double *> pc, g.n, g.c, g.h, g.w, cnhw,
                             fh, fw, stride, pad, start, start + m, <double *> px)
            else:
                col2im_f64(<double *> pc, g.n, g.c, g.h, g.w, cnhw,
                           fh, fw, stride, pad, <double *> px)
        else:
            if transposed:
                col2im_t_f32(<float *> pc, g.n, g.c, g.h, g.w, cnhw,
                             fh, fw, stride, pad, start, start + m, <float *> px)
            else:
                col2im_f32(<float *> pc, g.n, g.c, g.h, g.w, cnhw,
                           fh, fw, stride, pad, <float *> px)


def swap_outer(cnp.ndarray src not None, cnp.ndarray dst not None, cnp.ndarray bias=None):
    """dst (B, A, ...) <- src (A, B, ...) with its two outer axes swapped, + bias[a] (bias (A,),
    optional)."""
    cdef int typenum = _float_array(src, "src")
    if cnp.PyArray_NDIM(src) < 2:
        raise ValueError(f"src: expected at least 2-D, got shape {(<object> src).shape}")
    cdef Py_ssize_t a = cnp.PyArray_DIM(src, 0), b = cnp.PyArray_DIM(src, 1)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(src)
    _like(dst, "dst", typenum, size, True)
    cdef void *pb = NULL
    if bias is not None:
        _like(bias, "bias", typenum, a, False)
        pb = cnp.PyArray_DATA(bias)
    if size == 0:
        return
    cdef Py_ssize_t q = size // (a * b)
    cdef void *ps = cnp.PyArray_DATA(src)
    cdef void *pd = cnp.PyArray_DATA(dst)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            swap_outer_f64(<double *> ps, a, b, q, <double *> pb, <double *> pd)
        else:
            swap_outer_f32(<float *> ps, a, b, q, <float *> pb, <float *> pd)


def conv_direct1(cnp.ndarray x not None, cnp.ndarray W not None, cnp.ndarray b, Py_ssize_t pad,
                 bint relu, cnp.ndarray y not None, bint nchw=False):
    """y (FN, N * OH * OW) <- act(W . im2col(x) + b) for one input channel and stride 1, computed
    directly (no im2col); x (N, 1, H, W) or (1, N, H, W), W (FN, 1, FH, FW), b (FN,) or None (no
    bias, no act), act ReLU when relu; y in the book's (N, FN, OH, OW) order when nchw. Returns False, having written nothing, when this CPU or
    build has no direct path (the caller then takes im2col and a product)."""
    cdef int typenum = _float_array(x, "x")
    cdef bint cnhw = cnp.PyArray_NDIM(x) == 4 and cnp.PyArray_DIM(x, 0) == 1
    if cnp.PyArray_NDIM(W) != 4 or cnp.PyArray_DIM(W, 1) != 1:
        raise ValueError(f"W: expected (FN, 1, FH, FW), got shape {(<object> W).shape}")
    cdef Py_ssize_t fn = cnp.PyArray_DIM(W, 0), fh = cnp.PyArray_DIM(W, 2), fw = cnp.PyArray_DIM(W, 3)
    cdef Geometry g = _geometry(x, "x", cnhw, fh, fw, 1, pad)
    if g.c != 1:
        raise ValueError(f"x: expected one channel, got shape {(<object> x).shape}")
    _like(W, "W", typenum, fn * fh * fw, False)
    cdef void *pb = NULL
    if b is not None:
        _like(b, "b", typenum, fn, False)
        pb = cnp.PyArray_DATA(b)
    _like(y, "y", typenum, fn * g.n * g.oh * g.ow, True)
    for a, name in [(x, "x"), (W, "W")] + ([] if b is None else [(b, "b")]):
        _apart(y, "y", a, name)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pw = cnp.PyArray_DATA(W)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef Py_ssize_t status
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = conv_direct1_f64(<double *> px, g.n, g.h, g.w, <double *> pw, <double *> pb,
                                      fn, fh, fw, pad, relu, nchw, <double *> py)
        else:
            status = conv_direct1_f32(<float *> px, g.n, g.h, g.w, <float *> pw, <float *> pb,
                                      fn, fh, fw, pad, relu, nchw, <float *> py)
    if status == 0:
        return False
    _check_status(status, "conv_direct1")
    return True


def conv_direct1_grads(cnp.ndarray x not None, cnp.ndarray dy not None, cnp.ndarray y,
                       Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t pad, cnp.ndarray dW not None,
                       cnp.ndarray db not None):
    """dW (FN, FH * FW) <- dy . im2col(x)^T and db (FN,) <- the row sums of dy, for one input
    channel and stride 1, computed directly (no im2col), after dy (FN, N, OH, OW) <- dy where y >
    0 (or NaN), else 0, in place, when y (conv_direct1's ReLU output, dy's size) is given. x (N,
    1, H, W) or (1, N, H, W). Returns False, having written nothing, when this CPU or build has no
    direct path (the caller then takes im2col and a product)."""
    cdef int typenum = _float_array(x, "x")
    cdef bint cnhw = cnp.PyArray_NDIM(x) == 4 and cnp.PyArray_DIM(x, 0) == 1
    cdef Geometry g = _geometry(x, "x", cnhw, fh, fw, 1, pad)
    if g.c != 1:
        raise ValueError(f"x: expected one channel, got shape {(<object> x).shape}")
    if cnp.PyArray_NDIM(dy) < 1:
        raise ValueError("dy: expected at least 1-D")
    cdef Py_ssize_t fn = cnp.PyArray_DIM(dy, 0)
    _like(dy, "dy", typenum, fn * g.n * g.oh * g.ow, True)
    cdef void *pz = NULL
    if y is not None:
        _like(y, "y", typenum, fn * g.n * g.oh * g.ow, False)
        pz = cnp.PyArray_DATA(y)
    _like(dW, "dW", typenum, fn * fh * fw, True)
    _like(db, "db", typenum, fn, True)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pd = cnp.PyArray_DATA(dy)
    cdef void *pw = cnp.PyArray_DATA(dW)
    cdef void *pb = cnp.PyArray_DATA(db)
    cdef Py_ssize_t status
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = conv_direct1_grads_f64(<double *> px, g.n, g.h, g.w, <double *> pd,
                                            <double *> pz, fn, fh, fw, pad, <double *> pw,
                                            <double *> pb)
        else:
            status = conv_direct1_grads_f32(<float *> px, g.n, g.h, g.w, <float *> pd,
                                            <float *> pz, fn, fh, fw, pad, <float *> pw,
                                            <float *> pb)
    if status == 0:
        return False
    _check_status(status, "conv_direct1_grads")
    return True


def conv_bias_act(cnp.ndarray y not None, cnp.ndarray b not None, bint relu,
                  Py_ssize_t start=0, Py_ssize_t stop=-1):
    """y (FN, ...) <- act(y + b[f]) in place, per row f; act ReLU or the identity; b (FN,). Only
    the columns [start, stop) of y as an (FN, L) matrix (stop -1: to the end)."""
    cdef int typenum = _float_array(y, "y", True)
    if cnp.PyArray_NDIM(y) < 1:
        raise ValueError("y: expected at least 1-D")
    cdef Py_ssize_t rows = cnp.PyArray_DIM(y, 0), size = cnp.PyArray_SIZE(y)
    _like(b, "b", typenum, rows, False)
    if size == 0:
        return
    cdef Py_ssize_t ld = size // rows
    if stop == -1:
        stop = ld
    if not 0 <= start <= stop <= ld:
        raise ValueError(f"columns [{start}, {stop}): need 0 <= start <= stop <= {ld}")
    cdef void *py = cnp.PyArray_DATA(y)
    cdef void *pb = cnp.PyArray_DATA(b)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            conv_bias_act_f64(<double *> py, <double *> pb, rows, ld, start, stop, relu)
        else:
            conv_bias_act_f32(<float *> py, <float *> pb, rows, ld, start, stop, relu)


def conv_act_backward_bias(cnp.ndarray dy not None, cnp.ndarray y, cnp.ndarray db not None):
    """dy (FN, ...) <- dy where y > 0 (or NaN), else 0, in place, when y (conv_bias_act's ReLU
    output, dy's size) is given; db (FN,) <- the row sums of dy (float64 accumulation)."""
    cdef int typenum = _float_array(dy, "dy", True)
    if cnp.PyArray_NDIM(dy) < 1:
        raise ValueError("dy: expected at least 1-D")
    cdef Py_ssize_t rows = cnp.PyArray_DIM(dy, 0), size = cnp.PyArray_SIZE(dy)
    _like(db, "db", typenum, rows, True)
    cdef void *pz = NULL
    if y is not None:
        _like(y, "y", typenum, size, False)
        pz = cnp.PyArray_DATA(y)
    if size == 0:
        (<object> db)[...] = 0
        return
    cdef void *pd = cnp.PyArray_DATA(dy)
    cdef void *pb = cnp.PyArray_DATA(db)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            conv_act_backward_bias_f64(<double *> pd, <double *> pz, rows, size // rows, <double *> pb)
        else:
            conv_act_backward_bias_f32(<float *> pd, <float *> pz, rows, size // rows, <float *> pb)


cdef Py_ssize_t _conv_gemm_share(Geometry g, Py_ssize_t block, Py_ssize_t fn,
                                 bint wgrad) except -1:
    """Elements of a thread's share of conv_gemm's (wgrad: conv_gemm_wgrad's) work, the sizes
    checked to fit (in Python integers first)."""
    if not 1 <= block <= g.n:
        raise ValueError(f"block: {block} samples, need 1..{g.n}")
    padded = (<object> g.c) * block * (g.h + 2 * g.p) * (g.w + 2 * g.p)
    if padded + g.cols // g.n * block + (<object> fn) * g.c * g.fh * g.fw > (1 << 60):
        raise ValueError(f"conv_gemm: the work of a block of {block} samples would have more "
                         f"than 2**60 elements")
    return conv_gemm_work_f64(g.c, g.h, g.w, g.fh, g.fw, g.s, g.p, block, fn, wgrad)


cdef Py_ssize_t _conv_gemm_threads(cnp.ndarray work, int typenum, Py_ssize_t per,
                                   list outputs) except -1:
    """The threads' shares (of per elements each) that work holds, checked: at least one, work a
    writable flat buffer of typenum apart from the other arrays (outputs: (array, name) pairs)."""
    if _float_array(work, "work", True) != typenum:
        raise TypeError(f"work: dtype {(<object> work).dtype} differs from the other operands'")
    if cnp.PyArray_SIZE(work) < per:
        raise ValueError(f"work: {cnp.PyArray_SIZE(work)} elements, need at least {per} "
                         f"(one thread's share)")
    for a, name in outputs:
        _apart(work, "work", a, name)
    return cnp.PyArray_SIZE(work) // per


def conv_gemm(cnp.ndarray x not None, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t stride,
              Py_ssize_t pad, bint cnhw, cnp.ndarray W not None, cnp.ndarray b, bint relu,
              Py_ssize_t block, cnp.ndarray work not None, cnp.ndarray y not None):
    """y (FN, N * OH * OW) <- W . im2col(x), then act(y + b) when b (FN,) is given (act ReLU when
    relu, else the identity); W (FN, C * FH * FW), C-contiguous; x (N, C, H, W) or (C, N, H, W)
    (cnhw). Computed over blocks of `block` samples, a block per thread, each thread's im2col in
    its share of work (1-D, conv_gemm_work_size(...) elements a thread)."""
    cdef int typenum = _float_array(x, "x")
    cdef Geometry g = _geometry(x, "x", cnhw, fh, fw, stride, pad)
    cdef Py_ssize_t k = g.c * fh * fw, q = g.oh * g.ow
    if cnp.PyArray_NDIM(W) != 2 or cnp.PyArray_DIM(W, 1) != k:
        raise ValueError(f"W: expected (FN, {k}) for x {(<object> x).shape} and a {fh}x{fw} "
                         f"window, got shape {(<object> W).shape}")
    cdef Py_ssize_t fn = cnp.PyArray_DIM(W, 0)
    _like(W, "W", typenum, k * fn, False)
    cdef void *pb = NULL
    if b is not None:
        _like(b, "b", typenum, fn, False)
        pb = cnp.PyArray_DATA(b)
    _like(y, "y", typenum, fn * g.n * q, True)
    inputs = [(x, "x"), (W, "W")] + ([] if b is None else [(b, "b")])
    for a, name in inputs:
        _apart(y, "y", a, name)
    cdef Py_ssize_t per = _conv_gemm_share(g, block, fn, False)
    cdef Py_ssize_t work_threads = _conv_gemm_threads(work, typenum, per, inputs + [(y, "y")])
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pw = cnp.PyArray_DATA(W)
    cdef void *pk = cnp.PyArray_DATA(work)
    cdef void *py = cnp.PyArray_DATA(y)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            conv_gemm_f64(<double *> px, g.n, g.c, g.h, g.w, cnhw, fh, fw, stride, pad,
                          <double *> pw, fn, <double *> pb, relu, block, <double *> pk,
                          work_threads, <double *> py)
        else:
            conv_gemm_f32(<float *> px, g.n, g.c, g.h, g.w, cnhw, fh, fw, stride, pad,
                          <float *> pw, fn, <float *> pb, relu, block, <float *> pk,
                          work_threads, <float *> py)


def conv_gemm_wgrad(cnp.ndarray x not None, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t stride,
                    Py_ssize_t pad, bint cnhw, cnp.ndarray dy not None, Py_ssize_t block,
                    cnp.ndarray work not None, cnp.ndarray dwt not None):
    """dwt (C * FH * FW, FN) <- (dy . im2col(x)^T)^T, dW^T, for dy (FN, N * OH * OW); x as in
    conv_gemm. Over blocks of `block` samples, each thread summing a run of blocks in its share
    of work (1-D, conv_gemm_wgrad_work_size(...) elements a thread), the threads' sums added in
    thread order."""
    cdef int typenum = _float_array(x, "x")
    cdef Geometry g = _geometry(x, "x", cnhw, fh, fw, stride, pad)
    cdef Py_ssize_t k = g.c * fh * fw, q = g.oh * g.ow
    if cnp.PyArray_NDIM(dy) != 2 or cnp.PyArray_DIM(dy, 1) != g.n * q:
        raise ValueError(f"dy: expected (FN, {g.n * q}) for x {(<object> x).shape} and a "
                         f"{fh}x{fw} window, got shape {(<object> dy).shape}")
    cdef Py_ssize_t fn = cnp.PyArray_DIM(dy, 0)
    _like(dy, "dy", typenum, fn * g.n * q, False)
    _like(dwt, "dwt", typenum, k * fn, True)
    inputs = [(x, "x"), (dy, "dy")]
    for a, name in inputs:
        _apart(dwt, "dwt", a, name)
    cdef Py_ssize_t per = _conv_gemm_share(g, block, fn, True)
    cdef Py_ssize_t work_threads = _conv_gemm_threads(work, typenum, per, inputs + [(dwt, "dwt")])
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pd = cnp.PyArray_DATA(dy)
    cdef void *pk = cnp.PyArray_DATA(work)
    cdef void *pw = cnp.PyArray_DATA(dwt)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            conv_gemm_wgrad_f64(<double *> px, g.n, g.c, g.h, g.w, cnhw, fh, fw, stride, pad,
                                <double *> pd, fn, block, <double *> pk, work_threads,
                                <double *> pw)
        else:
            conv_gemm_wgrad_f32(<float *> px, g.n, g.c, g.h, g.w, cnhw, fh, fw, stride, pad,
                                <float *> pd, fn, block, <float *> pk, work_threads,
                                <float *> pw)


def conv_gemm_work_size(Py_ssize_t c, Py_ssize_t h, Py_ssize_t w, Py_ssize_t fh, Py_ssize_t fw,
                        Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t block, Py_ssize_t fn,
                        bint wgrad=False):
    """Elements of one thread's share of conv_gemm's (wgrad: conv_gemm_wgrad's) work for planes
    of C channels of H x W, an FH x FW window, blocks of `block` samples and FN filters."""
    cdef Geometry g
    g.n, g.c, g.h, g.w, g.fh, g.fw, g.s, g.p = block, c, h, w, fh, fw, stride, pad
    if min(c, h, w, fh, fw, stride, fn) < 1 or pad < 0 or max(fh, fw, stride, pad) > _WINDOW_MAX:
        raise ValueError(f"conv_gemm_work_size: sizes must be >= 1 and pad >= 0, got {c}, {h}, "
                         f"{w}, {fh}, {fw}, {stride}, {pad}, {fn}")
    g.oh, g.ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    if g.oh < 1 or g.ow < 1:
        raise ValueError(f"window {fh}x{fw} larger than the padded input")
    g.cols = (<object> block) * g.oh * g.ow * c * fh * fw
    return _conv_gemm_share(g, block, fn, wgrad)

cdef _pool_outputs(Geometry g, cnp.ndarray out, cnp.ndarray arg, int typenum, bint out_cnhw,
                   bint writable):
    """Checks out (pooled values, x's dtype) and arg (int32 window indices): OH x OW planes in
    out's layout."""
    shape = (g.c, g.n, g.oh, g.ow) if out_cnhw else (g.n, g.c, g.oh, g.ow)
    if (<object> out).shape != shape:
        raise ValueError(f"pooled values: expected shape {shape}, got {(<object> out).shape}")
    _like(out, "pooled values", typenum, g.n * g.c * g.oh * g.ow, writable)
    if (cnp.PyArray_TYPE(arg) != cnp.NPY_INT32 or not cnp.PyArray_ISNOTSWAPPED(arg)
            or not cnp.PyArray_IS_C_CONTIGUOUS(arg) or not cnp.PyArray_ISALIGNED(arg)):
        raise TypeError(f"arg: expected contiguous int32, got dtype {(<object> arg).dtype}")
    if (<object> arg).shape != shape:
        raise ValueError(f"arg: expected shape {shape}, got {(<object> arg).shape}")
    if writable and not cnp.PyArray_ISWRITEABLE(arg):
        raise ValueError("arg: output array is read-only")


def maxpool_forward(cnp.ndarray x not None, Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t stride,
                    Py_ssize_t pad, cnp.ndarray out not None, cnp.ndarray arg not None,
                    bint x_cnhw=False, bint out_cnhw=False):
    """out <- the maximum of each FH x FW window of x, arg <- its index in the window (int32).
    x (N, C, H, W) or (C, N, H, W) (x_cnhw); out and arg (N, C, OH, OW) or (C, N, OH, OW)."""
    cdef int typenum = _float_array(x, "x")
    cdef Geometry g = _geometry(x, "x", x_cnhw, fh, fw, stride, pad)
    if fh * fw > 2 ** 31 - 1:  # arg holds int32 indices in the window
        raise ValueError(f"pooling window {fh}x{fw} too large")
    _pool_outputs(g, out, arg, typenum, out_cnhw, True)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *po = cnp.PyArray_DATA(out)
    cdef int32_t *pa = <int32_t *> cnp.PyArray_DATA(arg)
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            maxpool_forward_f64(<double *> px, g.n, g.c, g.h, g.w, x_cnhw, fh, fw, stride, pad,
                                <double *> po, pa, out_cnhw)
        else:
            maxpool_forward_f32(<float *> px, g.n, g.c, g.h, g.w, x_cnhw, fh, fw, stride, pad,
                                <float *> po, pa, out_cnhw)


def maxpool_backward(cnp.ndarray dout not None, cnp.ndarray arg not None, cnp.ndarray dx not None,
                     Py_ssize_t fh, Py_ssize_t fw, Py_ssize_t stride, Py_ssize_t pad,
                     bint x_cnhw=False, bint out_cnhw=False):
    """dx <- dout routed to each window's arg (overlaps accumulate); dx overwritten, shaped as
    maxpool_forward's x, dout and arg as its out and arg."""
    cdef int typenum = _float_array(dx, "dx", True)
    cdef Geometry g = _geometry(dx, "dx", x_cnhw, fh, fw, stride, pad)
    _pool_outputs(g, dout, arg, typenum, out_cnhw, False)
    cdef void *pd = cnp.PyArray_DATA(dout)
    cdef void *px = cnp.PyArray_DATA(dx)
    cdef const int32_t *pa = <int32_t *> cnp.PyArray_DATA(arg)
    cdef Py_ssize_t status
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            status = maxpool_backward_f64(<double *> pd, pa, g.n, g.c, g.h, g.w, x_cnhw, fh, fw,
                                       stride, pad, <double *> px, out_cnhw)
        else:
            status = maxpool_backward_f32(<float *> pd, pa, g.n, g.c, g.h, g.w, x_cnhw, fh, fw,
                                       stride, pad, <float *> px, out_cnhw)
    if status >= 0:
        raise ValueError(f"maxpool_backward: arg.flat[{status}] = {pa[status]} is outside the "
                         f"{fh}x{fw} window (indices 0..{fh * fw - 1})")
    _check_status(status, "maxpool_backward")
