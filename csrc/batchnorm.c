/* batchnorm.c: batch normalization over the rows of x (n, d), the book's BatchNormalization.
 *
 * Forward, training (n rows, column j):
 *     mean_j = sum_i x_ij / n,  var_j = sum_i (x_ij - mean_j)^2 / n,  rstd_j = 1 / sqrt(var_j + eps)
 *     xn_ij = (x_ij - mean_j) rstd_j,  out_ij = gamma_j xn_ij + beta_j
 * Forward, test: the same with the running mean and variance given.
 * Backward: the book's chain (dxn, dxc, dstd, dvar, dmu) collapses, since sum_i xn_ij = 0, to
 *     dbeta_j = sum_i dout_ij,  dgamma_j = sum_i xn_ij dout_ij,
 *     dx_ij = gamma_j rstd_j (dout_ij - dbeta_j / n - xn_ij dgamma_j / n)
 * two passes over the batch (the sums, then dx). xn is recomputed from x, mean and rstd, so
 * nothing of size (n, d) is kept between forward and backward but x itself.
 *
 * relu (forward) writes max(0, out) instead of out, NaN kept as relu_of does; y (backward, may be
 * NULL) is that forward's output, and dout counts only where y passed the ReLU (!(y <= 0)): the
 * ReLU that follows a batch norm in a network, fused. dout is loaded unconditionally, so the
 * select is a vector blend (a conditional load kept the loop scalar, with a branch per element
 * that the ReLU's random mask mispredicts: 115 us for a (100, 100) backward in a network, now 22).
 *
 * Statistics are sums in float64 (also for float32 x), in one pass: sums of x - s and (x - s)^2
 * with s = x's first row, so that the variance E[(x-s)^2] - E[x-s]^2 does not cancel when the
 * mean is large against the spread (it does for a plain sum of squares: a column 1e8 + N(0, 1)).
 *
 * Memory: each pass streams whole rows (of a thread's columns) from the first row to the last: the
 * forward reads x twice (the sums, then out), the backward dout and x twice. Column blocks kept in
 * the cache between the two passes (so that a large batch is read once) were slower: a block's rows
 * are short runs 8 kB apart, which the prefetchers do not follow (a (10000, 1000) float64 forward
 * took 190 ms in blocks of 104 columns, 28 ms streaming rows; a copy of x takes 14 ms). Threads
 * split the columns, never the rows: results do not depend on the thread count.
 *
 * Contract (checked by _core.pyx): C-contiguous buffers; gamma, beta, mean, var, rstd of d
 * elements. Returns FASTNN_OK, or FASTNN_NO_MEMORY when scratch cannot be allocated (nothing
 * written then).
 */
#include <math.h>
#include <stdlib.h>

#include "layers.h"

static inline real relu_of(real v)
{
    return !(v <= 0) ? v : 0;
}

/* [lo, hi) of thread b of nt over d columns, in whole 64-byte lines */
static void column_range(int b, int nt, ptrdiff_t d, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t line = 64 / (ptrdiff_t)sizeof(real), lines = (d + line - 1) / line;
    thread_block(b, nt, lines, lo, hi);
    *lo = *lo * line < d ? *lo * line : d;
    *hi = *hi * line < d ? *hi * line : d;
}

static int threads_for(ptrdiff_t n, ptrdiff_t d)
{
    return n * d >= FASTNN_PARALLEL_MIN && d >= 128 ? fastnn_get_num_threads() : 1;
}

/* Rows per sweep: each loop over a thread's columns handles ROWS rows, so that the per-column
 * values (accumulators, mean, scale) are loaded and stored once for all of them. Each column still
 * sums its rows in order. The loop over the columns is the vector loop (omp simd: GCC does not
 * vectorise it across the inner loop over the rows on its own). */
#define ROWS 8

/* out[i, lo:hi] = (x - mean) scale + beta for the r rows from x, out (relu: max(0, .)); scale is
 * gamma rstd */
static inline void normalize_rows(const real *restrict x, real *restrict out, int r, ptrdiff_t d,
                                  ptrdiff_t lo, ptrdiff_t hi, const double *restrict mean,
                                  const double *restrict scale, const real *restrict beta,
                                  int relu)
{
#pragma omp simd
    for (ptrdiff_t j = lo; j < hi; j++) {
        double m = mean[j], sc = scale[j], b = beta[j];
        for (int k = 0; k < r; k++) {
            real o = (real)((x[k * d + j] - m) * sc + b);
            out[k * d + j] = relu ? relu_of(o) : o;
        }
    }
}

/* The flags of the *_rows functions are constants where they are called, so each call inlines
 * a loop without branches, which GCC vectorises (a flag read inside the loop kept it scalar). */
static inline void normalize_all(const real *x, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo,
                                 ptrdiff_t hi, const double *mean, const double *scale,
                                 const real *beta, int relu, real *out)
{
    ptrdiff_t i = 0;
    for (; i + ROWS <= n; i += ROWS)
        normalize_rows(x + i * d, out + i * d, ROWS, d, lo, hi, mean, scale, beta, relu);
    if (i < n)
        normalize_rows(x + i * d, out + i * d, (int)(n - i), d, lo, hi, mean, scale, beta, relu);
}

static FASTNN_CLONES void normalize(const real *x, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo,
                                    ptrdiff_t hi, const double *mean, const double *scale,
                                    const real *beta, int relu, real *out)
{
    if (relu)
        normalize_all(x, n, d, lo, hi, mean, scale, beta, 1, out);
    else
        normalize_all(x, n, d, lo, hi, mean, scale, beta, 0, out);
}

/* sum1[j] += sum of x - shift, sum2[j] += sum of (x - shift)^2 over the r rows from x */
static inline void moment_rows(const real *restrict x, int r, ptrdiff_t d, ptrdiff_t lo,
                               ptrdiff_t hi, const real *restrict shift, double *restrict sum1,
                               double *restrict sum2)
{
#pragma omp simd
    for (ptrdiff_t j = lo; j < hi; j++) {
        double s1 = sum1[j], s2 = sum2[j], sh = shift[j];
        for (int k = 0; k < r; k++) {
            double v = x[k * d + j] - sh;
            s1 += v;
            s2 += v * v;
        }
        sum1[j] = s1;
        sum2[j] = s2;
    }
}

/* mean, var, rstd of columns [lo, hi), then out for them; scale is scratch for gamma rstd */
static FASTNN_CLONES void train_columns(const real *x, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo,
                                        ptrdiff_t hi, const real *gamma, const real *beta,
                                        double eps, int relu, real *out, double *mean, double *var,
                                        double *rstd, double *scale)
{
    const real *shift = x; /* the first row */
    for (ptrdiff_t j = lo; j < hi; j++)
        mean[j] = var[j] = 0;
    ptrdiff_t i = 0;
    for (; i + ROWS <= n; i += ROWS)
        moment_rows(x + i * d, ROWS, d, lo, hi, shift, mean, var);
    if (i < n)
        moment_rows(x + i * d, (int)(n - i), d, lo, hi, shift, mean, var);
    for (ptrdiff_t j = lo; j < hi; j++) {
        double m = mean[j] / (double)n, v = var[j] / (double)n - m * m;
        v = v < 0 ? 0 : v; /* rounding; NaN stays NaN */
        mean[j] = shift[j] + m;
        var[j] = v;
        rstd[j] = 1 / sqrt(v + eps);
        scale[j] = gamma[j] * rstd[j];
    }
    normalize(x, n, d, lo, hi, mean, scale, beta, relu, out);
}

ptrdiff_t FN(batchnorm_forward_train)(const real *x, ptrdiff_t n, ptrdiff_t d, const real *gamma,
                                const real *beta, double eps, int relu, real *out, double *mean,
                                double *var, double *rstd)
{
    double *scale = malloc((size_t)(d > 0 ? d : 1) * sizeof *scale);
    if (!scale)
        return FASTNN_NO_MEMORY;
    int nt = threads_for(n, d);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        column_range(b, nt, d, &lo, &hi);
        if (lo < hi)
            train_columns(x, n, d, lo, hi, gamma, beta, eps, relu, out, mean, var, rstd, scale);
    }
    free(scale);
    return FASTNN_OK;
}

ptrdiff_t FN(batchnorm_forward_test)(const real *x, ptrdiff_t n, ptrdiff_t d, const real *gamma,
                               const real *beta, const double *mean, const double *var,
                               double eps, int relu, real *out)
{
    double *scale = malloc((size_t)(d > 0 ? d : 1) * sizeof *scale);
    if (!scale)
        return FASTNN_NO_MEMORY;
    for (ptrdiff_t j = 0; j < d; j++)
        scale[j] = gamma[j] / sqrt(var[j] + eps);
    int nt = threads_for(n, d);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        column_range(b, nt, d, &lo, &hi);
        if (lo < hi)
            normalize(x, n, d, lo, hi, mean, scale, beta, relu, out);
    }
    free(scale);
    return FASTNN_OK;
}

/* acc_b[j] += sum of g, acc_g[j] += sum of xn g over the r rows from dout, x, with g = dout
 * (counted only where y, the fused ReLU's output, passed it) */
static inline void grad_sums_rows(const real *restrict dout, const real *restrict y, int relu,
                                  const real *restrict x, int r, ptrdiff_t d, ptrdiff_t lo,
                                  ptrdiff_t hi, const double *restrict mean,
                                  const double *restrict rstd, double *restrict acc_b,
                                  double *restrict acc_g)
{
#pragma omp simd
    for (ptrdiff_t j = lo; j < hi; j++) {
        double sb = acc_b[j], sg = acc_g[j], m = mean[j], rs = rstd[j];
        for (int k = 0; k < r; k++) {
            double dv = dout[k * d + j], g = relu && y[k * d + j] <= 0 ? 0 : dv;
            sb += g;
            sg += (x[k * d + j] - m) * rs * g;
        }
        acc_b[j] = sb;
        acc_g[j] = sg;
    }
}

/* dx = gamma rstd (g - mean of g - xn mean of xn g) for the r rows: scale = gamma rstd,
 * mb, mg the two means */
static inline void grad_rows(const real *restrict dout, const real *restrict y, int relu,
                             const real *restrict x, real *restrict dx, int r, ptrdiff_t d,
                             ptrdiff_t lo, ptrdiff_t hi, const double *restrict mean,
                             const double *restrict rstd, const double *restrict scale,
                             const double *restrict mb, const double *restrict mg)
{
#pragma omp simd
    for (ptrdiff_t j = lo; j < hi; j++) {
        double m = mean[j], rs = rstd[j], sc = scale[j], b = mb[j], g = mg[j];
        for (int k = 0; k < r; k++) {
            double dv = dout[k * d + j], dk = relu && y[k * d + j] <= 0 ? 0 : dv;
            dx[k * d + j] = (real)(sc * (dk - b - (x[k * d + j] - m) * rs * g));
        }
    }
}

/* Columns [lo, hi): the sums (float64, in acc_b, acc_g), dgamma, dbeta, then dx; scale scratch.
 * relu: dout counts only where y passed the ReLU (y unused otherwise) */
static inline void backward_all(const real *dout, const real *y, int relu, const real *x,
                                ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo, ptrdiff_t hi,
                                const real *gamma, const double *mean, const double *rstd,
                                double *acc_b, double *acc_g, double *scale, real *dx,
                                real *dgamma, real *dbeta)
{
    for (ptrdiff_t j = lo; j < hi; j++)
        acc_b[j] = acc_g[j] = 0;
    ptrdiff_t i = 0;
    for (; i + ROWS <= n; i += ROWS)
        grad_sums_rows(dout + i * d, y + i * d, relu, x + i * d, ROWS, d, lo, hi, mean, rstd,
                       acc_b, acc_g);
    if (i < n)
        grad_sums_rows(dout + i * d, y + i * d, relu, x + i * d, (int)(n - i), d, lo, hi, mean,
                       rstd, acc_b, acc_g);
    double inv_n = 1 / (double)n;
    for (ptrdiff_t j = lo; j < hi; j++) {
        dbeta[j] = (real)acc_b[j];
        dgamma[j] = (real)acc_g[j];
        acc_b[j] *= inv_n; /* the means the second pass subtracts */
        acc_g[j] *= inv_n;
        scale[j] = gamma[j] * rstd[j];
    }
    for (i = 0; i + ROWS <= n; i += ROWS)
        grad_rows(dout + i * d, y + i * d, relu, x + i * d, dx + i * d, ROWS, d, lo, hi, mean,
                  rstd, scale, acc_b, acc_g);
    if (i < n)
        grad_rows(dout + i * d, y + i * d, relu, x + i * d, dx + i * d, (int)(n - i), d, lo, hi,
                  mean, rstd, scale, acc_b, acc_g);
}

static FASTNN_CLONES void backward_columns(const real *dout, const real *y, const real *x,
                                           ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo, ptrdiff_t hi,
                                           const real *gamma, const double *mean,
                                           const double *rstd, double *acc_b, double *acc_g,
                                           double *scale, real *dx, real *dgamma, real *dbeta)
{
    if (y)
        backward_all(dout, y, 1, x, n, d, lo, hi, gamma, mean, rstd, acc_b, acc_g, scale, dx,
                     dgamma, dbeta);
    else /* y = dout: a pointer that is never read */
        backward_all(dout, dout, 0, x, n, d, lo, hi, gamma, mean, rstd, acc_b, acc_g, scale, dx,
                     dgamma, dbeta);
}

ptrdiff_t FN(batchnorm_backward)(const real *dout, const real *y, const real *x, ptrdiff_t n,
                           ptrdiff_t d, const real *gamma, const double *mean, const double *rstd,
                           real *dx, real *dgamma, real *dbeta)
{
    double *acc = malloc((size_t)(d > 0 ? 3 * d : 1) * sizeof *acc);
    if (!acc)
        return FASTNN_NO_MEMORY;
    int nt = threads_for(n, d);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        column_range(b, nt, d, &lo, &hi);
        if (lo < hi)
            backward_columns(dout, y, x, n, d, lo, hi, gamma, mean, rstd, acc, acc + d,
                             acc + 2 * d, dx, dgamma, dbeta);
    }
    free(acc);
    return FASTNN_OK;
}
