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
 * ReLU that follows a batch norm in a network, fused.
 *
 * Statistics are sums in float64 (also for float32 x), in one pass: sums of x - s and (x - s)^2
 * with s = x's first row, so that the variance E[(x-s)^2] - E[x-s]^2 does not cancel when the
 * mean is large against the spread (it does for a plain sum of squares: a column 1e8 + N(0, 1)).
 *
 * Memory: each pass reads a column block of every row, and the blocks are narrow enough that a
 * block of x (and of dout) stays in the cache for the second pass: a large batch is read from
 * memory once per direction. Threads split the columns, never the rows: results do not depend on
 * the thread count.
 *
 * Contract (checked by _core.pyx): C-contiguous buffers; gamma, beta, mean, var, rstd of d
 * elements. Returns 0, or -1 when scratch cannot be allocated (nothing written then).
 */
#include <math.h>
#include <stdlib.h>

#include "layers.h"

/* A block of x of about this many bytes stays in the L2 / L3 cache between the two passes */
#define BLOCK_BYTES (2 << 20)

static inline real relu_of(real v)
{
    return !(v <= 0) ? v : 0;
}

/* columns per block: whole 64-byte lines, at least one line, at most d */
static ptrdiff_t block_width(ptrdiff_t n, ptrdiff_t d)
{
    ptrdiff_t line = 64 / (ptrdiff_t)sizeof(real);
    ptrdiff_t w = BLOCK_BYTES / ((ptrdiff_t)sizeof(real) * (n > 0 ? n : 1)) / line * line;
    w = w < line ? line : w;
    return w < d ? w : d;
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

/* out[:, lo:hi] = gamma (x - mean) rstd + beta (relu: max(0, .)) */
static FASTNN_CLONES void normalize(const real *restrict x, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo,
                                    ptrdiff_t hi, const real *restrict gamma,
                                    const real *restrict beta, const double *restrict mean,
                                    const double *restrict rstd, int relu, real *restrict out)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const real *xi = x + i * d;
        real *oi = out + i * d;
        if (relu)
            for (ptrdiff_t j = lo; j < hi; j++)
                oi[j] = relu_of((real)(gamma[j] * ((xi[j] - mean[j]) * rstd[j]) + beta[j]));
        else
            for (ptrdiff_t j = lo; j < hi; j++)
                oi[j] = (real)(gamma[j] * ((xi[j] - mean[j]) * rstd[j]) + beta[j]);
    }
}

/* mean, var, rstd of columns [lo, hi), then out for them */
static FASTNN_CLONES void train_block(const real *restrict x, ptrdiff_t n, ptrdiff_t d,
                                      ptrdiff_t lo, ptrdiff_t hi, const real *restrict gamma,
                                      const real *restrict beta, double eps, int relu,
                                      real *restrict out, double *restrict mean,
                                      double *restrict var, double *restrict rstd)
{
    const real *shift = x; /* the first row */
    for (ptrdiff_t j = lo; j < hi; j++)
        mean[j] = var[j] = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const real *xi = x + i * d;
        for (ptrdiff_t j = lo; j < hi; j++) {
            double v = (double)xi[j] - shift[j];
            mean[j] += v;
            var[j] += v * v;
        }
    }
    for (ptrdiff_t j = lo; j < hi; j++) {
        double m = mean[j] / (double)n, v = var[j] / (double)n - m * m;
        v = v < 0 ? 0 : v; /* rounding; NaN stays NaN */
        mean[j] = shift[j] + m;
        var[j] = v;
        rstd[j] = 1 / sqrt(v + eps);
    }
    normalize(x, n, d, lo, hi, gamma, beta, mean, rstd, relu, out);
}

int FN(batchnorm_forward_train)(const real *x, ptrdiff_t n, ptrdiff_t d, const real *gamma,
                                const real *beta, double eps, int relu, real *out, double *mean,
                                double *var, double *rstd)
{
    ptrdiff_t w = block_width(n, d);
    int nt = threads_for(n, d);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        column_range(b, nt, d, &lo, &hi);
        for (ptrdiff_t c = lo; c < hi; c += w)
            train_block(x, n, d, c, c + w < hi ? c + w : hi, gamma, beta, eps, relu, out, mean,
                        var, rstd);
    }
    return 0;
}

int FN(batchnorm_forward_test)(const real *x, ptrdiff_t n, ptrdiff_t d, const real *gamma,
                               const real *beta, const double *mean, const double *var,
                               double eps, int relu, real *out)
{
    double *rstd = malloc((size_t)(d > 0 ? d : 1) * sizeof *rstd);
    if (!rstd)
        return -1;
    for (ptrdiff_t j = 0; j < d; j++)
        rstd[j] = 1 / sqrt(var[j] + eps);
    int nt = threads_for(n, d);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        column_range(b, nt, d, &lo, &hi);
        if (lo < hi)
            normalize(x, n, d, lo, hi, gamma, beta, mean, rstd, relu, out);
    }
    free(rstd);
    return 0;
}

/* Columns [lo, hi): the sums (float64, in acc_b, acc_g) and dx, dgamma, dbeta */
static FASTNN_CLONES void backward_block(const real *restrict dout, const real *restrict y,
                                         const real *restrict x, ptrdiff_t n, ptrdiff_t d,
                                         ptrdiff_t lo, ptrdiff_t hi, const real *restrict gamma,
                                         const double *restrict mean, const double *restrict rstd,
                                         double *restrict acc_b, double *restrict acc_g,
                                         real *restrict dx, real *restrict dgamma,
                                         real *restrict dbeta)
{
    for (ptrdiff_t j = lo; j < hi; j++)
        acc_b[j] = acc_g[j] = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const real *xi = x + i * d, *di = dout + i * d;
        const real *yi = y ? y + i * d : NULL;
        if (yi)
            for (ptrdiff_t j = lo; j < hi; j++) {
                double g = yi[j] <= 0 ? 0 : di[j];
                acc_b[j] += g;
                acc_g[j] += (xi[j] - mean[j]) * rstd[j] * g;
            }
        else
            for (ptrdiff_t j = lo; j < hi; j++) {
                acc_b[j] += di[j];
                acc_g[j] += (xi[j] - mean[j]) * rstd[j] * di[j];
            }
    }
    double inv_n = 1 / (double)n;
    for (ptrdiff_t j = lo; j < hi; j++) {
        dbeta[j] = (real)acc_b[j];
        dgamma[j] = (real)acc_g[j];
        acc_b[j] *= inv_n; /* the means the second pass subtracts */
        acc_g[j] *= inv_n;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        const real *xi = x + i * d, *di = dout + i * d;
        const real *yi = y ? y + i * d : NULL;
        real *dxi = dx + i * d;
        if (yi)
            for (ptrdiff_t j = lo; j < hi; j++) {
                double xn = (xi[j] - mean[j]) * rstd[j], g = yi[j] <= 0 ? 0 : di[j];
                dxi[j] = (real)(gamma[j] * rstd[j] * (g - acc_b[j] - xn * acc_g[j]));
            }
        else
            for (ptrdiff_t j = lo; j < hi; j++) {
                double xn = (xi[j] - mean[j]) * rstd[j];
                dxi[j] = (real)(gamma[j] * rstd[j] * (di[j] - acc_b[j] - xn * acc_g[j]));
            }
    }
}

int FN(batchnorm_backward)(const real *dout, const real *y, const real *x, ptrdiff_t n,
                           ptrdiff_t d, const real *gamma, const double *mean, const double *rstd,
                           real *dx, real *dgamma, real *dbeta)
{
    double *acc = malloc((size_t)(d > 0 ? 2 * d : 1) * sizeof *acc);
    if (!acc)
        return -1;
    ptrdiff_t w = block_width(2 * n, d); /* dout's block and x's */
    int nt = threads_for(n, d);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        column_range(b, nt, d, &lo, &hi);
        for (ptrdiff_t c = lo; c < hi; c += w)
            backward_block(dout, y, x, n, d, c, c + w < hi ? c + w : hi, gamma, mean, rstd, acc,
                           acc + d, dx, dgamma, dbeta);
    }
    free(acc);
    return 0;
}
