"""Parameter update rules, fast: the same classes and results as `fastnn.reference.optimizers`.

`update(params, grads)` takes lists or dicts and updates in place. SGD (for arrays of
SGD_KERNEL_MIN elements on) and Adam run one compiled pass per parameter array (Adam's reads p, g, m, v and writes p, m, v, where NumPy makes about ten
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


# Arrays of fewer elements take NumPy's `p -= lr * g` itself: below this size the checks and the
# call into the kernel cost more than NumPy's two passes (one thread: 10000 float64 elements 6.4
# vs 5.6 us per update, 20 elements 4.4 vs 1.8 us; 40000 elements 15 vs 21 us).
SGD_KERNEL_MIN = 16384


def _kernel_ready(p, g, lr):
    """True when the compiled update gives NumPy's `p -= lr * g` bit for bit: p and g of one float
    dtype and shape, contiguous, aligned, p writable, not overlapping (the kernel reads g after
    writing p), lr a Python number (a NumPy float64 lr makes NumPy compute float32 p in
    float64; an array lr broadcasts), and p not 0-d (NumPy 1.x computes lr * g of a 0-d float32
    g in float64: value-based casting)."""
    return (isinstance(p, np.ndarray) and isinstance(g, np.ndarray) and p.ndim > 0
            and p.dtype == g.dtype and p.dtype in (np.float32, np.float64) and p.shape == g.shape
            and (type(lr) in (int, float) or (p.dtype == np.float64 and np.ndim(lr) == 0))
            and p.flags.c_contiguous and g.flags.c_contiguous and p.flags.aligned
            and g.flags.aligned and p.flags.writeable and not np.may_share_memory(p, g))


class SGD:
    """Stochastic gradient descent: p -= lr * g."""

    def __init__(self, lr: float = 0.01) -> None:
        self.lr = lr

    def update(self, params: Params, grads: Params) -> None:
        """params, grads: lists or dicts of arrays with the same keys; params updated in place."""
        lr = self.lr
        for key in _keys(params):
            p, g = params[key], grads[key]
            if getattr(p, "size", 0) >= SGD_KERNEL_MIN and _kernel_ready(p, g, lr):
                _core.sgd_update(p.reshape(-1), g.reshape(-1), lr)
            else:
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
