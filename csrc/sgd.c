/* sgd.c: the SGD update p -= lr * g in one pass, in place.
 *
 * Contract (checked by src/fastnn/optimizers.py): p and g contiguous, n elements, same dtype.
 * lr * g is rounded before the subtraction (CMakeLists.txt compiles this file with
 * -ffp-contract=off), so the result is bit-identical to NumPy's `p -= lr * g`.
 */
#include "fastnn.h"

static FASTNN_CLONES void sgd_span(real *restrict p, const real *restrict g, real lr, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        p[i] -= lr * g[i];
}

void FN(sgd_update)(real *p, const real *g, double lr, ptrdiff_t n)
{
    int nt = n >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
    ptrdiff_t nchunks = (n + FASTNN_CHUNK - 1) / FASTNN_CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        ptrdiff_t lo = c * FASTNN_CHUNK, len = n - lo < FASTNN_CHUNK ? n - lo : FASTNN_CHUNK;
        sgd_span(p + lo, g + lo, (real)lr, len);
    }
}
