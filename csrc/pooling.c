/* pooling.c: max pooling, forward and backward (sizes and layouts: conv.h; FH x FW the window).
 *
 * Forward: out = the window's maximum, arg = its index ky * FW + kx in the window, the first
 * maximum in (ky, kx) order as the book's np.argmax over an im2col row; a NaN wins, as in np.max
 * and np.argmax. Padding counts as zeros, as in the book's im2col. out and arg share one layout,
 * x may have the other (the models' last pooling reads (C, N, H, W) and writes the (N, C, OH, OW)
 * the Affine layer after it flattens).
 * Backward: every arg is checked first (a bad one: its index is the status, nothing written); then
 * each dx plane is zeroed and dout added at every window's arg (overlapping windows
 * accumulate, as col2im), or, for the models' disjoint 2x2 stride-2 windows in AVX2 or AVX-512
 * code, each dx element is written once (the dout its window routes to it, or 0). One thread owns
 * a plane: the sums do not depend on the thread count.
 */
#include "conv.h"

/* 1 when v replaces best: greater, or the first NaN (nothing replaces a NaN). Bitwise, not
 * short-circuit: no branch to mispredict on random data */
static inline int replaces(real v, real best)
{
    return (best == best) & !(v <= best);
}

#ifdef FASTNN_REAL_F32
typedef uint32_t real_bits;
#else
typedef uint64_t real_bits;
#endif

/* best, at <- v, k when v replaces best: selects through integer masks, which GCC leaves free of
 * branches (the ternaries it compiled into branches on the comparisons: 12 ns a window on random
 * data) */
#define TAKE(v, k)                                                                                 \
    do {                                                                                           \
        real v_ = (v);                                                                             \
        real_bits m_ = -(real_bits)replaces(v_, best), vb_, bb_;                                   \
        memcpy(&vb_, &v_, sizeof vb_);                                                             \
        memcpy(&bb_, &best, sizeof bb_);                                                           \
        bb_ = (vb_ & m_) | (bb_ & ~m_);                                                            \
        memcpy(&best, &bb_, sizeof best);                                                          \
        at = (int32_t)(((uint32_t)(k) & (uint32_t)m_) | ((uint32_t)at & ~(uint32_t)m_));           \
    } while (0)

#ifdef FASTNN_AVX512
/* The 2x2 stride-2 windows of output row (r0, r1), VLANES outputs at a time: two loads per input
 * row hold 2 * VLANES elements, a permute splits them into the windows' left and right columns,
 * and the four candidates are taken in window order with masked moves (the scalar TAKE's rule:
 * v replaces best when best is not NaN and !(v <= best)). */
__attribute__((target("avx512f"))) static void maxpool_row_2x2_avx512(
    const real *r0, const real *r1, ptrdiff_t ow, real *o, int32_t *a)
{
#ifdef FASTNN_REAL_F32
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28,
                                           30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
#define PERMUTE2(lo, idx, hi) _mm512_permutex2var_ps(lo, idx, hi)
#define CMP_MASK(k, v, b, op) _mm512_mask_cmp_ps_mask(k, v, b, op)
#else
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_add_epi64(even, _mm512_set1_epi64(1));
#define PERMUTE2(lo, idx, hi) _mm512_permutex2var_pd(lo, idx, hi)
#define CMP_MASK(k, v, b, op) _mm512_mask_cmp_pd_mask(k, v, b, op)
#endif
    for (ptrdiff_t ox = 0; ox < ow; ox += VLANES) {
        /* the last, partial block: masked loads (which do not touch the lanes masked off) and
           stores */
        ptrdiff_t m = ow - ox < VLANES ? ow - ox : VLANES, lo = 2 * m < VLANES ? 2 * m : VLANES;
        vmask in_lo = (vmask)(((uint64_t)1 << lo) - 1);
        vmask in_hi = (vmask)(((uint64_t)1 << (2 * m - lo)) - 1);
        vmask out = (vmask)(((uint64_t)1 << m) - 1);
        vreal u0 = V(maskz_loadu)(in_lo, r0 + 2 * ox);
        vreal u1 = V(maskz_loadu)(in_hi, r0 + 2 * ox + VLANES);
        vreal w0 = V(maskz_loadu)(in_lo, r1 + 2 * ox);
        vreal w1 = V(maskz_loadu)(in_hi, r1 + 2 * ox + VLANES);
        vreal cand[3] = {PERMUTE2(u0, odd, u1), PERMUTE2(w0, even, w1), PERMUTE2(w0, odd, w1)};
        vreal best = PERMUTE2(u0, even, u1);
        __m512i at = _mm512_setzero_si512();
        for (int k = 0; k < 3; k++) {
            vmask ordered = CMP_MASK((vmask)-1, best, best, _CMP_ORD_Q);
            vmask take = CMP_MASK(ordered, cand[k], best, _CMP_NLE_UQ);
            best = V(mask_mov)(best, take, cand[k]);
            at = _mm512_mask_mov_epi32(at, (__mmask16)take, _mm512_set1_epi32(k + 1));
        }
        V(mask_storeu)(o + ox, out, best);
        _mm512_mask_storeu_epi32(a + ox, (__mmask16)out, at);
    }
#undef PERMUTE2
#undef CMP_MASK
}
#endif

#ifdef FASTNN_AVX2
/* maxpool_row_2x2_avx512 in AVX2 registers, for rows of at least YLANES outputs: two loads per
 * input row, split into the windows' left and right columns by a shuffle within 128-bit lanes and
 * a permute of 64-bit quarters; the candidates taken by blends under the same rule. Whole-register
 * stores only (the masked store is slow on this CPU family): the last block is moved back to end
 * at the row's end, overlapping the one before. */
__attribute__((target("avx2,fma"))) static void maxpool_row_2x2_avx2(const real *r0,
                                                                    const real *r1, ptrdiff_t ow,
                                                                    real *o, int32_t *a)
{
#ifdef FASTNN_REAL_F32
#define SPLIT(lo, hi, sel)                                                                         \
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, sel)),      \
                                           _MM_SHUFFLE(3, 1, 2, 0)))
#define EVEN(lo, hi) SPLIT(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))
#define ODD(lo, hi) SPLIT(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))
#define STORE_AT(p, v) _mm256_storeu_si256((__m256i *)(p), _mm256_cvtps_epi32(v))
#else
#define EVEN(lo, hi) _mm256_permute4x64_pd(_mm256_unpacklo_pd(lo, hi), _MM_SHUFFLE(3, 1, 2, 0))
#define ODD(lo, hi) _mm256_permute4x64_pd(_mm256_unpackhi_pd(lo, hi), _MM_SHUFFLE(3, 1, 2, 0))
#define STORE_AT(p, v) _mm_storeu_si128((__m128i *)(p), _mm256_cvtpd_epi32(v))
#endif
    for (ptrdiff_t v = 0; v < ow; v += YLANES) {
        ptrdiff_t ox = v < ow - YLANES ? v : ow - YLANES; /* inputs [2 ox, 2 ox + 2 YLANES) */
        yreal u0 = Y(loadu)(r0 + 2 * ox), u1 = Y(loadu)(r0 + 2 * ox + YLANES);
        yreal w0 = Y(loadu)(r1 + 2 * ox), w1 = Y(loadu)(r1 + 2 * ox + YLANES);
        yreal cand[3] = {ODD(u0, u1), EVEN(w0, w1), ODD(w0, w1)};
        yreal best = EVEN(u0, u1), at = Y(setzero)(); /* at: the window index, as a real */
        for (int k = 0; k < 3; k++) {
            yreal take = Y(and)(Y(cmp)(best, best, _CMP_ORD_Q),
                                Y(cmp)(cand[k], best, _CMP_NLE_UQ));
            best = Y(blendv)(best, cand[k], take);
            at = Y(blendv)(at, Y(set1)((real)(k + 1)), take);
        }
        Y(storeu)(o + ox, best);
        STORE_AT(a + ox, at);
    }
#undef SPLIT
#undef EVEN
#undef ODD
#undef STORE_AT
}
#endif

/* Bytes ahead of the row pair being pooled that the 2x2 loop prefetches: the AVX-512 loop's loads
 * are masked, and masked loads do not train this CPU family's prefetchers (a (100, 30, 24, 24)
 * float64 forward streamed x at 5 GB/s, 2.9 ms; with this, 0.5-0.7 ms) */
#define POOL_PREFETCH 2048

static FASTNN_CLONES void maxpool_plane(const real *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t fh,
                                        ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, ptrdiff_t oh,
                                        ptrdiff_t ow, real *out, int32_t *arg, int avx512,
                                        int avx2)
{
    (void)avx512, (void)avx2;
    if (fh == 2 && fw == 2 && s == 2 && p == 0) { /* the models' pooling: every window inside */
        for (ptrdiff_t oy = 0; oy < oh; oy++) {
            const real *r0 = x + 2 * oy * w, *r1 = r0 + w;
            real *o = out + oy * ow;
            int32_t *a = arg + oy * ow;
            for (ptrdiff_t off = 0; off < 2 * w * (ptrdiff_t)sizeof(real); off += 64)
                __builtin_prefetch((const char *)r0 + POOL_PREFETCH + off); /* never faults */
#ifdef FASTNN_AVX512
            if (avx512) {
                maxpool_row_2x2_avx512(r0, r1, ow, o, a);
                continue;
            }
#endif
#ifdef FASTNN_AVX2
            if (avx2 && ow >= YLANES) {
                maxpool_row_2x2_avx2(r0, r1, ow, o, a);
                continue;
            }
#endif
            for (ptrdiff_t ox = 0; ox < ow; ox++) {
                real best = r0[2 * ox];
                int32_t at = 0;
                TAKE(r0[2 * ox + 1], 1);
                TAKE(r1[2 * ox], 2);
                TAKE(r1[2 * ox + 1], 3);
                o[ox] = best;
                a[ox] = at;
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
    int avx512 = fastnn_avx512(), avx2 = fastnn_avx2();
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t r = 0; r < n * c; r++) {
        ptrdiff_t i = r / c, j = r % c, o = conv_plane(i, j, n, c, q, out_cnhw);
        maxpool_plane(x + conv_plane(i, j, n, c, h * w, x_cnhw), h, w, fh, fw, s, p, oh, ow,
                      out + o, arg + o, avx512, avx2);
    }
}

#ifdef FASTNN_AVX2
/* The dx rows d0, d1 under output row (g, a) of 2x2 stride-2 windows, YLANES windows at a time:
 * each dx element written once, the window's dout where its arg points and 0 elsewhere (dout + 0:
 * a -0 dout gives +0, as the scatter into zeros does). Each window's dout and arg are duplicated
 * into the lanes of its two columns and the args compared with the lanes' window indices. Rows of
 * at least YLANES windows; the last block moved back to end at the row's end, as the forward. */
__attribute__((target("avx2,fma"))) static void maxpool_backward_row_2x2_avx2(const real *g,
                                                                             const int32_t *a,
                                                                             ptrdiff_t ow,
                                                                             real *d0, real *d1)
{
#ifdef FASTNN_REAL_F32
#define DUP_LO(v) _mm256_permute2f128_ps(_mm256_unpacklo_ps(v, v), _mm256_unpackhi_ps(v, v), 0x20)
#define DUP_HI(v) _mm256_permute2f128_ps(_mm256_unpacklo_ps(v, v), _mm256_unpackhi_ps(v, v), 0x31)
#define LOAD_ARG(p) _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define SAME(u, v) _mm256_cmpeq_epi32(_mm256_castps_si256(u), _mm256_castps_si256(v))
    const yreal top = _mm256_castsi256_ps(_mm256_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1));
    const yreal bottom = _mm256_castsi256_ps(_mm256_setr_epi32(2, 3, 2, 3, 2, 3, 2, 3));
#else
#define DUP_LO(v) _mm256_permute4x64_pd(v, _MM_SHUFFLE(1, 1, 0, 0))
#define DUP_HI(v) _mm256_permute4x64_pd(v, _MM_SHUFFLE(3, 3, 2, 2))
#define LOAD_ARG(p)                                                                                \
    _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(p))))
#define SAME(u, v) _mm256_cmpeq_epi64(_mm256_castpd_si256(u), _mm256_castpd_si256(v))
    const yreal top = _mm256_castsi256_pd(_mm256_setr_epi64x(0, 1, 0, 1));
    const yreal bottom = _mm256_castsi256_pd(_mm256_setr_epi64x(2, 3, 2, 3));
#endif
#define PICK(at, k, v) Y(add)(Y(and)(Y(castsi256)(SAME(at, k)), v), zero)
    const yreal zero = Y(setzero)();
    for (ptrdiff_t v = 0; v < ow; v += YLANES) {
        ptrdiff_t ox = v < ow - YLANES ? v : ow - YLANES; /* dx columns [2 ox, 2 ox + 2 YLANES) */
        yreal gv = Y(loadu)(g + ox), av = LOAD_ARG(a + ox);
        yreal g_lo = DUP_LO(gv), g_hi = DUP_HI(gv), a_lo = DUP_LO(av), a_hi = DUP_HI(av);
        Y(storeu)(d0 + 2 * ox, PICK(a_lo, top, g_lo));
        Y(storeu)(d0 + 2 * ox + YLANES, PICK(a_hi, top, g_hi));
        Y(storeu)(d1 + 2 * ox, PICK(a_lo, bottom, g_lo));
        Y(storeu)(d1 + 2 * ox + YLANES, PICK(a_hi, bottom, g_hi));
    }
#undef DUP_LO
#undef DUP_HI
#undef LOAD_ARG
#undef SAME
#undef PICK
}
#endif

#ifdef FASTNN_AVX512
/* maxpool_backward_row_2x2_avx2 in AVX-512 registers, for the rows of fewer than VLANES / 2
 * windows that the AVX2 loop does not take (VLANES / 2 = YLANES): their dout and arg loaded under a
 * mask (which touches none of the lanes masked off), spread over the lanes of their columns by a
 * permute, the dx rows stored under a mask. */
__attribute__((target("avx512f"))) static void maxpool_backward_row_2x2_avx512(const real *g,
                                                                               const int32_t *a,
                                                                               ptrdiff_t ow,
                                                                               real *d0, real *d1)
{
#ifdef FASTNN_REAL_F32
    const __m512i spread = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i top = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
    const __m512i bottom = _mm512_add_epi32(top, _mm512_set1_epi32(2));
#define LOAD_ARG(m, p) _mm512_permutexvar_epi32(spread, _mm512_maskz_loadu_epi32(m, p))
#define SAME(u, k) _mm512_cmpeq_epi32_mask(u, k)
#else
    const __m512i spread = _mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3);
    const __m512i top = _mm512_setr_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    const __m512i bottom = _mm512_add_epi64(top, _mm512_set1_epi64(2));
#define LOAD_ARG(m, p)                                                                             \
    _mm512_permutexvar_epi64(                                                                      \
        spread, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(_mm512_maskz_loadu_epi32(m, p))))
#define SAME(u, k) _mm512_cmpeq_epi64_mask(u, k)
#endif
    const vreal zero = V(setzero)();
    __mmask16 in = (__mmask16)((1u << ow) - 1);
    vmask out = (vmask)(((uint64_t)1 << (2 * ow)) - 1);
    vreal gv = V(permutexvar)(spread, V(maskz_loadu)((vmask)in, g));
    __m512i av = LOAD_ARG(in, a);
    V(mask_storeu)(d0, out, V(add)(V(maskz_mov)(SAME(av, top), gv), zero));
    V(mask_storeu)(d1, out, V(add)(V(maskz_mov)(SAME(av, bottom), gv), zero));
#undef LOAD_ARG
#undef SAME
}
#endif

/* dx plane <- dout at each window's arg (each checked by maxpool_backward to lie in the window),
 * 0 elsewhere; overlapping windows add their shares. Zeroing the plane, then scattering into it
 * while it is in cache, beats a select per dx element in C (2x2 stride 2 on 24x24 planes: 1.3 ms
 * against 3.3). */
static FASTNN_CLONES void maxpool_backward_plane(const real *dout, const int32_t *arg, ptrdiff_t h,
                                                 ptrdiff_t w, ptrdiff_t fh, ptrdiff_t fw,
                                                 ptrdiff_t s, ptrdiff_t p, ptrdiff_t oh,
                                                 ptrdiff_t ow, real *dx, int avx512, int avx2)
{
    (void)avx512, (void)avx2;
#ifdef FASTNN_AVX512 /* and with it FASTNN_AVX2 */
    /* disjoint windows, each dx element set once: in AVX2 for rows of at least its register
       (faster there than the AVX-512 loop: (100,16,28,28) 0.37 ms against 0.44 float64, 0.17
       against 0.22 float32), shorter rows in AVX-512 */
    int avx2_rows = avx2 && ow >= YLANES;
    if (fh == 2 && fw == 2 && s == 2 && p == 0 && (avx2_rows || avx512)) {
        for (ptrdiff_t oy = 0; oy < oh; oy++) {
            real *d0 = dx + 2 * oy * w, *d1 = d0 + w;
            if (w > 2 * ow) /* an odd width: the last column lies in no window */
                d0[w - 1] = d1[w - 1] = 0;
            if (avx2_rows)
                maxpool_backward_row_2x2_avx2(dout + oy * ow, arg + oy * ow, ow, d0, d1);
            else
                maxpool_backward_row_2x2_avx512(dout + oy * ow, arg + oy * ow, ow, d0, d1);
        }
        if (h > 2 * oh) /* an odd height: the last row lies in no window */
            memset(dx + (h - 1) * w, 0, (size_t)w * sizeof *dx);
        return;
    }
#endif
    memset(dx, 0, (size_t)(h * w) * sizeof *dx);
    for (ptrdiff_t oy = 0; oy < oh; oy++)
        for (ptrdiff_t ox = 0; ox < ow; ox++) {
            int32_t at = arg[oy * ow + ox];
            ptrdiff_t iy = oy * s + at / fw - p, ix = ox * s + at % fw - p;
            if (iy >= 0 && iy < h && ix >= 0 && ix < w) /* a maximum in the padding has no dx */
                dx[iy * w + ix] += dout[oy * ow + ox];
        }
}

/* The index of the first window index in arg[0, size) outside [0, windows), or -1. A vector OR
 * over each chunk, and a search only in a chunk that has one. On one thread: a read-only pass
 * over one int32 per window (for the models' 2x2 stride-2 windows an eighth of a float64 dx's
 * bytes) costs less than another start and join of the threads, which on a shared machine can
 * wait for a core. */
static FASTNN_CLONES ptrdiff_t first_outside(const int32_t *arg, ptrdiff_t size, uint32_t windows)
{
    for (ptrdiff_t lo = 0; lo < size; lo += FASTNN_CHUNK) {
        ptrdiff_t hi = size - lo < FASTNN_CHUNK ? size : lo + FASTNN_CHUNK;
        int outside = 0;
        for (ptrdiff_t e = lo; e < hi; e++)
            outside |= (uint32_t)arg[e] >= windows; /* a negative index: above windows unsigned */
        if (outside)
            for (ptrdiff_t e = lo; e < hi; e++)
                if ((uint32_t)arg[e] >= windows)
                    return e;
    }
    return -1;
}

/* Status (real.h): FASTNN_OK, or the flat index into arg of the first window index outside the
 * FH x FW window, found before anything is written */
ptrdiff_t FN(maxpool_backward)(const real *dout, const int32_t *arg, ptrdiff_t n, ptrdiff_t c,
                               ptrdiff_t h, ptrdiff_t w, int x_cnhw, ptrdiff_t fh, ptrdiff_t fw,
                               ptrdiff_t s, ptrdiff_t p, real *dx, int out_cnhw)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, q = oh * ow;
    ptrdiff_t first = first_outside(arg, n * c * q, (uint32_t)(fh * fw));
    int avx512 = fastnn_avx512(), avx2 = fastnn_avx2();
    int nt = n * c * h * w >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
    if (first >= 0)
        return first;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t r = 0; r < n * c; r++) {
        ptrdiff_t i = r / c, j = r % c, o = conv_plane(i, j, n, c, q, out_cnhw);
        maxpool_backward_plane(dout + o, arg + o, h, w, fh, fw, s, p, oh, ow,
                               dx + conv_plane(i, j, n, c, h * w, x_cnhw), avx512, avx2);
    }
    return FASTNN_OK;
}
