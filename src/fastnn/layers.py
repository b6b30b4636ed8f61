"""The book's layers, fast: the same classes and results as `fastnn.reference.layers`.

Sigmoid, Affine's bias gradient and SoftmaxWithLoss run compiled kernels; Repeat, Sum, MatMul, Relu
and Softmax are the reference's NumPy (matrix products go to NumPy's BLAS either way).
Volume-2 convention: `params` and `grads` are lists, `backward` writes `grads[i][...]` in place.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._checks import as_float, as_labels, as_logits, as_scalar, check_real_dtype
from .functions import bias_grad, sigmoid, sigmoid_backward
from .reference.layers import MatMul, Relu, Repeat, Softmax, Sum

__all__ = ["Repeat", "Sum", "MatMul", "Affine", "Sigmoid", "Relu", "Softmax", "SoftmaxWithLoss"]


class Affine:
    """Fully connected layer x W + b, with W (D, H) and b (H,) the parameters.

    An N-D input (N, d1, d2, ...) is flattened to (N, D) and its gradient gets the input's shape back.
    """

    def __init__(self, W: NDArray[np.floating[Any]], b: NDArray[np.floating[Any]]) -> None:
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.x = None
        self.original_x_shape = None

    def forward(self, x: ArrayLike) -> NDArray[np.floating[Any]]:
        """x: (N, ...) with D elements per sample -> (N, H)."""
        W, b = self.params
        x = np.asarray(x)
        check_real_dtype(x, "x")
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"x must be a non-empty batch (N, ...), got shape {x.shape}")
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != W.shape[0]:
            raise ValueError(f"x has shape {x.shape}: {flat.shape[1]} features per sample, "
                             f"W has shape {W.shape}")
        out = np.dot(flat, W)
        out += b
        self.original_x_shape, self.x = x.shape, flat
        return out

    def backward(self, dout: ArrayLike, need_dx: bool = True) -> NDArray[np.floating[Any]] | None:
        """dout: (N, H) -> dx shaped like the input; grads = [dW (D, H), db (H,)].

        need_dx=False skips the product dout W^T (the first layer of a network needs no dx) and
        returns None.
        """
        W, b = self.params
        dW, db = self.grads
        dout = as_float(dout, "dout")
        if dout.shape != (self.x.shape[0], W.shape[1]):
            raise ValueError(f"dout has shape {dout.shape}, expected {(self.x.shape[0], W.shape[1])}")
        np.matmul(self.x.T, dout, out=dW)
        db[...] = bias_grad(dout)
        if not need_dx:
            return None
        return np.dot(dout, W.T).reshape(self.original_x_shape)


class Sigmoid:
    """Sigmoid layer; keeps its output `out` for the backward pass."""

    def __init__(self) -> None:
        self.params, self.grads = [], []
        self.out = None

    def forward(self, x: ArrayLike) -> NDArray[np.floating[Any]]:
        """Any shape -> sigmoid(x), same shape (float32 stays float32)."""
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout: ArrayLike) -> NDArray[np.floating[Any]]:
        """dout (shape of out) -> dout * (1 - out) * out."""
        return sigmoid_backward(dout, self.out)


class SoftmaxWithLoss:
    """Softmax followed by the cross-entropy loss, fused in one kernel; keeps the probabilities `y`
    and the int64 index labels `t` for the backward pass."""

    def __init__(self) -> None:
        self.params, self.grads = [], []
        self.y = None
        self.t = None

    def forward(self, x: ArrayLike, t: ArrayLike) -> float:
        """x: (N, C) scores; t: (N,) index labels or (N, C) one-hot -> mean loss (float)."""
        x = as_logits(x)
        t = as_labels(t, x.shape)
        loss, self.y = _core.softmax_ce_forward(x, t)
        self.t = t
        return loss

    def backward(self, dout: float = 1) -> NDArray[np.floating[Any]]:
        """dout: scalar -> dx (N, C) = (y - onehot(t)) * dout / N."""
        if self.y is None:
            raise RuntimeError("SoftmaxWithLoss.backward called before forward")
        return _core.softmax_ce_backward(self.y, as_labels(self.t, self.y.shape),
                                         as_scalar(dout, "dout"))
