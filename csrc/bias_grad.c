/* bias_grad.c: the bias-gradient reduction of Affine's backward, db[j] = sum_i dout[i, j].
 *
 * Contract (checked by the Python face): dout is C-contiguous (n, d), db has d elements.
 * Rows are added in order into a float64 accumulator (also for float32 input), the same order as
 * NumPy's sum over axis 0, one streaming pass over dout. Threads split the columns, never the rows,
 * so the result does not depend on the thread count.
 */
#include <stdlib.h>

#include "fastnn.h"

static FASTNN_CLONES void add_rows(const real *dout, ptrdiff_t n, ptrdiff_t d, ptrdiff_t lo,
                                   ptrdiff_t hi, double *restrict acc)
{
    for (ptrdiff_t j = lo; j < hi; j++)
        acc[j] = 0;
    ptrdiff_t i = 0;
    /* four rows per sweep: the accumulator is loaded and stored a quarter as often, and the sum
       for each j is still ((acc + r0) + r1) + r2 + r3, the order of row-by-row addition */
    for (; i + 4 <= n; i += 4) {
        const real *r0 = dout + i * d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
        for (ptrdiff_t j = lo; j < hi; j++)
            acc[j] = acc[j] + r0[j] + r1[j] + r2[j] + r3[j];
    }
    for (; i < n; i++) {
        const real *row = dout + i * d;
        for (ptrdiff_t j = lo; j < hi; j++)
            acc[j] += row[j];
    }
}

/* returns 0, or -1 when the accumulator cannot be allocated */
int FN(bias_grad)(const real *dout, ptrdiff_t n, ptrdiff_t d, real *db)
{
    double *acc = malloc((size_t)d * sizeof *acc);
    if (!acc)
        return -1;
    /* column blocks of at least 256 (2 KiB of a row) per thread */
    int nt = n * d >= FASTNN_PARALLEL_MIN && d >= 512 ? fastnn_get_num_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        thread_block(b, nt, d, &lo, &hi);
        if (lo < hi)
            add_rows(dout, n, d, lo, hi, acc);
    }
    for (ptrdiff_t j = 0; j < d; j++)
        db[j] = (real)acc[j];
    free(acc);
    return 0;
}
