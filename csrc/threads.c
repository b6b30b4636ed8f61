/* threads.c: the run-time settings every kernel reads.
 * The thread count: 0 (the default) follows OpenMP's own setting, which honours OMP_NUM_THREADS;
 * fastnn.set_num_threads(n) stores n here.
 * The explicit AVX-512 code (real.h): on when the CPU has AVX-512F; the tests turn it off
 * (_core.set_avx512) to run the portable code on the same machine. */
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

static int use_avx512 = -1; /* -1: not decided yet */

static int cpu_has_avx512(void)
{
#ifdef FASTNN_AVX512
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

void fastnn_set_avx512(int on) { use_avx512 = on && cpu_has_avx512(); }

int fastnn_avx512(void)
{
    if (use_avx512 < 0)
        use_avx512 = cpu_has_avx512();
    return use_avx512;
}
