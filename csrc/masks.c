/* masks.c: the layers that keep a mask between forward and backward, ReLU and dropout.
 *
 * ReLU: mask = x <= 0 (NaN is not masked: NaN stays NaN, as the book's out[mask] = 0 leaves it),
 * out = x where the mask is 0, else 0; backward dx = dout where the mask is 0, else 0 (also when
 * dout is NaN or inf there, as the book's dx[mask] = 0).
 * Dropout: mask = u > ratio from uniform draws u in [0, 1) (NumPy's numbers, drawn by the caller
 * with NumPy or mt19937.c), out = x * mask (x * 0 keeps NaN and a sign, as NumPy's x * mask);
 * backward dx = dout * mask. One pass each; masks are one byte per element (NumPy's bool).
 *
 * Contract (checked by _core.pyx): C-contiguous buffers of n elements; a forward's out does not
 * overlap its x, a backward's dx may be its dout (in place).
 */
#include "layers.h"

/* Runs SPAN over [0, n) in chunks (lo, len), with threads from FASTNN_PARALLEL_MIN elements on */
#define CHUNKED(n, SPAN)                                                                           \
    do {                                                                                           \
        int nt = (n) >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;                        \
        ptrdiff_t nchunks = ((n) + FASTNN_CHUNK - 1) / FASTNN_CHUNK;                               \
        _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")                  \
        for (ptrdiff_t c = 0; c < nchunks; c++) {                                                  \
            ptrdiff_t lo = c * FASTNN_CHUNK, len = (n) - lo < FASTNN_CHUNK ? (n) - lo : FASTNN_CHUNK; \
            SPAN;                                                                                  \
        }                                                                                          \
    } while (0)

static FASTNN_CLONES void relu_forward_span(const real *restrict x, real *restrict out,
                                            uint8_t *restrict mask, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        int m = x[i] <= 0;
        mask[i] = (uint8_t)m;
        out[i] = m ? 0 : x[i];
    }
}

void FN(relu_forward)(const real *x, real *out, uint8_t *mask, ptrdiff_t n)
{
    CHUNKED(n, relu_forward_span(x + lo, out + lo, mask + lo, len));
}

static FASTNN_CLONES void relu_backward_span(const real *dout, const uint8_t *restrict mask,
                                             real *dx, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        dx[i] = mask[i] ? 0 : dout[i];
}

void FN(relu_backward)(const real *dout, const uint8_t *mask, real *dx, ptrdiff_t n)
{
    CHUNKED(n, relu_backward_span(dout + lo, mask + lo, dx + lo, len));
}

static FASTNN_CLONES void dropout_forward_span(const real *restrict x, const double *restrict u,
                                               double ratio, real *restrict out,
                                               uint8_t *restrict mask, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        int keep = u[i] > ratio;
        mask[i] = (uint8_t)keep;
        out[i] = x[i] * (real)keep;
    }
}

void FN(dropout_forward)(const real *x, const double *u, double ratio, real *out, uint8_t *mask,
                         ptrdiff_t n)
{
    CHUNKED(n, dropout_forward_span(x + lo, u + lo, ratio, out + lo, mask + lo, len));
}

static FASTNN_CLONES void dropout_backward_span(const real *dout, const uint8_t *restrict mask,
                                                real *dx, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        dx[i] = dout[i] * (real)mask[i];
}

void FN(dropout_backward)(const real *dout, const uint8_t *mask, real *dx, ptrdiff_t n)
{
    CHUNKED(n, dropout_backward_span(dout + lo, mask + lo, dx + lo, len));
}
