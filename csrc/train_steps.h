/* train_steps.h: the two-layer network's multi-step SGD training and its accuracy, each one call
 * (csrc/train_steps.c), float64 (_f64) and float32 (_f32); see real.h.
 *
 * A work area holds the model's padded copies and every scratch array; its size in bytes is
 * twolayer_work_bytes(rows, in, hid, out), rows the most rows one step or one evaluation block
 * touches (the batch size, at least TWOLAYER_EVAL_ROWS).
 */
#ifndef FASTNN_TRAIN_STEPS_H
#define FASTNN_TRAIN_STEPS_H

#include "real.h"

/* a status of twolayer_sgd_steps besides real.h's: an index into x outside [0, rows) */
#define FASTNN_BAD_INDEX (-3)
/* rows of x forwarded at once by twolayer_accuracy */
#define TWOLAYER_EVAL_ROWS 128

#define FASTNN_TRAIN_STEPS_DECLARE(T, S)                                                            \
    ptrdiff_t twolayer_work_bytes_##S(ptrdiff_t rows, ptrdiff_t in, ptrdiff_t hid, ptrdiff_t out);   \
    ptrdiff_t twolayer_sgd_steps_##S(const T *x, const int64_t *t, ptrdiff_t rows, ptrdiff_t in,     \
                                     ptrdiff_t hid, ptrdiff_t out, const int64_t *batches,           \
                                     ptrdiff_t steps, ptrdiff_t batch, T *W1, T *b1, T *W2, T *b2,   \
                                     int relu, double lr, double *losses, T *gW1, T *gb1, T *gW2,   \
                                     T *gb2, void *work, ptrdiff_t work_bytes);                      \
    ptrdiff_t twolayer_accuracy_##S(const T *x, const int64_t *t, ptrdiff_t rows, ptrdiff_t in,      \
                                    ptrdiff_t hid, ptrdiff_t out, const T *W1, const T *b1,          \
                                    const T *W2, const T *b2, int relu, int64_t *correct,           \
                                    void *work, ptrdiff_t work_bytes);

FASTNN_TRAIN_STEPS_DECLARE(double, f64)
FASTNN_TRAIN_STEPS_DECLARE(float, f32)

#endif
