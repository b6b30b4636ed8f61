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
/* lanes [a, b) of a vector, a and b clamped to [0, VLANES] */
static inline vmask lanes_between(ptrdiff_t a, ptrdiff_t b)
{
    a = a < 0 ? 0 : a > VLANES ? VLANES : a;
    b = b < 0 ? 0 : b > VLANES ? VLANES : b;
    return (vmask)((((uint64_t)1 << b) - 1) & ~(((uint64_t)1 << a) - 1));
}

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

void FN(im2col_t)(const real *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,
                  ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, ptrdiff_t i0, ptrdiff_t i1,
                  real *col)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, q = oh * ow;
    ptrdiff_t m = i1 - i0, rows = c * fh * fw * m; /* (k, i) pairs, each Q elements of col_t */
    int nt = threads_for(rows * q);
    int avx512 = s == 1 && fastnn_avx512(), avx2 = s == 1 && fastnn_avx2();
    (void)avx512, (void)avx2;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t r = 0; r < rows; r++) {
        ptrdiff_t k = r / m, i = i0 + r % m;
        ptrdiff_t j = k / (fh * fw), ky = k / fw % fh, kx = k % fw;
        const real *plane = x + conv_plane(i, j, n, c, h * w, cnhw);
        real *dst = col + k * (m * q) + (i - i0) * q;
#ifdef FASTNN_AVX512
        if (avx512) {
            im2col_t_row_s1_avx512(plane, h, w, ky, kx, p, oh, ow, dst);
            continue;
        }
#endif
#ifdef FASTNN_AVX2
        if (avx2) {
            im2col_t_row_s1_avx2(plane, h, w, ky, kx, p, oh, ow, dst);
            continue;
        }
#endif
        im2col_t_row(plane, h, w, ky, kx, s, p, oh, ow, dst);
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
#define DIRECT_FB2 4 /* AVX2: filters per pass, 4 x 2 accumulator registers of the 16 */

/* direct1_sample_avx512 in AVX2 registers (wpad padded to a multiple of DIRECT_FB filters, a
 * multiple of DIRECT_FB2). Only whole registers are stored (the masked store is slow here, see
 * im2col_t_row_s1_avx2): a row's last block runs on into the rows after it in the same filter's
 * plane, which are written after it; a register that would pass the end of the plane (into the
 * next sample's, maybe another thread's) goes through a buffer, its lanes of the row alone. */
__attribute__((target("avx2,fma"))) static void direct1_sample_avx2(
    const real *xp, ptrdiff_t wp, const real *wpad, const real *bpad, ptrdiff_t fn, ptrdiff_t fh,
    ptrdiff_t fw, ptrdiff_t oh, ptrdiff_t ow, int relu, ptrdiff_t ystride, real *y)
{
    ptrdiff_t k = fh * fw, q = oh * ow;
    for (ptrdiff_t f0 = 0; f0 < fn; f0 += DIRECT_FB2)
        for (ptrdiff_t oy = 0; oy < oh; oy++)
            for (ptrdiff_t ox = 0; ox < ow; ox += 2 * YLANES) {
                yreal a[DIRECT_FB2][2];
                for (int g = 0; g < DIRECT_FB2; g++)
                    a[g][0] = a[g][1] = Y(set1)(bpad[f0 + g]);
                for (ptrdiff_t ky = 0; ky < fh; ky++) {
                    const real *r = xp + (oy + ky) * wp + ox; /* in the padded row, slack incl. */
                    const real *wr = wpad + f0 * k + ky * fw;
                    for (ptrdiff_t kx = 0; kx < fw; kx++) {
                        yreal x0 = Y(loadu)(r + kx), x1 = Y(loadu)(r + kx + YLANES);
                        for (int g = 0; g < DIRECT_FB2; g++) {
                            yreal wv = Y(set1)(wr[g * k + kx]);
                            a[g][0] = Y(fmadd)(wv, x0, a[g][0]);
                            a[g][1] = Y(fmadd)(wv, x1, a[g][1]);
                        }
                    }
                }
                for (int g = 0; g < DIRECT_FB2 && f0 + g < fn; g++)
                    for (int j = 0; j < 2; j++) {
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
 * for no bias (and no act), act ReLU when relu. x (N, 1, H, W) (the same memory as (1, N, H, W)),
 * W (FN, 1, FH, FW). Returns FASTNN_OK, FASTNN_NO_MEMORY, or 0 when this build or CPU has no
 * direct path (AVX-512 or AVX2); then nothing is written and the caller takes im2col. */
ptrdiff_t FN(conv_direct1)(const real *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, const real *wt,
                           const real *b, ptrdiff_t fn, ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t p,
                           int relu, real *y)
{
#ifdef FASTNN_AVX512
    int avx512 = fastnn_avx512();
    if (!avx512 && !fastnn_avx2())
        return 0;
    ptrdiff_t oh = h + 2 * p - fh + 1, ow = w + 2 * p - fw + 1, q = oh * ow, k = fh * fw;
    ptrdiff_t fnp = (fn + DIRECT_FB - 1) / DIRECT_FB * DIRECT_FB;
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
            if (avx512)
                direct1_sample_avx512(xp, wp, wpad, bpad, fnp, fn, fh, fw, oh, ow, b && relu,
                                      n * q, y + i * q);
            else
                direct1_sample_avx2(xp, wp, wpad, bpad, fn, fh, fw, oh, ow, b && relu, n * q,
                                    y + i * q);
        }
        free(xp);
    }
    free(wpad);
    return failed ? FASTNN_NO_MEMORY : FASTNN_OK;
#else
    (void)x, (void)n, (void)h, (void)w, (void)wt, (void)b, (void)fn, (void)fh, (void)fw, (void)p;
    (void)relu, (void)y;
    return 0;
#endif
}
