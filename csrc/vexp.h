/* vexp.h: an exp that GCC vectorises (libm's exp is a scalar call and would bound every kernel).
 *
 * exp(x) = 2^k * exp(r), k = round(x / ln 2), r = x - k ln 2 in [-ln2/2, ln2/2] (Cody-Waite: ln 2
 * split in a high part with trailing zero bits, so k * LN2_HI is exact, and a low part).
 * exp(r) is its Taylor polynomial (Estrin's scheme): degree 13 for double (truncation < 4e-18, well under an ulp),
 * degree 7 for float (< 5e-9). Accuracy about 1 ulp; the tests compare with NumPy's exp.
 * k is read from the bits of x/ln2 + 1.5*2^52 (no float-to-int conversion, which AVX2 lacks).
 * 2^k is applied as two factors 2^(k/2) and 2^(k - k/2) so results near overflow and in the subnormal
 * range are rounded once and correctly. Inputs are clamped to where exp is 0 or inf anyway; the
 * comparisons keep NaN as NaN (NaN < a is false), and NaN * anything is NaN, so NaN propagates.
 */
#ifndef FASTNN_VEXP_H
#define FASTNN_VEXP_H

#include "real.h"

#ifdef FASTNN_REAL_F32

static inline float vexp(float x)
{
    x = x < -104.0f ? -104.0f : x; /* exp(-104) < half the smallest subnormal: rounds to 0 */
    x = x > 89.0f ? 89.0f : x;     /* exp(89) > FLT_MAX: inf */
    const float shift = 0x1.8p23f;
    float kd = x * 0x1.715476p+0f + shift;
    uint32_t bits;
    memcpy(&bits, &kd, sizeof bits);
    int32_t k = (int32_t)(bits & 0x7fffff) - 0x400000;
    kd -= shift;
    float r = x - kd * 0x1.62e400p-1f;
    r = r - kd * 0x1.7f7d1cp-20f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t k1 = k >> 1, k2 = k - k1;
    uint32_t s1 = (uint32_t)(k1 + 127) << 23, s2 = (uint32_t)(k2 + 127) << 23;
    float f1, f2;
    memcpy(&f1, &s1, sizeof f1);
    memcpy(&f2, &s2, sizeof f2);
    return p * f1 * f2;
}

#else

static inline double vexp(double x)
{
    x = x < -746.0 ? -746.0 : x; /* exp(-746) < half the smallest subnormal: rounds to 0 */
    x = x > 710.0 ? 710.0 : x;   /* exp(710) > DBL_MAX: inf */
    const double shift = 0x1.8p52;
    double kd = x * 0x1.71547652b82fep+0 + shift;
    uint64_t bits;
    memcpy(&bits, &kd, sizeof bits);
    int64_t k = (int64_t)(bits & 0xfffffffffffffULL) - 0x8000000000000LL;
    kd -= shift;
    double r = x - kd * 0x1.62e42fee00000p-1;
    r = r - kd * 0x1.a39ef35793c76p-33;
    /* Estrin's scheme: the same Taylor terms, evaluated as a shallow tree instead of a 13-deep
       Horner chain, so the vector units are not waiting on latency */
    double r2 = r * r, r4 = r2 * r2;
    double p23 = 1.0 / 2 + r * (1.0 / 6), p45 = 1.0 / 24 + r * (1.0 / 120);
    double p67 = 1.0 / 720 + r * (1.0 / 5040), p89 = 1.0 / 40320 + r * (1.0 / 362880);
    double p1011 = 1.0 / 3628800 + r * (1.0 / 39916800);
    double p1213 = 1.0 / 479001600 + r * (1.0 / 6227020800.0);
    double p4_7 = p45 + r2 * p67, p8_13 = p89 + r2 * p1011 + r4 * p1213;
    double p = 1.0 + (r + (r2 * p23 + r4 * (p4_7 + r4 * p8_13)));
    int64_t k1 = (int64_t)((uint64_t)(k + 2048) >> 1) - 1024, k2 = k - k1; /* k >> 1 without an
                                       arithmetic 64-bit shift, which AVX2 lacks */
    uint64_t s1 = (uint64_t)(k1 + 1023) << 52, s2 = (uint64_t)(k2 + 1023) << 52;
    double f1, f2;
    memcpy(&f1, &s1, sizeof f1);
    memcpy(&f2, &s2, sizeof f2);
    return p * f1 * f2;
}

#endif

/* vexp_span: y[j] = exp(x[j] - shift) for j < n (x == y allowed). With AVX-512, an explicit
 * vector loop: the same reduction and polynomial as vexp, but k = round(x / ln 2) by vrndscale and the 2^k by vscalef, which
 * rounds a subnormal result once and overflows to inf by itself: 0.63 instead of 0.84 ns per
 * double here. Clamps by max(lo, x) and min(hi, x), which return x when x is NaN. */
#ifdef FASTNN_AVX512

__attribute__((target("avx512f"))) static inline vreal vexp_avx512(vreal x)
{
#ifdef FASTNN_REAL_F32
    x = V(min)(V(set1)(89.0f), V(max)(V(set1)(-104.0f), x));
    vreal k = V(roundscale)(V(mul)(x, V(set1)(0x1.715476p+0f)), _MM_FROUND_TO_NEAREST_INT);
    vreal r = V(fnmadd)(k, V(set1)(0x1.62e400p-1f), x);
    r = V(fnmadd)(k, V(set1)(0x1.7f7d1cp-20f), r);
    vreal p = V(set1)(1.0f / 5040.0f);
    p = V(fmadd)(p, r, V(set1)(1.0f / 720.0f));
    p = V(fmadd)(p, r, V(set1)(1.0f / 120.0f));
    p = V(fmadd)(p, r, V(set1)(1.0f / 24.0f));
    p = V(fmadd)(p, r, V(set1)(1.0f / 6.0f));
    p = V(fmadd)(p, r, V(set1)(0.5f));
    p = V(fmadd)(p, r, V(set1)(1.0f));
    p = V(fmadd)(p, r, V(set1)(1.0f));
#else
    x = V(min)(V(set1)(710.0), V(max)(V(set1)(-746.0), x));
    vreal k = V(roundscale)(V(mul)(x, V(set1)(0x1.71547652b82fep+0)), _MM_FROUND_TO_NEAREST_INT);
    vreal r = V(fnmadd)(k, V(set1)(0x1.62e42fee00000p-1), x);
    r = V(fnmadd)(k, V(set1)(0x1.a39ef35793c76p-33), r);
    vreal r2 = V(mul)(r, r), r4 = V(mul)(r2, r2);
#define PAIR(c0, c1) V(fmadd)(r, V(set1)(c1), V(set1)(c0))
    vreal p23 = PAIR(1.0 / 2, 1.0 / 6), p45 = PAIR(1.0 / 24, 1.0 / 120);
    vreal p67 = PAIR(1.0 / 720, 1.0 / 5040), p89 = PAIR(1.0 / 40320, 1.0 / 362880);
    vreal p1011 = PAIR(1.0 / 3628800, 1.0 / 39916800);
    vreal p1213 = PAIR(1.0 / 479001600, 1.0 / 6227020800.0);
#undef PAIR
    vreal p4_7 = V(fmadd)(r2, p67, p45);
    vreal p8_13 = V(fmadd)(r4, p1213, V(fmadd)(r2, p1011, p89));
    vreal p = V(fmadd)(r4, V(fmadd)(r4, p8_13, p4_7), V(mul)(r2, p23));
    p = V(add)(V(set1)(1.0), V(add)(r, p));
#endif
    return V(scalef)(p, k);
}

__attribute__((target("avx512f"))) static inline void vexp_span_avx512(const real *x, real shift,
                                                                       real *y, ptrdiff_t n)
{
    vreal s = V(set1)(shift);
    ptrdiff_t j = 0;
    for (; j + VLANES <= n; j += VLANES) {
        V(storeu)(y + j, vexp_avx512(V(sub)(V(loadu)(x + j), s)));
    }
    if (j < n) {
        vmask m = (vmask)((1u << (n - j)) - 1);
        V(mask_storeu)(y + j, m, vexp_avx512(V(sub)(V(maskz_loadu)(m, x + j), s)));
    }
}
/* y[j] = sigmoid(x[j] + (bias ? bias[j] : 0)), as vsigmoid below */
__attribute__((target("avx512f"))) static inline void vsigmoid_span_avx512(const real *x,
                                                                           const real *bias,
                                                                           real *y, ptrdiff_t n)
{
    const vreal one = V(set1)(1), zero = V(setzero)();
    for (ptrdiff_t j = 0; j < n; j += VLANES) {
        vmask m = n - j >= VLANES ? (vmask)~0 : (vmask)((1u << (n - j)) - 1);
        vreal a = V(maskz_loadu)(m, x + j);
        if (bias)
            a = V(add)(a, V(maskz_loadu)(m, bias + j));
        vreal e = vexp_avx512(V(sub)(zero, V(abs)(a)));
        vreal s = V(div)(one, V(add)(one, e));
        /* a >= 0: s; otherwise (also NaN) e * s */
        vmask nonneg = V_GE_MASK(a, zero);
        V(mask_storeu)(y + j, m, V(mask_mov)(V(mul)(e, s), nonneg, s));
    }
}
#endif

#ifdef FASTNN_AVX2
/* The AVX2 vexp: vexp's reduction, k read from the bits of x/ln2 + 1.5*2^52 (AVX2 has no
 * double-to-int64 conversion) and 2^k applied as the two factors 2^(k/2), 2^(k - k/2) (AVX2 has
 * no vscalef), with the AVX-512 polynomials. The clamps return x for a NaN x (max and min return
 * their second operand then); the NaN reaches p, and NaN times any factor is NaN. */
__attribute__((target("avx2,fma"), always_inline)) static inline yreal vexp_avx2(yreal x)
{
#ifdef FASTNN_REAL_F32
    const __m256 shift = _mm256_set1_ps(0x1.8p23f);
    x = Y(min)(Y(set1)(89.0f), Y(max)(Y(set1)(-104.0f), x));
    __m256 kd = Y(fmadd)(x, Y(set1)(0x1.715476p+0f), shift);
    __m256i k = _mm256_sub_epi32(_mm256_castps_si256(kd), _mm256_castps_si256(shift));
    kd = Y(sub)(kd, shift);
    yreal r = Y(fnmadd)(kd, Y(set1)(0x1.62e400p-1f), x);
    r = Y(fnmadd)(kd, Y(set1)(0x1.7f7d1cp-20f), r);
    yreal p = Y(set1)(1.0f / 5040.0f);
    p = Y(fmadd)(p, r, Y(set1)(1.0f / 720.0f));
    p = Y(fmadd)(p, r, Y(set1)(1.0f / 120.0f));
    p = Y(fmadd)(p, r, Y(set1)(1.0f / 24.0f));
    p = Y(fmadd)(p, r, Y(set1)(1.0f / 6.0f));
    p = Y(fmadd)(p, r, Y(set1)(0.5f));
    p = Y(fmadd)(p, r, Y(set1)(1.0f));
    p = Y(fmadd)(p, r, Y(set1)(1.0f));
    __m256i k1 = _mm256_srai_epi32(k, 1), k2 = _mm256_sub_epi32(k, k1);
    const __m256i bias = _mm256_set1_epi32(127);
    yreal f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    yreal f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
#else
    const __m256d shift = _mm256_set1_pd(0x1.8p52);
    x = Y(min)(Y(set1)(710.0), Y(max)(Y(set1)(-746.0), x));
    __m256d kd = Y(fmadd)(x, Y(set1)(0x1.71547652b82fep+0), shift);
    __m256i k = _mm256_sub_epi64(_mm256_castpd_si256(kd), _mm256_castpd_si256(shift));
    kd = Y(sub)(kd, shift);
    yreal r = Y(fnmadd)(kd, Y(set1)(0x1.62e42fee00000p-1), x);
    r = Y(fnmadd)(kd, Y(set1)(0x1.a39ef35793c76p-33), r);
    yreal r2 = Y(mul)(r, r), r4 = Y(mul)(r2, r2);
#define PAIR(c0, c1) Y(fmadd)(r, Y(set1)(c1), Y(set1)(c0))
    yreal p23 = PAIR(1.0 / 2, 1.0 / 6), p45 = PAIR(1.0 / 24, 1.0 / 120);
    yreal p67 = PAIR(1.0 / 720, 1.0 / 5040), p89 = PAIR(1.0 / 40320, 1.0 / 362880);
    yreal p1011 = PAIR(1.0 / 3628800, 1.0 / 39916800);
    yreal p1213 = PAIR(1.0 / 479001600, 1.0 / 6227020800.0);
#undef PAIR
    yreal p4_7 = Y(fmadd)(r2, p67, p45);
    yreal p8_13 = Y(fmadd)(r4, p1213, Y(fmadd)(r2, p1011, p89));
    yreal p = Y(fmadd)(r4, Y(fmadd)(r4, p8_13, p4_7), Y(mul)(r2, p23));
    p = Y(add)(Y(set1)(1.0), Y(add)(r, p));
    /* k >> 1 as vexp takes it, without the arithmetic 64-bit shift AVX2 lacks (k >= -1076) */
    __m256i k1 = _mm256_sub_epi64(_mm256_srli_epi64(_mm256_add_epi64(k, _mm256_set1_epi64x(2048)), 1),
                                  _mm256_set1_epi64x(1024));
    __m256i k2 = _mm256_sub_epi64(k, k1);
    const __m256i bias = _mm256_set1_epi64x(1023);
    yreal f1 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(k1, bias), 52));
    yreal f2 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(k2, bias), 52));
#endif
    return Y(mul)(Y(mul)(p, f1), f2);
}

/* the lanes [0, n) of a register (n < YLANES), as a maskload / maskstore mask */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256i ylanes_below(ptrdiff_t n)
{
#ifdef FASTNN_REAL_F32
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#else
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
#endif
}

/* sigmoid(a) as vsigmoid below: s = 1 / (1 + e), e = exp(-|a|); s where a >= 0, else (also for
 * NaN, which fails the comparison) e * s */
__attribute__((target("avx2,fma"), always_inline)) static inline yreal vsigmoid_avx2(yreal a)
{
    const yreal one = Y(set1)(1), zero = Y(setzero)();
    yreal e = vexp_avx2(Y(sub)(zero, Y(andnot)(Y(set1)(-0.0), a)));
    yreal s = Y(div)(one, Y(add)(one, e));
    return Y(blendv)(Y(mul)(e, s), s, Y(cmp)(a, zero, _CMP_GE_OQ));
}

__attribute__((target("avx2,fma"))) static inline void vexp_span_avx2(const real *x, real shift,
                                                                    real *y, ptrdiff_t n)
{
    yreal s = Y(set1)(shift);
    ptrdiff_t j = 0;
    for (; j + YLANES <= n; j += YLANES)
        Y(storeu)(y + j, vexp_avx2(Y(sub)(Y(loadu)(x + j), s)));
    if (j < n) { /* masked lanes load as 0: exp(-shift) there, never stored */
        __m256i m = ylanes_below(n - j);
        Y(maskstore)(y + j, m, vexp_avx2(Y(sub)(Y(maskload)(x + j, m), s)));
    }
}

/* y[j] = sigmoid(x[j] + (bias ? bias[j] : 0)) */
__attribute__((target("avx2,fma"))) static inline void vsigmoid_span_avx2(const real *x,
                                                                        const real *bias, real *y,
                                                                        ptrdiff_t n)
{
    ptrdiff_t j = 0;
    for (; j + YLANES <= n; j += YLANES) {
        yreal a = Y(loadu)(x + j);
        if (bias)
            a = Y(add)(a, Y(loadu)(bias + j));
        Y(storeu)(y + j, vsigmoid_avx2(a));
    }
    if (j < n) {
        __m256i m = ylanes_below(n - j);
        yreal a = Y(maskload)(x + j, m);
        if (bias)
            a = Y(add)(a, Y(maskload)(bias + j, m));
        Y(maskstore)(y + j, m, vsigmoid_avx2(a));
    }
}
#endif

/* The explicit vector code the spans below run (real.h): AVX-512, else AVX2, else the portable
 * loops (which FASTNN_CLONES callers get GCC-vectorised). Callers read it once per call and pass
 * it down, as they do the thread count. */
enum { SIMD_PORTABLE, SIMD_AVX2, SIMD_AVX512 };

static inline int simd_level(void)
{
    return fastnn_avx512() ? SIMD_AVX512 : fastnn_avx2() ? SIMD_AVX2 : SIMD_PORTABLE;
}

/* sigmoid(a) for every input: with e = exp(-|a|) in (0, 1] nothing overflows; 1 / (1 + e) for
 * a >= 0 and e / (1 + e) = e * s otherwise (one division; within an ulp of the reference's
 * e / (1 + e)); a <= -746 gives e = 0 and sigmoid 0.0 exactly; NaN fails a >= 0 and gives NaN. */
static inline real vsigmoid(real a)
{
    real e = vexp(-(a < 0 ? -a : a));
    real s = 1 / (1 + e);
    return a >= 0 ? s : e * s;
}

/* y[j] = sigmoid(x[j] + bias[j]) (bias may be NULL: sigmoid(x[j])), j < n; y == x allowed;
 * simd = simd_level() */
static inline void vsigmoid_span(const real *x, const real *bias, real *y, ptrdiff_t n, int simd)
{
#ifdef FASTNN_AVX512
    if (simd == SIMD_AVX512) {
        vsigmoid_span_avx512(x, bias, y, n);
        return;
    }
    if (simd == SIMD_AVX2) {
        vsigmoid_span_avx2(x, bias, y, n);
        return;
    }
#endif
    (void)simd;
    if (bias)
        for (ptrdiff_t j = 0; j < n; j++)
            y[j] = vsigmoid(x[j] + bias[j]);
    else
        for (ptrdiff_t j = 0; j < n; j++)
            y[j] = vsigmoid(x[j]);
}

/* y[j] = exp(x[j] - shift), j < n; y == x allowed; simd = simd_level() */
static inline void vexp_span(const real *x, real shift, real *y, ptrdiff_t n, int simd)
{
#ifdef FASTNN_AVX512
    if (simd == SIMD_AVX512) {
        vexp_span_avx512(x, shift, y, n);
        return;
    }
    if (simd == SIMD_AVX2) {
        vexp_span_avx2(x, shift, y, n);
        return;
    }
#endif
    (void)simd;
    for (ptrdiff_t j = 0; j < n; j++)
        y[j] = vexp(x[j] - shift);
}

/* vlog: a log that GCC vectorises, float64 only (the losses are summed in float64).
 * x = 2^e * m with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716,
 * as the odd series 2 (s + s^3/3 + ... + s^23/23): the first omitted term is below 1e-18.
 * log x = e ln2_hi + (log m + e ln2_lo). About 1 ulp. x = 0 gives -inf, x < 0 and NaN give NaN,
 * +inf gives +inf; subnormal x is scaled by 2^54 first. */
static inline double vlog(double x)
{
    int sub = x < 0x1p-1022;
    double xs = sub ? x * 0x1p54 : x;
    uint64_t bits;
    memcpy(&bits, &xs, sizeof bits);
    /* e from the exponent bits, m with the exponent set to 0 (m in [1, 2)), then into
       [sqrt(1/2), sqrt(2)) */
    int64_t e = (int64_t)((bits >> 52) & 0x7ff) - 1023 - (sub ? 54 : 0);
    uint64_t mbits = (bits & 0xfffffffffffffULL) | 0x3ff0000000000000ULL;
    double m;
    memcpy(&m, &mbits, sizeof m);
    int big = m > 0x1.6a09e667f3bcdp+0;
    m = big ? m * 0.5 : m;
    double ed = (double)(e + big);
    double s = (m - 1) / (m + 1), s2 = s * s, s4 = s2 * s2;
    double p = 1.0 / 21 + s2 * (1.0 / 23);
    p = 1.0 / 17 + s2 * (1.0 / 19) + s4 * p;
    p = 1.0 / 13 + s2 * (1.0 / 15) + s4 * p;
    p = 1.0 / 9 + s2 * (1.0 / 11) + s4 * p;
    p = 1.0 / 5 + s2 * (1.0 / 7) + s4 * p;
    p = 1.0 / 3 + s2 * p;
    double logm = 2 * s + 2 * s * s2 * p;
    double r = ed * 0x1.62e42fee00000p-1 + (logm + ed * 0x1.a39ef35793c76p-33);
    r = x == 0 ? -1.0 / 0.0 : r;
    r = x == 1.0 / 0.0 ? x : r;
    return x < 0 || x != x ? 0.0 / 0.0 : r;
}
#endif
