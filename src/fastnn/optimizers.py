"""Parameter update rules, fast: the same classes and results as `fastnn.reference.optimizers`.

`update(params, grads)` takes lists or dicts and updates in place. SGD and Adam run one compiled
pass per parameter array (Adam's reads p, g, m, v and writes p, m, v, where NumPy makes about ten
passes with temporaries); Momentum, Nesterov, AdaGrad and RMSprop are the reference's NumPy.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core
from .reference.optimizers import AdaGrad, Momentum, Nesterov, RMSprop, _keys, _zeros_like_each
from .reference.optimizers import Adam as _ReferenceAdam

# what update takes: volume 2's lists or volume 1's dicts of arrays
Params = list[NDArray[Any]] | dict[Any, NDArray[Any]]

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]


class SGD:
    """Stochastic gradient descent: p -= lr * g."""

    def __init__(self, lr: float = 0.01) -> None:
        self.lr = lr

    def update(self, params: Params, grads: Params) -> None:
        """params, grads: lists or dicts of arrays with the same keys; params updated in place."""
        lr = self.lr
        # the kernel gives NumPy's `p -= lr * g` bit for bit for a Python number lr; a NumPy
        # float64 lr makes NumPy compute float32 p in float64 (an array lr broadcasts)
        python_lr = type(lr) in (int, float)
        kernel = python_lr or (isinstance(lr, (np.floating, np.integer)) and np.ndim(lr) == 0)
        for key in _keys(params):
            p, g = params[key], grads[key]
            if not (kernel and _core.sgd_update_ready(p, g, lr, python_lr)):
                p -= lr * g


def _adam_kernel_ready(p, g, m, v, lr_t, c1, c2):
    """True when the compiled update gives the reference's NumPy lines bit for bit: p, g, m, v of
    one float dtype and shape, contiguous, aligned, p, m, v writable, no two overlapping (the
    kernel interleaves the three updates element by element), not 0-d (NumPy 1.x computes on 0-d
    arrays as on scalars, in float64), and lr_t, c1 = 1 - beta1, c2 = 1 - beta2 real scalars that
    NumPy does not promote the arrays' dtype with, save lr_t * m (the kernel's wide flag)."""
    arrays = (p, g, m, v)
    if not (all(isinstance(a, np.ndarray) for a in arrays) and p.ndim > 0
            and p.dtype in (np.float32, np.float64)
            and all(a.dtype == p.dtype and a.shape == p.shape and a.flags.c_contiguous
                    and a.flags.aligned for a in arrays)
            and p.flags.writeable and m.flags.writeable and v.flags.writeable
            and isinstance(lr_t, np.float64)
            and all(type(c) in (int, float) and np.result_type(c, p) == p.dtype for c in (c1, c2))):
        return False
    return not any(np.may_share_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])


class Adam(_ReferenceAdam):
    """The reference's Adam (its constructor, state and formulas), updating each parameter array
    in one compiled pass where the kernel gives the reference's bits."""

    def update(self, params: Params, grads: Params) -> None:
        """params, grads: lists or dicts of arrays with the same keys; params updated in place, m
        and v (one zero array per parameter at the first update) too."""
        if self.m is None:
            self.m = _zeros_like_each(params)
            self.v = _zeros_like_each(params)

        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        c1, c2 = 1 - self.beta1, 1 - self.beta2

        for key in _keys(params):
            p, g, m, v = params[key], grads[key], self.m[key], self.v[key]
            if _adam_kernel_ready(p, g, m, v, lr_t, c1, c2):
                # the step in float64 exactly when NumPy would compute lr_t * m in float64
                wide = np.result_type(lr_t, m) != m.dtype
                _core.adam_update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                                  lr_t, c1, c2, wide)
            else:  # the reference's lines, which also rebind a non-array's key
                self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
                self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
                params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)
