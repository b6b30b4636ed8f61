/* fastnn.h: the C kernels behind fastnn._core. Each kernel exists for float64 (_f64) and float32
 * (_f32); see real.h. The Python face validates shapes, dtypes and labels; the kernels still check
 * every label index they use and report the first bad row instead of reading out of bounds. */
#ifndef FASTNN_H
#define FASTNN_H

#include "real.h"

void fastnn_set_num_threads(int n);

#define FASTNN_DECLARE(T, S)                                                                         \
    void sigmoid_forward_##S(const T *x, T *y, ptrdiff_t n);                                         \
    void sigmoid_backward_##S(const T *dout, const T *out, T *dx, ptrdiff_t n);                     \
    ptrdiff_t softmax_ce_forward_##S(const T *x, const int64_t *t, T *y, ptrdiff_t n, ptrdiff_t c,  \
                                     double *loss);                                                  \
    ptrdiff_t softmax_ce_backward_##S(const T *y, const int64_t *t, double dout, T *dx, ptrdiff_t n, \
                                      ptrdiff_t c);                                                  \
    int bias_grad_##S(const T *dout, ptrdiff_t n, ptrdiff_t d, T *db);                              \
    void sgd_update_##S(T *p, const T *g, double lr, ptrdiff_t n);

FASTNN_DECLARE(double, f64)
FASTNN_DECLARE(float, f32)

#endif
