/* real.h: one source, two precisions.
 *
 * Every kernel file in csrc/ is compiled twice by CMakeLists.txt: once with FASTNN_REAL_F32 defined
 * (real = float, names end in _f32) and once without (real = double, names end in _f64).
 * FN(sigmoid_forward) names the instance; fastnn.h declares both.
 */
#ifndef FASTNN_REAL_H
#define FASTNN_REAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef FASTNN_REAL_F32
typedef float real;
#define FN(name) name##_f32
#else
typedef double real;
#define FN(name) name##_f64
#endif

/* Wide vector paths chosen at load time (GCC function multiversioning through ifunc): the wheel runs
 * on any x86-64, and AVX2 / AVX-512 machines get the wide loops. Apply to leaf loops only: OpenMP's
 * outlined regions are not cloned, so a parallel loop calls a cloned span function per chunk. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FASTNN_NO_CLONES)
#define FASTNN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTNN_CLONES
#endif

/* Explicit AVX-512 code (intrinsics in functions marked target("avx512f"), called only when
 * fastnn_avx512() says so) where GCC's vectorised C falls short: same compilers. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(FASTNN_NO_CLONES)
#define FASTNN_AVX512 1
#include <immintrin.h>
/* one 512-bit register of reals: vreal of VLANES lanes, vmask a mask of them, V(op) the
 * intrinsic _mm512_op_pd (double) or _mm512_op_ps (float) */
#ifdef FASTNN_REAL_F32
typedef __m512 vreal;
typedef __mmask16 vmask;
#define VLANES 16
#define V(op) _mm512_##op##_ps
#define V_GE_MASK(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ)
#else
typedef __m512d vreal;
typedef __mmask8 vmask;
#define VLANES 8
#define V(op) _mm512_##op##_pd
#define V_GE_MASK(a, b) _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ)
#endif
#endif

#ifdef FASTNN_AVX512
/* The same for AVX2's 256-bit registers (functions marked target("avx2,fma"), called only when
 * fastnn_avx2() says so): yreal of YLANES lanes, Y(op) the intrinsic _mm256_op_pd or _ps. */
#define FASTNN_AVX2 1
#ifdef FASTNN_REAL_F32
typedef __m256 yreal;
#define YLANES 8
#define Y(op) _mm256_##op##_ps
#else
typedef __m256d yreal;
#define YLANES 4
#define Y(op) _mm256_##op##_pd
#endif
#endif

/* 1 when the explicit AVX-512 (AVX2) code is to run (threads.c): AVX-512 implies AVX2 */
int fastnn_avx512(void);
int fastnn_avx2(void);

/* Elementwise kernels run in chunks of this many elements; OpenMP starts threads only from
 * FASTNN_PARALLEL_MIN elements on, below that thread start-up costs more than it saves. */
#define FASTNN_CHUNK 16384
#define FASTNN_PARALLEL_MIN 131072

int fastnn_get_num_threads(void);

/* The status every kernel that can fail returns, as a ptrdiff_t (kernels that cannot fail return
 * void; all_finite and sparse_index return a truth value, not a status):
 *   FASTNN_OK (-1)         done;
 *   FASTNN_NO_MEMORY (-2)  a scratch allocation failed (the Cython entry raises MemoryError and
 *                          returns no output);
 *   r >= 0                 row r is the first whose index label lies outside [0, classes); labels
 *                          are checked before anything is written.
 * One convention, so src/fastnn/_core.pyx turns any status into its exception in one place
 * (_check_status). */
#define FASTNN_OK (-1)
#define FASTNN_NO_MEMORY (-2)

/* [*lo, *hi): block b of nt near-equal blocks of [0, n), the share of thread b (may be empty) */
static inline void thread_block(int b, int nt, ptrdiff_t n, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t size = (n + nt - 1) / nt;
    *lo = b * size < n ? b * size : n;
    *hi = *lo + size < n ? *lo + size : n;
}

#endif
