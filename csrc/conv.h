/* conv.h: the kernels of the convolutional layers (csrc/conv.c, conv_gemm.c, pooling.c), float64
 * (_f64) and float32 (_f32), see real.h.
 *
 * Sizes, one letter each, for both files: N batch, C channels, H x W an input plane, FH x FW the
 * filter (or pooling window), S stride, P pad, OH x OW an output plane, K = C * FH * FW,
 * Q = OH * OW. A batch of planes is in one of two layouts, chosen by a flag `cnhw`: 0 for the
 * book's (N, C, H, W), 1 for (C, N, H, W), the layout in which a convolution is one matrix product
 * (the models keep it between their layers). Padding is zeros, as the book's np.pad.
 *
 * Contract (checked by _core_conv.pxi): C-contiguous buffers of the sizes named, S >= 1, P >= 0,
 * OH >= 1, OW >= 1. The kernels compute every index from those and touch nothing else; pooling's
 * backward checks each stored window index before it uses it.
 */
#ifndef FASTNN_CONV_H
#define FASTNN_CONV_H

#include "real.h"

#define FASTNN_CONV_DECLARE(T, S)                                                                   \
    void im2col_##S(const T *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,        \
                    ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, T *col);                  \
    void im2col_t_##S(const T *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,      \
                      ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, ptrdiff_t i0,           \
                      ptrdiff_t i1, T *col);                                                        \
    void col2im_##S(const T *col, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,      \
                    ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, T *dx);                   \
    void col2im_t_##S(const T *col, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,    \
                      ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, ptrdiff_t i0,           \
                      ptrdiff_t i1, T *dx);                                                         \
    void swap_outer_##S(const T *src, ptrdiff_t a, ptrdiff_t b, ptrdiff_t q, const T *bias, T *dst);  \
    ptrdiff_t conv_direct1_##S(const T *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, const T *wt,      \
                               const T *b, ptrdiff_t fn, ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t p,  \
                               int relu, int nchw, T *y);                                          \
    ptrdiff_t conv_direct1_grads_##S(const T *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, T *dy,        \
                                     const T *y, ptrdiff_t fn, ptrdiff_t fh, ptrdiff_t fw,         \
                                     ptrdiff_t p, T *dw, T *db);                                   \
    void conv_bias_act_##S(T *y, const T *b, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t c0,            \
                           ptrdiff_t c1, int relu);                                                \
    void conv_act_backward_bias_##S(T *dy, const T *y, ptrdiff_t rows, ptrdiff_t len, T *db);       \
    void maxpool_forward_##S(const T *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,         \
                             int x_cnhw, ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p,      \
                             T *out, int32_t *arg, int out_cnhw);                                  \
    ptrdiff_t maxpool_backward_##S(const T *dout, const int32_t *arg, ptrdiff_t n, ptrdiff_t c,      \
                                   ptrdiff_t h, ptrdiff_t w, int x_cnhw, ptrdiff_t fh,              \
                                   ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, T *dx, int out_cnhw);    \
    /* conv_gemm.c: wm (FN, K), blocks of m samples, work per thread conv_gemm_work(...) */      \
    ptrdiff_t conv_gemm_work_##S(ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, ptrdiff_t fh, ptrdiff_t fw,   \
                                 ptrdiff_t s, ptrdiff_t p, ptrdiff_t m, ptrdiff_t fn, int wgrad);    \
    void conv_gemm_##S(const T *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,     \
                       ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, const T *wm,          \
                       ptrdiff_t fn, const T *bias, int relu, ptrdiff_t m, T *work,                \
                       ptrdiff_t work_threads, T *y);                                              \
    void conv_gemm_wgrad_##S(const T *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,         \
                             int cnhw, ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p,       \
                             const T *dy, ptrdiff_t fn, ptrdiff_t m, T *work,                      \
                             ptrdiff_t work_threads, T *dwt);

FASTNN_CONV_DECLARE(double, f64)
FASTNN_CONV_DECLARE(float, f32)

/* The output side of a window: o with o * s + off in [0, len), o in [0, out), as [*lo, *hi) */
static inline void conv_valid_range(ptrdiff_t len, ptrdiff_t out, ptrdiff_t off, ptrdiff_t s,
                                    ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t a = off < 0 ? (-off + s - 1) / s : 0;
    ptrdiff_t b = len - off > 0 ? (len - 1 - off) / s + 1 : 0;
    a = a < out ? a : out;
    b = b < out ? b : out;
    *lo = a;
    *hi = b > a ? b : a;
}

#ifdef FASTNN_AVX512
/* lanes [a, b) of a vector, a and b clamped to [0, VLANES] */
static inline vmask lanes_between(ptrdiff_t a, ptrdiff_t b)
{
    a = a < 0 ? 0 : a > VLANES ? VLANES : a;
    b = b < 0 ? 0 : b > VLANES ? VLANES : b;
    return (vmask)((((uint64_t)1 << b) - 1) & ~(((uint64_t)1 << a) - 1));
}
#endif

/* The offset of plane (i, j) (sample i, channel j) of an (n, c) batch of planes of hw elements */
static inline ptrdiff_t conv_plane(ptrdiff_t i, ptrdiff_t j, ptrdiff_t n, ptrdiff_t c,
                                   ptrdiff_t hw, int cnhw)
{
    return (cnhw ? j * n + i : i * c + j) * hw;
}

#endif
