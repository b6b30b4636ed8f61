/* softmax_ce.c: the SoftmaxWithLoss layer fused: softmax and cross-entropy forward in one pass over
 * each row of logits, and the backward (y - onehot(t)) * dout / N in one pass.
 *
 * Contract (the Python face, src/fastnn/layers.py, checks shapes and dtypes): x, y and dx are
 * C-contiguous (n, c) with n, c >= 1; t holds n index labels; bias is NULL or c values added to
 * every row of x first (the last Affine layer's bias, fused). Every label is checked here before
 * anything is written: a kernel returns FASTNN_OK or the first row whose label is outside [0, c)
 * (real.h).
 *
 * Forward per row: m = max(x); y = exp(x - m) / sum(exp(x - m)) (x - m <= 0, so exp cannot
 * overflow); loss_n = -log(y[t_n] + 1e-7), the book's guard. The returned loss is the batch mean.
 * A NaN logit makes the row's sum and so the whole row NaN, as in the reference; a row of -inf gives
 * -inf - -inf = NaN, also as in the reference. Dividing by the sum is done as a multiplication by its
 * reciprocal (within an ulp of the reference's division, and several times cheaper).
 * Backward: dx = y * dout / n, minus dout / n at the label: the book's (y - onehot(t)) * dout / n.
 */
#include <math.h>

#include "fastnn.h"
#include "vexp.h"

/* The row max and sum run on GCC's vector extension, ACCS registers of 64 bytes at a time:
 * independent accumulators, so the loops are bound by loads, not by the latency of one compare or
 * add chain. (A plain max loop is not vectorised without -ffast-math-like flags.) The max is a
 * compare and a blend per register; NaN never wins a comparison, and a NaN logit still makes its
 * row NaN through the sum of exps. */
#ifdef FASTNN_REAL_F32
typedef int32_t ireal;
#else
typedef int64_t ireal;
#endif
typedef real rvec __attribute__((vector_size(64)));
typedef ireal ivec __attribute__((vector_size(64)));
#define RVEC_LANES ((ptrdiff_t)(sizeof(rvec) / sizeof(real)))
#define ACCS 4
#define ACC_SPAN (ACCS * RVEC_LANES)

static inline void load(rvec *v, const real *p)
{
    memcpy(v, p, sizeof *v);
}

/* *a = max(*a, *b) lane by lane (pointers: no 64-byte vectors passed by value, whose ABI differs
 * between the clones) */
static inline void vmax(rvec *a, const rvec *b)
{
    ivec greater = *b > *a;
    *a = (rvec)(((ivec)*b & greater) | ((ivec)*a & ~greater));
}

/* ACCS registers at a time, then one (short rows), then the tail */
static inline real row_max(const real *x, ptrdiff_t c)
{
    real m = x[0];
    ptrdiff_t j = 0;
    if (c >= RVEC_LANES) {
        rvec acc[ACCS], v;
        for (int a = 0; a < ACCS; a++)
            load(&acc[a], x);
        for (j = RVEC_LANES; j + ACC_SPAN <= c; j += ACC_SPAN)
            for (int a = 0; a < ACCS; a++) {
                load(&v, x + j + a * RVEC_LANES);
                vmax(&acc[a], &v);
            }
        for (; j + RVEC_LANES <= c; j += RVEC_LANES) {
            load(&v, x + j);
            vmax(&acc[0], &v);
        }
        for (int a = 1; a < ACCS; a++)
            vmax(&acc[0], &acc[a]);
        for (ptrdiff_t l = 0; l < RVEC_LANES; l++)
            m = acc[0][l] > m ? acc[0][l] : m;
    }
    for (; j < c; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

static inline real row_sum(const real *y, ptrdiff_t c)
{
    rvec acc[ACCS] = {{0}}, v;
    ptrdiff_t j = 0;
    for (; j + ACC_SPAN <= c; j += ACC_SPAN)
        for (int a = 0; a < ACCS; a++) {
            load(&v, y + j + a * RVEC_LANES);
            acc[a] += v;
        }
    for (; j + RVEC_LANES <= c; j += RVEC_LANES) {
        load(&v, y + j);
        acc[0] += v;
    }
    real s = 0;
    for (; j < c; j++)
        s += y[j];
    for (int a = 1; a < ACCS; a++)
        acc[0] += acc[a];
    for (ptrdiff_t l = 0; l < RVEC_LANES; l++)
        s += acc[0][l];
    return s;
}

static inline void row_scale(real *y, real scale, ptrdiff_t c)
{
    for (ptrdiff_t j = 0; j < c; j++)
        y[j] *= scale;
}

static ptrdiff_t first_bad_label(const int64_t *t, ptrdiff_t n, ptrdiff_t c)
{
    for (ptrdiff_t i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= c)
            return i;
    return FASTNN_OK;
}

/* y = exp(x - shift) over a row of n, and returns the max of the next row's n elements: with
 * AVX-512 in one loop, so that the next row's first reads from memory overlap this row's exps
 * instead of stalling a max pass of their own ((1000, 1000) forward, C harness: 0.96 -> 0.89 ms).
 * max(v, acc) returns acc when v is NaN: NaN never wins, as in row_max (and a NaN still makes its
 * row NaN through the sum of exps). */
#ifdef FASTNN_AVX512
__attribute__((target("avx512f"))) static real exp_row_next_max_avx512(const real *x, real shift,
                                                                       real *y, ptrdiff_t n,
                                                                       const real *next)
{
    vreal s = V(set1)(shift), acc = V(set1)(-INFINITY);
    ptrdiff_t j = 0;
    for (; j + VLANES <= n; j += VLANES) {
        acc = V(max)(V(loadu)(next + j), acc);
        V(storeu)(y + j, vexp_avx512(V(sub)(V(loadu)(x + j), s)));
    }
    if (j < n) {
        vmask m = (vmask)((1u << (n - j)) - 1);
        acc = V(mask_max)(acc, m, V(maskz_loadu)(m, next + j), acc);
        V(mask_storeu)(y + j, m, vexp_avx512(V(sub)(V(maskz_loadu)(m, x + j), s)));
    }
    return V(reduce_max)(acc);
}
#endif

#ifdef FASTNN_AVX2
/* The same with AVX2. The last register's masked-out lanes load as 0 and must not reach the
 * max: the blend keeps acc there. */
__attribute__((target("avx2,fma"))) static real exp_row_next_max_avx2(const real *x, real shift,
                                                                    real *y, ptrdiff_t n,
                                                                    const real *next)
{
    yreal s = Y(set1)(shift), acc = Y(set1)(-INFINITY);
    ptrdiff_t j = 0;
    for (; j + YLANES <= n; j += YLANES) {
        acc = Y(max)(Y(loadu)(next + j), acc);
        Y(storeu)(y + j, vexp_avx2(Y(sub)(Y(loadu)(x + j), s)));
    }
    if (j < n) {
        __m256i m = ylanes_below(n - j);
        acc = Y(blendv)(acc, Y(max)(Y(maskload)(next + j, m), acc), Y(castsi256)(m));
        Y(maskstore)(y + j, m, vexp_avx2(Y(sub)(Y(maskload)(x + j, m), s)));
    }
    real lanes[YLANES];
    Y(storeu)(lanes, acc);
    real mx = lanes[0];
    for (int l = 1; l < YLANES; l++)
        mx = lanes[l] > mx ? lanes[l] : mx;
    return mx;
}
#endif

static inline real exp_row_next_max(const real *x, real shift, real *y, ptrdiff_t n,
                                    const real *next, int simd)
{
#ifdef FASTNN_AVX512
    if (simd == SIMD_AVX512)
        return exp_row_next_max_avx512(x, shift, y, n, next);
    if (simd == SIMD_AVX2)
        return exp_row_next_max_avx2(x, shift, y, n, next);
#endif
    vexp_span(x, shift, y, n, simd);
    return row_max(next, n);
}

/* Rows go in blocks of about BLOCK elements: first y = x - max per row, then one flat exp sweep
 * over the block (a single vector loop, also when rows are short: C = 10 would otherwise spend its
 * time in scalar loop tails), then the sum, scale and loss per row, all while the block is in L1. */
#define BLOCK 2048
#define LONG_ROW 64

/* rows [lo, hi): fills y, returns the sum of the rows' losses */
static FASTNN_CLONES double forward_rows(const real *x, const real *bias, const int64_t *t, real *y,
                                         ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t c, int simd)
{
    ptrdiff_t rows_per_block = c >= BLOCK ? 1 : BLOCK / c;
    double total = 0;
    real next_max = 0; /* the max of row i when it was found with row i - 1's exps */
    int have_next_max = 0;
    for (ptrdiff_t b = lo; b < hi; b += rows_per_block) {
        ptrdiff_t e = b + rows_per_block < hi ? b + rows_per_block : hi;
        for (ptrdiff_t i = b; i < e; i++) {
            const real *xi = x + i * c;
            real *yi = y + i * c;
            if (bias) { /* logits = x + bias, formed in y */
                for (ptrdiff_t j = 0; j < c; j++)
                    yi[j] = xi[j] + bias[j];
                xi = yi;
            }
            if (c < LONG_ROW) { /* short rows: the exps come below, for the whole block */
                real m = row_max(xi, c);
                for (ptrdiff_t j = 0; j < c; j++)
                    yi[j] = xi[j] - m;
                continue;
            }
            real m = have_next_max ? next_max : row_max(xi, c);
            have_next_max = 0;
            if (bias || i + 1 == hi) /* long rows: subtract and exp in one pass */
                vexp_span(xi, m, yi, c, simd);
            else { /* and the next row's max with it (its logits are x's row) */
                next_max = exp_row_next_max(xi, m, yi, c, xi + c, simd);
                have_next_max = 1;
            }
        }
        real *yb = y + b * c;
        if (c < LONG_ROW) /* short rows: one exp sweep over the block, without a tail per row */
            vexp_span(yb, 0, yb, (e - b) * c, simd);
        double guarded[BLOCK]; /* y[i, t_i] + 1e-7, then its log: one vector loop for the block */
        for (ptrdiff_t i = b; i < e; i++) {
            real *yi = y + i * c;
            row_scale(yi, 1 / row_sum(yi, c), c);
            guarded[i - b] = (double)yi[t[i]] + 1e-7;
        }
        for (ptrdiff_t k = 0; k < e - b; k++)
            guarded[k] = vlog(guarded[k]);
        for (ptrdiff_t k = 0; k < e - b; k++)
            total -= guarded[k];
    }
    return total;
}

ptrdiff_t FN(softmax_ce_forward)(const real *x, const real *bias, const int64_t *t, real *y,
                                 ptrdiff_t n, ptrdiff_t c, double *loss)
{
    ptrdiff_t bad = first_bad_label(t, n, c);
    if (bad >= 0)
        return bad;
    int nt = n * c >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
    int simd = simd_level();
    double total = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : total) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        thread_block(b, nt, n, &lo, &hi);
        if (lo < hi)
            total += forward_rows(x, bias, t, y, lo, hi, c, simd);
    }
    *loss = total / (double)n;
    return FASTNN_OK;
}

static inline void row_backward(const real *restrict y, ptrdiff_t label, real scale,
                                       real *restrict dx, ptrdiff_t c)
{
    for (ptrdiff_t j = 0; j < c; j++)
        dx[j] = y[j] * scale;
    dx[label] = (y[label] - 1) * scale;
}

static FASTNN_CLONES void backward_rows(const real *y, const int64_t *t, real scale, real *dx,
                                        ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t c)
{
    for (ptrdiff_t i = lo; i < hi; i++)
        row_backward(y + i * c, (ptrdiff_t)t[i], scale, dx + i * c, c);
}

ptrdiff_t FN(softmax_ce_backward)(const real *y, const int64_t *t, double dout, real *dx, ptrdiff_t n,
                                  ptrdiff_t c)
{
    ptrdiff_t bad = first_bad_label(t, n, c);
    if (bad >= 0)
        return bad;
    real scale = (real)(dout / (double)n);
    int nt = n * c >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        thread_block(b, nt, n, &lo, &hi);
        if (lo < hi)
            backward_rows(y, t, scale, dx, lo, hi, c);
    }
    return FASTNN_OK;
}
