/* act.h: the hidden activation's scalar pieces, shared by the kernels that fuse it (bias_act.c,
 * numgrad_twolayer.c, train_steps.c). */
#ifndef FASTNN_ACT_H
#define FASTNN_ACT_H

#include "real.h"

/* ReLU keeps NaN as the reference's np.maximum(0, x) does: !(v <= 0) is true for NaN */
static inline real relu_of(real v)
{
    return !(v <= 0) ? v : 0;
}

#endif
