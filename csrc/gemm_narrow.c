/* gemm_narrow.c: C (M, N) = A B for a narrow B (K, N), A (M, K), or C = A^T B with A (K, M); all
 * C-contiguous.
 *
 * For products such as a first layer's x W (100, 784) (784, 50) and its weight gradient x^T dz,
 * a packed BLAS GEMM spends much of its time copying panels of operands this small. Here a block
 * of R rows of C stays in registers (R x NV vectors) while k runs over the whole of K: each step
 * broadcasts A[r, k] and multiplies it into B's row k, read straight from B (which stays in the
 * cache: 784 x 50 doubles are 313 KB). The transposed form is the same loop with A's element
 * (r, k) read at A[k * M + r] instead of A[r * K + k]. Columns come in panels of at most MAXV
 * vectors; the last vector of a panel is masked (AVX-512) or loaded with a mask and stored through
 * a scratch vector (AVX2).
 *
 * Every element of C is the sum over k = 0, 1, ..., K - 1 in that order, one multiply-add at a
 * time from zero, whatever the row block, panel or thread: the result does not depend on the
 * thread count. (The portable path rounds products separately unless GCC contracts them: paths
 * may differ in the last bits, as BLAS and this kernel do.) 0 * inf gives NaN as in BLAS: no
 * term is skipped.
 */
#include "real.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* threads from this many multiply-adds on (about 40 us of one core's work): below that, starting
 * them costs more than the share they take */
#define GEMM_PARALLEL_MIN (8 * (ptrdiff_t)FASTNN_PARALLEL_MIN)

/* rows of C in [lo, hi), A's element (row i, k) at a[i * rs + k * ks], B (k, n) and C (m, n)
 * with rows ldb and ldc apart */
static void span_portable(const real *a, ptrdiff_t rs, ptrdiff_t ks, const real *b,
                          ptrdiff_t ldb, real *c, ptrdiff_t ldc, ptrdiff_t lo, ptrdiff_t hi,
                          ptrdiff_t k, ptrdiff_t n)
{
    for (ptrdiff_t i = lo; i < hi; i++) {
        real *ci = c + i * ldc;
        for (ptrdiff_t j = 0; j < n; j++)
            ci[j] = 0;
        for (ptrdiff_t kk = 0; kk < k; kk++) {
            real s = a[i * rs + kk * ks];
            const real *bk = b + kk * ldb;
            for (ptrdiff_t j = 0; j < n; j++)
                ci[j] += s * bk[j];
        }
    }
}

#ifdef FASTNN_AVX512
/* AVX-512: 32 registers, R x NV accumulators and NV vectors of B's row; the broadcast of A's
 * element is a memory operand of the multiply-add */
#define MAXV 6
#define ROWS512(nv) ((30 - (nv)) / (nv) < 8 ? (30 - (nv)) / (nv) : 8)

static inline __attribute__((always_inline, target("avx512f"))) void
block512(const real *a, ptrdiff_t rs, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c,
         ptrdiff_t ldc, ptrdiff_t k, const int R, const int NV, vmask tail)
{
    vreal acc[8][MAXV];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            acc[r][v] = V(setzero)();
    for (ptrdiff_t kk = 0; kk < k; kk++) {
        const real *bk = b + kk * ldb;
        const real *ak = a + kk * ks;
        vreal bv[MAXV];
#pragma GCC unroll 8
        for (int v = 0; v < NV - 1; v++)
            bv[v] = V(loadu)(bk + v * VLANES);
        bv[NV - 1] = V(maskz_loadu)(tail, bk + (NV - 1) * VLANES);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            vreal s = V(set1)(ak[r * rs]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++)
                acc[r][v] = V(fmadd)(s, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
        for (int v = 0; v < NV - 1; v++)
            V(storeu)(c + r * ldc + v * VLANES, acc[r][v]);
        V(mask_storeu)(c + r * ldc + (NV - 1) * VLANES, tail, acc[r][NV - 1]);
    }
}

typedef void (*kernel512)(const real *, ptrdiff_t, ptrdiff_t, const real *, ptrdiff_t, real *,
                          ptrdiff_t, ptrdiff_t, vmask);

#define KERNELS512(nv)                                                                             \
    static __attribute__((target("avx512f"))) void rows512_##nv(                                   \
        const real *a, ptrdiff_t rs, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c,          \
        ptrdiff_t ldc, ptrdiff_t k, vmask tail)                                                    \
    {                                                                                              \
        block512(a, rs, ks, b, ldb, c, ldc, k, ROWS512(nv), nv, tail);                             \
    }                                                                                              \
    static __attribute__((target("avx512f"))) void row512_##nv(                                    \
        const real *a, ptrdiff_t rs, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c,          \
        ptrdiff_t ldc, ptrdiff_t k, vmask tail)                                                    \
    {                                                                                              \
        block512(a, rs, ks, b, ldb, c, ldc, k, 1, nv, tail);                                       \
    }
KERNELS512(1) KERNELS512(2) KERNELS512(3) KERNELS512(4)
KERNELS512(5) KERNELS512(6)

/* indexed by NV - 1 */
static const kernel512 rows512[MAXV] = {rows512_1, rows512_2, rows512_3,
                                        rows512_4, rows512_5, rows512_6};
static const kernel512 row512[MAXV] = {row512_1, row512_2, row512_3,
                                       row512_4, row512_5, row512_6};

/* AVX2: 16 registers, R x NV accumulators, NV vectors of B's row and the broadcast */
#define MAXY 3
#define ROWS256(nv) ((nv) == 1 ? 8 : (nv) == 2 ? 6 : 4)

/* an integer of a lane's width, for maskload's masks */
#ifdef FASTNN_REAL_F32
typedef int32_t lane_int;
#else
typedef int64_t lane_int;
#endif

static inline __attribute__((always_inline, target("avx2,fma"))) void
block256(const real *a, ptrdiff_t rs, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c,
         ptrdiff_t ldc, ptrdiff_t k, const int R, const int NV, __m256i tail, int last)
{
    yreal acc[8][MAXY];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            acc[r][v] = Y(setzero)();
    for (ptrdiff_t kk = 0; kk < k; kk++) {
        const real *bk = b + kk * ldb;
        const real *ak = a + kk * ks;
        yreal bv[MAXY];
#pragma GCC unroll 8
        for (int v = 0; v < NV - 1; v++)
            bv[v] = Y(loadu)(bk + v * YLANES);
        bv[NV - 1] = Y(maskload)(bk + (NV - 1) * YLANES, tail);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            yreal s = Y(set1)(ak[r * rs]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++)
                acc[r][v] = Y(fmadd)(s, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
        for (int v = 0; v < NV - 1; v++)
            Y(storeu)(c + r * ldc + v * YLANES, acc[r][v]);
        real *cl = c + r * ldc + (NV - 1) * YLANES;
        if (last == YLANES) {
            Y(storeu)(cl, acc[r][NV - 1]);
        } else { /* AMD's masked stores are slow: through a scratch vector */
            real part[YLANES];
            Y(storeu)(part, acc[r][NV - 1]);
            memcpy(cl, part, (size_t)last * sizeof *cl);
        }
    }
}

typedef void (*kernel256)(const real *, ptrdiff_t, ptrdiff_t, const real *, ptrdiff_t, real *,
                          ptrdiff_t, ptrdiff_t, __m256i, int);

#define KERNELS256(nv)                                                                             \
    static __attribute__((target("avx2,fma"))) void rows256_##nv(                                  \
        const real *a, ptrdiff_t rs, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c,          \
        ptrdiff_t ldc, ptrdiff_t k, __m256i tail, int last)                                        \
    {                                                                                              \
        block256(a, rs, ks, b, ldb, c, ldc, k, ROWS256(nv), nv, tail, last);                       \
    }                                                                                              \
    static __attribute__((target("avx2,fma"))) void row256_##nv(                                   \
        const real *a, ptrdiff_t rs, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c,          \
        ptrdiff_t ldc, ptrdiff_t k, __m256i tail, int last)                                        \
    {                                                                                              \
        block256(a, rs, ks, b, ldb, c, ldc, k, 1, nv, tail, last);                                 \
    }
KERNELS256(1) KERNELS256(2) KERNELS256(3)

static const kernel256 rows256[MAXY] = {rows256_1, rows256_2, rows256_3};
static const kernel256 row256[MAXY] = {row256_1, row256_2, row256_3};

/* lanes_on + YLANES - t: the mask of the first t lanes, t in 1..YLANES */
static const lane_int lanes_on[2 * YLANES] = {-1, -1, -1, -1,
#ifdef FASTNN_REAL_F32
                                              -1, -1, -1, -1, 0, 0, 0, 0,
#endif
                                              0, 0, 0, 0};

/* columns [0, width) of C (row stride ldc) from those of B (row stride ldb), rows [lo, hi) */
static __attribute__((target("avx2,fma"))) void
span256(const real *a, ptrdiff_t rs, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c,
        ptrdiff_t ldc, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t k, ptrdiff_t width)
{
    for (ptrdiff_t j0 = 0; j0 < width; j0 += MAXY * YLANES) {
        ptrdiff_t pw = width - j0 < MAXY * YLANES ? width - j0 : MAXY * YLANES;
        int nv = (int)((pw + YLANES - 1) / YLANES); /* 1..MAXY */
        int last = (int)(pw - (ptrdiff_t)(nv - 1) * YLANES); /* 1..YLANES */
        __m256i tail = _mm256_loadu_si256((const __m256i *)(lanes_on + YLANES - last));
        int R = ROWS256(nv);
        ptrdiff_t i = lo;
        for (; i + R <= hi; i += R)
            rows256[nv - 1](a + i * rs, rs, ks, b + j0, ldb, c + i * ldc + j0, ldc, k, tail, last);
        for (; i < hi; i++)
            row256[nv - 1](a + i * rs, rs, ks, b + j0, ldb, c + i * ldc + j0, ldc, k, tail, last);
    }
}

/* The tail of A^T B (A's element (i, k) at a[k * ks + i]: VLANES rows of C are contiguous in
 * A's row k): columns [0, W) of C rows [i, i + RB * VLANES), a register per column and block of
 * VLANES rows, each element summed over k in order from zero as everywhere else. The AVX2 code
 * spends a register's multiply-add per row and k on these few columns (a 784 x 50 x^T dz in
 * float32: 15% of its time for the last 2 of 50 columns); here one covers VLANES rows. */
static inline __attribute__((always_inline, target("avx512f"))) void
tail_block512(const real *a, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c, ptrdiff_t ldc,
              ptrdiff_t k, const int RB, const int W)
{
    vreal acc[4][YLANES];
#pragma GCC unroll 8
    for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
        for (int j = 0; j < W; j++)
            acc[r][j] = V(setzero)();
    for (ptrdiff_t kk = 0; kk < k; kk++) {
        const real *ak = a + kk * ks, *bk = b + kk * ldb;
        vreal av[4];
#pragma GCC unroll 8
        for (int r = 0; r < RB; r++)
            av[r] = V(loadu)(ak + r * VLANES);
#pragma GCC unroll 8
        for (int j = 0; j < W; j++) {
            vreal s = V(set1)(bk[j]);
#pragma GCC unroll 8
            for (int r = 0; r < RB; r++)
                acc[r][j] = V(fmadd)(av[r], s, acc[r][j]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
        for (int j = 0; j < W; j++) {
            real lanes[VLANES];
            V(storeu)(lanes, acc[r][j]);
            for (int l = 0; l < VLANES; l++)
                c[(r * VLANES + l) * ldc + j] = lanes[l];
        }
}

/* blocks of RB (4, or 3 for 7-8 columns: at most 24 accumulators) and of 1 register of rows */
#define TAIL_RB(w) ((w) <= 6 ? 4 : 3)
#define TAILS512(w)                                                                                \
    static __attribute__((target("avx512f"))) void tail512_##w(                                    \
        const real *a, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c, ptrdiff_t ldc,         \
        ptrdiff_t k)                                                                               \
    {                                                                                              \
        tail_block512(a, ks, b, ldb, c, ldc, k, TAIL_RB(w), w);                                    \
    }                                                                                              \
    static __attribute__((target("avx512f"))) void tail512_one_##w(                                \
        const real *a, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c, ptrdiff_t ldc,         \
        ptrdiff_t k)                                                                               \
    {                                                                                              \
        tail_block512(a, ks, b, ldb, c, ldc, k, 1, w);                                             \
    }
typedef void (*tail_kernel)(const real *, ptrdiff_t, const real *, ptrdiff_t, real *, ptrdiff_t,
                            ptrdiff_t);
TAILS512(1) TAILS512(2) TAILS512(3) TAILS512(4)
#ifdef FASTNN_REAL_F32
TAILS512(5) TAILS512(6) TAILS512(7) TAILS512(8)
static const tail_kernel tails512[YLANES] = {tail512_1, tail512_2, tail512_3, tail512_4,
                                             tail512_5, tail512_6, tail512_7, tail512_8};
static const tail_kernel tails512_one[YLANES] = {tail512_one_1, tail512_one_2, tail512_one_3,
                                                 tail512_one_4, tail512_one_5, tail512_one_6,
                                                 tail512_one_7, tail512_one_8};
#else
static const tail_kernel tails512[YLANES] = {tail512_1, tail512_2, tail512_3, tail512_4};
static const tail_kernel tails512_one[YLANES] = {tail512_one_1, tail512_one_2, tail512_one_3,
                                                 tail512_one_4};
#endif

/* columns [0, width) of C, width in 1..YLANES, rows [lo, hi) of A^T B: whole blocks of rows here,
 * the rows left (fewer than VLANES) by the AVX2 code */
static void tail_span512(const real *a, ptrdiff_t ks, const real *b, ptrdiff_t ldb, real *c,
                         ptrdiff_t ldc, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t k, ptrdiff_t width)
{
    ptrdiff_t rows = TAIL_RB(width) * VLANES, i = lo;
    for (; i + rows <= hi; i += rows)
        tails512[width - 1](a + i, ks, b, ldb, c + i * ldc, ldc, k);
    for (; i + VLANES <= hi; i += VLANES)
        tails512_one[width - 1](a + i, ks, b, ldb, c + i * ldc, ldc, k);
    if (i < hi)
        span256(a, 1, ks, b, ldb, c, ldc, i, hi, k, width);
}

/* columns [0, width) of C (row stride ldc) from those of B (row stride ldb), rows [lo, hi): AVX-512
 * panels of at most maxv (1..MAXV) vectors, as even as they can be made; a tail of at most YLANES
 * columns goes to tail_span512 for A^T B, else to the AVX2 code, whose vectors take half a 512-bit
 * multiply-add's issue slots on AMD */
static void span512(const real *a, ptrdiff_t rs, ptrdiff_t ks, const real *b, ptrdiff_t ldb,
                    real *c, ptrdiff_t ldc, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t k,
                    ptrdiff_t width, int maxv)
{
    ptrdiff_t rem = width % VLANES, body = rem <= YLANES ? width - rem : width;
    ptrdiff_t vectors = (body + VLANES - 1) / VLANES;
    ptrdiff_t panels = (vectors + maxv - 1) / maxv;
    ptrdiff_t j0 = 0;
    for (ptrdiff_t p = 0; p < panels; p++) {
        int nv = (int)((vectors + panels - 1 - p) / (panels - p)); /* 1..MAXV */
        vectors -= nv;
        ptrdiff_t pw = body - j0 < nv * VLANES ? body - j0 : nv * VLANES;
        int last = (int)(pw - (ptrdiff_t)(nv - 1) * VLANES); /* 1..VLANES */
        vmask tail = (vmask)(((uint64_t)1 << last) - 1);
        int R = ROWS512(nv);
        ptrdiff_t i = lo;
        for (; i + R <= hi; i += R)
            rows512[nv - 1](a + i * rs, rs, ks, b + j0, ldb, c + i * ldc + j0, ldc, k, tail);
        for (; i < hi; i++)
            row512[nv - 1](a + i * rs, rs, ks, b + j0, ldb, c + i * ldc + j0, ldc, k, tail);
        j0 += pw;
    }
    if (body < width && rs == 1)
        tail_span512(a, ks, b + body, ldb, c + body, ldc, lo, hi, k, width - body);
    else if (body < width)
        span256(a, rs, ks, b + body, ldb, c + body, ldc, lo, hi, k, width - body);
}
#endif

static void span(const real *a, ptrdiff_t rs, ptrdiff_t ks, const real *b, real *c, ptrdiff_t lo,
                 ptrdiff_t hi, ptrdiff_t k, ptrdiff_t n)
{
#ifdef FASTNN_AVX512
    if (fastnn_avx512()) {
        span512(a, rs, ks, b, n, c, n, lo, hi, k, n, MAXV);
        return;
    }
    if (fastnn_avx2()) {
        span256(a, rs, ks, b, n, c, n, lo, hi, k, n);
        return;
    }
#endif
    span_portable(a, rs, ks, b, n, c, n, lo, hi, k, n);
}

void FN(gemm_narrow)(const real *a, const real *b, real *c, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                     int trans_a)
{
    if (m <= 0 || n <= 0)
        return;
    if (k < 0)
        k = 0;
    ptrdiff_t rs = trans_a ? 1 : k, ks = trans_a ? m : 1;
    int nt = m * k * n >= GEMM_PARALLEL_MIN && m >= 16 ? fastnn_get_num_threads() : 1;
    if (nt <= 1) {
        span(a, rs, ks, b, c, 0, m, k, n);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++) {
        ptrdiff_t lo, hi;
        thread_block(t, nt, m, &lo, &hi);
        span(a, rs, ks, b, c, lo, hi, k, n);
    }
}

/* A (m, k) B on the calling thread, B and C with rows ldb and ldc apart: a block of the columns
 * of a wider B and C (conv_gemm.c's W . col into the block's columns of y). AVX-512 panels of
 * at most 3 vectors, 8 rows of C a register block: a panel of B for a 3 x 3 filter of 16 or 32
 * channels (144 or 288 rows of 48 floats) stays in the L1 cache for every row block (float32
 * (16, 144) (144, 1568): 49 us against 90 in 6-vector panels of 4 rows) */
void FN(gemm_narrow_into)(const real *a, const real *b, ptrdiff_t ldb, real *c, ptrdiff_t ldc,
                          ptrdiff_t m, ptrdiff_t k, ptrdiff_t n)
{
    if (m <= 0 || n <= 0)
        return;
    if (k < 0)
        k = 0;
#ifdef FASTNN_AVX512
    if (fastnn_avx512()) {
        span512(a, k, 1, b, ldb, c, ldc, 0, m, k, n, 3);
        return;
    }
    if (fastnn_avx2()) {
        span256(a, k, 1, b, ldb, c, ldc, 0, m, k, n);
        return;
    }
#endif
    span_portable(a, k, 1, b, ldb, c, ldc, 0, m, k, n);
}
