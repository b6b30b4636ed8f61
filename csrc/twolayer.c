/* twolayer.c: the two-layer network's own kernels (src/fastnn/models.py).
 *
 * Network: a1 = x W1 + b1 (N, H); z1 = act(a1), act = sigmoid or relu; s = z1 W2 + b2 (N, O);
 * loss = mean_n -log(softmax(s_n)[t_n] + 1e-7). The matrix products stay in NumPy's BLAS; these
 * kernels fuse the elementwise work around them, and compute the model's numerical gradient.
 *
 * Contract (checked by _core.pyx): C-contiguous buffers of the sizes named, labels in [0, O)
 * (checked again here before anything is written).
 */
#include <math.h>
#include <stdlib.h>

#include "fastnn.h"
#include "vexp.h"

/* ReLU keeps NaN as the reference's np.maximum(0, x) does: !(v <= 0) is true for NaN */
static inline real relu_of(real v)
{
    return !(v <= 0) ? v : 0;
}

/* a (n, h) <- act(a + b): the hidden layer's bias add and activation in one pass */
static FASTNN_CLONES void bias_act_rows(real *a, const real *b, ptrdiff_t lo, ptrdiff_t hi,
                                        ptrdiff_t h, int relu, int avx512)
{
    for (ptrdiff_t i = lo; i < hi; i++) {
        real *row = a + i * h;
        if (relu)
            for (ptrdiff_t j = 0; j < h; j++)
                row[j] = relu_of(row[j] + b[j]);
        else
            vsigmoid_span(row, b, row, h, avx512);
    }
}

void FN(bias_act_forward)(real *a, const real *b, ptrdiff_t n, ptrdiff_t h, int relu)
{
    int nt = n * h >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
    int avx512 = fastnn_avx512();
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int k = 0; k < nt; k++) {
        ptrdiff_t lo, hi;
        thread_block(k, nt, n, &lo, &hi);
        if (lo < hi)
            bias_act_rows(a, b, lo, hi, h, relu, avx512);
    }
}

/* dz (n, h) <- dz * act'(z) in place, db[j] += sum of the new dz over rows [lo, hi) (float64) */
static FASTNN_CLONES void act_backward_rows(real *dz, const real *z, ptrdiff_t lo, ptrdiff_t hi,
                                            ptrdiff_t h, int relu, double *restrict acc)
{
    for (ptrdiff_t i = lo; i < hi; i++) {
        real *d = dz + i * h;
        const real *zi = z + i * h;
        if (relu)
            for (ptrdiff_t j = 0; j < h; j++)
                d[j] = !(zi[j] <= 0) ? d[j] : 0; /* the Relu layer's mask x <= 0 */
        else
            for (ptrdiff_t j = 0; j < h; j++)
                d[j] = d[j] * (1 - zi[j]) * zi[j];
        for (ptrdiff_t j = 0; j < h; j++)
            acc[j] += d[j];
    }
}

/* The hidden layer's backward fused with its bias gradient. Serial over rows: db sums rows in
 * order, so the result does not depend on the thread count. Returns FASTNN_OK, or
 * FASTNN_NO_MEMORY before anything is written. */
ptrdiff_t FN(act_backward_bias)(real *dz, const real *z, ptrdiff_t n, ptrdiff_t h, int relu, real *db)
{
    double *acc = calloc((size_t)(h > 0 ? h : 1), sizeof *acc);
    if (!acc)
        return FASTNN_NO_MEMORY;
    act_backward_rows(dz, z, 0, n, h, relu, acc);
    for (ptrdiff_t j = 0; j < h; j++)
        db[j] = (real)acc[j];
    free(acc);
    return FASTNN_OK;
}

/* 1 when every element of a is finite. The sparse products below skip zeros of x, which is only
 * what BLAS computes when the other factor is finite (0 * inf = NaN): models.py checks first. */
static FASTNN_CLONES int all_finite_span(const real *a, ptrdiff_t n)
{
    int bad = 0;
    for (ptrdiff_t i = 0; i < n; i++)
        bad |= !(a[i] - a[i] == 0);
    return !bad;
}

int FN(all_finite)(const real *a, ptrdiff_t n)
{
    return all_finite_span(a, n);
}

/* ------------------------------------------------------------------ products with a sparse x
 *
 * MNIST images are ~80% zero pixels. The first layer's two products with the input, x W1 forward
 * and x^T dz for dW1 backward, do a fifth of a dense product's work when zero pixels are skipped.
 * sparse_index lists x's nonzeros once per step, by rows (CSR: rowptr, cols, vals) and by columns
 * (CSC: colptr, rows, cvals). sparse_matmul forms out[r, :] = sum_i x[r, i] W[i, :] from the
 * rows, sparse_t_matmul dW[i, :] = sum_r x[r, i] d[r, :] from the columns (sparse_combine: every
 * output row is written once; with AVX-512 and a narrow h, summed in registers). models.py takes
 * this path when x is sparse enough, otherwise NumPy's BLAS; both sum the same products, in
 * another order.
 */

/* Appends the nonzeros of row xr (in elements) to cols/vals from m on, and sets `bit` in word[i]
 * for each nonzero xr[i]; returns the new m. Portable version: branch-free, every element
 * written, the count advanced only for nonzeros. */
static int64_t compact_row(const real *xr, ptrdiff_t in, int64_t *cols, real *vals, int64_t m,
                           uint64_t *word, uint64_t bit)
{
    for (ptrdiff_t i = 0; i < in; i++) {
        cols[m] = i;
        vals[m] = xr[i];
        m += xr[i] != 0;
        word[i] |= xr[i] != 0 ? bit : 0;
    }
    return m;
}

#ifdef FASTNN_AVX512
/* AVX-512 version: a compare gives the nonzero lanes of 8 (16) elements, a compress packs them
 * and their indices to the front of a register, a full store writes them at m (the arrays have
 * room: the lanes past the count are overwritten later or never read). Register compresses, not
 * memory ones, which are microcoded on some CPUs. */
__attribute__((target("avx512f"))) static int64_t compact_row_avx512(const real *xr, ptrdiff_t in,
                                                                     int64_t *cols, real *vals,
                                                                     int64_t m, uint64_t *word,
                                                                     uint64_t bit)
{
    const __m512i bits = _mm512_set1_epi64((long long)bit);
#ifdef FASTNN_REAL_F32
    const ptrdiff_t lanes = 16;
    __m512i idx_lo = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7), eight = _mm512_set1_epi64(8);
    ptrdiff_t i = 0;
    for (; i + lanes <= in; i += lanes) {
        __m512 v = _mm512_loadu_ps(xr + i);
        __mmask16 k = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        __m512i lo = _mm512_add_epi64(idx_lo, _mm512_set1_epi64(i)), hi = _mm512_add_epi64(lo, eight);
        _mm512_storeu_ps(vals + m, _mm512_maskz_compress_ps(k, v));
        int c = __builtin_popcount(k & 0xff);
        _mm512_storeu_si512(cols + m, _mm512_maskz_compress_epi64((__mmask8)k, lo));
        _mm512_storeu_si512(cols + m + c, _mm512_maskz_compress_epi64((__mmask8)(k >> 8), hi));
        m += __builtin_popcount(k);
        for (int half = 0; half < 2; half++) {
            __m512i w = _mm512_loadu_si512(word + i + 8 * half);
            w = _mm512_mask_or_epi64(w, (__mmask8)(k >> (8 * half)), w, bits);
            _mm512_storeu_si512(word + i + 8 * half, w);
        }
    }
#else
    const ptrdiff_t lanes = 8;
    __m512i idx = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    ptrdiff_t i = 0;
    for (; i + lanes <= in; i += lanes) {
        __m512d v = _mm512_loadu_pd(xr + i);
        __mmask8 k = _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_NEQ_UQ);
        _mm512_storeu_pd(vals + m, _mm512_maskz_compress_pd(k, v));
        _mm512_storeu_si512(cols + m, _mm512_maskz_compress_epi64(k, _mm512_add_epi64(idx, _mm512_set1_epi64(i))));
        m += __builtin_popcount(k);
        __m512i w = _mm512_loadu_si512(word + i);
        _mm512_storeu_si512(word + i, _mm512_mask_or_epi64(w, k, w, bits));
    }
#endif
    int64_t start = m;
    m = compact_row(xr + i, in - i, cols + m, vals + m, 0, word + i, bit) + start;
    for (int64_t q = start; q < m; q++) /* the tail's indices are relative to i */
        cols[q] += i;
    return m;
}
#endif

static inline int lowest_set_bit(uint64_t b)
{
#ifdef __GNUC__
    return __builtin_ctzll(b);
#else
    int k = 0;
    for (; !(b & 1); b >>= 1)
        k++;
    return k;
#endif
}

/* The nonzeros of x (n, in): CSR (rowptr, cols, vals) row by row, and CSC (colptr, rows, cvals)
 * column by column from a bit per element (bit r % 64 of bits[(r / 64) * in + i] is set when
 * x[r, i] != 0), so that both are written in order (a counting sort of the CSR scatters its writes
 * over all the columns: fill 51 -> 43 us at 784 inputs, batch 100). cols, vals, rows, cvals have
 * room for n * in + 16, bits for ((n + 63) / 64) * in words. Returns 1 when the nonzeros are all
 * finite, 0 otherwise. */
int FN(sparse_index)(const real *x, ptrdiff_t n, ptrdiff_t in, int64_t *rowptr, int64_t *cols,
                      real *vals, int64_t *colptr, int64_t *rows, real *cvals, uint64_t *bits)
{
    ptrdiff_t words = (n + 63) / 64;
    memset(bits, 0, (size_t)(words * in) * sizeof *bits);
    int64_t m = 0;
#ifdef FASTNN_AVX512
    int wide = fastnn_avx512();
#endif
    for (ptrdiff_t r = 0; r < n; r++) {
        rowptr[r] = m;
        uint64_t *word = bits + (r / 64) * in, bit = 1ULL << (r % 64);
#ifdef FASTNN_AVX512
        if (wide) {
            m = compact_row_avx512(x + r * in, in, cols, vals, m, word, bit);
            continue;
        }
#endif
        m = compact_row(x + r * in, in, cols, vals, m, word, bit);
    }
    rowptr[n] = m;
    int64_t p = 0;
    for (ptrdiff_t i = 0; i < in; i++) {
        colptr[i] = p;
        for (ptrdiff_t w = 0; w < words; w++)
            for (uint64_t b = bits[w * in + i]; b; b &= b - 1) {
                ptrdiff_t r = w * 64 + lowest_set_bit(b);
                rows[p] = r;
                cvals[p++] = x[r * in + i];
            }
    }
    colptr[in] = p;
    return all_finite_span(vals, m);
}

/* y (h) = sum over q in [begin, end) of a[q] X[idx[q], :], four terms at a time */
static inline void combine_rows(real *restrict y, const real *a, const int64_t *idx, int64_t begin,
                                int64_t end, const real *X, ptrdiff_t h)
{
    for (ptrdiff_t j = 0; j < h; j++)
        y[j] = 0;
    int64_t q = begin;
    for (; q + 4 <= end; q += 4) {
        const real *x0 = X + idx[q] * h, *x1 = X + idx[q + 1] * h;
        const real *x2 = X + idx[q + 2] * h, *x3 = X + idx[q + 3] * h;
        real a0 = a[q], a1 = a[q + 1], a2 = a[q + 2], a3 = a[q + 3];
        for (ptrdiff_t j = 0; j < h; j++)
            y[j] += a0 * x0[j] + a1 * x1[j] + a2 * x2[j] + a3 * x3[j];
    }
    for (; q < end; q++)
        for (ptrdiff_t j = 0; j < h; j++)
            y[j] += a[q] * X[idx[q] * h + j];
}

/* out rows [lo, hi): row r combines the rows of X its nonzeros name (ptr, idx, a: CSR or CSC) */
static FASTNN_CLONES void combine_span(const int64_t *ptr, const int64_t *idx, const real *a,
                                       const real *X, real *out, ptrdiff_t lo, ptrdiff_t hi,
                                       ptrdiff_t h)
{
    for (ptrdiff_t r = lo; r < hi; r++)
        combine_rows(out + r * h, a, idx, ptr[r], ptr[r + 1], X, h);
}

#ifdef FASTNN_AVX512
/* AVX-512 version for narrow rows (h up to MAX_REGS registers: 128 doubles, 256 floats; the
 * book's nets have 50 and 100 hidden units): each output row is summed in registers, in two sets
 * of nv accumulators taking alternate terms, and stored once. combine_span (above) loads and
 * stores the row every four terms: with h known only at run time GCC cannot keep it in registers. Here nv is a constant in
 * each case of the switch in combine_span_avx512. X's rows are ldx apart (sparse_combine may pass a
 * padded copy). The last register is masked (a masked load never touches memory past h); the
 * others are plain loads and stores. */
#define MAX_REGS 16
#define PAD_MAX_BYTES (256 * 1024)

/* sum + coef * (register v of row), the last of nv registers holding the lanes `last` */
__attribute__((target("avx512f"), always_inline)) static inline vreal
add_term(vreal sum, vreal coef, const real *row, int v, int nv, vmask last)
{
    const real *p = row + v * VLANES;
    return V(fmadd)(coef, v < nv - 1 ? V(loadu)(p) : V(maskz_loadu)(last, p), sum);
}

__attribute__((target("avx512f"), always_inline)) static inline void
combine_span_regs(const int64_t *ptr, const int64_t *idx, const real *a, const real *X, ptrdiff_t ldx,
                  real *out, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t h, const int nv)
{
    vmask last = (vmask)((1ULL << (h - (nv - 1) * VLANES)) - 1);
    for (ptrdiff_t r = lo; r < hi; r++) {
        vreal even[MAX_REGS], odd[MAX_REGS];
        for (int v = 0; v < nv; v++)
            even[v] = odd[v] = V(setzero)();
        int64_t q = ptr[r];
        for (; q + 2 <= ptr[r + 1]; q += 2) {
            const real *x0 = X + idx[q] * ldx, *x1 = X + idx[q + 1] * ldx;
            vreal a0 = V(set1)(a[q]), a1 = V(set1)(a[q + 1]);
            for (int v = 0; v < nv; v++) {
                even[v] = add_term(even[v], a0, x0, v, nv, last);
                odd[v] = add_term(odd[v], a1, x1, v, nv, last);
            }
        }
        if (q < ptr[r + 1]) {
            const real *x0 = X + idx[q] * ldx;
            vreal a0 = V(set1)(a[q]);
            for (int v = 0; v < nv; v++)
                even[v] = add_term(even[v], a0, x0, v, nv, last);
        }
        real *o = out + r * h;
        for (int v = 0; v < nv - 1; v++)
            V(storeu)(o + v * VLANES, V(add)(even[v], odd[v]));
        V(mask_storeu)(o + (nv - 1) * VLANES, last, V(add)(even[nv - 1], odd[nv - 1]));
    }
}

__attribute__((target("avx512f"))) static void combine_span_avx512(const int64_t *ptr,
                                                                   const int64_t *idx, const real *a,
                                                                   const real *X, ptrdiff_t ldx,
                                                                   real *out, ptrdiff_t lo,
                                                                   ptrdiff_t hi, ptrdiff_t h)
{
    switch ((h + VLANES - 1) / VLANES) {
#define CASE(nv)                                                                                     \
    case nv:                                                                                         \
        combine_span_regs(ptr, idx, a, X, ldx, out, lo, hi, h, nv);                                 \
        break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
        CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14) CASE(15) CASE(16)
#undef CASE
    }
}
#endif

/* out (rows, h): out[r, :] = sum over q in [ptr[r], ptr[r + 1]) of a[q] X[idx[q], :], X (x_rows, h) */
void FN(sparse_combine)(const int64_t *ptr, const int64_t *idx, const real *a, const real *X,
                        real *out, ptrdiff_t rows, ptrdiff_t x_rows, ptrdiff_t h)
{
    int nt = ptr[rows] * h >= 16 * FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
#ifdef FASTNN_AVX512
    int narrow = h >= 1 && h <= MAX_REGS * VLANES && fastnn_avx512();
    /* X's rows are read at random, a register at a time: when h does not fill whole registers,
       most of those loads straddle two cache lines. A small X is copied first to rows padded
       to whole registers, 64-byte aligned (a 784-50-10 step: 20% less time in x^T dz), in
       memory of this call's own (calls may run at once from several threads). */
    ptrdiff_t ldx = h, padded_h = (h + VLANES - 1) / VLANES * VLANES;
    void *block = NULL;
    const real *Xr = X;
    if (narrow && padded_h != h && x_rows * padded_h * (ptrdiff_t)sizeof(real) <= PAD_MAX_BYTES
        && (block = malloc((size_t)(x_rows * padded_h) * sizeof(real) + 63))) {
        real *copy = (real *)(((uintptr_t)block + 63) & ~(uintptr_t)63);
        for (ptrdiff_t r = 0; r < x_rows; r++)
            memcpy(copy + r * padded_h, X + r * h, (size_t)h * sizeof(real));
        Xr = copy;
        ldx = padded_h;
    }
#else
    (void)x_rows;
#endif
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        thread_block(b, nt, rows, &lo, &hi);
        if (lo >= hi)
            continue;
#ifdef FASTNN_AVX512
        if (narrow) {
            combine_span_avx512(ptr, idx, a, Xr, ldx, out, lo, hi, h);
            continue;
        }
#endif
        combine_span(ptr, idx, a, X, out, lo, hi, h);
    }
#ifdef FASTNN_AVX512
    free(block);
#endif
}

#ifndef FASTNN_REAL_F32
/* ------------------------------------------------------------------ the numerical gradient
 *
 * What the book's element-by-element central difference computes,
 *     g = (loss(p + h) - loss(p - h)) / 2h   for every parameter p,
 * without recomputing the network: moving W1[i, j] moves a1[n, j] by x[n, i] * d for the rows
 * with x[n, i] != 0 only (MNIST is ~80% zeros), hence z1[n, j] by dz, hence every score of row n
 * by dz * W2[j, k]; moving W2[j, k] moves one score per row. With E[n, k] = exp(s[n, k] - max_k s)
 * from the unperturbed network, a moved score costs one exp: exp(s' - max) = E * exp(ds).
 * Rows that do not move cancel exactly in loss(+) - loss(-), as they do in the book's loop, so
 *     g = sum over moved rows of (L_n(+) - L_n(-)) / N / 2h,
 * and L_n(+) - L_n(-) = log q_n with q_n = (y_n(-) + 1e-7) / (y_n(+) + 1e-7): one log per
 * parameter of a product of q_n, all close to 1. The perturbation is the book's: p + h stored
 * in the parameter's dtype (f32 != 0: rounded to float32), so d = stored - p, divided by 2h.
 * Everything is float64.
 */

struct net {
    ptrdiff_t n, in, hid, out;
    const int64_t *t;
    const double *ET;  /* (out, n) exp(s - max) of the unperturbed scores, transposed */
    const double *S;   /* (n) row sums of E */
    const double *Et;  /* (n) E[n, t_n] */
    int relu, f32;
    double h;
};

static inline double perturbed(double p, double step, int f32)
{
    double v = p + step;
    return f32 ? (double)(float)v : v;
}

/* log prod q over a run of factors; refolds into the sum before the product could leave range */
static double log_product(const double *q, ptrdiff_t r)
{
    double sum = 0, prod = 1;
    for (ptrdiff_t l = 0; l < r; l++) {
        prod *= q[l];
        if (!(prod > 1e-100 && prod < 1e100)) {
            sum += log(prod);
            prod = 1;
        }
    }
    return sum + log(prod);
}

/* The rows one input moves, packed contiguously (so the lane loops below vectorise without
 * gathers): xv[l] = x[row, i], t[l], E[k * r + l], and a1, z1 as (hid, r). */
struct packed {
    ptrdiff_t r;
    double *xv, *E, *a1, *z1;
    int64_t *t;
};

static void pack_rows(const struct net *net, const int64_t *rows, const double *xv, ptrdiff_t r,
                      const double *a1, const double *z1, struct packed *pk)
{
    pk->r = r;
    for (ptrdiff_t l = 0; l < r; l++) {
        ptrdiff_t row = rows[l];
        pk->xv[l] = xv[l];
        pk->t[l] = net->t[row];
        for (ptrdiff_t k = 0; k < net->out; k++)
            pk->E[k * r + l] = net->ET[k * net->n + row];
        for (ptrdiff_t j = 0; j < net->hid; j++) {
            pk->a1[j * r + l] = a1[row * net->hid + j];
            pk->z1[j * r + l] = z1[row * net->hid + j];
        }
    }
}

/* exp(u) for |u| <= 1e-3: Taylor to u^5, whose remainder u^6 / 720 < 2e-21 is far below an ulp.
 * A perturbation of h = 1e-4 moves a score by a few 1e-5 at most for the usual weights, so this
 * replaces nearly every exp of the numerical gradient. */
static inline double exp_small(double u)
{
    return 1 + u * (1 + u * (1.0 / 2 + u * (1.0 / 6 + u * (1.0 / 24 + u * (1.0 / 120)))));
}

/* Score k of every packed row moved by dz * w (dz: dzp, resp. dzm): adds exp(s' - max) to the
 * row sums sp, sm and keeps it in tp, tm where k is the label. small: every |dz * w| <= 1e-3.
 * A function of its own, with restrict arguments, so that GCC vectorises it. */
static FASTNN_CLONES void add_score(ptrdiff_t r, int64_t k, double w, int small,
                                    const double *restrict E, const int64_t *restrict t,
                                    const double *restrict dzp, const double *restrict dzm,
                                    double *restrict sp, double *restrict sm, double *restrict tp,
                                    double *restrict tm)
{
    double *restrict ep = tm + r, *restrict em = ep + r; /* two more lanes of scratch */
    if (small) /* two loops, not one with a select: a select would evaluate both exps */
        for (ptrdiff_t l = 0; l < r; l++) {
            ep[l] = E[l] * exp_small(dzp[l] * w);
            em[l] = E[l] * exp_small(dzm[l] * w);
        }
    else
        for (ptrdiff_t l = 0; l < r; l++) {
            ep[l] = E[l] * vexp(dzp[l] * w);
            em[l] = E[l] * vexp(dzm[l] * w);
        }
    for (ptrdiff_t l = 0; l < r; l++) {
        sp[l] += ep[l];
        sm[l] += em[l];
        tp[l] = t[l] == k ? ep[l] : tp[l];
        tm[l] = t[l] == k ? em[l] : tm[l];
    }
}

/* Moving hidden unit j's pre-activation by xv[l] * dp (resp. dm) in the packed rows:
 * returns sum_l L(+) - L(-). scratch holds 8 r doubles. */
static FASTNN_CLONES double hidden_unit_delta(const struct net *net, const struct packed *pk,
                                              ptrdiff_t j, double dp, double dm, const double *W2,
                                              double *scratch)
{
    ptrdiff_t r = pk->r;
    double *restrict dzp = scratch, *restrict dzm = dzp + r, *restrict sp = dzm + r;
    double *restrict sm = sp + r, *restrict tp = sm + r, *restrict tm = tp + r;
    const double *a1 = pk->a1 + j * r, *z1 = pk->z1 + j * r, *xv = pk->xv;
    /* an infinite pre-activation (an infinite pixel) stays infinite when the weight moves: its
       unit does not move (the book's loop recomputes x W1' = inf too); a1 + x d would be NaN */
    if (net->relu)
        for (ptrdiff_t l = 0; l < r; l++) {
            double ap = a1[l] + xv[l] * dp, am = a1[l] + xv[l] * dm;
            int finite = a1[l] - a1[l] == 0;
            dzp[l] = finite ? relu_of(ap) - z1[l] : 0;
            dzm[l] = finite ? relu_of(am) - z1[l] : 0;
        }
    else
        for (ptrdiff_t l = 0; l < r; l++) {
            int finite = a1[l] - a1[l] == 0;
            dzp[l] = finite ? vsigmoid(a1[l] + xv[l] * dp) - z1[l] : 0;
            dzm[l] = finite ? vsigmoid(a1[l] + xv[l] * dm) - z1[l] : 0;
        }
    double dzmax = 0;
    for (ptrdiff_t l = 0; l < r; l++) {
        sp[l] = sm[l] = tp[l] = tm[l] = 0;
        double a = fabs(dzp[l]) > fabs(dzm[l]) ? fabs(dzp[l]) : fabs(dzm[l]);
        dzmax = a > dzmax ? a : dzmax;
    }
    for (int64_t k = 0, out = net->out; k < out; k++) {
        double w = W2[j * out + k];
        add_score(r, k, w, dzmax * fabs(w) <= 1e-3, pk->E + k * r, pk->t, dzp, dzm, sp, sm, tp, tm);
    }
    for (ptrdiff_t l = 0; l < r; l++) /* q, into dzp */
        dzp[l] = (tm[l] / sm[l] + 1e-7) / (tp[l] / sp[l] + 1e-7);
    return log_product(dzp, r);
}

/* Moving score k of every row by zk[n] * dp (resp. dm): returns sum_n L(+) - L(-). */
static FASTNN_CLONES double score_delta(const struct net *net, ptrdiff_t k, const double *zk,
                                        double dp, double dm, double *q)
{
    const double *E = net->ET + k * net->n;
    for (ptrdiff_t n = 0; n < net->n; n++) {
        double ep = E[n] * vexp(zk[n] * dp), em = E[n] * vexp(zk[n] * dm);
        double rest = net->S[n] - E[n];
        int hit = net->t[n] == k;
        double yp = (hit ? ep : net->Et[n]) / (rest + ep), ym = (hit ? em : net->Et[n]) / (rest + em);
        q[n] = (ym + 1e-7) / (yp + 1e-7);
    }
    return log_product(q, net->n);
}

/* Column i of W1 (i == in: the bias b1, every row with x = 1): pack the rows input i moves,
 * then every hidden unit j. scratch: see scratch_size. */
static void input_gradient(const struct net *net, ptrdiff_t i, const ptrdiff_t *colptr,
                           const int64_t *csc_rows, const double *csc_vals, const int64_t *all_rows,
                           const double *ones, const double *a1, const double *z1,
                           const double *W1, const double *b1, const double *W2, double *gW1,
                           double *gb1, double *scratch)
{
    double scale = 1.0 / (double)net->n / (2 * net->h);
    int bias = i == net->in;
    ptrdiff_t p = bias ? 0 : colptr[i], r = bias ? net->n : colptr[i + 1] - p;
    double *out = bias ? gb1 : gW1 + i * net->hid;
    const double *param = bias ? b1 : W1 + i * net->hid;
    if (r == 0) { /* nothing moves: the book's loop computes loss - loss = 0 */
        for (ptrdiff_t j = 0; j < net->hid; j++)
            out[j] = 0;
        return;
    }
    ptrdiff_t n = net->n;
    struct packed pk = {0, scratch, scratch + n, scratch + n * (1 + net->out),
                        scratch + n * (1 + net->out + net->hid),
                        (int64_t *)(scratch + n * (1 + net->out + 2 * net->hid))};
    pack_rows(net, bias ? all_rows : csc_rows + p, bias ? ones : csc_vals + p, r, a1, z1, &pk);
    double *lanes = scratch + n * (2 + net->out + 2 * net->hid);
    for (ptrdiff_t j = 0; j < net->hid; j++) {
        double w = param[j];
        double dp = perturbed(w, net->h, net->f32) - w, dm = perturbed(w, -net->h, net->f32) - w;
        out[j] = hidden_unit_delta(net, &pk, j, dp, dm, W2, lanes) * scale;
    }
}

/* doubles of scratch per thread: the packed rows and the lane arrays */
static size_t scratch_size(ptrdiff_t n, ptrdiff_t hid, ptrdiff_t out)
{
    return (size_t)(n * (2 + out + 2 * hid) + 8 * n);
}

/* Returns FASTNN_OK, the first row with a bad label, or FASTNN_NO_MEMORY (real.h). */
ptrdiff_t twolayer_numerical_gradient(const double *x, const int64_t *t, const double *W1,
                                      const double *b1, const double *W2, const double *b2,
                                      const double *a1, const double *z1, const double *s,
                                      ptrdiff_t n, ptrdiff_t in, ptrdiff_t hid, ptrdiff_t out,
                                      int relu, int f32, double h, double *gW1, double *gb1,
                                      double *gW2, double *gb2)
{
    for (ptrdiff_t i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= out)
            return i;

    ptrdiff_t nnz = 0;
    for (ptrdiff_t i = 0; i < n * in; i++)
        nnz += x[i] != 0;
    double *ET = malloc(sizeof(double) * (size_t)(out * n + 3 * n + hid * n + nnz));
    ptrdiff_t *colptr = malloc(sizeof(ptrdiff_t) * (size_t)(in + 1));
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)(nnz + n));
    if (!ET || !colptr || !rows) {
        free(ET);
        free(colptr);
        free(rows);
        return FASTNN_NO_MEMORY;
    }
    double *S = ET + out * n, *Et = S + n, *ones = Et + n, *z1T = ones + n, *vals = z1T + hid * n;
    int64_t *all_rows = rows + nnz;

    /* the unperturbed softmax: E = exp(s - max), transposed, with its row sums */
    for (ptrdiff_t i = 0; i < n; i++) {
        const double *si = s + i * out;
        double m = si[0], sum = 0;
        for (ptrdiff_t k = 1; k < out; k++)
            m = si[k] > m ? si[k] : m;
        for (ptrdiff_t k = 0; k < out; k++) {
            double e = vexp(si[k] - m);
            ET[k * n + i] = e;
            sum += e;
        }
        S[i] = sum;
        Et[i] = ET[t[i] * n + i];
        ones[i] = 1;
        all_rows[i] = i;
        for (ptrdiff_t j = 0; j < hid; j++)
            z1T[j * n + i] = z1[i * hid + j];
    }
    /* x as compressed sparse columns: the rows each input i moves */
    for (ptrdiff_t i = 0; i <= in; i++)
        colptr[i] = 0;
    for (ptrdiff_t r = 0; r < n; r++)
        for (ptrdiff_t i = 0; i < in; i++)
            colptr[i + 1] += x[r * in + i] != 0;
    for (ptrdiff_t i = 0; i < in; i++)
        colptr[i + 1] += colptr[i];
    for (ptrdiff_t r = 0; r < n; r++) /* row-major fill keeps each column's rows ascending */
        for (ptrdiff_t i = 0; i < in; i++)
            if (x[r * in + i] != 0) {
                ptrdiff_t p = colptr[i]++;
                rows[p] = r;
                vals[p] = x[r * in + i];
            }
    for (ptrdiff_t i = in; i > 0; i--) /* the fill advanced each start to the next column's */
        colptr[i] = colptr[i - 1];
    colptr[0] = 0;

    struct net net = {n, in, hid, out, t, ET, S, Et, relu, f32, h};
    double scale = 1.0 / (double)n / (2 * h);
    int failed = 0;
#pragma omp parallel num_threads(fastnn_get_num_threads()) if (n * in * hid >= FASTNN_PARALLEL_MIN)
    {
        double *scratch = malloc(sizeof(double) * scratch_size(n, hid, out));
        if (!scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (ptrdiff_t i = 0; i <= in; i++)
            if (scratch)
                input_gradient(&net, i, colptr, rows, vals, all_rows, ones, a1, z1, W1, b1, W2,
                               gW1, gb1, scratch);
#pragma omp for schedule(dynamic)
        for (ptrdiff_t jk = 0; jk < (hid + 1) * out; jk++) {
            ptrdiff_t j = jk / out, k = jk % out;
            const double *p = j < hid ? W2 + j * out + k : b2 + k; /* j == hid: the bias b2 */
            const double *zk = j < hid ? z1T + j * n : ones;
            double dp = perturbed(*p, h, f32) - *p, dm = perturbed(*p, -h, f32) - *p;
            double g = scratch ? score_delta(&net, k, zk, dp, dm, scratch) * scale : 0;
            if (j < hid)
                gW2[j * out + k] = g;
            else
                gb2[k] = g;
        }
        free(scratch);
    }
    free(ET);
    free(colptr);
    free(rows);
    return failed ? FASTNN_NO_MEMORY : FASTNN_OK;
}
#endif
