/* threads.c: the thread count every kernel uses. 0 (the default) follows OpenMP's own setting,
 * which honours OMP_NUM_THREADS; fastnn.set_num_threads(n) stores n here. */
#include "real.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int num_threads = 0;

void fastnn_set_num_threads(int n) { num_threads = n; }

int fastnn_get_num_threads(void)
{
#ifdef _OPENMP
    return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
    return 1;
#endif
}
