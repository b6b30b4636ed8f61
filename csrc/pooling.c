/* pooling.c: max pooling, forward and backward (sizes and layouts: conv.h; FH x FW the window).
 *
 * Forward: out = the window's maximum, arg = its index ky * FW + kx in the window, the first
 * maximum in (ky, kx) order as the book's np.argmax over an im2col row; a NaN wins, as in np.max
 * and np.argmax. Padding counts as zeros, as in the book's im2col. out and arg share one layout,
 * x may have the other (the models' last pooling reads (C, N, H, W) and writes the (N, C, OH, OW)
 * the Affine layer after it flattens).
 * Backward: each dx plane is zeroed, then dout is added at every window's arg (overlapping windows
 * accumulate, as col2im). One thread owns a plane: the sums do not depend on the thread count.
 */
#include "conv.h"

/* 1 when v replaces best: greater, or the first NaN (nothing replaces a NaN) */
static inline int replaces(real v, real best)
{
    return best == best && !(v <= best);
}

static FASTNN_CLONES void maxpool_plane(const real *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t fh,
                                        ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, ptrdiff_t oh,
                                        ptrdiff_t ow, real *out, int32_t *arg)
{
    if (fh == 2 && fw == 2 && s == 2 && p == 0) { /* the models' pooling: every window inside */
        for (ptrdiff_t oy = 0; oy < oh; oy++) {
            const real *r0 = x + 2 * oy * w, *r1 = r0 + w;
            for (ptrdiff_t ox = 0; ox < ow; ox++) {
                real best = r0[2 * ox];
                int32_t at = 0;
                real v1 = r0[2 * ox + 1], v2 = r1[2 * ox], v3 = r1[2 * ox + 1];
                if (replaces(v1, best)) best = v1, at = 1;
                if (replaces(v2, best)) best = v2, at = 2;
                if (replaces(v3, best)) best = v3, at = 3;
                out[oy * ow + ox] = best;
                arg[oy * ow + ox] = at;
            }
        }
        return;
    }
    for (ptrdiff_t oy = 0; oy < oh; oy++)
        for (ptrdiff_t ox = 0; ox < ow; ox++) {
            real best = 0;
            int32_t at = -1;
            for (ptrdiff_t ky = 0; ky < fh; ky++) {
                ptrdiff_t iy = oy * s + ky - p;
                for (ptrdiff_t kx = 0; kx < fw; kx++) {
                    ptrdiff_t ix = ox * s + kx - p;
                    real v = iy >= 0 && iy < h && ix >= 0 && ix < w ? x[iy * w + ix] : 0;
                    if (at < 0 || replaces(v, best))
                        best = v, at = (int32_t)(ky * fw + kx);
                }
            }
            out[oy * ow + ox] = best;
            arg[oy * ow + ox] = at;
        }
}

void FN(maxpool_forward)(const real *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                         int x_cnhw, ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p,
                         real *out, int32_t *arg, int out_cnhw)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, q = oh * ow;
    int nt = n * c * h * w >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t r = 0; r < n * c; r++) {
        ptrdiff_t i = r / c, j = r % c, o = conv_plane(i, j, n, c, q, out_cnhw);
        maxpool_plane(x + conv_plane(i, j, n, c, h * w, x_cnhw), h, w, fh, fw, s, p, oh, ow,
                      out + o, arg + o);
    }
}

/* dx plane += dout at each window's arg; returns the number of args outside the window (none
 * from maxpool_forward), which are skipped */
static FASTNN_CLONES ptrdiff_t maxpool_backward_plane(const real *dout, const int32_t *arg,
                                                      ptrdiff_t h, ptrdiff_t w, ptrdiff_t fh,
                                                      ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p,
                                                      ptrdiff_t oh, ptrdiff_t ow, real *dx)
{
    ptrdiff_t bad = 0;
    memset(dx, 0, (size_t)(h * w) * sizeof *dx);
    for (ptrdiff_t oy = 0; oy < oh; oy++)
        for (ptrdiff_t ox = 0; ox < ow; ox++) {
            int32_t at = arg[oy * ow + ox];
            if (at < 0 || at >= fh * fw) {
                bad++;
                continue;
            }
            ptrdiff_t iy = oy * s + at / fw - p, ix = ox * s + at % fw - p;
            if (iy >= 0 && iy < h && ix >= 0 && ix < w) /* a maximum in the padding has no dx */
                dx[iy * w + ix] += dout[oy * ow + ox];
        }
    return bad;
}

ptrdiff_t FN(maxpool_backward)(const real *dout, const int32_t *arg, ptrdiff_t n, ptrdiff_t c,
                               ptrdiff_t h, ptrdiff_t w, int x_cnhw, ptrdiff_t fh, ptrdiff_t fw,
                               ptrdiff_t s, ptrdiff_t p, real *dx, int out_cnhw)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, q = oh * ow, bad = 0;
    int nt = n * c * h * w >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1) reduction(+ : bad)
    for (ptrdiff_t r = 0; r < n * c; r++) {
        ptrdiff_t i = r / c, j = r % c, o = conv_plane(i, j, n, c, q, out_cnhw);
        bad += maxpool_backward_plane(dout + o, arg + o, h, w, fh, fw, s, p, oh, ow,
                                      dx + conv_plane(i, j, n, c, h * w, x_cnhw));
    }
    return bad;
}
