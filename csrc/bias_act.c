/* bias_act.c: a hidden layer's bias add and activation (sigmoid or ReLU) in one pass after its
 * matrix product, and the activation's backward fused with the bias gradient: the fused kernels of
 * layers.py's Sigmoid and Relu behind an Affine (the two-layer models, multilayer.py).
 *
 * Contract (checked by _core_bias_act.pxi): C-contiguous buffers of the sizes named.
 */
#include <stdlib.h>

#include "act.h"
#include "fastnn.h"
#include "vexp.h"

/* a (n, h) <- act(a + b): the hidden layer's bias add and activation in one pass */
static FASTNN_CLONES void bias_act_rows(real *a, const real *b, ptrdiff_t lo, ptrdiff_t hi,
                                        ptrdiff_t h, int relu, int simd)
{
    for (ptrdiff_t i = lo; i < hi; i++) {
        real *row = a + i * h;
        if (relu)
            for (ptrdiff_t j = 0; j < h; j++)
                row[j] = relu_of(row[j] + b[j]);
        else
            vsigmoid_span(row, b, row, h, simd);
    }
}

void FN(bias_act_forward)(real *a, const real *b, ptrdiff_t n, ptrdiff_t h, int relu)
{
    int nt = n * h >= FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
    int simd = simd_level();
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int k = 0; k < nt; k++) {
        ptrdiff_t lo, hi;
        thread_block(k, nt, n, &lo, &hi);
        if (lo < hi)
            bias_act_rows(a, b, lo, hi, h, relu, simd);
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
