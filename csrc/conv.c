/* conv.c: im2col and its adjoint col2im in two layouts, and the elementwise work around the
 * convolution's matrix product (sizes and layouts: conv.h).
 *
 * im2col   (N * Q, K): the book's util.im2col, row (n, oy, ox), column (c, ky, kx).
 * im2col_t (K, M * Q): its transpose for the samples [i0, i1) (M = i1 - i0), written directly.
 * The convolution is then one matrix product W (FN, K) . col (K, M * Q) per block of samples,
 * into the columns of those samples of y (FN, N * Q), the output in (FN, N, OH, OW); the models
 * run it over blocks of a few samples, so that col stays in the cache between im2col and the
 * product. Its backward: dW = dy . col^T, and dx either as a convolution of dy (conv.py) or
 * col2im_t of dcol = W^T . dy. Each row of col_t is the input plane shifted by (ky, kx):
 * contiguous copies when S = 1.
 * col2im, col2im_t: the adjoints (overlapping windows accumulate). Each output plane (n, c) is
 * zeroed, then its contributions are added filter position by filter position, (ky, kx) in order,
 * as the book's col2im adds them: one thread owns a plane, so the sums do not depend on the thread
 * count.
 */
#include <stdlib.h>

#include "conv.h"

static int threads_for(ptrdiff_t work)
{
    return work >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
}

/* row (c, ky, kx) of col_t, sample i: the plane shifted by (ky - P, kx - P), zeros outside */
static FASTNN_CLONES void im2col_t_row(const real *src, ptrdiff_t h, ptrdiff_t w, ptrdiff_t ky,
                                       ptrdiff_t kx, ptrdiff_t s, ptrdiff_t p, ptrdiff_t oh,
                                       ptrdiff_t ow, real *dst)
{
    ptrdiff_t oy0, oy1, ox0, ox1;
    conv_valid_range(h, oh, ky - p, s, &oy0, &oy1);
    conv_valid_range(w, ow, kx - p, s, &ox0, &ox1);
    memset(dst, 0, (size_t)(oy0 * ow) * sizeof *dst);
    for (ptrdiff_t oy = oy0; oy < oy1; oy++) {
        real *d = dst + oy * ow;
        const real *r = src + (oy * s + ky - p) * w; /* the input row, in bounds */
        ptrdiff_t base = kx - p; /* + ox * s is in [0, w) for ox in [ox0, ox1) */
        for (ptrdiff_t ox = 0; ox < ox0; ox++)
            d[ox] = 0;
        if (s == 1)
            memcpy(d + ox0, r + base + ox0, (size_t)(ox1 - ox0) * sizeof *d);
        else
            for (ptrdiff_t ox = ox0; ox < ox1; ox++)
                d[ox] = r[base + ox * s];
        for (ptrdiff_t ox = ox1; ox < ow; ox++)
            d[ox] = 0;
    }
    memset(dst + oy1 * ow, 0, (size_t)((oh - oy1) * ow) * sizeof *dst);
}

#ifdef FASTNN_AVX512
/* im2col_t_row for S = 1, one masked load and store per VLANES outputs: the lanes outside the
 * input row read nothing and store zeros (a call per short row of memcpy and memset costs more
 * than the copy; the models' planes are 8 to 28 wide) */
__attribute__((target("avx512f"))) static void im2col_t_row_s1_avx512(
    const real *src, ptrdiff_t h, ptrdiff_t w, ptrdiff_t ky, ptrdiff_t kx, ptrdiff_t p,
    ptrdiff_t oh, ptrdiff_t ow, real *dst)
{
    ptrdiff_t ox0, ox1, oy0, oy1;
    conv_valid_range(w, ow, kx - p, 1, &ox0, &ox1);
    conv_valid_range(h, oh, ky - p, 1, &oy0, &oy1);
    /* column block v of every output row: the masks are the same for all rows */
    for (ptrdiff_t v = 0; v < ow; v += VLANES) {
        vmask store = lanes_between(0, ow - v), load = lanes_between(ox0 - v, ox1 - v);
        vreal zero = V(setzero)();
        for (ptrdiff_t oy = 0; oy < oy0; oy++)
            V(mask_storeu)(dst + oy * ow + v, store, zero);
        if (load) {
            /* lane l reads src[(oy + ky - p) * w + kx - p + v + l], in the row for the lanes of
               load; the offset of the first lane is formed as an integer, and may be negative */
            ptrdiff_t off = (ky - p) * w + kx - p + v;
            for (ptrdiff_t oy = oy0; oy < oy1; oy++)
                V(mask_storeu)(dst + oy * ow + v, store,
                               V(maskz_loadu)(load, (const char *)src
                                              + (off + oy * w) * (ptrdiff_t)sizeof(real)));
        } else {
            for (ptrdiff_t oy = oy0; oy < oy1; oy++)
                V(mask_storeu)(dst + oy * ow + v, store, zero);
        }
        for (ptrdiff_t oy = oy1; oy < oh; oy++)
            V(mask_storeu)(dst + oy * ow + v, store, zero);
    }
}
#endif

#ifdef FASTNN_AVX2
#ifdef FASTNN_REAL_F32
#define YINT_LANES() _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
#define YINT_SET1(v) _mm256_set1_epi32((int)(v))
#define YINT_GT(a, b) _mm256_cmpgt_epi32(a, b)
#else
#define YINT_LANES() _mm256_setr_epi64x(0, 1, 2, 3)
#define YINT_SET1(v) _mm256_set1_epi64x((long long)(v))
#define YINT_GT(a, b) _mm256_cmpgt_epi64(a, b)
#endif

/* lanes [a, b) of a register as a maskload mask (every bit of those lanes set), a and b clamped
 * to [0, YLANES] first (so that they fit the lanes' integers) */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256i ylanes_between(
    ptrdiff_t a, ptrdiff_t b)
{
    a = a < 0 ? 0 : a > YLANES ? YLANES : a;
    b = b < 0 ? 0 : b > YLANES ? YLANES : b;
    __m256i lane = YINT_LANES();
    return _mm256_andnot_si256(YINT_GT(YINT_SET1(a), lane), YINT_GT(YINT_SET1(b), lane));
}

/* dst[a, b) <- 0 for dst of q elements, in whole registers: the last one of a span ending near q
 * is moved back to end at q, so it may zero elements before a as well (callers zero first, then
 * write the values) */
__attribute__((target("avx2,fma"))) static void zero_span_avx2(real *dst, ptrdiff_t a,
                                                               ptrdiff_t b, ptrdiff_t q)
{
    if (q < YLANES) {
        for (ptrdiff_t e = a; e < b; e++)
            dst[e] = 0;
        return;
    }
    for (ptrdiff_t e = a; e < b; e += YLANES)
        Y(storeu)(dst + (e < q - YLANES ? e : q - YLANES), Y(setzero)());
}

/* im2col_t_row for S = 1 in AVX2 registers. This CPU's masked store is slow (~18 cycles on
 * Zen 3, against ~3 for a plain store of a masked load), so only loads are masked: lanes outside
 * the input row read nothing and give zeros, and every store is a whole register. Rows of at
 * least YLANES: register blocks of each row, the last one moved back to end at the row's end
 * (overlapping the one before). Shorter rows (float32 7x7 planes): one register from each row's
 * start, rows in order; its lanes past the row's end are zeros landing in the rows after it,
 * which are written later or are zero rows; the row whose register would pass the plane's end
 * is copied element by element. */
__attribute__((target("avx2,fma"))) static void im2col_t_row_s1_avx2(
    const real *src, ptrdiff_t h, ptrdiff_t w, ptrdiff_t ky, ptrdiff_t kx, ptrdiff_t p,
    ptrdiff_t oh, ptrdiff_t ow, real *dst)
{
    ptrdiff_t ox0, ox1, oy0, oy1, q = oh * ow;
    conv_valid_range(w, ow, kx - p, 1, &ox0, &ox1);
    conv_valid_range(h, oh, ky - p, 1, &oy0, &oy1);
    if (ox0 == ox1)
        oy1 = oy0; /* no column of the input: every row is zeros */
    zero_span_avx2(dst, 0, oy0 * ow, q);
    zero_span_avx2(dst, oy1 * ow, q, q);
    /* lane l of output row oy, column ox, reads src[off + oy * w + ox] (in the row when ox is in
       [ox0, ox1)); the offset of a row is formed as an integer, and may be negative */
    ptrdiff_t off = (ky - p) * w + kx - p;
#define ROW_AT(oy, ox)                                                                             \
    ((const real *)((const char *)src + (off + (oy) * w + (ox)) * (ptrdiff_t)sizeof(real)))
    if (ow >= YLANES) {
        for (ptrdiff_t v = 0; v < ow; v += YLANES) {
            ptrdiff_t at = v < ow - YLANES ? v : ow - YLANES;
            if (ox0 <= at && at + YLANES <= ox1) {
                for (ptrdiff_t oy = oy0; oy < oy1; oy++)
                    Y(storeu)(dst + oy * ow + at, Y(loadu)(ROW_AT(oy, at)));
            } else {
                __m256i load = ylanes_between(ox0 - at, ox1 - at);
                for (ptrdiff_t oy = oy0; oy < oy1; oy++)
                    Y(storeu)(dst + oy * ow + at, Y(maskload)(ROW_AT(oy, at), load));
            }
        }
        return;
    }
    __m256i load = ylanes_between(ox0, ox1);
    for (ptrdiff_t oy = oy0; oy < oy1; oy++) {
        real *d = dst + oy * ow;
        if (oy * ow + YLANES <= q) {
            Y(storeu)(d, Y(maskload)(ROW_AT(oy, 0), load));
        } else {
            for (ptrdiff_t ox = 0; ox < ow; ox++)
                d[ox] = ox >= ox0 && ox < ox1 ? ROW_AT(oy, ox)[0] : 0;
        }
    }
#undef ROW_AT
}
#endif

/* row (ky, kx) of col_t for one sample and channel, plane that sample's channel: the vector code
 * for stride 1 where the CPU has it */
static inline void im2col_t_plane(const real *plane, ptrdiff_t h, ptrdiff_t w, ptrdiff_t ky,
                                  ptrdiff_t kx, ptrdiff_t s, ptrdiff_t p, ptrdiff_t oh,
                                  ptrdiff_t ow, real *dst, int avx512, int avx2)
{
    (void)avx512, (void)avx2;
#ifdef FASTNN_AVX512
    if (avx512) {
        im2col_t_row_s1_avx512(plane, h, w, ky, kx, p, oh, ow, dst);
        return;
    }
#endif
#ifdef FASTNN_AVX2
    if (avx2) {
        im2col_t_row_s1_avx2(plane, h, w, ky, kx, p, oh, ow, dst);
        return;
    }
#endif
    im2col_t_row(plane, h, w, ky, kx, s, p, oh, ow, dst);
}

/* Rows of col_t ahead whose input plane im2col_t prefetches: consecutive rows read the planes of
 * consecutive samples, through masked loads, which do not train this CPU family's prefetchers
 * ((16, 100, 28, 28) float64, 3x3 pad 1, blocks of 10 samples: 4.2 -> 2.4 ms; float32 1.4 -> 0.9;
 * prefetching the rows written as well gained nothing) */
#define IM2COL_AHEAD 2

void FN(im2col_t)(const real *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,
                  ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, ptrdiff_t i0, ptrdiff_t i1,
                  real *col)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, q = oh * ow;
    ptrdiff_t m = i1 - i0, rows = c * fh * fw * m; /* (k, i) pairs, each Q elements of col_t */
    int nt = threads_for(rows * q);
    int avx512 = s == 1 && fastnn_avx512(), avx2 = s == 1 && fastnn_avx2();
    /* each thread a block of rows, (i, j, ky, kx) of its row and (ia, ja, ka) of the row
       IM2COL_AHEAD on counted along (a division per index and row cost more than the copy of
       a 7 x 7 plane) */
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        ptrdiff_t lo, hi, kk = fh * fw;
        thread_block(t, nt, rows, &lo, &hi);
        ptrdiff_t k = lo / m, i = i0 + lo % m, j = k / kk, ky = k % kk / fw, kx = k % fw;
        ptrdiff_t ia = i0 + (lo + IM2COL_AHEAD) % m, ja = (lo + IM2COL_AHEAD) / m / kk;
        ptrdiff_t ka = (lo + IM2COL_AHEAD) / m % kk;
        for (ptrdiff_t r = lo; r < hi; r++) {
            if (r + IM2COL_AHEAD < rows) { /* the plane that row r + IM2COL_AHEAD reads */
                const char *ahead = (const char *)(x + conv_plane(ia, ja, n, c, h * w, cnhw));
                for (ptrdiff_t off = 0; off < h * w * (ptrdiff_t)sizeof(real); off += 64)
                    __builtin_prefetch(ahead + off);
            }
            im2col_t_plane(x + conv_plane(i, j, n, c, h * w, cnhw), h, w, ky, kx, s, p, oh, ow,
                           col + (j * kk + ky * fw + kx) * (m * q) + (i - i0) * q, avx512,
                           avx2);
            if (++ia == i1) {
                ia = i0;
                if (++ka == kk)
                    ka = 0, ja++;
            }
            if (++i == i1) {
                i = i0;
                if (++kx == fw) {
                    kx = 0;
                    if (++ky == fh)
                        ky = 0, j++;
                }
            }
        }
    }
}

/* rows (i, oy, *) of the book's col: for each ox, the window's K values in (c, ky, kx) order */
static FASTNN_CLONES void im2col_rows(const real *x, ptrdiff_t i, ptrdiff_t oy, ptrdiff_t n,
                                      ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw, ptrdiff_t fh,
                                      ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, ptrdiff_t ow,
                                      real *dst)
{
    for (ptrdiff_t ox = 0; ox < ow; ox++) {
        ptrdiff_t kx0, kx1; /* filter columns whose input column is in bounds */
        conv_valid_range(w, fw, ox * s - p, 1, &kx0, &kx1);
        for (ptrdiff_t j = 0; j < c; j++) {
            const real *plane = x + conv_plane(i, j, n, c, h * w, cnhw);
            for (ptrdiff_t ky = 0; ky < fh; ky++, dst += fw) {
                ptrdiff_t iy = oy * s + ky - p;
                if (iy < 0 || iy >= h) {
                    for (ptrdiff_t kx = 0; kx < fw; kx++)
                        dst[kx] = 0;
                    continue;
                }
                const real *r = plane + iy * w;
                ptrdiff_t base = ox * s - p;
                for (ptrdiff_t kx = 0; kx < kx0; kx++)
                    dst[kx] = 0;
                for (ptrdiff_t kx = kx0; kx < kx1; kx++)
                    dst[kx] = r[base + kx];
                for (ptrdiff_t kx = kx1; kx < fw; kx++)
                    dst[kx] = 0;
            }
        }
    }
}

void FN(im2col)(const real *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,
                ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, real *col)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, k = c * fh * fw;
    int nt = threads_for(n * oh * ow * k);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t r = 0; r < n * oh; r++)
        im2col_rows(x, r / oh, r % oh, n, c, h, w, cnhw, fh, fw, s, p, ow, col + r * ow * k);
}

/* plane (i, j) of dx += every window's share: src(ky, kx) holds the (OH, OW) values of filter
 * position (ky, kx), element (oy, ox) at src(ky, kx)[oy * ystep + ox * xstep] */
static FASTNN_CLONES void col2im_plane(const real *src, ptrdiff_t kstep, ptrdiff_t ystep,
                                       ptrdiff_t xstep, ptrdiff_t h, ptrdiff_t w, ptrdiff_t fh,
                                       ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, ptrdiff_t oh,
                                       ptrdiff_t ow, real *plane)
{
    memset(plane, 0, (size_t)(h * w) * sizeof *plane);
    for (ptrdiff_t ky = 0; ky < fh; ky++) {
        ptrdiff_t oy0, oy1;
        conv_valid_range(h, oh, ky - p, s, &oy0, &oy1);
        for (ptrdiff_t kx = 0; kx < fw; kx++) {
            ptrdiff_t ox0, ox1;
            conv_valid_range(w, ow, kx - p, s, &ox0, &ox1);
            const real *sk = src + (ky * fw + kx) * kstep;
            for (ptrdiff_t oy = oy0; oy < oy1; oy++) {
                real *r = plane + (oy * s + ky - p) * w;
                const real *v = sk + oy * ystep;
                ptrdiff_t base = kx - p;
                if (s == 1 && xstep == 1)
                    for (ptrdiff_t ox = ox0; ox < ox1; ox++)
                        r[base + ox] += v[ox];
                else
                    for (ptrdiff_t ox = ox0; ox < ox1; ox++)
                        r[base + ox * s] += v[ox * xstep];
            }
        }
    }
}

void FN(col2im_t)(const real *col, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,
                  ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, ptrdiff_t i0, ptrdiff_t i1,
                  real *dx)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, q = oh * ow;
    ptrdiff_t m = i1 - i0;
    int nt = threads_for(c * fh * fw * m * q);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t r = 0; r < m * c; r++) {
        ptrdiff_t i = r % m, j = r / m; /* filter row k = (j, ky, kx), column block i */
        col2im_plane(col + j * fh * fw * (m * q) + i * q, m * q, ow, 1, h, w, fh, fw, s, p, oh,
                     ow, dx + conv_plane(i0 + i, j, n, c, h * w, cnhw));
    }
}

void FN(col2im)(const real *col, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,
                ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, real *dx)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, k = c * fh * fw;
    int nt = threads_for(n * oh * ow * k);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t r = 0; r < n * c; r++) {
        ptrdiff_t i = r / c, j = r % c; /* row (i, oy, ox), columns (j, ky, kx) */
        col2im_plane(col + i * oh * ow * k + j * fh * fw, 1, ow * k, k, h, w, fh, fw, s, p, oh,
                     ow, dx + conv_plane(i, j, n, c, h * w, cnhw));
    }
}

/* ------------------------------------------------------------------ around the product */

/* dst (B, A, Q) <- src (A, B, Q) with its outer axes swapped, + bias[a] when bias is not NULL:
 * the product's (FN, N, Q) output to the book's (N, FN, Q) with the bias added, and back */
void FN(swap_outer)(const real *src, ptrdiff_t a, ptrdiff_t b, ptrdiff_t q, const real *bias,
                    real *dst)
{
    int nt = threads_for(a * b * q);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t r = 0; r < a * b; r++) {
        ptrdiff_t i = r / a, j = r % a; /* dst block (i, j) is src block (j, i) */
        const real *from = src + (j * b + i) * q;
        real *to = dst + r * q;
        if (bias) {
            real v = bias[j];
            for (ptrdiff_t e = 0; e < q; e++)
                to[e] = from[e] + v;
        } else {
            memcpy(to, from, (size_t)q * sizeof *to);
        }
    }
}

/* ReLU keeps NaN, as the book's Relu does (its mask x <= 0 is false for NaN) */
static inline real relu_of(real v)
{
    return !(v <= 0) ? v : 0;
}

static FASTNN_CLONES void bias_act_row(real *y, real b, ptrdiff_t len, int relu)
{
    if (relu)
        for (ptrdiff_t e = 0; e < len; e++)
            y[e] = relu_of(y[e] + b);
    else
        for (ptrdiff_t e = 0; e < len; e++)
            y[e] += b;
}

/* columns [c0, c1) of y (rows, ld) <- act(y + b[row]), act = ReLU or the identity: the
 * convolution's bias (one per filter, a row of its (FN, N * Q) output) and the ReLU after it, in
 * one pass, over the columns of the block of samples the product has just written (in cache) */
void FN(conv_bias_act)(real *y, const real *b, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t c0,
                       ptrdiff_t c1, int relu)
{
    int nt = threads_for(rows * (c1 - c0));
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t r = 0; r < rows; r++)
        bias_act_row(y + r * ld + c0, b[r], c1 - c0, relu);
}

/* the row's sum in float64 over 8 interleaved partial sums (a fixed order: vectorisable, and the
 * same for any thread count), after dy <- 0 where y <= 0 when y is not NULL */
static FASTNN_CLONES double act_backward_row(real *dy, const real *y, ptrdiff_t len)
{
    double acc[8] = {0};
    if (y)
        for (ptrdiff_t e = 0; e < len; e++)
            dy[e] = !(y[e] <= 0) ? dy[e] : 0; /* the Relu layer's mask: y <= 0 iff x <= 0 */
    ptrdiff_t e = 0;
    for (; e + 8 <= len; e += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += dy[e + l];
    double sum = 0;
    for (; e < len; e++)
        sum += dy[e];
    for (int l = 0; l < 8; l++)
        sum += acc[l];
    return sum;
}

/* Backward of conv_bias_act: dy (rows, len) <- dy * relu'(y) in place (y the forward's output;
 * NULL: no ReLU), db[row] <- the row sums of the new dy */
void FN(conv_act_backward_bias)(real *dy, const real *y, ptrdiff_t rows, ptrdiff_t len, real *db)
{
    int nt = threads_for(rows * len);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t r = 0; r < rows; r++)
        db[r] = (real)act_backward_row(dy + r * len, y ? y + r * len : NULL, len);
}

/* ------------------------------------------------------------------ one input channel */

#ifdef FASTNN_AVX512
#define DIRECT_FB 8 /* filters per pass: 8 x 2 accumulator registers, the input loads shared */
#ifdef FASTNN_REAL_F32
#define CMP_NLE_ZERO(v) _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ)
#else
#define CMP_NLE_ZERO(v) _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_NLE_UQ)
#endif

/* y[f0 + g] rows for one sample: xp its zero-padded plane (rows of wp >= OW + FW - 1 + 2 *
 * VLANES), wpad (FNp, FH * FW) the filters padded with zeros to a multiple of DIRECT_FB filters,
 * bpad their biases (zeros for none); act(.) ReLU when relu. Output (f, oy, ox) at
 * y[f * ystride + oy * ow + ox]. */
__attribute__((target("avx512f"))) static void direct1_sample_avx512(
    const real *xp, ptrdiff_t wp, const real *wpad, const real *bpad, ptrdiff_t fnp, ptrdiff_t fn,
    ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t oh, ptrdiff_t ow, int relu, ptrdiff_t ystride, real *y)
{
    ptrdiff_t k = fh * fw;
    for (ptrdiff_t f0 = 0; f0 < fnp; f0 += DIRECT_FB)
        for (ptrdiff_t oy = 0; oy < oh; oy++)
            for (ptrdiff_t ox = 0; ox < ow; ox += 2 * VLANES) {
                vreal a[DIRECT_FB][2];
                for (int g = 0; g < DIRECT_FB; g++)
                    a[g][0] = a[g][1] = V(set1)(bpad[f0 + g]);
                for (ptrdiff_t ky = 0; ky < fh; ky++) {
                    const real *r = xp + (oy + ky) * wp + ox; /* in the padded row, slack incl. */
                    const real *wr = wpad + f0 * k + ky * fw;
                    for (ptrdiff_t kx = 0; kx < fw; kx++) {
                        vreal x0 = V(loadu)(r + kx), x1 = V(loadu)(r + kx + VLANES);
                        for (int g = 0; g < DIRECT_FB; g++) {
                            vreal wv = V(set1)(wr[g * k + kx]);
                            a[g][0] = V(fmadd)(wv, x0, a[g][0]);
                            a[g][1] = V(fmadd)(wv, x1, a[g][1]);
                        }
                    }
                }
                ptrdiff_t m = ow - ox < 2 * VLANES ? ow - ox : 2 * VLANES;
                vmask m0 = lanes_between(0, m), m1 = lanes_between(0, m - VLANES);
                for (int g = 0; g < DIRECT_FB && f0 + g < fn; g++) {
                    real *o = y + (f0 + g) * ystride + oy * ow + ox;
                    vreal v0 = a[g][0], v1 = a[g][1];
                    if (relu) { /* ReLU keeping NaN: v where !(v <= 0), else 0 */
                        v0 = V(maskz_mov)(CMP_NLE_ZERO(v0), v0);
                        v1 = V(maskz_mov)(CMP_NLE_ZERO(v1), v1);
                    }
                    V(mask_storeu)(o, m0, v0);
                    V(mask_storeu)(o + VLANES, m1, v1);
                }
            }
}
#endif

#ifdef FASTNN_AVX2
#define DIRECT_FB2 4 /* AVX2: filters per pass, 4 x 3 accumulator registers of the 16 */
#define DIRECT_NB2 3 /* AVX2: registers of a row per pass (float32 rows of 24: one pass) */

/* direct1_sample_avx512 in AVX2 registers, 4 filters x 3 registers of a row at a time (wpad
 * padded to a multiple of DIRECT_FB filters, a multiple of DIRECT_FB2). Only whole registers are
 * stored (the masked store is slow here, see im2col_t_row_s1_avx2): a row's last pass runs on
 * into the rows after it in the same filter's plane, which are written after it; a register that
 * would pass the end of the plane (into the next sample's, maybe another thread's) goes through a
 * buffer, its lanes of the row alone. */
__attribute__((target("avx2,fma"))) static void direct1_sample_avx2(
    const real *xp, ptrdiff_t wp, const real *wpad, const real *bpad, ptrdiff_t fn, ptrdiff_t fh,
    ptrdiff_t fw, ptrdiff_t oh, ptrdiff_t ow, int relu, ptrdiff_t ystride, real *y)
{
    ptrdiff_t k = fh * fw, q = oh * ow;
    for (ptrdiff_t f0 = 0; f0 < fn; f0 += DIRECT_FB2)
        for (ptrdiff_t oy = 0; oy < oh; oy++)
            for (ptrdiff_t ox = 0; ox < ow; ox += DIRECT_NB2 * YLANES) {
                yreal a[DIRECT_FB2][DIRECT_NB2];
                for (int g = 0; g < DIRECT_FB2; g++)
                    a[g][0] = a[g][1] = a[g][2] = Y(set1)(bpad[f0 + g]);
                for (ptrdiff_t ky = 0; ky < fh; ky++) {
                    const real *r = xp + (oy + ky) * wp + ox; /* in the padded row, slack incl. */
                    const real *wr = wpad + f0 * k + ky * fw;
                    for (ptrdiff_t kx = 0; kx < fw; kx++) {
                        yreal x0 = Y(loadu)(r + kx), x1 = Y(loadu)(r + kx + YLANES);
                        yreal x2 = Y(loadu)(r + kx + 2 * YLANES);
                        for (int g = 0; g < DIRECT_FB2; g++) {
                            yreal wv = Y(set1)(wr[g * k + kx]);
                            a[g][0] = Y(fmadd)(wv, x0, a[g][0]);
                            a[g][1] = Y(fmadd)(wv, x1, a[g][1]);
                            a[g][2] = Y(fmadd)(wv, x2, a[g][2]);
                        }
                    }
                }
                for (int g = 0; g < DIRECT_FB2 && f0 + g < fn; g++)
                    for (int j = 0; j < DIRECT_NB2; j++) {
                        yreal v = a[g][j];
                        if (relu) /* ReLU keeping NaN: v where !(v <= 0), else 0 */
                            v = Y(and)(v, Y(cmp)(v, Y(setzero)(), _CMP_NLE_UQ));
                        ptrdiff_t e = oy * ow + ox + j * YLANES; /* its first lane in the plane */
                        real *o = y + (f0 + g) * ystride + e;
                        if (e + YLANES <= q) {
                            Y(storeu)(o, v);
                        } else {
                            real lanes[YLANES];
                            Y(storeu)(lanes, v);
                            for (ptrdiff_t l = 0; l < ow - ox - j * YLANES && l < YLANES; l++)
                                o[l] = lanes[l];
                        }
                    }
            }
}
#endif

/* y (FN, N * Q) <- act(W . im2col(x) + b), computed directly for one input channel and stride
 * 1 (the models' first convolution: a product with K = FH * FW is too skinny for BLAS), b NULL
 * for no bias (and no act), act ReLU when relu; y in the book's (N, FN, OH, OW) when nchw (the
 * layer's output, no swap after). x (N, 1, H, W) (the same memory as (1, N, H, W)), W (FN, 1,
 * FH, FW). Returns FASTNN_OK, FASTNN_NO_MEMORY, or 0 when this build or CPU has no
 * direct path (AVX-512 or AVX2); then nothing is written and the caller takes im2col. */
ptrdiff_t FN(conv_direct1)(const real *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, const real *wt,
                           const real *b, ptrdiff_t fn, ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t p,
                           int relu, int nchw, real *y)
{
#ifdef FASTNN_AVX512
    if (!fastnn_avx2())
        return 0;
    ptrdiff_t oh = h + 2 * p - fh + 1, ow = w + 2 * p - fw + 1, q = oh * ow, k = fh * fw;
    /* AVX-512 where its passes cover a row with no more lanes than AVX2's (rows of 24: 32 lanes
       against 24; AMD's cores run an AVX-512 FMA as two AVX2 ones, so lanes are the cost) */
    ptrdiff_t span = 2 * VLANES, span2 = DIRECT_NB2 * YLANES;
    int avx512 = fastnn_avx512()
                 && (ow + span - 1) / span * span <= (ow + span2 - 1) / span2 * span2;
    ptrdiff_t fnp = (fn + DIRECT_FB - 1) / DIRECT_FB * DIRECT_FB;
    /* slack past a padded row: a pass reads up to 2 * VLANES (AVX2: 3 * YLANES) lanes from its
       start */
    ptrdiff_t hp = h + 2 * p, wp = w + 2 * p + 2 * VLANES;
    real *wpad = calloc((size_t)(fnp * k + fnp), sizeof *wpad);
    if (!wpad)
        return FASTNN_NO_MEMORY;
    real *bpad = wpad + fnp * k;
    memcpy(wpad, wt, (size_t)(fn * k) * sizeof *wpad);
    if (b)
        memcpy(bpad, b, (size_t)fn * sizeof *bpad);
    int nt = threads_for(fn * k * n * q);
    int failed = 0;
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(| : failed)
    {
        real *xp = calloc((size_t)(hp * wp), sizeof *xp); /* the padding stays zero */
        if (!xp)
            failed = 1;
#pragma omp for schedule(static)
        for (ptrdiff_t i = 0; i < n; i++) {
            if (!xp)
                continue;
            for (ptrdiff_t r = 0; r < h; r++)
                memcpy(xp + (r + p) * wp + p, x + (i * h + r) * w, (size_t)w * sizeof *xp);
            /* sample i's plane of filter f at yi + f * ystride */
            real *yi = nchw ? y + i * fn * q : y + i * q;
            ptrdiff_t ystride = nchw ? q : n * q;
            if (avx512)
                direct1_sample_avx512(xp, wp, wpad, bpad, fnp, fn, fh, fw, oh, ow, b && relu,
                                      ystride, yi);
            else
                direct1_sample_avx2(xp, wp, wpad, bpad, fn, fh, fw, oh, ow, b && relu, ystride,
                                    yi);
        }
        free(xp);
    }
    free(wpad);
    return failed ? FASTNN_NO_MEMORY : FASTNN_OK;
#else
    (void)x, (void)n, (void)h, (void)w, (void)wt, (void)b, (void)fn, (void)fh, (void)fw, (void)p;
    (void)relu, (void)nchw, (void)y;
    return 0;
#endif
}

/* ------------------------------------------------------------------ one input channel, backward
 *
 * dW[f, ky, kx] = sum over samples and outputs (oy, ox) of dy[f, n, oy, ox] * xpad[n, oy + ky,
 * ox + kx]: a product with only FN x FH * FW outputs and N * OH * OW terms each, where BLAS spends
 * most of its time packing. Computed directly instead, sample by sample (its dy planes and padded
 * plane stay in the cache): a sweep of a sample's output rows holds the partial sums of a tile of
 * GRAD_FB filters x GRAD_KB filter positions in registers (lane l of register (g, j) sums the
 * terms of the outputs in columns = l modulo the register width), each dy register loaded once
 * for GRAD_KB positions and each shifted input register once for GRAD_FB filters. The tiles'
 * sums carry over from sample to sample in memory and are reduced across lanes at the end. */

#define GRAD_KB 5 /* filter positions per tile (the models' 5x5 filters: 5 tiles, 3x3: 2); the
                   * tiles' code below spells out its 5 */

#ifdef FASTNN_AVX512
#define GRAD_FB 4 /* AVX-512: filters per tile: 4 x 5 accumulators + 4 dy + 5 inputs */

/* acc (GRAD_FB x GRAD_KB registers) += the tile's terms of one sample: dyp[g] the (OH, OW)
 * plane of dy of the tile's filter g, off[j] the offset of filter position j in xp, the padded
 * plane (rows of wp, at least OW - 1 + VLANES past every offset). Every load is masked to the
 * row's lanes (zeros elsewhere, so that an input column past the row, inf or NaN, adds nothing):
 * one loop body for whole and last registers keeps the accumulators in registers from row to
 * row (a separate tail made GCC spill all 20 of them at every row's end). */
__attribute__((target("avx512f"))) static void direct1_grads_tile_avx512(
    const real *xp, ptrdiff_t wp, const real *const *dyp, const ptrdiff_t *off, ptrdiff_t oh,
    ptrdiff_t ow, real *acc)
{
    /* the accumulators as named variables, s<g><j>: GCC kept arrays of them (one of 20, or one
       per filter) on the stack as well, storing them at every step */
#define GRAD_FOR_J(M, g) M(g, 0) M(g, 1) M(g, 2) M(g, 3) M(g, 4)
#define GRAD_FOR_GJ(M) GRAD_FOR_J(M, 0) GRAD_FOR_J(M, 1) GRAD_FOR_J(M, 2) GRAD_FOR_J(M, 3)
#define GRAD_LOAD(g, j) vreal s##g##j = V(loadu)(acc + (g * GRAD_KB + j) * VLANES);
#define GRAD_STORE(g, j) V(storeu)(acc + (g * GRAD_KB + j) * VLANES, s##g##j);
#define GRAD_FMA(g, j) s##g##j = V(fmadd)(d##g, x##j, s##g##j);
    GRAD_FOR_GJ(GRAD_LOAD)
    const real *dy0 = dyp[0], *dy1 = dyp[1], *dy2 = dyp[2], *dy3 = dyp[3];
    ptrdiff_t o0 = off[0], o1 = off[1], o2 = off[2], o3 = off[3], o4 = off[4];
    for (ptrdiff_t oy = 0; oy < oh; oy++) {
        const real *xr = xp + oy * wp;
        ptrdiff_t e = oy * ow;
        for (ptrdiff_t v = 0; v < ow; v += VLANES) {
            vmask m = lanes_between(0, ow - v);
            vreal d0 = V(maskz_loadu)(m, dy0 + e + v), d1 = V(maskz_loadu)(m, dy1 + e + v);
            vreal d2 = V(maskz_loadu)(m, dy2 + e + v), d3 = V(maskz_loadu)(m, dy3 + e + v);
            vreal x0 = V(maskz_loadu)(m, xr + v + o0), x1 = V(maskz_loadu)(m, xr + v + o1);
            vreal x2 = V(maskz_loadu)(m, xr + v + o2), x3 = V(maskz_loadu)(m, xr + v + o3);
            vreal x4 = V(maskz_loadu)(m, xr + v + o4);
            GRAD_FOR_GJ(GRAD_FMA)
        }
    }
    GRAD_FOR_GJ(GRAD_STORE)
#undef GRAD_FOR_GJ
#undef GRAD_LOAD
#undef GRAD_STORE
#undef GRAD_FMA
}
#endif

#ifdef FASTNN_AVX2
#define GRAD_FB2 2 /* AVX2: filters per tile, 2 x 5 accumulators + 2 dy + 1 input of the 16 */

/* direct1_grads_tile_avx512 in AVX2 registers; only a row's last register is loaded masked
 * (a masked load costs more than a plain one here) */
__attribute__((target("avx2,fma"))) static void direct1_grads_tile_avx2(
    const real *xp, ptrdiff_t wp, const real *const *dyp, const ptrdiff_t *off, ptrdiff_t oh,
    ptrdiff_t ow, real *acc)
{
#define GRAD_FOR_GJ(M) GRAD_FOR_J(M, 0) GRAD_FOR_J(M, 1)
#define GRAD_LOAD(g, j) yreal s##g##j = Y(loadu)(acc + (g * GRAD_KB + j) * YLANES);
#define GRAD_STORE(g, j) Y(storeu)(acc + (g * GRAD_KB + j) * YLANES, s##g##j);
#define GRAD_FMA(g, j) s##g##j = Y(fmadd)(d##g, x##j, s##g##j);
    GRAD_FOR_GJ(GRAD_LOAD)
    const real *dy0 = dyp[0], *dy1 = dyp[1];
    __m256i tail = ylanes_between(0, ow % YLANES);
    ptrdiff_t o0 = off[0], o1 = off[1], o2 = off[2], o3 = off[3], o4 = off[4];
    for (ptrdiff_t oy = 0; oy < oh; oy++) {
        const real *xr = xp + oy * wp;
        ptrdiff_t e = oy * ow;
        ptrdiff_t v = 0;
        for (; v + YLANES <= ow; v += YLANES) {
            yreal d0 = Y(loadu)(dy0 + e + v), d1 = Y(loadu)(dy1 + e + v);
            yreal x0 = Y(loadu)(xr + v + o0), x1 = Y(loadu)(xr + v + o1);
            yreal x2 = Y(loadu)(xr + v + o2), x3 = Y(loadu)(xr + v + o3);
            yreal x4 = Y(loadu)(xr + v + o4);
            GRAD_FOR_GJ(GRAD_FMA)
        }
        if (v < ow) {
            yreal d0 = Y(maskload)(dy0 + e + v, tail), d1 = Y(maskload)(dy1 + e + v, tail);
            yreal x0 = Y(maskload)(xr + v + o0, tail), x1 = Y(maskload)(xr + v + o1, tail);
            yreal x2 = Y(maskload)(xr + v + o2, tail), x3 = Y(maskload)(xr + v + o3, tail);
            yreal x4 = Y(maskload)(xr + v + o4, tail);
            GRAD_FOR_GJ(GRAD_FMA)
        }
    }
    GRAD_FOR_GJ(GRAD_STORE)
#undef GRAD_FOR_GJ
#undef GRAD_FOR_J
#undef GRAD_LOAD
#undef GRAD_STORE
#undef GRAD_FMA
}
#endif

/* dW (FN, FH * FW) <- dy . im2col(x)^T and db (FN,) <- the row sums of dy, for one input channel
 * and stride 1, after dy (FN, N * Q) <- dy * relu'(y) in place when y (the forward's ReLU output,
 * dy's size) is not NULL; x (N, 1, H, W) (the same memory as (1, N, H, W)). Threads take blocks
 * of filters and go through the samples in order, so the sums do not depend on the thread count.
 * Returns FASTNN_OK, FASTNN_NO_MEMORY, or 0 when this build or CPU has no direct path (then
 * nothing is written and the caller takes im2col). */
ptrdiff_t FN(conv_direct1_grads)(const real *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, real *dy,
                                 const real *y, ptrdiff_t fn, ptrdiff_t fh, ptrdiff_t fw,
                                 ptrdiff_t p, real *dw, real *db)
{
#ifdef FASTNN_AVX512
    if (!fastnn_avx2())
        return 0;
    ptrdiff_t oh = h + 2 * p - fh + 1, ow = w + 2 * p - fw + 1, q = oh * ow, k = fh * fw;
    /* AVX-512 where its registers cover the rows with no more lanes than AVX2's (float32 rows of
       24: 32 lanes against 24, and AMD's cores run an AVX-512 FMA as two AVX2 ones) */
    int avx512 = fastnn_avx512()
                 && (ow + VLANES - 1) / VLANES * VLANES <= (ow + YLANES - 1) / YLANES * YLANES;
    ptrdiff_t fb = avx512 ? GRAD_FB : GRAD_FB2, lanes = avx512 ? VLANES : YLANES;
    ptrdiff_t kp = (k + GRAD_KB - 1) / GRAD_KB * GRAD_KB, blocks = (fn + fb - 1) / fb;
    ptrdiff_t hp = h + 2 * p, wp = w + 2 * p + lanes;
    /* the tiles' lane sums, (blocks, kp / GRAD_KB, fb, GRAD_KB, lanes); each filter's db sum */
    real *acc = calloc((size_t)(blocks * kp * fb * lanes), sizeof *acc);
    ptrdiff_t *off = malloc((size_t)kp * sizeof *off);
    double *dbsum = calloc((size_t)fn, sizeof *dbsum);
    int failed = !acc || !off || !dbsum;
    if (!failed) {
        /* filter position (ky, kx) reads xp at offset ky * wp + kx; the positions that pad k to
           a multiple of GRAD_KB read offset 0 and their sums are dropped */
        for (ptrdiff_t j = 0; j < kp; j++)
            off[j] = j < k ? j / fw * wp + j % fw : 0;
        int nt = threads_for(fn * k * n * q);
        nt = nt < blocks ? nt : (int)blocks;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1) reduction(| : failed)
        for (int t = 0; t < nt; t++) {
            ptrdiff_t b0, b1;
            thread_block(t, nt, blocks, &b0, &b1);
            real *xp = calloc((size_t)(hp * wp), sizeof *xp); /* the padding stays zero */
            if (!xp) {
                failed = 1;
                continue;
            }
            for (ptrdiff_t i = 0; i < n && b0 < b1; i++) {
                for (ptrdiff_t r = 0; r < h; r++)
                    memcpy(xp + (r + p) * wp + p, x + (i * h + r) * w, (size_t)w * sizeof *xp);
                for (ptrdiff_t bl = b0; bl < b1; bl++) {
                    /* a last block short of fb filters repeats its last filter; only the block's
                       own filters are masked and summed */
                    const real *dyp[GRAD_FB];
                    for (ptrdiff_t g = 0; g < fb; g++) {
                        ptrdiff_t f = bl * fb + g < fn ? bl * fb + g : fn - 1;
                        real *plane = dy + (f * n + i) * q;
                        if (f == bl * fb + g)
                            dbsum[f] += act_backward_row(plane, y ? y + (f * n + i) * q : NULL, q);
                        dyp[g] = plane;
                    }
                    for (ptrdiff_t j0 = 0; j0 < kp; j0 += GRAD_KB) {
                        real *tile = acc + (bl * kp + j0) * fb * lanes;
                        if (avx512)
                            direct1_grads_tile_avx512(xp, wp, dyp, off + j0, oh, ow, tile);
                        else
                            direct1_grads_tile_avx2(xp, wp, dyp, off + j0, oh, ow, tile);
                    }
                }
            }
            free(xp);
            for (ptrdiff_t bl = b0; bl < b1; bl++)
                for (ptrdiff_t g = 0; g < fb && bl * fb + g < fn; g++) {
                    ptrdiff_t f = bl * fb + g;
                    for (ptrdiff_t j = 0; j < k; j++) {
                        const real *lane = acc + ((bl * kp + j / GRAD_KB * GRAD_KB) * fb
                                                  + g * GRAD_KB + j % GRAD_KB) * lanes;
                        real sum = 0;
                        for (ptrdiff_t l = 0; l < lanes; l++)
                            sum += lane[l];
                        dw[f * k + j] = sum;
                    }
                    db[f] = (real)dbsum[f];
                }
        }
    }
    free(acc), free(off), free(dbsum);
    return failed ? FASTNN_NO_MEMORY : FASTNN_OK;
#else
    (void)x, (void)n, (void)h, (void)w, (void)dy, (void)y, (void)fn, (void)fh, (void)fw, (void)p;
    (void)dw, (void)db;
    return 0;
#endif
}
