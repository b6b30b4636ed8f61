/* threads.c: the run-time settings every kernel reads.
 * The thread count: fastnn.set_num_threads(n) stores n here; 0 (the default) means OMP_NUM_THREADS
 * (through OpenMP) when that is set, else 1. Not OpenMP's own default of every core: NumPy's BLAS
 * threads spin for a while after each call, and a kernel that starts threads then shares the
 * cores with them (a sigmoid of 10^6 doubles right after an Affine: 7 ms on 2 threads, 1 ms on
 * one). Threads are for who asks for them. A kernel called on a thread of a parallel region (the
 * convolution's blocks, conv_gemm.c) runs on that thread alone: the cores are taken.
 * The explicit vector code (real.h): AVX-512 when the CPU has AVX-512F, else AVX2 when it has
 * AVX2 and FMA; the tests lower the level (_core.set_simd) to run the narrower or the portable
 * code on the same machine. */
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
    if (omp_in_parallel())
        return 1;
    if (from_env < 0)
        from_env = getenv("OMP_NUM_THREADS") != NULL;
    return num_threads > 0 ? num_threads : from_env ? omp_get_max_threads() : 1;
#else
    return 1;
#endif
}

/* the widest explicit vector code to run: 0 none, 1 AVX2 + FMA, 2 AVX-512F; -1 not decided yet */
static int simd = -1;

static int cpu_simd(void)
{
#ifdef FASTNN_AVX512
    if (__builtin_cpu_supports("avx512f"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

int fastnn_set_simd(int level)
{
    int cpu = cpu_simd();
    simd = level < cpu ? level : cpu;
    return simd;
}

int fastnn_simd(void)
{
    if (simd < 0)
        simd = cpu_simd();
    return simd;
}

int fastnn_avx512(void) { return fastnn_simd() >= 2; }

int fastnn_avx2(void) { return fastnn_simd() >= 1; }
