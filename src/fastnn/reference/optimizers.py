"""Parameter update rules, as in the book's ``common/optimizer.py`` (volume 1, chapter 6).

``update(params, grads)`` takes two lists (volume 2's models) or two dicts with the same keys
(volume 1's models) and updates every parameter array in place. Optimizers with state (velocity,
squared-gradient sums, moments) create it on the first update, one zero array per parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

# what update takes: volume 2's lists or volume 1's dicts of arrays
Params = list[NDArray[Any]] | dict[Any, NDArray[Any]]

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]


def _keys(params):
    """The keys of a dict of parameters, or the indices of a list of them."""
    return params.keys() if isinstance(params, dict) else range(len(params))


def _zeros_like_each(params):
    """One zero array per parameter, keyed like the parameters."""
    return {key: np.zeros_like(params[key]) for key in _keys(params)}


class SGD:
    """Stochastic gradient descent: p -= lr * g."""

    def __init__(self, lr: float = 0.01) -> None:
        self.lr = lr

    def update(self, params: Params, grads: Params) -> None:
        for key in _keys(params):
            params[key] -= self.lr * grads[key]


class Momentum:
    """Momentum SGD: v = momentum * v - lr * g; p += v."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params: Params, grads: Params) -> None:
        if self.v is None:
            self.v = _zeros_like_each(params)

        for key in _keys(params):
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class Nesterov:
    """Nesterov's accelerated gradient, in the corrected form of the book's repository:
    v = momentum * v - lr * g; p += momentum^2 * v - (1 + momentum) * lr * g."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params: Params, grads: Params) -> None:
        if self.v is None:
            self.v = _zeros_like_each(params)

        for key in _keys(params):
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]


class AdaGrad:
    """AdaGrad: h += g * g; p -= lr * g / (sqrt(h) + 1e-7)."""

    def __init__(self, lr: float = 0.01) -> None:
        self.lr = lr
        self.h = None

    def update(self, params: Params, grads: Params) -> None:
        if self.h is None:
            self.h = _zeros_like_each(params)

        for key in _keys(params):
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class RMSprop:
    """RMSprop: h = decay_rate * h + (1 - decay_rate) * g * g; p -= lr * g / (sqrt(h) + 1e-7)."""

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params: Params, grads: Params) -> None:
        if self.h is None:
            self.h = _zeros_like_each(params)

        for key in _keys(params):
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class Adam:
    """Adam (http://arxiv.org/abs/1412.6980v8) with the bias correction folded into the step size:
    lr_t = lr * sqrt(1 - beta2^iter) / (1 - beta1^iter); m += (1 - beta1) * (g - m);
    v += (1 - beta2) * (g^2 - v); p -= lr_t * m / (sqrt(v) + 1e-7)."""

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params: Params, grads: Params) -> None:
        if self.m is None:
            self.m = _zeros_like_each(params)
            self.v = _zeros_like_each(params)

        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)

        for key in _keys(params):
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)
