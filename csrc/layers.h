/* layers.h: the kernels of the layers chapter 6 adds (src/fastnn/layers.py, multilayer.py):
 * batch normalization (batchnorm.c), ReLU and dropout with their masks (masks.c).
 * Each exists for float64 (_f64) and float32 (_f32), see real.h. Masks are one byte per element
 * (NumPy's bool: 0 or 1). Batch statistics are float64 for both precisions. The batch-norm
 * kernels return FASTNN_OK, or FASTNN_NO_MEMORY before writing anything (real.h). */
#ifndef FASTNN_LAYERS_H
#define FASTNN_LAYERS_H

#include "real.h"

#define FASTNN_LAYERS_DECLARE(T, S)                                                                 \
    ptrdiff_t batchnorm_forward_train_##S(const T *x, ptrdiff_t n, ptrdiff_t d, const T *gamma,            \
                                    const T *beta, double eps, int relu, T *out, double *mean,       \
                                    double *var, double *rstd);                                      \
    ptrdiff_t batchnorm_forward_test_##S(const T *x, ptrdiff_t n, ptrdiff_t d, const T *gamma,             \
                                   const T *beta, const double *mean, const double *var, double eps, \
                                   int relu, T *out);                                                \
    ptrdiff_t batchnorm_backward_##S(const T *dout, const T *y, const T *x, ptrdiff_t n, ptrdiff_t d,      \
                               const T *gamma, const double *mean, const double *rstd, T *dx,        \
                               T *dgamma, T *dbeta);                                                 \
    void relu_forward_##S(const T *x, T *out, uint8_t *mask, ptrdiff_t n);                           \
    void relu_backward_##S(const T *dout, const uint8_t *mask, T *dx, ptrdiff_t n);                  \
    void dropout_forward_##S(const T *x, const double *u, double ratio, T *out, uint8_t *mask,       \
                             ptrdiff_t n);                                                           \
    void dropout_backward_##S(const T *dout, const uint8_t *mask, T *dx, ptrdiff_t n);

FASTNN_LAYERS_DECLARE(double, f64)
FASTNN_LAYERS_DECLARE(float, f32)

#endif
