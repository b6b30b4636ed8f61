/* conv_gemm.c: a convolution's two matrix products over blocks of samples, a block per thread
 * (sizes and layouts: conv.h).
 *
 * conv_gemm       y (FN, N * Q) = act(W . im2col(x) + b): per block of M samples, im2col into
 *                 the thread's col (K, M * Q), gemm_narrow_into's W . col into the block's columns
 *                 of y, bias and act on those columns while they are in the cache. Also the
 *                 flipped-filter input gradient (conv.py). With stride 1, im2col is copies of rows
 *                 of the block's planes, zero-padded first (im2col_padded: no bounds to test).
 * conv_gemm_wgrad dW^T (K, FN) = sum over the blocks of col . dy^T (dy's block columns
 *                 transposed into the thread's dy^T (M * Q, FN)): each thread sums its run of
 *                 consecutive blocks, then the threads' sums are added in thread order. With
 *                 AVX-512 col is not formed: the product reads col's element (c, ky, kx; i, oy,
 *                 ox) from the block's padded planes (wgrad_span512).
 *
 * The block keeps col and its product in the L2 cache, and no im2col of the whole batch exists.
 * Each element of y is one gemm_narrow dot product, whatever the blocks and threads; dW's sum is
 * grouped by block and thread (the last bits depend on the thread count). The kernels inside run
 * on their thread alone (threads.c).
 *
 * work: per thread conv_gemm_work(..., wgrad) elements, for at most work_threads threads (the
 * Cython entry checks its size): col, the padded planes, and for wgrad dy^T and two sums.
 */
#include "conv.h"
#include "fastnn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int block_threads(ptrdiff_t blocks, ptrdiff_t work_threads)
{
    ptrdiff_t nt = fastnn_get_num_threads();
    nt = nt < blocks ? nt : blocks;
    nt = nt < work_threads ? nt : work_threads;
    return nt > 1 ? (int)nt : 1;
}

/* elements after col and after the padded planes that whole-vector copies may touch */
#define SLACK 16

ptrdiff_t FN(conv_gemm_work)(ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, ptrdiff_t fh, ptrdiff_t fw,
                             ptrdiff_t s, ptrdiff_t p, ptrdiff_t m, ptrdiff_t fn, int wgrad)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, k = c * fh * fw;
    ptrdiff_t size = k * m * oh * ow + SLACK + c * m * (h + 2 * p) * (w + 2 * p) + SLACK;
    return wgrad ? size + m * oh * ow * fn + 2 * k * fn : size;
}

/* plane (H, W) zero-padded by P on each side into to (HP, WP) */
static void pad_plane(const real *plane, ptrdiff_t h, ptrdiff_t w, ptrdiff_t p, real *to)
{
    ptrdiff_t wp = w + 2 * p;
    memset(to, 0, (size_t)((h + 2 * p) * wp) * sizeof *to);
    for (ptrdiff_t y = 0; y < h; y++)
        memcpy(to + (p + y) * wp + p, plane + y * w, (size_t)w * sizeof *to);
}

#ifdef FASTNN_AVX512
/* pad_plane in whole vectors (a memset and a memcpy per row of a few vectors took 8% of a
 * DeepConvNet step): each store may run up to a vector past what it means to write, into the
 * rest of the row, the next rows or the next plane, which are written after it, or the slack
 * after the last plane (pad_planes zeroes it last). Loads may run on into the plane's next rows
 * (what they bring past the row lands where the zeros of the padding are stored next); only a
 * load that would pass the plane's end is masked (masked loads do not train this CPU family's
 * prefetchers, and the planes come from memory) */
__attribute__((target("avx512f"))) static void pad_plane_avx512(const real *plane, ptrdiff_t h,
                                                                ptrdiff_t w, ptrdiff_t p,
                                                                real *to)
{
    ptrdiff_t wp = w + 2 * p;
    vreal zero = V(setzero)();
    for (ptrdiff_t e = 0; e < p * wp; e += VLANES)
        V(storeu)(to + e, zero);
    for (ptrdiff_t y = 0; y < h; y++) {
        real *r = to + (p + y) * wp;
        const real *from = plane + y * w;
        for (ptrdiff_t e = 0; e < p; e += VLANES)
            V(storeu)(r + e, zero);
        for (ptrdiff_t v = 0; v < w; v += VLANES)
            V(storeu)(r + p + v, y * w + v + VLANES <= h * w
                                     ? V(loadu)(from + v)
                                     : V(maskz_loadu)(lanes_between(0, w - v), from + v));
        for (ptrdiff_t e = 0; e < p; e += VLANES)
            V(storeu)(r + p + w + e, zero);
    }
    for (ptrdiff_t e = (p + h) * wp; e < (h + 2 * p) * wp; e += VLANES)
        V(storeu)(to + e, zero);
}
#endif

/* planes ahead that pad_planes prefetches: the planes come from memory, and the hardware
 * prefetchers see only a few vectors of each before the next */
#define PAD_AHEAD 2

/* The planes of the samples [i0, i1) of x, zero-padded by P on each side: xp (C, M, HP, WP),
 * and SLACK zeros after them */
static void pad_planes(const real *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                       int cnhw, ptrdiff_t p, ptrdiff_t i0, ptrdiff_t i1, real *xp)
{
    ptrdiff_t m = i1 - i0, pp = (h + 2 * p) * (w + 2 * p);
#ifdef FASTNN_AVX512
    int avx512 = fastnn_avx512();
#endif
    for (ptrdiff_t j = 0; j < c; j++)
        for (ptrdiff_t i = 0; i < m; i++) {
            const real *plane = x + conv_plane(i0 + i, j, n, c, h * w, cnhw);
            /* the plane PAD_AHEAD on, from memory while this one is padded */
            ptrdiff_t ja = j + (i + PAD_AHEAD) / m, ia = (i + PAD_AHEAD) % m;
            if (ja < c) {
                const char *ahead = (const char *)(x + conv_plane(i0 + ia, ja, n, c, h * w, cnhw));
                for (ptrdiff_t off = 0; off < h * w * (ptrdiff_t)sizeof(real); off += 64)
                    __builtin_prefetch(ahead + off);
            }
#ifdef FASTNN_AVX512
            if (avx512) {
                pad_plane_avx512(plane, h, w, p, xp + (j * m + i) * pp);
                continue;
            }
#endif
            pad_plane(plane, h, w, p, xp + (j * m + i) * pp);
        }
    memset(xp + c * m * pp, 0, SLACK * sizeof *xp);
}

/* col (K, M * Q) of a block for stride 1 from its padded planes xp (C, M, HP, WP): row (j, ky,
 * kx), sample i, output row oy is the OW elements of plane (j, i) of xp from (oy + ky, kx), each
 * copied by COPY_ROW(dst, src, ow) */
#define IM2COL_PADDED(name, attributes, COPY_ROW)                                                  \
    attributes static void name(const real *xp, ptrdiff_t c, ptrdiff_t m, ptrdiff_t hp,            \
                                ptrdiff_t wp, ptrdiff_t fh, ptrdiff_t fw, real *col)               \
    {                                                                                              \
        ptrdiff_t oh = hp - fh + 1, ow = wp - fw + 1;                                              \
        for (ptrdiff_t j = 0; j < c; j++)                                                          \
            for (ptrdiff_t ky = 0; ky < fh; ky++)                                                  \
                for (ptrdiff_t kx = 0; kx < fw; kx++)                                              \
                    for (ptrdiff_t i = 0; i < m; i++) {                                            \
                        const real *src = xp + (j * m + i) * hp * wp + ky * wp + kx;               \
                        for (ptrdiff_t oy = 0; oy < oh; oy++, col += ow)                           \
                            COPY_ROW(col, src + oy * wp, ow);                                      \
                    }                                                                              \
    }

#define COPY_MEMCPY(dst, src, len) memcpy(dst, src, (size_t)(len) * sizeof *(dst))
IM2COL_PADDED(im2col_padded_portable, , COPY_MEMCPY)

#ifdef FASTNN_AVX512
/* Whole vectors: a load past a row's end reads on into xp (the padded row after it, or xp's
 * slack), a store past it writes elements of col that are written later (the rows go in order;
 * col has a vector's slack): no masks, no bounds */
#define COPY_VECTORS(dst, src, len)                                                                \
    for (ptrdiff_t v = 0; v < (len); v += VLANES)                                                  \
    V(storeu)((dst) + v, V(loadu)((src) + v))
IM2COL_PADDED(im2col_padded_avx512, __attribute__((target("avx512f"))), COPY_VECTORS)
#endif

/* col (K, M * Q) of the samples [i0, i1): im2col_padded for stride 1 (xp: room for the padded
 * planes), else im2col_t */
static void block_col(const real *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                      int cnhw, ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p,
                      ptrdiff_t i0, ptrdiff_t i1, real *xp, real *col)
{
    if (s != 1) {
        FN(im2col_t)(x, n, c, h, w, cnhw, fh, fw, s, p, i0, i1, col);
        return;
    }
    pad_planes(x, n, c, h, w, cnhw, p, i0, i1, xp);
#ifdef FASTNN_AVX512
    if (fastnn_avx512()) {
        im2col_padded_avx512(xp, c, i1 - i0, h + 2 * p, w + 2 * p, fh, fw, col);
        return;
    }
#endif
    im2col_padded_portable(xp, c, i1 - i0, h + 2 * p, w + 2 * p, fh, fw, col);
}

void FN(conv_gemm)(const real *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,
                   ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, const real *wm,
                   ptrdiff_t fn, const real *bias, int relu, ptrdiff_t m, real *work,
                   ptrdiff_t work_threads, real *y)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, q = oh * ow;
    ptrdiff_t k = c * fh * fw, blocks = (n + m - 1) / m;
    ptrdiff_t per = FN(conv_gemm_work)(c, h, w, fh, fw, s, p, m, fn, 0);
    int nt = block_threads(blocks, work_threads);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t bi = 0; bi < blocks; bi++) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        real *col = work + t * per, *xp = col + k * m * q + SLACK;
        ptrdiff_t i0 = bi * m, i1 = i0 + m < n ? i0 + m : n, cols = (i1 - i0) * q;
        block_col(x, n, c, h, w, cnhw, fh, fw, s, p, i0, i1, xp, col);
        FN(gemm_narrow_into)(wm, col, cols, y + i0 * q, n * q, fn, k, cols);
        if (bias)
            FN(conv_bias_act)(y, bias, fn, n * q, i0 * q, i1 * q, relu);
    }
}

#ifdef FASTNN_AVX512
/* R rows of dW^T, NV vectors of FN (the last masked by tail) from column j0: c[r][f] = sum over
 * the block's positions e = (i, oy, ox), in order, of col(row_r, e) dy^T(e, f), col's element
 * read from the padded planes at xp[off[r] + i * pp + oy * S * WP + ox * S] */
static inline __attribute__((always_inline, target("avx512f"))) void
wgrad_block512(const real *xp, const ptrdiff_t *off, ptrdiff_t m, ptrdiff_t pp, ptrdiff_t oh,
               ptrdiff_t ow, ptrdiff_t ystep, ptrdiff_t s, const real *b, ptrdiff_t ldb,
               real *c, ptrdiff_t ldc, vmask tail, const int R, const int NV)
{
    vreal acc[8][4];
    const real *rows[8];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        rows[r] = xp + off[r];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[r][v] = V(setzero)();
    }
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t oy = 0; oy < oh; oy++) {
            ptrdiff_t at = i * pp + oy * ystep;
            for (ptrdiff_t ox = 0; ox < ow; ox++, at += s, b += ldb) {
                vreal bv[4];
#pragma GCC unroll 4
                for (int v = 0; v < NV - 1; v++)
                    bv[v] = V(loadu)(b + v * VLANES);
                bv[NV - 1] = V(maskz_loadu)(tail, b + (NV - 1) * VLANES);
#pragma GCC unroll 8
                for (int r = 0; r < R; r++) {
                    vreal e = V(set1)(rows[r][at]);
#pragma GCC unroll 4
                    for (int v = 0; v < NV; v++)
                        acc[r][v] = V(fmadd)(e, bv[v], acc[r][v]);
                }
            }
        }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < NV - 1; v++)
            V(storeu)(c + r * ldc + v * VLANES, acc[r][v]);
        V(mask_storeu)(c + r * ldc + (NV - 1) * VLANES, tail, acc[r][NV - 1]);
    }
}

typedef void (*wgrad_kernel)(const real *, const ptrdiff_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                             ptrdiff_t, ptrdiff_t, ptrdiff_t, const real *, ptrdiff_t, real *,
                             ptrdiff_t, vmask);

/* rows a register block: NV x R accumulators, NV + 1 registers more */
#define WGRAD_ROWS(nv) ((nv) == 4 ? 6 : 8)
#define WGRAD_KERNELS(nv)                                                                          \
    static __attribute__((target("avx512f"))) void wgrad_rows_##nv(                                \
        const real *xp, const ptrdiff_t *off, ptrdiff_t m, ptrdiff_t pp, ptrdiff_t oh,             \
        ptrdiff_t ow, ptrdiff_t ystep, ptrdiff_t s, const real *b, ptrdiff_t ldb, real *c,          \
        ptrdiff_t ldc, vmask tail)                                                                 \
    {                                                                                              \
        wgrad_block512(xp, off, m, pp, oh, ow, ystep, s, b, ldb, c, ldc, tail, WGRAD_ROWS(nv),    \
                       nv);                                                                        \
    }                                                                                              \
    static __attribute__((target("avx512f"))) void wgrad_row_##nv(                                 \
        const real *xp, const ptrdiff_t *off, ptrdiff_t m, ptrdiff_t pp, ptrdiff_t oh,             \
        ptrdiff_t ow, ptrdiff_t ystep, ptrdiff_t s, const real *b, ptrdiff_t ldb, real *c,          \
        ptrdiff_t ldc, vmask tail)                                                                 \
    {                                                                                              \
        wgrad_block512(xp, off, m, pp, oh, ow, ystep, s, b, ldb, c, ldc, tail, 1, nv);            \
    }
WGRAD_KERNELS(1) WGRAD_KERNELS(2) WGRAD_KERNELS(3) WGRAD_KERNELS(4)
static const wgrad_kernel wgrad_rows[4] = {wgrad_rows_1, wgrad_rows_2, wgrad_rows_3,
                                           wgrad_rows_4};
static const wgrad_kernel wgrad_row[4] = {wgrad_row_1, wgrad_row_2, wgrad_row_3, wgrad_row_4};

/* out (K, FN) = col . dy^T for the block of m samples, col read from xp (C, M, HP, WP), the
 * block's padded planes; dy^T (M * Q, FN): panels of at most 4 vectors of FN, R rows of K at a
 * time */
static void wgrad_span512(const real *xp, ptrdiff_t c, ptrdiff_t m, ptrdiff_t h, ptrdiff_t w,
                          ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, const real *dy_t,
                          ptrdiff_t fn, real *out)
{
    ptrdiff_t wp = w + 2 * p, pp = (h + 2 * p) * wp;
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, k = c * fh * fw;
    ptrdiff_t vectors = (fn + VLANES - 1) / VLANES, panels = (vectors + 3) / 4;
    for (ptrdiff_t pn = 0, j0 = 0; pn < panels; pn++) {
        int nv = (int)((vectors + panels - 1 - pn) / (panels - pn)); /* 1..4 */
        vectors -= nv;
        ptrdiff_t pw = fn - j0 < nv * VLANES ? fn - j0 : nv * VLANES;
        vmask tail = lanes_between(0, pw - (ptrdiff_t)(nv - 1) * VLANES);
        int rb = WGRAD_ROWS(nv);
        for (ptrdiff_t r0 = 0; r0 < k; r0 += rb) {
            ptrdiff_t off[8], rn = k - r0 < rb ? k - r0 : rb;
            for (ptrdiff_t r = 0; r < rn; r++) { /* row (j, ky, kx) of col */
                ptrdiff_t row = r0 + r, j = row / (fh * fw), ky = row % (fh * fw) / fw;
                off[r] = j * m * pp + ky * wp + row % fw;
            }
            if (rn == rb)
                wgrad_rows[nv - 1](xp, off, m, pp, oh, ow, s * wp, s, dy_t + j0, fn,
                                   out + r0 * fn + j0, fn, tail);
            else
                for (ptrdiff_t r = 0; r < rn; r++)
                    wgrad_row[nv - 1](xp, off + r, m, pp, oh, ow, s * wp, s, dy_t + j0, fn,
                                      out + (r0 + r) * fn + j0, fn, tail);
        }
        j0 += pw;
    }
}
#endif

void FN(conv_gemm_wgrad)(const real *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                         int cnhw, ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p,
                         const real *dy, ptrdiff_t fn, ptrdiff_t m, real *work,
                         ptrdiff_t work_threads, real *dwt)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, q = oh * ow;
    ptrdiff_t k = c * fh * fw, blocks = (n + m - 1) / m;
    ptrdiff_t per = FN(conv_gemm_work)(c, h, w, fh, fw, s, p, m, fn, 1);
    ptrdiff_t padded = c * m * (h + 2 * p) * (w + 2 * p) + SLACK;
    int nt = block_threads(blocks, work_threads);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        real *col = work + t * per, *xp = col + k * m * q + SLACK, *dy_t = xp + padded;
        real *part = dy_t + m * q * fn;
        real *sum = t == 0 ? dwt : part + k * fn; /* thread 0 sums straight into dW^T */
        ptrdiff_t b0, b1;
        thread_block(t, nt, blocks, &b0, &b1);
        for (ptrdiff_t bi = b0; bi < b1; bi++) {
            ptrdiff_t i0 = bi * m, i1 = i0 + m < n ? i0 + m : n, cols = (i1 - i0) * q;
            real *into = bi == b0 ? sum : part;
            FN(transpose)(dy + i0 * q, fn, cols, n * q, dy_t, fn);
#ifdef FASTNN_AVX512
            if (fastnn_avx512()) {
                pad_planes(x, n, c, h, w, cnhw, p, i0, i1, xp);
                wgrad_span512(xp, c, i1 - i0, h, w, fh, fw, s, p, dy_t, fn, into);
            } else
#endif
            {
                block_col(x, n, c, h, w, cnhw, fh, fw, s, p, i0, i1, xp, col);
                FN(gemm_narrow)(col, dy_t, into, k, cols, fn, 0);
            }
            if (bi > b0)
                for (ptrdiff_t e = 0; e < k * fn; e++)
                    sum[e] += part[e];
        }
        if (b0 == b1) /* more threads than blocks: nothing to add */
            memset(sum, 0, (size_t)(k * fn) * sizeof *sum);
    }
    for (int t = 1; t < nt; t++) {
        const real *sum = work + t * per + k * m * q + SLACK + padded + m * q * fn + k * fn;
        for (ptrdiff_t e = 0; e < k * fn; e++)
            dwt[e] += sum[e];
    }
}
