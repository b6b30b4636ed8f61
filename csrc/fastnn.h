/* fastnn.h: the C kernels behind fastnn._core. Each kernel exists for float64 (_f64) and float32
 * (_f32); see real.h. The Cython entries check every buffer's dtype, size and writability; the
 * kernels still check every label index they use and report the first bad row instead of reading
 * out of bounds. A kernel that can fail returns a status: FASTNN_OK, FASTNN_NO_MEMORY or a bad
 * row (real.h). */
#ifndef FASTNN_H
#define FASTNN_H

#include "real.h"

void fastnn_set_num_threads(int n);
int fastnn_set_simd(int level);

#define FASTNN_DECLARE(T, S)                                                                         \
    void sigmoid_forward_##S(const T *x, T *y, ptrdiff_t n);                                         \
    void sigmoid_backward_##S(const T *dout, const T *out, T *dx, ptrdiff_t n);                     \
    ptrdiff_t softmax_ce_forward_##S(const T *x, const T *bias, const int64_t *t, T *y, ptrdiff_t n, \
                                     ptrdiff_t c, double *loss);                                     \
    ptrdiff_t softmax_ce_backward_##S(const T *y, const int64_t *t, double dout, T *dx, ptrdiff_t n, \
                                      ptrdiff_t c);                                                  \
    ptrdiff_t bias_grad_##S(const T *dout, ptrdiff_t n, ptrdiff_t d, T *db);                        \
    void sgd_update_##S(T *p, const T *g, double lr, ptrdiff_t n);                                 \
    void weight_decay_grad_##S(const T *dW, const T *W, double lam, T *out, ptrdiff_t n);          \
    /* adam.c */                                                                                  \
    void adam_update_##S(T *p, const T *g, T *m, T *v, double lr_t, double one_minus_beta1,        \
                         double one_minus_beta2, int wide, ptrdiff_t n);                           \
    /* bias_act.c */                                                                              \
    void bias_act_forward_##S(T *a, const T *b, ptrdiff_t n, ptrdiff_t h, int relu);                \
    ptrdiff_t act_backward_bias_##S(T *dz, const T *z, ptrdiff_t n, ptrdiff_t h, int relu, T *db); \
    /* finite.c */                                                                                \
    int all_finite_##S(const T *a, ptrdiff_t n);                                                    \
    /* sparse.c */                                                                                \
    int sparse_index_##S(const T *x, ptrdiff_t n, ptrdiff_t in, int64_t *rowptr, int64_t *cols,      \
                          T *vals, int64_t *colptr, int64_t *rows, T *cvals, uint64_t *bits);        \
    void sparse_combine_##S(const int64_t *ptr, const int64_t *idx, const T *a, const T *X, T *out,    \
                            ptrdiff_t rows, ptrdiff_t x_rows, ptrdiff_t h);                 \
    /* gemm_narrow.c: c (m, n) = a b, a (m, k), or a^T b, a (k, m) (trans_a); b (k, n) */          \
    void gemm_narrow_##S(const T *a, const T *b, T *c, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,        \
                         int trans_a);                                                              \
    void gemm_narrow_into_##S(const T *a, const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc,             \
                              ptrdiff_t m, ptrdiff_t k, ptrdiff_t n);                               \
    /* transpose.c: dst (cols, rows), rows ldd apart = src^T, src (rows, cols), rows lds apart */    \
    void transpose_##S(const T *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t lds, T *dst,          \
                       ptrdiff_t ldd);

FASTNN_DECLARE(double, f64)
FASTNN_DECLARE(float, f32)

/* mt19937.c: NumPy's MT19937 state (numpy/random/src/mt19937/mt19937.h, which NumPy does not
 * install; _core checks the layout against NumPy's draws before using it). mt19937_random fills
 * out with the next n uniform [0, 1) doubles, as MT19937's random() draws them; returns FASTNN_OK,
 * or 0 for a state position outside [0, MT19937_N] (nothing drawn). */
#define MT19937_N 624
typedef struct {
    uint32_t key[MT19937_N];
    int pos;
} mt19937_state;
ptrdiff_t mt19937_random(mt19937_state *state, double *out, ptrdiff_t n);

/* numgrad_twolayer.c (float64 only) */
ptrdiff_t twolayer_numerical_gradient(const double *x, const int64_t *t, const double *W1,
                                      const double *b1, const double *W2, const double *b2,
                                      const double *a1, const double *z1, const double *s,
                                      ptrdiff_t n, ptrdiff_t in, ptrdiff_t hid, ptrdiff_t out,
                                      int relu, int f32, double h, double *gW1, double *gb1,
                                      double *gW2, double *gb2);

#endif
