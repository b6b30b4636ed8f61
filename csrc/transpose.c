/* transpose.c: dst = src^T between row-strided matrices, the convolutions' operands for
 * gemm_narrow (conv.py): src (rows, cols) with rows lds apart, dst (cols, rows) with rows ldd
 * apart, dst[j * ldd + i] = src[i * lds + j].
 *
 * Tiles of VLANES x VLANES are transposed in AVX-512 registers (8 x 8 doubles in three rounds of
 * unpacks and two-source permutes, 16 x 16 floats in two rounds of unpacks and two of 128-bit
 * lane shuffles), the edges element by element. NumPy's strided copy and a cache-blocked scalar
 * loop both move ~12 GB/s here, a tile in registers several times that.
 *
 * Contract (checked by _core_gemm.pxi): lds >= cols, ldd >= rows, src and dst apart.
 */
#include "fastnn.h"

static void transpose_scalar(const real *src, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t j0,
                             ptrdiff_t j1, ptrdiff_t lds, real *dst, ptrdiff_t ldd)
{
    for (ptrdiff_t j = j0; j < j1; j++)
        for (ptrdiff_t i = i0; i < i1; i++)
            dst[j * ldd + i] = src[i * lds + j];
}

#ifdef FASTNN_AVX512
#ifdef FASTNN_REAL_F32
/* the 16 x 16 tile at src into dst */
__attribute__((target("avx512f"))) static void tile_avx512(const float *src, ptrdiff_t lds,
                                                          float *dst, ptrdiff_t ldd)
{
    __m512 r[16], t[16];
    for (int k = 0; k < 16; k++)
        r[k] = _mm512_loadu_ps(src + k * lds);
    /* pairs of rows: lane quarter q of t[2p] holds rows 2p, 2p+1 at columns 4q, 4q+1 */
    for (int k = 0; k < 16; k += 2) {
        t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
    }
    /* groups of four rows g (rows 4g..4g+3): r[4g + c] holds them at columns 4q + c, q the
       128-bit quarter */
    for (int g = 0; g < 4; g++) {
        __m512d a0 = _mm512_castps_pd(t[4 * g]), a1 = _mm512_castps_pd(t[4 * g + 1]);
        __m512d b0 = _mm512_castps_pd(t[4 * g + 2]), b1 = _mm512_castps_pd(t[4 * g + 3]);
        r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, b0));
        r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, b0));
        r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, b1));
        r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, b1));
    }
    /* column 4q + c: quarter q of r[c], r[4 + c], r[8 + c], r[12 + c] */
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
        __m512 v2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 v3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
        _mm512_storeu_ps(dst + c * ldd, _mm512_shuffle_f32x4(v0, v2, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_storeu_ps(dst + (4 + c) * ldd, _mm512_shuffle_f32x4(v0, v2, _MM_SHUFFLE(3, 1, 3, 1)));
        _mm512_storeu_ps(dst + (8 + c) * ldd, _mm512_shuffle_f32x4(v1, v3, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_storeu_ps(dst + (12 + c) * ldd,
                         _mm512_shuffle_f32x4(v1, v3, _MM_SHUFFLE(3, 1, 3, 1)));
    }
}
#else
/* the 8 x 8 tile at src into dst */
__attribute__((target("avx512f"))) static void tile_avx512(const double *src, ptrdiff_t lds,
                                                          double *dst, ptrdiff_t ldd)
{
    const __m512i pair_lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i pair_hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    const __m512i half_lo = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11);
    const __m512i half_hi = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
    __m512d r[8], t[8], u[8];
    for (int k = 0; k < 8; k++)
        r[k] = _mm512_loadu_pd(src + k * lds);
    /* t[2p]: rows 2p, 2p+1 at the even columns, t[2p + 1] at the odd */
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm512_unpacklo_pd(r[k], r[k + 1]);
        t[k + 1] = _mm512_unpackhi_pd(r[k], r[k + 1]);
    }
    /* u[4h + c]: rows 4h..4h+3 at columns c and c + 4 */
    for (int h = 0; h < 2; h++) {
        u[4 * h] = _mm512_permutex2var_pd(t[4 * h], pair_lo, t[4 * h + 2]);
        u[4 * h + 1] = _mm512_permutex2var_pd(t[4 * h + 1], pair_lo, t[4 * h + 3]);
        u[4 * h + 2] = _mm512_permutex2var_pd(t[4 * h], pair_hi, t[4 * h + 2]);
        u[4 * h + 3] = _mm512_permutex2var_pd(t[4 * h + 1], pair_hi, t[4 * h + 3]);
    }
    for (int c = 0; c < 4; c++) {
        _mm512_storeu_pd(dst + c * ldd, _mm512_permutex2var_pd(u[c], half_lo, u[4 + c]));
        _mm512_storeu_pd(dst + (c + 4) * ldd, _mm512_permutex2var_pd(u[c], half_hi, u[4 + c]));
    }
}
#endif
#endif

void FN(transpose)(const real *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t lds, real *dst,
                   ptrdiff_t ldd)
{
    ptrdiff_t rt = 0, ct = 0; /* the rows and columns covered by whole tiles */
#ifdef FASTNN_AVX512
    if (fastnn_avx512()) {
        rt = rows / VLANES * VLANES, ct = cols / VLANES * VLANES;
        for (ptrdiff_t i = 0; i < rt; i += VLANES)
            for (ptrdiff_t j = 0; j < ct; j += VLANES)
                tile_avx512(src + i * lds + j, lds, dst + j * ldd + i, ldd);
    }
#endif
    transpose_scalar(src, 0, rt, ct, cols, lds, dst, ldd);
    transpose_scalar(src, rt, rows, 0, cols, lds, dst, ldd);
}
