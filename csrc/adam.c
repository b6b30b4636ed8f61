/* adam.c: the Adam update of fastnn.reference.optimizers.Adam in one pass, in place:
 *     m += c1 * (g - m);  v += c2 * (g * g - v);  p -= lr_t * m / (sqrt(v) + 1e-7)
 * with c1 = 1 - beta1, c2 = 1 - beta2 and lr_t the bias-corrected step size.
 *
 * Contract (checked by src/fastnn/optimizers.py): p, g, m, v contiguous, n elements, one dtype,
 * not overlapping. Each operation is rounded as NumPy rounds the reference's array expressions
 * (CMakeLists.txt compiles this file with -ffp-contract=off, so no FMA), so the result is
 * bit-identical. c1, c2 and 1e-7 are rounded to the arrays' precision, as NumPy does with Python
 * floats. lr_t is a NumPy float64 scalar in the reference: NumPy >= 2 (NEP 50) then computes the
 * step lr_t * m / (sqrt(v) + 1e-7) of float32 arrays in float64 and rounds p - step to float32
 * (wide = 1), NumPy 1.x's value-based casting computes it in float32 (wide = 0). For float64 both
 * are the same.
 */
#include <math.h>

#include "fastnn.h"

#ifdef FASTNN_REAL_F32
#define SQRT sqrtf /* sqrt of a float, in float: numpy.sqrt of a float32 array */
#else
#define SQRT sqrt
#endif

static FASTNN_CLONES void adam_span(real *restrict p, const real *restrict g, real *restrict m,
                                    real *restrict v, double lr_t, real c1, real c2, int wide,
                                    ptrdiff_t n)
{
    const real eps = (real)1e-7, lr = (real)lr_t;
    if (wide) {
        for (ptrdiff_t i = 0; i < n; i++) {
            real mi = m[i] + c1 * (g[i] - m[i]);
            real vi = v[i] + c2 * (g[i] * g[i] - v[i]);
            m[i] = mi;
            v[i] = vi;
            p[i] = (real)((double)p[i] - lr_t * (double)mi / (double)(SQRT(vi) + eps));
        }
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            real mi = m[i] + c1 * (g[i] - m[i]);
            real vi = v[i] + c2 * (g[i] * g[i] - v[i]);
            m[i] = mi;
            v[i] = vi;
            p[i] -= lr * mi / (SQRT(vi) + eps);
        }
    }
}

void FN(adam_update)(real *p, const real *g, real *m, real *v, double lr_t, double one_minus_beta1,
                     double one_minus_beta2, int wide, ptrdiff_t n)
{
    int nt = n >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
    ptrdiff_t nchunks = (n + FASTNN_CHUNK - 1) / FASTNN_CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        ptrdiff_t lo = c * FASTNN_CHUNK, len = n - lo < FASTNN_CHUNK ? n - lo : FASTNN_CHUNK;
        adam_span(p + lo, g + lo, m + lo, v + lo, lr_t, (real)one_minus_beta1,
                  (real)one_minus_beta2, wide, len);
    }
}
