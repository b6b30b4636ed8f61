"""Parameter update rules, fast: the same classes and results as `fastnn.reference.optimizers`.

`update(params, grads)` takes lists or dicts and updates in place. SGD runs one compiled pass per
parameter array; the stateful optimizers are the reference's NumPy.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core
from .reference.optimizers import AdaGrad, Adam, Momentum, Nesterov, RMSprop, _keys

# what update takes: volume 2's lists or volume 1's dicts of arrays
Params = list[NDArray[Any]] | dict[Any, NDArray[Any]]

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]


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
        for key in _keys(params):
            p, g = params[key], grads[key]
            if _kernel_ready(p, g, self.lr):
                _core.sgd_update(p.reshape(-1), g.reshape(-1), self.lr)
            else:
                p -= self.lr * g
