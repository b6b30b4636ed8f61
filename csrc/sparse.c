/* sparse.c: products with a sparse x (SparseX, sparse_matmul, sparse_t_matmul in
 * _core_sparse.pxi), for the first layer of the two-layer models and multilayer.py.
 *
 * MNIST images are ~80% zero pixels. The first layer's two products with the input, x W1 forward
 * and x^T dz for dW1 backward, do a fifth of a dense product's work when zero pixels are skipped.
 * sparse_index lists x's nonzeros once per step, by rows (CSR: rowptr, cols, vals) and by columns
 * (CSC: colptr, rows, cvals). sparse_matmul forms out[r, :] = sum_i x[r, i] W[i, :] from the
 * rows, sparse_t_matmul dW[i, :] = sum_r x[r, i] d[r, :] from the columns (sparse_combine: every
 * output row is written once; with AVX-512 and a narrow h, summed in registers). models.py takes
 * this path when x is sparse enough, otherwise NumPy's BLAS; both sum the same products, in
 * another order.
 */
#include <stdlib.h>

#include "compress4.h"
#include "fastnn.h"

/* Appends the nonzeros of row xr (in elements) to cols/vals from m on, and sets `bit` in word[i]
 * for each nonzero xr[i]; returns the new m. Portable version: branch-free, every element
 * written, the count advanced only for nonzeros. */
static int64_t compact_row(const real *xr, ptrdiff_t in, int64_t *cols, real *vals, int64_t m,
                           uint64_t *word, uint64_t bit)
{
    for (ptrdiff_t i = 0; i < in; i++) {
        cols[m] = i;
        vals[m] = xr[i];
        m += xr[i] != 0;
        word[i] |= xr[i] != 0 ? bit : 0;
    }
    return m;
}

/* compact_row for the elements [i, in) of row xr that a vector loop left */
static int64_t compact_tail(const real *xr, ptrdiff_t i, ptrdiff_t in, int64_t *cols, real *vals,
                            int64_t m, uint64_t *word, uint64_t bit)
{
    int64_t start = m;
    m = compact_row(xr + i, in - i, cols + m, vals + m, 0, word + i, bit) + start;
    for (int64_t q = start; q < m; q++) /* the tail's indices are relative to i */
        cols[q] += i;
    return m;
}

#ifdef FASTNN_AVX512
/* AVX-512 version: a compare gives the nonzero lanes of 8 (16) elements, a compress packs them
 * and their indices to the front of a register, a full store writes them at m (the arrays have
 * room: the lanes past the count are overwritten later or never read). Register compresses, not
 * memory ones, which are microcoded on some CPUs. */
__attribute__((target("avx512f"))) static int64_t compact_row_avx512(const real *xr, ptrdiff_t in,
                                                                     int64_t *cols, real *vals,
                                                                     int64_t m, uint64_t *word,
                                                                     uint64_t bit)
{
    const __m512i bits = _mm512_set1_epi64((long long)bit);
#ifdef FASTNN_REAL_F32
    const ptrdiff_t lanes = 16;
    __m512i idx_lo = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7), eight = _mm512_set1_epi64(8);
    ptrdiff_t i = 0;
    for (; i + lanes <= in; i += lanes) {
        __m512 v = _mm512_loadu_ps(xr + i);
        __mmask16 k = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        __m512i lo = _mm512_add_epi64(idx_lo, _mm512_set1_epi64(i)), hi = _mm512_add_epi64(lo, eight);
        _mm512_storeu_ps(vals + m, _mm512_maskz_compress_ps(k, v));
        int c = __builtin_popcount(k & 0xff);
        _mm512_storeu_si512(cols + m, _mm512_maskz_compress_epi64((__mmask8)k, lo));
        _mm512_storeu_si512(cols + m + c, _mm512_maskz_compress_epi64((__mmask8)(k >> 8), hi));
        m += __builtin_popcount(k);
        for (int half = 0; half < 2; half++) {
            __m512i w = _mm512_loadu_si512(word + i + 8 * half);
            w = _mm512_mask_or_epi64(w, (__mmask8)(k >> (8 * half)), w, bits);
            _mm512_storeu_si512(word + i + 8 * half, w);
        }
    }
#else
    const ptrdiff_t lanes = 8;
    __m512i idx = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    ptrdiff_t i = 0;
    for (; i + lanes <= in; i += lanes) {
        __m512d v = _mm512_loadu_pd(xr + i);
        __mmask8 k = _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_NEQ_UQ);
        _mm512_storeu_pd(vals + m, _mm512_maskz_compress_pd(k, v));
        _mm512_storeu_si512(cols + m, _mm512_maskz_compress_epi64(k, _mm512_add_epi64(idx, _mm512_set1_epi64(i))));
        m += __builtin_popcount(k);
        __m512i w = _mm512_loadu_si512(word + i);
        _mm512_storeu_si512(word + i, _mm512_mask_or_epi64(w, k, w, bits));
    }
#endif
    return compact_tail(xr, i, in, cols, vals, m, word, bit);
}
#endif

#ifdef FASTNN_AVX2
/* AVX2 version of compact_row, 4 elements at a time: a compare and a movemask give the nonzero
 * lanes, a permute from the table packs them and their indices to the front, full stores write
 * them at m (as the AVX-512 version: the arrays have room past the count). */
__attribute__((target("avx2,fma"))) static int64_t compact_row_avx2(const real *xr, ptrdiff_t in,
                                                                   int64_t *cols, real *vals,
                                                                   int64_t m, uint64_t *word,
                                                                   uint64_t bit)
{
    const __m256i bits = _mm256_set1_epi64x((long long)bit), lane = _mm256_setr_epi64x(0, 1, 2, 3);
    ptrdiff_t i = 0;
    for (; i + 4 <= in; i += 4) {
#ifdef FASTNN_REAL_F32
        __m128 v = _mm_loadu_ps(xr + i);
        __m128 nz = _mm_cmp_ps(v, _mm_setzero_ps(), _CMP_NEQ_UQ);
        int k = _mm_movemask_ps(nz);
        _mm_storeu_ps(vals + m, _mm_permutevar_ps(v, _mm_load_si128((const __m128i *)compress4_32[k])));
        __m256i nz64 = _mm256_cvtepi32_epi64(_mm_castps_si128(nz));
#else
        __m256d v = _mm256_loadu_pd(xr + i);
        __m256d nz = _mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_NEQ_UQ);
        int k = _mm256_movemask_pd(nz);
        __m256i perm = _mm256_load_si256((const __m256i *)compress4_64[k]);
        _mm256_storeu_pd(vals + m, _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), perm)));
        __m256i nz64 = _mm256_castpd_si256(nz);
#endif
        __m256i at = _mm256_add_epi64(lane, _mm256_set1_epi64x((long long)i));
        _mm256_storeu_si256((__m256i *)(cols + m),
                            _mm256_permutevar8x32_epi32(at, _mm256_load_si256((const __m256i *)compress4_64[k])));
        m += __builtin_popcount((unsigned)k);
        __m256i w = _mm256_loadu_si256((const __m256i *)(word + i));
        _mm256_storeu_si256((__m256i *)(word + i), _mm256_or_si256(w, _mm256_and_si256(bits, nz64)));
    }
    return compact_tail(xr, i, in, cols, vals, m, word, bit);
}
#endif

static inline int lowest_set_bit(uint64_t b)
{
#ifdef __GNUC__
    return __builtin_ctzll(b);
#else
    int k = 0;
    for (; !(b & 1); b >>= 1)
        k++;
    return k;
#endif
}

/* The nonzeros of x (n, in): CSR (rowptr, cols, vals) row by row, and CSC (colptr, rows, cvals)
 * column by column from a bit per element (bit r % 64 of bits[(r / 64) * in + i] is set when
 * x[r, i] != 0), so that both are written in order (a counting sort of the CSR scatters its writes
 * over all the columns: fill 51 -> 43 us at 784 inputs, batch 100). cols, vals, rows, cvals have
 * room for n * in + 16, bits for ((n + 63) / 64) * in words. Returns 1 when the nonzeros are all
 * finite, 0 otherwise. */
int FN(sparse_index)(const real *x, ptrdiff_t n, ptrdiff_t in, int64_t *rowptr, int64_t *cols,
                      real *vals, int64_t *colptr, int64_t *rows, real *cvals, uint64_t *bits)
{
    ptrdiff_t words = (n + 63) / 64;
    memset(bits, 0, (size_t)(words * in) * sizeof *bits);
    int64_t m = 0;
#ifdef FASTNN_AVX512
    int wide = fastnn_avx512(), avx2 = fastnn_avx2();
#endif
    for (ptrdiff_t r = 0; r < n; r++) {
        rowptr[r] = m;
        uint64_t *word = bits + (r / 64) * in, bit = 1ULL << (r % 64);
#ifdef FASTNN_AVX512
        if (wide) {
            m = compact_row_avx512(x + r * in, in, cols, vals, m, word, bit);
            continue;
        }
        if (avx2) {
            m = compact_row_avx2(x + r * in, in, cols, vals, m, word, bit);
            continue;
        }
#endif
        m = compact_row(x + r * in, in, cols, vals, m, word, bit);
    }
    rowptr[n] = m;
    int64_t p = 0;
    for (ptrdiff_t i = 0; i < in; i++) {
        colptr[i] = p;
        for (ptrdiff_t w = 0; w < words; w++)
            for (uint64_t b = bits[w * in + i]; b; b &= b - 1) {
                ptrdiff_t r = w * 64 + lowest_set_bit(b);
                rows[p] = r;
                cvals[p++] = x[r * in + i];
            }
    }
    colptr[in] = p;
    return FN(all_finite)(vals, m);
}

/* y (h) = sum over q in [begin, end) of a[q] X[idx[q], :], four terms at a time */
static inline void combine_rows(real *restrict y, const real *a, const int64_t *idx, int64_t begin,
                                int64_t end, const real *X, ptrdiff_t h)
{
    for (ptrdiff_t j = 0; j < h; j++)
        y[j] = 0;
    int64_t q = begin;
    for (; q + 4 <= end; q += 4) {
        const real *x0 = X + idx[q] * h, *x1 = X + idx[q + 1] * h;
        const real *x2 = X + idx[q + 2] * h, *x3 = X + idx[q + 3] * h;
        real a0 = a[q], a1 = a[q + 1], a2 = a[q + 2], a3 = a[q + 3];
        for (ptrdiff_t j = 0; j < h; j++)
            y[j] += a0 * x0[j] + a1 * x1[j] + a2 * x2[j] + a3 * x3[j];
    }
    for (; q < end; q++)
        for (ptrdiff_t j = 0; j < h; j++)
            y[j] += a[q] * X[idx[q] * h + j];
}

/* out rows [lo, hi): row r combines the rows of X its nonzeros name (ptr, idx, a: CSR or CSC) */
static FASTNN_CLONES void combine_span(const int64_t *ptr, const int64_t *idx, const real *a,
                                       const real *X, real *out, ptrdiff_t lo, ptrdiff_t hi,
                                       ptrdiff_t h)
{
    for (ptrdiff_t r = lo; r < hi; r++)
        combine_rows(out + r * h, a, idx, ptr[r], ptr[r + 1], X, h);
}

#ifdef FASTNN_AVX512
/* AVX-512 version for narrow rows (h up to MAX_REGS registers: 128 doubles, 256 floats; the
 * book's nets have 50 and 100 hidden units): each output row is summed in registers, in two sets
 * of nv accumulators taking alternate terms, and stored once. combine_span (above) loads and
 * stores the row every four terms: with h known only at run time GCC cannot keep it in registers. Here nv is a constant in
 * each case of the switch in combine_span_avx512. X's rows are ldx apart (sparse_combine may pass a
 * padded copy). The last register is masked (a masked load never touches memory past h); the
 * others are plain loads and stores. */
#define MAX_REGS 16
#define PAD_MAX_BYTES (256 * 1024)

/* sum + coef * (register v of row), the last of nv registers holding the lanes `last` */
__attribute__((target("avx512f"), always_inline)) static inline vreal
add_term(vreal sum, vreal coef, const real *row, int v, int nv, vmask last)
{
    const real *p = row + v * VLANES;
    return V(fmadd)(coef, v < nv - 1 ? V(loadu)(p) : V(maskz_loadu)(last, p), sum);
}

__attribute__((target("avx512f"), always_inline)) static inline void
combine_span_regs(const int64_t *ptr, const int64_t *idx, const real *a, const real *X, ptrdiff_t ldx,
                  real *out, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t h, const int nv)
{
    vmask last = (vmask)((1ULL << (h - (nv - 1) * VLANES)) - 1);
    for (ptrdiff_t r = lo; r < hi; r++) {
        vreal even[MAX_REGS], odd[MAX_REGS];
        for (int v = 0; v < nv; v++)
            even[v] = odd[v] = V(setzero)();
        int64_t q = ptr[r];
        for (; q + 2 <= ptr[r + 1]; q += 2) {
            const real *x0 = X + idx[q] * ldx, *x1 = X + idx[q + 1] * ldx;
            vreal a0 = V(set1)(a[q]), a1 = V(set1)(a[q + 1]);
            for (int v = 0; v < nv; v++) {
                even[v] = add_term(even[v], a0, x0, v, nv, last);
                odd[v] = add_term(odd[v], a1, x1, v, nv, last);
            }
        }
        if (q < ptr[r + 1]) {
            const real *x0 = X + idx[q] * ldx;
            vreal a0 = V(set1)(a[q]);
            for (int v = 0; v < nv; v++)
                even[v] = add_term(even[v], a0, x0, v, nv, last);
        }
        real *o = out + r * h;
        for (int v = 0; v < nv - 1; v++)
            V(storeu)(o + v * VLANES, V(add)(even[v], odd[v]));
        V(mask_storeu)(o + (nv - 1) * VLANES, last, V(add)(even[nv - 1], odd[nv - 1]));
    }
}

__attribute__((target("avx512f"))) static void combine_span_avx512(const int64_t *ptr,
                                                                   const int64_t *idx, const real *a,
                                                                   const real *X, ptrdiff_t ldx,
                                                                   real *out, ptrdiff_t lo,
                                                                   ptrdiff_t hi, ptrdiff_t h)
{
    switch ((h + VLANES - 1) / VLANES) {
#define CASE(nv)                                                                                     \
    case nv:                                                                                         \
        combine_span_regs(ptr, idx, a, X, ldx, out, lo, hi, h, nv);                                 \
        break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
        CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14) CASE(15) CASE(16)
#undef CASE
    }
}
#endif

#ifdef FASTNN_AVX2
/* AVX2 version for any h, in column blocks of up to BLOCK_REGS registers: every output row of a
 * block is summed in registers and stored once, and the blocks are the outer loop, so the block
 * of X that the rows read at random stays in cache (X = W1 (784, 100) float64 is 627 KB, more
 * than a 512 KB L2; a block of 32 columns is 200 KB). The last register of the last block is
 * masked (a masked load never touches memory past h). */
#define BLOCK_REGS 6

/* lanes [0, n) of a register, as a maskload/maskstore mask */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256i lanes_below(int n)
{
#ifdef FASTNN_REAL_F32
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#else
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
#endif
}

/* columns [j0, j0 + (nv - 1) * YLANES + the lanes of `last`) of out rows [lo, hi) */
__attribute__((target("avx2,fma"), always_inline)) static inline void
combine_block_regs(const int64_t *ptr, const int64_t *idx, const real *a, const real *X, real *out,
                   ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t h, ptrdiff_t j0, const int nv, __m256i last)
{
    for (ptrdiff_t r = lo; r < hi; r++) {
        yreal even[BLOCK_REGS], odd[BLOCK_REGS];
        for (int v = 0; v < nv; v++)
            even[v] = odd[v] = Y(setzero)();
        int64_t q = ptr[r];
        for (; q + 2 <= ptr[r + 1]; q += 2) {
            const real *x0 = X + idx[q] * h + j0, *x1 = X + idx[q + 1] * h + j0;
            yreal a0 = Y(set1)(a[q]), a1 = Y(set1)(a[q + 1]);
            for (int v = 0; v < nv - 1; v++) {
                even[v] = Y(fmadd)(a0, Y(loadu)(x0 + v * YLANES), even[v]);
                odd[v] = Y(fmadd)(a1, Y(loadu)(x1 + v * YLANES), odd[v]);
            }
            even[nv - 1] = Y(fmadd)(a0, Y(maskload)(x0 + (nv - 1) * YLANES, last), even[nv - 1]);
            odd[nv - 1] = Y(fmadd)(a1, Y(maskload)(x1 + (nv - 1) * YLANES, last), odd[nv - 1]);
        }
        if (q < ptr[r + 1]) {
            const real *x0 = X + idx[q] * h + j0;
            yreal a0 = Y(set1)(a[q]);
            for (int v = 0; v < nv - 1; v++)
                even[v] = Y(fmadd)(a0, Y(loadu)(x0 + v * YLANES), even[v]);
            even[nv - 1] = Y(fmadd)(a0, Y(maskload)(x0 + (nv - 1) * YLANES, last), even[nv - 1]);
        }
        real *o = out + r * h + j0;
        for (int v = 0; v < nv - 1; v++)
            Y(storeu)(o + v * YLANES, Y(add)(even[v], odd[v]));
        Y(maskstore)(o + (nv - 1) * YLANES, last, Y(add)(even[nv - 1], odd[nv - 1]));
    }
}

__attribute__((target("avx2,fma"))) static void combine_span_avx2(const int64_t *ptr,
                                                                 const int64_t *idx, const real *a,
                                                                 const real *X, real *out,
                                                                 ptrdiff_t lo, ptrdiff_t hi,
                                                                 ptrdiff_t h)
{
    ptrdiff_t regs = (h + YLANES - 1) / YLANES, blocks = (regs + BLOCK_REGS - 1) / BLOCK_REGS;
    ptrdiff_t per_block = (regs + blocks - 1) / blocks; /* balanced: 25 registers -> 7, 7, 7, 4 */
    for (ptrdiff_t j0 = 0; j0 < h; j0 += per_block * YLANES) {
        ptrdiff_t width = h - j0 < per_block * YLANES ? h - j0 : per_block * YLANES;
        int nv = (int)((width + YLANES - 1) / YLANES);
        __m256i last = lanes_below((int)(width - (nv - 1) * YLANES));
        switch (nv) {
#define CASE(n)                                                                                      \
    case n:                                                                                          \
        combine_block_regs(ptr, idx, a, X, out, lo, hi, h, j0, n, last);                            \
        break;
            CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
#undef CASE
        }
    }
}
#endif

/* out (rows, h): out[r, :] = sum over q in [ptr[r], ptr[r + 1]) of a[q] X[idx[q], :], X (x_rows, h) */
void FN(sparse_combine)(const int64_t *ptr, const int64_t *idx, const real *a, const real *X,
                        real *out, ptrdiff_t rows, ptrdiff_t x_rows, ptrdiff_t h)
{
    int nt = ptr[rows] * h >= 16 * FASTNN_PARALLEL_MIN ? fastnn_get_num_threads() : 1;
#ifdef FASTNN_AVX512
    int narrow = h >= 1 && h <= MAX_REGS * VLANES && fastnn_avx512(), avx2 = h >= 1 && fastnn_avx2();
    /* X's rows are read at random, a register at a time: when h does not fill whole registers,
       most of those loads straddle two cache lines. A small X is copied first to rows padded
       to whole registers, 64-byte aligned (a 784-50-10 step: 20% less time in x^T dz), in
       memory of this call's own (calls may run at once from several threads). */
    ptrdiff_t ldx = h, padded_h = (h + VLANES - 1) / VLANES * VLANES;
    void *block = NULL;
    const real *Xr = X;
    if (narrow && padded_h != h && x_rows * padded_h * (ptrdiff_t)sizeof(real) <= PAD_MAX_BYTES
        && (block = malloc((size_t)(x_rows * padded_h) * sizeof(real) + 63))) {
        real *copy = (real *)(((uintptr_t)block + 63) & ~(uintptr_t)63);
        for (ptrdiff_t r = 0; r < x_rows; r++)
            memcpy(copy + r * padded_h, X + r * h, (size_t)h * sizeof(real));
        Xr = copy;
        ldx = padded_h;
    }
#else
    (void)x_rows;
#endif
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int b = 0; b < nt; b++) {
        ptrdiff_t lo, hi;
        thread_block(b, nt, rows, &lo, &hi);
        if (lo >= hi)
            continue;
#ifdef FASTNN_AVX512
        if (narrow) {
            combine_span_avx512(ptr, idx, a, Xr, ldx, out, lo, hi, h);
            continue;
        }
        if (avx2) {
            combine_span_avx2(ptr, idx, a, X, out, lo, hi, h);
            continue;
        }
#endif
        combine_span(ptr, idx, a, X, out, lo, hi, h);
    }
#ifdef FASTNN_AVX512
    free(block);
#endif
}
