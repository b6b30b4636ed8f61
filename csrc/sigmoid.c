/* sigmoid.c: the Sigmoid layer's forward and backward, one pass each.
 *
 * Contract (checked by the Python face, src/fastnn/functions.py): contiguous arrays of n elements,
 * outputs do not overlap inputs except that dx may be dout.
 *
 * Forward: vsigmoid_span (vexp.h), stable for every input: nothing can overflow,
 * sigmoid(-1000) == 0.0, NaN gives NaN; on AVX-512 and AVX2 machines an explicit vector loop.
 * Backward: dx = dout * (1 - out) * out, the book's order of operations.
 */
#include "fastnn.h"
#include "vexp.h"

/* a cloned function around vsigmoid_span, so that its portable loop gets the wide vector paths
   (OpenMP's outlined loop below is not cloned) */
static FASTNN_CLONES void sigmoid_forward_span(const real *x, real *y, ptrdiff_t n, int simd)
{
    vsigmoid_span(x, NULL, y, n, simd);
}

static FASTNN_CLONES void sigmoid_backward_span(const real *dout, const real *restrict out, real *dx,
                                                ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        dx[i] = dout[i] * (1 - out[i]) * out[i];
}

void FN(sigmoid_forward)(const real *x, real *y, ptrdiff_t n)
{
    int nt = n >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
    int simd = simd_level();
    ptrdiff_t nchunks = (n + FASTNN_CHUNK - 1) / FASTNN_CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        ptrdiff_t lo = c * FASTNN_CHUNK, len = n - lo < FASTNN_CHUNK ? n - lo : FASTNN_CHUNK;
        sigmoid_forward_span(x + lo, y + lo, len, simd);
    }
}

void FN(sigmoid_backward)(const real *dout, const real *out, real *dx, ptrdiff_t n)
{
    int nt = n >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
    ptrdiff_t nchunks = (n + FASTNN_CHUNK - 1) / FASTNN_CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        ptrdiff_t lo = c * FASTNN_CHUNK, len = n - lo < FASTNN_CHUNK ? n - lo : FASTNN_CHUNK;
        sigmoid_backward_span(dout + lo, out + lo, dx + lo, len);
    }
}
