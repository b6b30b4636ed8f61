/* weight_decay.c: the gradient of a loss with L2 weight decay, out = dW + lambda W, in one pass.
 *
 * Contract (checked by src/fastnn/_core_elementwise.pxi): dW, W, out contiguous, n elements, same
 * dtype; out may be dW. lambda W is rounded before the addition (CMakeLists.txt compiles this
 * file with -ffp-contract=off), so the result is bit-identical to NumPy's `dW + lam * W`.
 */
#include "fastnn.h"

static FASTNN_CLONES void weight_decay_span(const real *dW, const real *restrict W, real lam,
                                            real *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = dW[i] + lam * W[i];
}

void FN(weight_decay_grad)(const real *dW, const real *W, double lam, real *out, ptrdiff_t n)
{
    int nt = n >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
    ptrdiff_t nchunks = (n + FASTNN_CHUNK - 1) / FASTNN_CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        ptrdiff_t lo = c * FASTNN_CHUNK, len = n - lo < FASTNN_CHUNK ? n - lo : FASTNN_CHUNK;
        weight_decay_span(dW + lo, W + lo, (real)lam, out + lo, len);
    }
}
