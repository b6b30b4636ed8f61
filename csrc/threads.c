/* threads.c: the run-time settings every kernel reads.
 * The thread count: fastnn.set_num_threads(n) stores n here; 0 (the default) means OMP_NUM_THREADS
 * (through OpenMP) when that is set, else 1. Not OpenMP's own default of every core: NumPy's BLAS
 * threads spin for a while after each call, and a kernel that starts threads then shares the
 * cores with them (a sigmoid of 10^6 doubles right after an Affine: 7 ms on 2 threads, 1 ms on
 * one). Threads are for who asks for them.
 * The explicit AVX-512 code (real.h): on when the CPU has AVX-512F; the tests turn it off
 * (_core.set_avx512) to run the portable code on the same machine. */
#include <stdlib.h>

#include "real.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int num_threads = 0;

void fastnn_set_num_threads(int n) { num_threads = n; }

int fastnn_get_num_threads(void)
{
#ifdef _OPENMP
    static int from_env = -1; /* OMP_NUM_THREADS is set: -1 not looked at yet */
    if (from_env < 0)
        from_env = getenv("OMP_NUM_THREADS") != NULL;
    return num_threads > 0 ? num_threads : from_env ? omp_get_max_threads() : 1;
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
