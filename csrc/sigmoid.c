/* sigmoid.c: the Sigmoid layer's forward and backward, one pass each.
 *
 * Contract (checked by the Python face, src/fastnn/functions.py): contiguous arrays of n elements,
 * outputs do not overlap inputs except that dx may be dout.
 *
 * Forward, stable for every input: with e = exp(-|x|) in (0, 1], nothing can overflow;
 * sigmoid(x) = s = 1 / (1 + e) for x >= 0 and e * s for x < 0 (one division; within an ulp
 * of the reference's e / (1 + e)). For x <= -746 e is exactly 0, so
 * sigmoid(-1000) == 0.0; NaN fails x >= 0 and gives e * s = NaN.
 * Backward: dx = dout * (1 - out) * out, the book's order of operations.
 */
#include "fastnn.h"
#include "vexp.h"

static FASTNN_CLONES void sigmoid_forward_span(const real *restrict x, real *restrict y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        real e = vexp(-(x[i] < 0 ? -x[i] : x[i]));
        real s = 1 / (1 + e);
        y[i] = x[i] >= 0 ? s : e * s;
    }
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
    ptrdiff_t nchunks = (n + FASTNN_CHUNK - 1) / FASTNN_CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        ptrdiff_t lo = c * FASTNN_CHUNK, len = n - lo < FASTNN_CHUNK ? n - lo : FASTNN_CHUNK;
        sigmoid_forward_span(x + lo, y + lo, len);
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
