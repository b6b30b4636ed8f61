/* train_steps.c: many SGD steps of the two-layer network in one call, and its accuracy.
 *
 * A step is the per-step path's (models.py: forward, backward, SGD update) on one mini-batch,
 * x[batch] with labels t[batch]:
 *     a1 = x W1 + b1, z1 = act(a1), s = z1 W2 + b2, loss = mean -log(softmax(s)[t] + 1e-7);
 *     dy = (softmax(s) - onehot(t)) / B, gW2 = z1^T dy, gb2 = sum dy, dz1 = dy W2^T * act'(z1),
 *     gb1 = sum dz1, gW1 = x^T dz1; then p -= lr * g for W1, b1, W2, b2.
 * The same operations in the same order as the per-step path, except that the products sum their
 * terms in another order (the results agree to rounding). This file is compiled with
 * -ffp-contract=off, so the update rounds lr * g before subtracting, as NumPy's p -= lr * g; the
 * products use explicit fused multiply-adds.
 *
 * Where the time goes at the book's sizes (64-50-10, batch 100): two products with x of 64 x 50
 * per row, the sigmoid, and three small products. The rows of the matrices are padded to whole
 * 64-byte registers (ldh = hid rounded up, ldo = out rounded up), the padding kept zero in W1, b1,
 * W2, b2 and in every gradient, so each row operation is a few whole registers: with AVX-512 or
 * AVX2 an output row is summed in registers and stored once. x's zeros are skipped in the two
 * products with x (the digits are about half zeros): each batch row is compacted to its nonzeros
 * first.
 * Skipping is only what a dense product computes when the other factor is finite (0 * inf = NaN):
 * a step whose W1 or dz1 is not finite uses every element of x.
 *
 * Contract (checked by _core_train_steps.pxi): C-contiguous buffers of the sizes named, work of
 * at least twolayer_work_bytes. Every index into x and every label is checked here before
 * anything is written.
 */
#include <math.h>

#include "act.h"
#include "compress4.h"
#include "train_steps.h"
#include "vexp.h"

#define PAD ((ptrdiff_t)(64 / sizeof(real))) /* reals per 64-byte register */

static inline ptrdiff_t padded(ptrdiff_t n)
{
    return (n + PAD - 1) / PAD * PAD;
}

/* The work area, carved into 64-byte aligned pieces. */
struct work {
    ptrdiff_t in, hid, out, ldh, ldo, rows;
    real *W1, *b1, *W2, *b2, *W2T; /* padded copies: (in, ldh), (ldh), (hid, ldo), (ldo), (out, ldh) */
    real *z, *dz, *y;              /* (rows, ldh), (rows, ldh), (rows, ldo) */
    real *gW1, *gW2, *gb1, *gb2;   /* (in, ldh), (hid, ldo), (ldh), (ldo) */
    double *acc1, *acc2;           /* (ldh), (ldo): the bias gradients' float64 sums */
    real *vals;                    /* rows * in + PAD: the batch's nonzeros, row by row */
    int32_t *cols;                 /* their columns */
    int64_t *rowptr;               /* rows + 1 */
    real *cvals;                   /* the same nonzeros column by column (CSC) */
    int32_t *crows;                /* their rows */
    int64_t *colptr;               /* in + 1 */
    int simd;                      /* simd_level() (vexp.h) */
    int regs;                      /* the register kernels' path: simd when a row of z is at most
                                      512 bytes and one of y 128, else SIMD_PORTABLE */
};

static ptrdiff_t carve(struct work *w, char *base, ptrdiff_t rows, ptrdiff_t in, ptrdiff_t hid,
                       ptrdiff_t out)
{
    w->in = in, w->hid = hid, w->out = out, w->rows = rows;
    w->ldh = padded(hid), w->ldo = padded(out);
    ptrdiff_t at = 0, r = (ptrdiff_t)sizeof(real);
#define PIECE(field, count, size)                                                                    \
    do {                                                                                             \
        w->field = (void *)(base ? base + at : NULL);                                                \
        at += ((count) * (size) + 63) / 64 * 64;                                                     \
    } while (0)
    PIECE(W1, in * w->ldh, r);
    PIECE(b1, w->ldh, r);
    PIECE(W2, hid * w->ldo, r);
    PIECE(b2, w->ldo, r);
    PIECE(W2T, out * w->ldh, r);
    PIECE(z, rows * w->ldh, r);
    PIECE(dz, rows * w->ldh, r);
    PIECE(y, rows * w->ldo, r);
    PIECE(gW1, in * w->ldh, r);
    PIECE(gW2, hid * w->ldo, r);
    PIECE(gb1, w->ldh, r);
    PIECE(gb2, w->ldo, r);
    PIECE(acc1, w->ldh, (ptrdiff_t)sizeof(double));
    PIECE(acc2, w->ldo, (ptrdiff_t)sizeof(double));
    PIECE(vals, rows * in + PAD, r);
    PIECE(cols, rows * in + PAD, (ptrdiff_t)sizeof(int32_t));
    PIECE(rowptr, rows + 1, (ptrdiff_t)sizeof(int64_t));
    PIECE(cvals, rows * in + PAD, r);
    PIECE(crows, rows * in + PAD, (ptrdiff_t)sizeof(int32_t));
    PIECE(colptr, in + 1, (ptrdiff_t)sizeof(int64_t));
#undef PIECE
    return at;
}

ptrdiff_t FN(twolayer_work_bytes)(ptrdiff_t rows, ptrdiff_t in, ptrdiff_t hid, ptrdiff_t out)
{
    struct work w;
    return carve(&w, NULL, rows, in, hid, out) + 64; /* + 64: room to align the start */
}

/* The work area at `work`, or NULL when it is smaller than `rows` rows need. */
static int open_work(struct work *w, void *work, ptrdiff_t bytes, ptrdiff_t rows, ptrdiff_t in,
                     ptrdiff_t hid, ptrdiff_t out)
{
    char *base = (char *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    if (carve(w, NULL, rows, in, hid, out) + (base - (char *)work) > bytes)
        return 0;
    carve(w, base, rows, in, hid, out);
    w->simd = simd_level();
    int fit = w->ldh * (ptrdiff_t)sizeof(real) <= 512 && w->ldo * (ptrdiff_t)sizeof(real) <= 128;
    w->regs = fit ? w->simd : SIMD_PORTABLE;
    return 1;
}

/* src (n, m) into dst (n, ld), zeros in the padding */
static void pad_rows(const real *src, ptrdiff_t n, ptrdiff_t m, real *dst, ptrdiff_t ld)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        memcpy(dst + i * ld, src + i * m, (size_t)m * sizeof(real));
        memset(dst + i * ld + m, 0, (size_t)(ld - m) * sizeof(real));
    }
}

static void unpad_rows(const real *src, ptrdiff_t n, ptrdiff_t ld, real *dst, ptrdiff_t m)
{
    for (ptrdiff_t i = 0; i < n; i++)
        memcpy(dst + i * m, src + i * ld, (size_t)m * sizeof(real));
}

static void load_params(struct work *w, const real *W1, const real *b1, const real *W2,
                        const real *b2)
{
    pad_rows(W1, w->in, w->hid, w->W1, w->ldh);
    pad_rows(b1, 1, w->hid, w->b1, w->ldh);
    pad_rows(W2, w->hid, w->out, w->W2, w->ldo);
    pad_rows(b2, 1, w->out, w->b2, w->ldo);
}

/* The rows x[idx[r]] (idx NULL: x's rows from `first` on) compacted to their nonzeros, or to
 * every element when `dense`: rowptr, cols, vals. */
static FASTNN_CLONES void compact_rows_plain(const struct work *w, const real *x, const int64_t *idx,
                                       ptrdiff_t first, ptrdiff_t n, int dense)
{
    int64_t m = 0;
    ptrdiff_t in = w->in;
    for (ptrdiff_t r = 0; r < n; r++) {
        const real *xr = x + (idx ? idx[r] : first + r) * in;
        w->rowptr[r] = m;
        for (ptrdiff_t i = 0; i < in; i++) {
            w->cols[m] = (int32_t)i;
            w->vals[m] = xr[i];
            m += dense | (xr[i] != 0);
        }
    }
    w->rowptr[n] = m;
}

/* ------------------------------------------------------------------ forward */

/* z rows [0, n) <- act(x W1 + b1) from the compacted rows */
static FASTNN_CLONES void hidden_forward(const struct work *w, ptrdiff_t n, int relu)
{
    ptrdiff_t ldh = w->ldh;
    for (ptrdiff_t r = 0; r < n; r++) {
        real *zr = w->z + r * ldh;
        for (ptrdiff_t j = 0; j < ldh; j++)
            zr[j] = 0;
        for (int64_t q = w->rowptr[r]; q < w->rowptr[r + 1]; q++) {
            real v = w->vals[q];
            const real *wr = w->W1 + (ptrdiff_t)w->cols[q] * ldh;
            for (ptrdiff_t j = 0; j < ldh; j++)
                zr[j] += v * wr[j];
        }
        if (relu)
            for (ptrdiff_t j = 0; j < ldh; j++)
                zr[j] = relu_of(zr[j] + w->b1[j]);
        else
            vsigmoid_span(zr, w->b1, zr, ldh, w->simd);
    }
}

#ifdef FASTNN_AVX512
/* the lanes of a that are not <= 0 (NaN included): ReLU keeps them */
#ifdef FASTNN_REAL_F32
#define NOT_LE_ZERO(a) _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_NLE_UQ)
#else
#define NOT_LE_ZERO(a) _mm512_cmp_pd_mask(a, _mm512_setzero_pd(), _CMP_NLE_UQ)
#endif

/* The AVX-512 hidden_forward for nv = ldh / VLANES registers (a constant in each case of the
 * switch below): each row summed in two sets of registers taking alternate nonzeros, then the
 * bias and the activation in registers, one store. */
__attribute__((target("avx512f"), always_inline)) static inline vreal sigmoid_reg(vreal a)
{
    const vreal one = V(set1)(1), zero = V(setzero)();
    vreal e = vexp_avx512(V(sub)(zero, V(abs)(a)));
    vreal s = V(div)(one, V(add)(one, e));
    return V(mask_mov)(V(mul)(e, s), V_GE_MASK(a, zero), s);
}

__attribute__((target("avx512f"), always_inline)) static inline void
hidden_forward_regs(const struct work *w, ptrdiff_t n, int relu, const int nv)
{
    ptrdiff_t ldh = w->ldh;
    const int64_t *ptr = w->rowptr;
    const int32_t *cols = w->cols;
    const real *vals = w->vals, *W1 = w->W1;
    for (ptrdiff_t r = 0; r < n; r++) {
        vreal even[8], odd[8];
        #pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            even[v] = odd[v] = V(setzero)();
        int64_t q = ptr[r], end = ptr[r + 1];
        for (; q + 2 <= end; q += 2) {
            const real *w0 = W1 + (ptrdiff_t)cols[q] * ldh, *w1 = W1 + (ptrdiff_t)cols[q + 1] * ldh;
            vreal a0 = V(set1)(vals[q]), a1 = V(set1)(vals[q + 1]);
            #pragma GCC unroll 8
            for (int v = 0; v < nv; v++) {
                even[v] = V(fmadd)(a0, V(load)(w0 + v * VLANES), even[v]);
                odd[v] = V(fmadd)(a1, V(load)(w1 + v * VLANES), odd[v]);
            }
        }
        if (q < end) {
            const real *w0 = W1 + (ptrdiff_t)cols[q] * ldh;
            vreal a0 = V(set1)(vals[q]);
            #pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                even[v] = V(fmadd)(a0, V(load)(w0 + v * VLANES), even[v]);
        }
        real *zr = w->z + r * ldh;
        #pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
            vreal a = V(add)(V(add)(even[v], odd[v]), V(load)(w->b1 + v * VLANES));
            V(store)(zr + v * VLANES, relu ? V(mask_mov)(V(setzero)(), NOT_LE_ZERO(a), a)
                                           : sigmoid_reg(a));
        }
    }
}

__attribute__((target("avx512f"))) static void hidden_forward_avx512(const struct work *w,
                                                                     ptrdiff_t n, int relu)
{
    switch (w->ldh / VLANES) {
#define CASE(nv)                                                                                     \
    case nv:                                                                                         \
        hidden_forward_regs(w, n, relu, nv);                                                         \
        break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    }
}

/* gW1 = x^T dz1 from the nonzeros by columns: row i of gW1 summed in registers, stored once */
__attribute__((target("avx512f"), always_inline)) static inline void
input_grad_regs(const struct work *w, ptrdiff_t n, const int nv)
{
    ptrdiff_t ldh = w->ldh;
    (void)n;
    for (ptrdiff_t i = 0; i < w->in; i++) {
        vreal even[8], odd[8];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            even[v] = odd[v] = V(setzero)();
        int64_t q = w->colptr[i], end = w->colptr[i + 1];
        for (; q + 2 <= end; q += 2) {
            const real *d0 = w->dz + (ptrdiff_t)w->crows[q] * ldh;
            const real *d1 = w->dz + (ptrdiff_t)w->crows[q + 1] * ldh;
            vreal a0 = V(set1)(w->cvals[q]), a1 = V(set1)(w->cvals[q + 1]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) {
                even[v] = V(fmadd)(a0, V(load)(d0 + v * VLANES), even[v]);
                odd[v] = V(fmadd)(a1, V(load)(d1 + v * VLANES), odd[v]);
            }
        }
        if (q < end) {
            const real *d0 = w->dz + (ptrdiff_t)w->crows[q] * ldh;
            vreal a0 = V(set1)(w->cvals[q]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                even[v] = V(fmadd)(a0, V(load)(d0 + v * VLANES), even[v]);
        }
        real *g = w->gW1 + i * ldh;
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            V(store)(g + v * VLANES, V(add)(even[v], odd[v]));
    }
}

__attribute__((target("avx512f"))) static void input_grad_avx512(const struct work *w, ptrdiff_t n)
{
    switch (w->ldh / VLANES) {
#define CASE(nv)                                                                                     \
    case nv:                                                                                         \
        input_grad_regs(w, n, nv);                                                                   \
        break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    }
}

/* y rows [0, n) <- z1 W2, four rows at a time (independent sums: the fused multiply-adds'
 * latency is hidden), no = ldo / VLANES registers a row */
__attribute__((target("avx512f"), always_inline)) static inline void
scores_regs(const struct work *w, ptrdiff_t n, const int no)
{
    ptrdiff_t ldh = w->ldh, ldo = w->ldo, hid = w->hid;
    ptrdiff_t r = 0;
    for (; r < n; r += 4) {
        int rows = n - r < 4 ? (int)(n - r) : 4;
        vreal acc[4][2];
        #pragma GCC unroll 8
        for (int i = 0; i < 4; i++)
            #pragma GCC unroll 8
            for (int v = 0; v < no; v++)
                acc[i][v] = V(setzero)();
        const real *z = w->z + r * ldh;
        for (ptrdiff_t j = 0; j < hid; j++) {
            vreal wj[2];
            #pragma GCC unroll 8
            for (int v = 0; v < no; v++)
                wj[v] = V(load)(w->W2 + j * ldo + v * VLANES);
            #pragma GCC unroll 8
            for (int i = 0; i < 4; i++) /* rows past n read z's rows of the work area: unused */
                #pragma GCC unroll 8
                for (int v = 0; v < no; v++)
                    acc[i][v] = V(fmadd)(V(set1)(z[i * ldh + j]), wj[v], acc[i][v]);
        }
        for (int i = 0; i < rows; i++)
            #pragma GCC unroll 8
            for (int v = 0; v < no; v++)
                V(store)(w->y + (r + i) * ldo + v * VLANES, acc[i][v]);
    }
}

/* gW2 = z1^T dy, four rows of gW2 at a time; dz1 = dy W2^T, a row of dz1 in nv registers */
__attribute__((target("avx512f"), always_inline)) static inline void
output_grads_regs(const struct work *w, ptrdiff_t n, const int no, const int nv)
{
    ptrdiff_t ldh = w->ldh, ldo = w->ldo, hid = w->hid, out = w->out;
    for (ptrdiff_t j = 0; j < hid; j += 4) {
        vreal acc[4][2];
        #pragma GCC unroll 8
        for (int i = 0; i < 4; i++)
            #pragma GCC unroll 8
            for (int v = 0; v < no; v++)
                acc[i][v] = V(setzero)();
        for (ptrdiff_t r = 0; r < n; r++) {
            const real *zr = w->z + r * ldh + j; /* j + 3 < ldh: ldh is a multiple of 8 */
            vreal dy[2];
            #pragma GCC unroll 8
            for (int v = 0; v < no; v++)
                dy[v] = V(load)(w->y + r * ldo + v * VLANES);
            #pragma GCC unroll 8
            for (int i = 0; i < 4; i++)
                #pragma GCC unroll 8
                for (int v = 0; v < no; v++)
                    acc[i][v] = V(fmadd)(V(set1)(zr[i]), dy[v], acc[i][v]);
        }
        #pragma GCC unroll 8
        for (int i = 0; i < 4 && j + i < hid; i++)
            #pragma GCC unroll 8
            for (int v = 0; v < no; v++)
                V(store)(w->gW2 + (j + i) * ldo + v * VLANES, acc[i][v]);
    }
    for (ptrdiff_t r = 0; r < n; r++) {
        vreal d[8];
        #pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            d[v] = V(setzero)();
        const real *dy = w->y + r * ldo;
        for (ptrdiff_t k = 0; k < out; k++) {
            vreal a = V(set1)(dy[k]);
            #pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                d[v] = V(fmadd)(a, V(load)(w->W2T + k * ldh + v * VLANES), d[v]);
        }
        #pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            V(store)(w->dz + r * ldh + v * VLANES, d[v]);
    }
}

__attribute__((target("avx512f"))) static void scores_avx512(const struct work *w, ptrdiff_t n)
{
    if (w->ldo == VLANES)
        scores_regs(w, n, 1);
    else
        scores_regs(w, n, 2);
}

__attribute__((target("avx512f"))) static void output_grads_avx512(const struct work *w,
                                                                  ptrdiff_t n)
{
    switch (w->ldh / VLANES * 2 + (w->ldo == VLANES ? 0 : 1)) {
#define CASE(nv)                                                                                     \
    case 2 * nv:                                                                                     \
        output_grads_regs(w, n, 1, nv);                                                              \
        break;                                                                                       \
    case 2 * nv + 1:                                                                                 \
        output_grads_regs(w, n, 2, nv);                                                              \
        break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    }
}

/* The AVX-512 compact_rows: a compare gives the nonzero lanes, a compress packs them and their
 * columns to the front of a register, a full store writes them at m (vals and cols have PAD
 * spare elements) */
__attribute__((target("avx512f"))) static void compact_rows_avx512(const struct work *w,
                                                                   const real *x,
                                                                   const int64_t *idx,
                                                                   ptrdiff_t first, ptrdiff_t n,
                                                                   int dense)
{
    int64_t m = 0;
    ptrdiff_t in = w->in;
#ifdef FASTNN_REAL_F32
    const __m512i step = _mm512_set1_epi32(16), lanes = _mm512_setr_epi32(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    const __m256i step = _mm256_set1_epi32(8), lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#endif
    for (ptrdiff_t r = 0; r < n; r++) {
        const real *xr = x + (idx ? idx[r] : first + r) * in;
        if (idx && r + 4 < n) /* the rows are drawn at random: fetch ahead */
            for (ptrdiff_t i = 0; i < in; i += 64 / (ptrdiff_t)sizeof(real))
                __builtin_prefetch(x + idx[r + 4] * in + i);
        w->rowptr[r] = m;
        ptrdiff_t i = 0;
#ifdef FASTNN_REAL_F32
        __m512i col = lanes;
        for (; i + 16 <= in; i += 16, col = _mm512_add_epi32(col, step)) {
            __m512 v = _mm512_loadu_ps(xr + i);
            __mmask16 k = dense ? (__mmask16)0xffff
                                : _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
            _mm512_storeu_ps(w->vals + m, _mm512_maskz_compress_ps(k, v));
            _mm512_storeu_si512(w->cols + m, _mm512_maskz_compress_epi32(k, col));
            m += __builtin_popcount(k);
        }
#else
        __m256i col = lanes;
        for (; i + 8 <= in; i += 8, col = _mm256_add_epi32(col, step)) {
            __m512d v = _mm512_loadu_pd(xr + i);
            __mmask8 k = dense ? (__mmask8)0xff
                               : _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_NEQ_UQ);
            _mm512_storeu_pd(w->vals + m, _mm512_maskz_compress_pd(k, v));
            _mm256_storeu_si256((__m256i *)(w->cols + m),
                                _mm512_castsi512_si256(_mm512_maskz_compress_epi32(
                                    (__mmask16)k, _mm512_castsi256_si512(col))));
            m += __builtin_popcount(k);
        }
#endif
        for (; i < in; i++) {
            w->cols[m] = (int32_t)i;
            w->vals[m] = xr[i];
            m += dense | (xr[i] != 0);
        }
    }
    w->rowptr[n] = m;
}

/* softmax_ce for rows of no = ldo / VLANES registers: the padding lanes masked out */
__attribute__((target("avx512f"), always_inline)) static inline double
softmax_ce_regs(const struct work *w, const int64_t *t, const int64_t *idx, ptrdiff_t n,
                const int no)
{
    ptrdiff_t ldo = w->ldo, out = w->out;
    real scale = (real)(1.0 / (double)n);
    vmask lanes[2];
    for (int v = 0; v < no; v++) {
        ptrdiff_t left = out - v * VLANES;
        lanes[v] = left >= VLANES ? (vmask)~0 : left <= 0 ? (vmask)0 : (vmask)((1u << left) - 1);
    }
    double total = 0;
    for (ptrdiff_t r = 0; r < n; r++) {
        real *yr = w->y + r * ldo;
        vreal y[2], m = V(set1)(-INFINITY);
#pragma GCC unroll 2
        for (int v = 0; v < no; v++) {
            y[v] = V(add)(V(load)(yr + v * VLANES), V(load)(w->b2 + v * VLANES));
            m = V(mask_max)(m, lanes[v], y[v], m);
        }
        /* the max as softmax_ce.c takes it: NaN never wins (the NaN still reaches the sum) */
        real mx = yr[0] + w->b2[0];
        for (ptrdiff_t k = 1; k < out; k++) {
            real v = yr[k] + w->b2[k];
            mx = v > mx ? v : mx;
        }
        vreal sum = V(setzero)();
#pragma GCC unroll 2
        for (int v = 0; v < no; v++) {
            y[v] = V(maskz_mov)(lanes[v], vexp_avx512(V(sub)(y[v], V(set1)(mx))));
            sum = V(add)(sum, y[v]);
        }
        vreal inv = V(set1)(1 / V(reduce_add)(sum));
#pragma GCC unroll 2
        for (int v = 0; v < no; v++)
            V(store)(yr + v * VLANES, V(mul)(y[v], inv));
        int64_t label = t[idx[r]];
        real at_label = yr[label];
        total -= vlog((double)at_label + 1e-7);
#pragma GCC unroll 2
        for (int v = 0; v < no; v++)
            V(store)(yr + v * VLANES, V(mul)(V(load)(yr + v * VLANES), V(set1)(scale)));
        yr[label] = (at_label - 1) * scale;
        (void)m;
    }
    return total / (double)n;
}

__attribute__((target("avx512f"))) static double softmax_ce_avx512(const struct work *w,
                                                                   const int64_t *t,
                                                                   const int64_t *idx, ptrdiff_t n)
{
    return w->ldo == VLANES ? softmax_ce_regs(w, t, idx, n, 1) : softmax_ce_regs(w, t, idx, n, 2);
}
#endif

#ifdef FASTNN_AVX2
/* The AVX2 register kernels, for the same sizes as the AVX-512 ones (rows of z of up to 512
 * bytes, of y up to 128). There are 16 registers of 256 bits, not 32 of 512: a row of z (14
 * registers for 50 doubles) is summed in column blocks of up to 8 registers, one set each (the
 * AVX-512 kernels' alternate sets would not fit); the blocks are the outer loop, so the rows of
 * W1 or dz1 they read at random stay in cache. Loads of the padded rows are aligned. */

/* a row of ldh in column blocks of this many registers (1..8; ldh / YLANES is even) */
static inline int block_regs(ptrdiff_t ldh)
{
    ptrdiff_t nv = ldh / YLANES;
    return (int)(nv <= 8 ? nv : nv / 2);
}

/* acc[v], v < nb: the sum over q in [q0, q1) of a[q] times register v of the row
 * rows + (idx ? idx[q] : q) * ld */
__attribute__((target("avx2,fma"), always_inline)) static inline void
sum_rows_avx2(yreal *acc, const real *a, const int32_t *idx, int64_t q0, int64_t q1,
              const real *rows, ptrdiff_t ld, const int nb)
{
#pragma GCC unroll 8
    for (int v = 0; v < nb; v++)
        acc[v] = Y(setzero)();
    for (int64_t q = q0; q < q1; q++) {
        const real *row = rows + (idx ? (ptrdiff_t)idx[q] : (ptrdiff_t)q) * ld;
        yreal c = Y(set1)(a[q]);
#pragma GCC unroll 8
        for (int v = 0; v < nb; v++)
            acc[v] = Y(fmadd)(c, Y(load)(row + v * YLANES), acc[v]);
    }
}

/* ReLU as relu_of: the lanes that are not <= 0 (NaN included) kept, the others +0 */
__attribute__((target("avx2,fma"), always_inline)) static inline yreal relu_avx2(yreal a)
{
    return Y(and)(Y(cmp)(a, Y(setzero)(), _CMP_NLE_UQ), a);
}

/* hidden_forward with nb registers a block: bias and activation in registers, one store */
__attribute__((target("avx2,fma"), always_inline)) static inline void
hidden_forward_regs2(const struct work *w, ptrdiff_t n, int relu, const int nb)
{
    ptrdiff_t ldh = w->ldh;
    for (ptrdiff_t j0 = 0; j0 < ldh; j0 += nb * YLANES)
        for (ptrdiff_t r = 0; r < n; r++) {
            yreal acc[8];
            sum_rows_avx2(acc, w->vals, w->cols, w->rowptr[r], w->rowptr[r + 1], w->W1 + j0, ldh,
                          nb);
            real *zr = w->z + r * ldh + j0;
#pragma GCC unroll 8
            for (int v = 0; v < nb; v++) {
                yreal a = Y(add)(acc[v], Y(load)(w->b1 + j0 + v * YLANES));
                Y(store)(zr + v * YLANES, relu ? relu_avx2(a) : vsigmoid_avx2(a));
            }
        }
}

/* gW1 = x^T dz1 from the nonzeros by columns, nb registers a block */
__attribute__((target("avx2,fma"), always_inline)) static inline void
input_grad_regs2(const struct work *w, const int nb)
{
    ptrdiff_t ldh = w->ldh;
    for (ptrdiff_t j0 = 0; j0 < ldh; j0 += nb * YLANES)
        for (ptrdiff_t i = 0; i < w->in; i++) {
            yreal acc[8];
            sum_rows_avx2(acc, w->cvals, w->crows, w->colptr[i], w->colptr[i + 1], w->dz + j0,
                          ldh, nb);
            real *g = w->gW1 + i * ldh + j0;
#pragma GCC unroll 8
            for (int v = 0; v < nb; v++)
                Y(store)(g + v * YLANES, acc[v]);
        }
}

/* y rows [0, n) <- z1 W2, 8 / no rows at a time (no = ldo / YLANES registers a row: 2 or 4),
 * W2's row j loaded once for all of them. Rows past n repeat row n - 1 and are not stored. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
scores_regs2(const struct work *w, ptrdiff_t n, const int no)
{
    const int R = 8 / no;
    ptrdiff_t ldh = w->ldh, ldo = w->ldo, hid = w->hid;
    for (ptrdiff_t r = 0; r < n; r += R) {
        const real *z[4];
        yreal acc[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            z[i] = w->z + (r + i < n ? r + i : n - 1) * ldh;
#pragma GCC unroll 4
            for (int v = 0; v < no; v++)
                acc[i][v] = Y(setzero)();
        }
        for (ptrdiff_t j = 0; j < hid; j++) {
            yreal wj[4];
#pragma GCC unroll 4
            for (int v = 0; v < no; v++)
                wj[v] = Y(load)(w->W2 + j * ldo + v * YLANES);
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                yreal c = Y(set1)(z[i][j]);
#pragma GCC unroll 4
                for (int v = 0; v < no; v++)
                    acc[i][v] = Y(fmadd)(c, wj[v], acc[i][v]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
            if (r + i < n)
#pragma GCC unroll 4
                for (int v = 0; v < no; v++)
                    Y(store)(w->y + (r + i) * ldo + v * YLANES, acc[i][v]);
    }
}

/* gW2 = z1^T dy, 8 / no rows of gW2 at a time (j + R <= ldh: R divides PAD, which divides
 * ldh; the rows past hid are not stored); dz1 = dy W2^T, nb registers a block */
__attribute__((target("avx2,fma"), always_inline)) static inline void
output_grads_regs2(const struct work *w, ptrdiff_t n, const int no, const int nb)
{
    const int R = 8 / no;
    ptrdiff_t ldh = w->ldh, ldo = w->ldo, hid = w->hid, out = w->out;
    for (ptrdiff_t j = 0; j < hid; j += R) {
        yreal acc[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
#pragma GCC unroll 4
            for (int v = 0; v < no; v++)
                acc[i][v] = Y(setzero)();
        for (ptrdiff_t r = 0; r < n; r++) {
            const real *zr = w->z + r * ldh + j;
            yreal dy[4];
#pragma GCC unroll 4
            for (int v = 0; v < no; v++)
                dy[v] = Y(load)(w->y + r * ldo + v * YLANES);
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                yreal c = Y(set1)(zr[i]);
#pragma GCC unroll 4
                for (int v = 0; v < no; v++)
                    acc[i][v] = Y(fmadd)(c, dy[v], acc[i][v]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
            if (j + i < hid)
#pragma GCC unroll 4
                for (int v = 0; v < no; v++)
                    Y(store)(w->gW2 + (j + i) * ldo + v * YLANES, acc[i][v]);
    }
    for (ptrdiff_t j0 = 0; j0 < ldh; j0 += nb * YLANES)
        for (ptrdiff_t r = 0; r < n; r++) {
            yreal acc[8];
            sum_rows_avx2(acc, w->y + r * ldo, NULL, 0, out, w->W2T + j0, ldh, nb);
#pragma GCC unroll 8
            for (int v = 0; v < nb; v++)
                Y(store)(w->dz + r * ldh + j0 + v * YLANES, acc[v]);
        }
}

/* softmax_ce for rows of no = ldo / YLANES registers, as softmax_ce_regs: the padding lanes
 * (whose exp may be anything, inf included) cleared by a mask before the sum */
__attribute__((target("avx2,fma"), always_inline)) static inline double
softmax_ce_regs2(const struct work *w, const int64_t *t, const int64_t *idx, ptrdiff_t n,
                 const int no)
{
    ptrdiff_t ldo = w->ldo, out = w->out;
    real scale = (real)(1.0 / (double)n);
    yreal lanes[4];
#pragma GCC unroll 4
    for (int v = 0; v < no; v++)
        lanes[v] = Y(castsi256)(ylanes_below(out - v * YLANES));
    double total = 0;
    for (ptrdiff_t r = 0; r < n; r++) {
        real *yr = w->y + r * ldo;
        yreal y[4];
#pragma GCC unroll 4
        for (int v = 0; v < no; v++)
            y[v] = Y(add)(Y(load)(yr + v * YLANES), Y(load)(w->b2 + v * YLANES));
        /* the max as softmax_ce.c takes it: NaN never wins (the NaN still reaches the sum) */
        real mx = yr[0] + w->b2[0];
        for (ptrdiff_t k = 1; k < out; k++) {
            real v = yr[k] + w->b2[k];
            mx = v > mx ? v : mx;
        }
        yreal sum = Y(setzero)();
#pragma GCC unroll 4
        for (int v = 0; v < no; v++) {
            y[v] = Y(and)(lanes[v], vexp_avx2(Y(sub)(y[v], Y(set1)(mx))));
            sum = Y(add)(sum, y[v]);
        }
        real part[YLANES], s = 0;
        Y(storeu)(part, sum);
        for (int l = 0; l < YLANES; l++)
            s += part[l];
        yreal inv = Y(set1)(1 / s);
#pragma GCC unroll 4
        for (int v = 0; v < no; v++)
            Y(store)(yr + v * YLANES, Y(mul)(y[v], inv));
        int64_t label = t[idx[r]];
        real at_label = yr[label];
        total -= vlog((double)at_label + 1e-7);
#pragma GCC unroll 4
        for (int v = 0; v < no; v++)
            Y(store)(yr + v * YLANES, Y(mul)(Y(load)(yr + v * YLANES), Y(set1)(scale)));
        yr[label] = (at_label - 1) * scale;
    }
    return total / (double)n;
}

/* The AVX2 compact_rows, 4 elements at a time: a compare and a movemask give the nonzero lanes,
 * a permute from the table packs them and their columns to the front, full stores write them at
 * m (the lanes past the count are overwritten next or never read; the stores end by the row's
 * end, inside vals and cols) */
__attribute__((target("avx2,fma"))) static void compact_rows_avx2(const struct work *w,
                                                                 const real *x, const int64_t *idx,
                                                                 ptrdiff_t first, ptrdiff_t n,
                                                                 int dense)
{
    int64_t m = 0;
    ptrdiff_t in = w->in;
    const __m128i step = _mm_set1_epi32(4);
    for (ptrdiff_t r = 0; r < n; r++) {
        const real *xr = x + (idx ? idx[r] : first + r) * in;
        if (idx && r + 4 < n) /* the rows are drawn at random: fetch ahead */
            for (ptrdiff_t i = 0; i < in; i += 64 / (ptrdiff_t)sizeof(real))
                __builtin_prefetch(x + idx[r + 4] * in + i);
        w->rowptr[r] = m;
        ptrdiff_t i = 0;
        __m128i col = _mm_setr_epi32(0, 1, 2, 3);
        for (; i + 4 <= in; i += 4, col = _mm_add_epi32(col, step)) {
#ifdef FASTNN_REAL_F32
            __m128 v = _mm_loadu_ps(xr + i);
            int k = dense ? 15 : _mm_movemask_ps(_mm_cmp_ps(v, _mm_setzero_ps(), _CMP_NEQ_UQ));
            __m128i perm = _mm_load_si128((const __m128i *)compress4_32[k]);
            _mm_storeu_ps(w->vals + m, _mm_permutevar_ps(v, perm));
#else
            __m256d v = _mm256_loadu_pd(xr + i);
            int k = dense ? 15 : _mm256_movemask_pd(_mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_NEQ_UQ));
            __m128i perm = _mm_load_si128((const __m128i *)compress4_32[k]);
            __m256i pairs = _mm256_load_si256((const __m256i *)compress4_64[k]);
            _mm256_storeu_pd(w->vals + m,
                             _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), pairs)));
#endif
            _mm_storeu_si128((__m128i *)(w->cols + m),
                             _mm_castps_si128(_mm_permutevar_ps(_mm_castsi128_ps(col), perm)));
            m += __builtin_popcount((unsigned)k);
        }
        for (; i < in; i++) {
            w->cols[m] = (int32_t)i;
            w->vals[m] = xr[i];
            m += dense | (xr[i] != 0);
        }
    }
    w->rowptr[n] = m;
}

__attribute__((target("avx2,fma"))) static void hidden_forward_avx2(const struct work *w,
                                                                   ptrdiff_t n, int relu)
{
    switch (block_regs(w->ldh)) {
#define CASE(nb)                                                                                     \
    case nb:                                                                                         \
        hidden_forward_regs2(w, n, relu, nb);                                                        \
        break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    }
}

__attribute__((target("avx2,fma"))) static void input_grad_avx2(const struct work *w)
{
    switch (block_regs(w->ldh)) {
#define CASE(nb)                                                                                     \
    case nb:                                                                                         \
        input_grad_regs2(w, nb);                                                                     \
        break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    }
}

__attribute__((target("avx2,fma"))) static void scores_avx2(const struct work *w, ptrdiff_t n)
{
    if (w->ldo == 2 * YLANES)
        scores_regs2(w, n, 2);
    else
        scores_regs2(w, n, 4);
}

__attribute__((target("avx2,fma"))) static void output_grads_avx2(const struct work *w,
                                                                 ptrdiff_t n)
{
    switch (block_regs(w->ldh) * 2 + (w->ldo == 2 * YLANES ? 0 : 1)) {
#define CASE(nb)                                                                                     \
    case 2 * nb:                                                                                     \
        output_grads_regs2(w, n, 2, nb);                                                             \
        break;                                                                                       \
    case 2 * nb + 1:                                                                                 \
        output_grads_regs2(w, n, 4, nb);                                                             \
        break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    }
}

__attribute__((target("avx2,fma"))) static double softmax_ce_avx2(const struct work *w,
                                                                 const int64_t *t,
                                                                 const int64_t *idx, ptrdiff_t n)
{
    return w->ldo == 2 * YLANES ? softmax_ce_regs2(w, t, idx, n, 2)
                                : softmax_ce_regs2(w, t, idx, n, 4);
}
#endif

static void forward_hidden(const struct work *w, ptrdiff_t n, int relu)
{
#ifdef FASTNN_AVX512
    if (w->regs == SIMD_AVX512) {
        hidden_forward_avx512(w, n, relu);
        return;
    }
    if (w->regs == SIMD_AVX2) {
        hidden_forward_avx2(w, n, relu);
        return;
    }
#endif
    hidden_forward(w, n, relu);
}

/* y rows [0, n) <- z1 W2 (without b2: the softmax adds it, as the per-step path) */
static FASTNN_CLONES void scores_rows(const struct work *w, ptrdiff_t n)
{
    ptrdiff_t ldh = w->ldh, ldo = w->ldo, hid = w->hid;
    for (ptrdiff_t r = 0; r < n; r++) {
        real *restrict yr = w->y + r * ldo;
        const real *zr = w->z + r * ldh;
        for (ptrdiff_t k = 0; k < ldo; k++)
            yr[k] = 0;
        for (ptrdiff_t j = 0; j < hid; j++) {
            real zj = zr[j];
            const real *restrict wj = w->W2 + j * ldo;
            for (ptrdiff_t k = 0; k < ldo; k++)
                yr[k] += zj * wj[k];
        }
    }
}

/* y rows [0, n) <- softmax(y + b2), then dy = (y - onehot(t)) / n in place; returns the mean
 * loss. As softmax_ce.c: exp(s - max) times the reciprocal of the sum, the loss in float64. */
static FASTNN_CLONES double softmax_ce_rows(const struct work *w, const int64_t *t, const int64_t *idx,
                                       ptrdiff_t n)
{
    ptrdiff_t ldo = w->ldo, out = w->out;
    real scale = (real)(1.0 / (double)n);
    double total = 0;
    for (ptrdiff_t r = 0; r < n; r++) {
        real *yr = w->y + r * ldo;
        for (ptrdiff_t k = 0; k < out; k++)
            yr[k] += w->b2[k];
        real m = yr[0];
        for (ptrdiff_t k = 1; k < out; k++)
            m = yr[k] > m ? yr[k] : m;
        real sum = 0;
        for (ptrdiff_t k = 0; k < out; k++) {
            yr[k] = vexp(yr[k] - m);
            sum += yr[k];
        }
        real inv = 1 / sum;
        for (ptrdiff_t k = 0; k < out; k++)
            yr[k] *= inv;
        int64_t label = t[idx[r]];
        real at_label = yr[label];
        total -= vlog((double)at_label + 1e-7);
        for (ptrdiff_t k = 0; k < out; k++)
            yr[k] *= scale;
        yr[label] = (at_label - 1) * scale;
    }
    return total / (double)n;
}

/* ------------------------------------------------------------------ backward */

/* gW2 = z1^T dy, dz1 = dy W2^T (W2T: W2 before the update) */
static FASTNN_CLONES void output_grads_rows(const struct work *w, ptrdiff_t n)
{
    ptrdiff_t ldh = w->ldh, ldo = w->ldo, hid = w->hid, out = w->out;
    for (ptrdiff_t j = 0; j < hid * ldo; j++)
        w->gW2[j] = 0;
    for (ptrdiff_t r = 0; r < n; r++) {
        const real *restrict dy = w->y + r * ldo, *zr = w->z + r * ldh;
        for (ptrdiff_t j = 0; j < hid; j++) {
            real zj = zr[j];
            real *restrict g = w->gW2 + j * ldo;
            for (ptrdiff_t k = 0; k < ldo; k++)
                g[k] += zj * dy[k];
        }
        real *restrict d = w->dz + r * ldh;
        for (ptrdiff_t j = 0; j < ldh; j++)
            d[j] = 0;
        for (ptrdiff_t k = 0; k < out; k++) {
            real a = dy[k];
            const real *restrict wk = w->W2T + k * ldh;
            for (ptrdiff_t j = 0; j < ldh; j++)
                d[j] += a * wk[j];
        }
    }
}

/* dz1 *= act'(z1), gb1 = its column sums (acc: float64); returns 0 when some dz1 is not finite */
static FASTNN_CLONES int act_backward(real *restrict dz, const real *restrict z, ptrdiff_t n,
                                      ptrdiff_t ldh, int relu, double *restrict acc)
{
    int bad = 0;
    for (ptrdiff_t j = 0; j < ldh; j++)
        acc[j] = 0;
    for (ptrdiff_t r = 0; r < n; r++) {
        real *restrict d = dz + r * ldh;
        const real *restrict zr = z + r * ldh;
        if (relu)
            for (ptrdiff_t j = 0; j < ldh; j++)
                d[j] = !(zr[j] <= 0) ? d[j] : 0;
        else
            for (ptrdiff_t j = 0; j < ldh; j++)
                d[j] = d[j] * (1 - zr[j]) * zr[j];
        for (ptrdiff_t j = 0; j < ldh; j++)
            acc[j] += d[j];
    }
    /* a non-finite dz1 makes its column's sum non-finite (a finite sum that overflows only
       sends the step down the dense path) */
    for (ptrdiff_t j = 0; j < ldh; j++)
        bad |= !(acc[j] - acc[j] == 0);
    return !bad;
}

static int hidden_backward(const struct work *w, ptrdiff_t n, int relu)
{
    int finite = act_backward(w->dz, w->z, n, w->ldh, relu, w->acc1);
    for (ptrdiff_t j = 0; j < w->ldh; j++)
        w->gb1[j] = (real)w->acc1[j];
    return finite;
}

static FASTNN_CLONES void input_grad(const struct work *w, ptrdiff_t n)
{
    ptrdiff_t ldh = w->ldh;
    for (ptrdiff_t r = 0; r < n; r++) {
        const real *restrict d = w->dz + r * ldh;
        for (int64_t q = w->rowptr[r]; q < w->rowptr[r + 1]; q++) {
            real a = w->vals[q];
            real *restrict g = w->gW1 + (ptrdiff_t)w->cols[q] * ldh;
            for (ptrdiff_t j = 0; j < ldh; j++)
                g[j] += a * d[j];
        }
    }
}

/* the compacted rows (CSR) by columns (CSC), each column's rows in ascending order */
static void by_columns(const struct work *w, ptrdiff_t n)
{
    int64_t *colptr = w->colptr;
    for (ptrdiff_t i = 0; i <= w->in; i++)
        colptr[i] = 0;
    for (int64_t q = 0; q < w->rowptr[n]; q++)
        colptr[w->cols[q] + 1]++;
    for (ptrdiff_t i = 0; i < w->in; i++)
        colptr[i + 1] += colptr[i];
    for (ptrdiff_t r = 0; r < n; r++)
        for (int64_t q = w->rowptr[r]; q < w->rowptr[r + 1]; q++) {
            int64_t p = colptr[w->cols[q]]++;
            w->crows[p] = (int32_t)r;
            w->cvals[p] = w->vals[q];
        }
    for (ptrdiff_t i = w->in; i > 0; i--) /* the fill advanced each start to the next column's */
        colptr[i] = colptr[i - 1];
    colptr[0] = 0;
}

static void input_gradient(const struct work *w, ptrdiff_t n)
{
#ifdef FASTNN_AVX512
    if (w->regs == SIMD_AVX512) {
        by_columns(w, n);
        input_grad_avx512(w, n);
        return;
    }
    if (w->regs == SIMD_AVX2) {
        by_columns(w, n);
        input_grad_avx2(w);
        return;
    }
#endif
    memset(w->gW1, 0, (size_t)(w->in * w->ldh) * sizeof(real));
    input_grad(w, n);
}

static void compact_rows(const struct work *w, const real *x, const int64_t *idx, ptrdiff_t first,
                         ptrdiff_t n, int dense)
{
#ifdef FASTNN_AVX512
    if (w->simd == SIMD_AVX512) {
        compact_rows_avx512(w, x, idx, first, n, dense);
        return;
    }
    if (w->simd == SIMD_AVX2) {
        compact_rows_avx2(w, x, idx, first, n, dense);
        return;
    }
#endif
    compact_rows_plain(w, x, idx, first, n, dense);
}

static void scores(const struct work *w, ptrdiff_t n)
{
#ifdef FASTNN_AVX512
    if (w->regs == SIMD_AVX512) {
        scores_avx512(w, n);
        return;
    }
    if (w->regs == SIMD_AVX2) {
        scores_avx2(w, n);
        return;
    }
#endif
    scores_rows(w, n);
}

/* gb2 = the column sums of dy (float64 sums), and output_grads_rows */
static void output_grads(const struct work *w, ptrdiff_t n)
{
    for (ptrdiff_t k = 0; k < w->ldo; k++)
        w->acc2[k] = 0;
    for (ptrdiff_t r = 0; r < n; r++)
        for (ptrdiff_t k = 0; k < w->ldo; k++)
            w->acc2[k] += w->y[r * w->ldo + k];
    for (ptrdiff_t k = 0; k < w->ldo; k++)
        w->gb2[k] = (real)w->acc2[k];
#ifdef FASTNN_AVX512
    if (w->regs == SIMD_AVX512) {
        output_grads_avx512(w, n);
        return;
    }
    if (w->regs == SIMD_AVX2) {
        output_grads_avx2(w, n);
        return;
    }
#endif
    output_grads_rows(w, n);
}

static double softmax_ce(const struct work *w, const int64_t *t, const int64_t *idx, ptrdiff_t n)
{
#ifdef FASTNN_AVX512
    if (w->regs == SIMD_AVX512)
        return softmax_ce_avx512(w, t, idx, n);
    if (w->regs == SIMD_AVX2)
        return softmax_ce_avx2(w, t, idx, n);
#endif
    return softmax_ce_rows(w, t, idx, n);
}

/* p -= lr * g over n elements (lr * g rounded first: this file has no FP contraction); returns 1
 * when every new p is finite */
static FASTNN_CLONES int sgd(real *restrict p, const real *restrict g, real lr, ptrdiff_t n)
{
    int bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        p[i] -= lr * g[i];
        bad |= !(p[i] - p[i] == 0);
    }
    return !bad;
}

static void transpose_W2(const struct work *w)
{
    for (ptrdiff_t k = 0; k < w->out; k++) {
        real *row = w->W2T + k * w->ldh;
        for (ptrdiff_t j = 0; j < w->hid; j++)
            row[j] = w->W2[j * w->ldo + k];
        for (ptrdiff_t j = w->hid; j < w->ldh; j++)
            row[j] = 0;
    }
}

static int all_finite_n(const real *a, ptrdiff_t n)
{
    int bad = 0;
    for (ptrdiff_t i = 0; i < n; i++)
        bad |= !(a[i] - a[i] == 0);
    return !bad;
}

static ptrdiff_t check_labels(const int64_t *t, ptrdiff_t rows, ptrdiff_t out)
{
    for (ptrdiff_t i = 0; i < rows; i++)
        if (t[i] < 0 || t[i] >= out)
            return i;
    return FASTNN_OK;
}

/* Returns FASTNN_OK; FASTNN_BAD_INDEX (an entry of batches outside [0, rows)), a row of t with a
 * bad label, or FASTNN_NO_MEMORY (work too small), all before anything is written. */
ptrdiff_t FN(twolayer_sgd_steps)(const real *x, const int64_t *t, ptrdiff_t rows, ptrdiff_t in,
                                 ptrdiff_t hid, ptrdiff_t out, const int64_t *batches,
                                 ptrdiff_t steps, ptrdiff_t batch, real *W1, real *b1, real *W2,
                                 real *b2, int relu, double lr, double *losses, real *gW1,
                                 real *gb1, real *gW2, real *gb2, void *work, ptrdiff_t work_bytes)
{
    for (ptrdiff_t i = 0; i < steps * batch; i++)
        if (batches[i] < 0 || batches[i] >= rows)
            return FASTNN_BAD_INDEX;
    ptrdiff_t bad = check_labels(t, rows, out);
    if (bad >= 0)
        return bad;
    struct work w;
    if (!open_work(&w, work, work_bytes, batch, in, hid, out))
        return FASTNN_NO_MEMORY;
    if (steps == 0)
        return FASTNN_OK;
    load_params(&w, W1, b1, W2, b2);
    real rate = (real)lr;
    int w1_finite = all_finite_n(w.W1, in * w.ldh);
    for (ptrdiff_t s = 0; s < steps; s++) {
        const int64_t *idx = batches + s * batch;
        int dense = !w1_finite;
        compact_rows(&w, x, idx, 0, batch, dense);
        forward_hidden(&w, batch, relu);
        scores(&w, batch);
        losses[s] = softmax_ce(&w, t, idx, batch);
        transpose_W2(&w);
        output_grads(&w, batch);
        if (!hidden_backward(&w, batch, relu) && !dense)
            compact_rows(&w, x, idx, 0, batch, 1);
        input_gradient(&w, batch);
        w1_finite = sgd(w.W1, w.gW1, rate, in * w.ldh);
        sgd(w.b1, w.gb1, rate, w.ldh);
        sgd(w.W2, w.gW2, rate, hid * w.ldo);
        sgd(w.b2, w.gb2, rate, w.ldo);
    }
    unpad_rows(w.W1, in, w.ldh, W1, hid);
    unpad_rows(w.b1, 1, w.ldh, b1, hid);
    unpad_rows(w.W2, hid, w.ldo, W2, out);
    unpad_rows(w.b2, 1, w.ldo, b2, out);
    unpad_rows(w.gW1, in, w.ldh, gW1, hid);
    unpad_rows(w.gb1, 1, w.ldh, gb1, hid);
    unpad_rows(w.gW2, hid, w.ldo, gW2, out);
    unpad_rows(w.gb2, 1, w.ldo, gb2, out);
    return FASTNN_OK;
}

/* The first index of the highest score of row y (out of n), NaN counting as highest, as
 * np.argmax */
static inline ptrdiff_t argmax(const real *y, ptrdiff_t n)
{
    ptrdiff_t best = 0;
    for (ptrdiff_t k = 1; k < n; k++)
        if (!(y[best] != y[best]) && (y[k] > y[best] || y[k] != y[k]))
            best = k;
    return best;
}

/* *correct = the rows of x (rows, in) whose highest score z1 W2 + b2 is their label. Returns
 * FASTNN_OK, the first row with a bad label, or FASTNN_NO_MEMORY (work too small). */
ptrdiff_t FN(twolayer_accuracy)(const real *x, const int64_t *t, ptrdiff_t rows, ptrdiff_t in,
                                ptrdiff_t hid, ptrdiff_t out, const real *W1, const real *b1,
                                const real *W2, const real *b2, int relu, int64_t *correct,
                                void *work, ptrdiff_t work_bytes)
{
    ptrdiff_t bad = check_labels(t, rows, out);
    if (bad >= 0)
        return bad;
    struct work w;
    if (!open_work(&w, work, work_bytes, TWOLAYER_EVAL_ROWS, in, hid, out))
        return FASTNN_NO_MEMORY;
    load_params(&w, W1, b1, W2, b2);
    int dense = !all_finite_n(w.W1, in * w.ldh);
    int64_t hits = 0;
    for (ptrdiff_t first = 0; first < rows; first += TWOLAYER_EVAL_ROWS) {
        ptrdiff_t n = rows - first < TWOLAYER_EVAL_ROWS ? rows - first : TWOLAYER_EVAL_ROWS;
        compact_rows(&w, x, NULL, first, n, dense);
        forward_hidden(&w, n, relu);
        scores(&w, n);
        for (ptrdiff_t r = 0; r < n; r++) {
            real *yr = w.y + r * w.ldo;
            for (ptrdiff_t k = 0; k < out; k++)
                yr[k] += w.b2[k];
            hits += argmax(yr, out) == t[first + r];
        }
    }
    *correct = hits;
    return FASTNN_OK;
}
