/* finite.c: whether every element of a buffer is finite (the sparse products' precondition). */
#include "fastnn.h"

/* 1 when every element of a is finite. The sparse products (sparse.c) skip zeros of x, which is
 * only what BLAS computes when the other factor is finite (0 * inf = NaN): models.py checks first. */
static FASTNN_CLONES int all_finite_span(const real *a, ptrdiff_t n)
{
    int bad = 0;
    for (ptrdiff_t i = 0; i < n; i++)
        bad |= !(a[i] - a[i] == 0);
    return !bad;
}

int FN(all_finite)(const real *a, ptrdiff_t n)
{
    return all_finite_span(a, n);
}
