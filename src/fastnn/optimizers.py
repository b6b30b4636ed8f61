"""Parameter update rules, fast: the same classes and results as `fastnn.reference.optimizers`.

`update(params, grads)` takes lists or dicts and updates in place. SGD runs one compiled pass per
parameter array; the stateful optimizers are the reference's NumPy.
"""
import numpy as np

from . import _core
from .reference.optimizers import AdaGrad, Adam, Momentum, Nesterov, RMSprop, _keys

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]


def _kernel_ready(p, g):
    """True when p and g can go to a compiled in-place update: same float dtype and shape,
    contiguous, aligned, p writable."""
    return (isinstance(p, np.ndarray) and isinstance(g, np.ndarray)
            and p.dtype == g.dtype and p.dtype in (np.float32, np.float64) and p.shape == g.shape
            and p.flags.c_contiguous and g.flags.c_contiguous and p.flags.aligned
            and g.flags.aligned and p.flags.writeable)


class SGD:
    """Stochastic gradient descent: p -= lr * g."""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in _keys(params):
            p, g = params[key], grads[key]
            if _kernel_ready(p, g):
                _core.sgd_update(p.reshape(-1), g.reshape(-1), self.lr)
            else:
                p -= self.lr * g
