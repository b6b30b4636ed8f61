"""Graph nodes and layers in the book's volume-2 convention (``common/layers.py``, chapter 1).

Every layer has ``params`` and ``grads``, lists of arrays (empty when the layer has no
parameters), ``forward(...)`` and ``backward(dout)``. ``backward`` writes each gradient into its
existing array (``grads[i][...] = ...``), so a model that concatenated its layers' lists sees
them, and returns the gradient with respect to the layer's input. No layer modifies the ``dout``
it is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .functions import bias_grad, sigmoid, softmax, softmax_cross_entropy

__all__ = ["Repeat", "Sum", "MatMul", "Affine", "Sigmoid", "Relu", "Softmax", "SoftmaxWithLoss"]


class Repeat:
    """Repeat node: copies x, of length 1 along ``axis``, n times along that axis."""

    def __init__(self, n: int, axis: int = 0) -> None:
        self.params, self.grads = [], []
        self.n = n
        self.axis = axis

    def forward(self, x: ArrayLike) -> NDArray[Any]:
        """x: (1, D) for axis=0 -> (n, D)."""
        return np.repeat(x, self.n, axis=self.axis)

    def backward(self, dout: ArrayLike) -> NDArray[Any]:
        """dout: (n, D) -> dx (1, D): the copies' gradients summed."""
        return np.sum(dout, axis=self.axis, keepdims=True)


class Sum:
    """Sum node: sums x along ``axis``, keeping the axis with length 1."""

    def __init__(self, axis: int = 0) -> None:
        self.params, self.grads = [], []
        self.axis = axis
        self.n = None

    def forward(self, x: NDArray[Any]) -> NDArray[Any]:
        """x: (N, D) for axis=0 -> (1, D)."""
        self.n = x.shape[self.axis]
        return np.sum(x, axis=self.axis, keepdims=True)

    def backward(self, dout: ArrayLike) -> NDArray[Any]:
        """dout: (1, D) -> dx (N, D): dout repeated, each summand gets it unchanged."""
        return np.repeat(dout, self.n, axis=self.axis)


class MatMul:
    """MatMul node: x W, with W (D, H) the parameter."""

    def __init__(self, W: NDArray[np.floating[Any]]) -> None:
        self.params = [W]
        self.grads = [np.zeros_like(W)]
        self.x = None

    def forward(self, x: ArrayLike) -> NDArray[np.floating[Any]]:
        """x: (N, D) -> (N, H)."""
        W, = self.params
        out = np.dot(x, W)
        self.x = x
        return out

    def backward(self, dout: ArrayLike) -> NDArray[np.floating[Any]]:
        """dout: (N, H) -> dx (N, D); grads[0] = dW = x^T dout."""
        W, = self.params
        dx = np.dot(dout, W.T)
        dW = np.dot(self.x.T, dout)
        self.grads[0][...] = dW
        return dx


class Affine:
    """Fully connected layer x W + b, with W (D, H) and b (H,) the parameters.

    An N-D input (N, d1, d2, ...) is flattened to (N, D = d1*d2*...) as in volume 1, and its
    gradient gets the input's shape back.
    """

    def __init__(self, W, b):
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.x = None
        self.original_x_shape = None

    def forward(self, x):
        """x: (N, ...) with D elements per sample -> (N, H)."""
        W, b = self.params
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        out = np.dot(x, W) + b
        self.x = x
        return out

    def backward(self, dout):
        """dout: (N, H) -> dx shaped like the input; grads = [dW (D, H), db (H,)]."""
        W, b = self.params
        dx = np.dot(dout, W.T)
        dW = np.dot(self.x.T, dout)
        db = bias_grad(dout)

        self.grads[0][...] = dW
        self.grads[1][...] = db
        return dx.reshape(self.original_x_shape)


class Sigmoid:
    """Sigmoid layer; keeps its output ``out`` for the backward pass."""

    def __init__(self):
        self.params, self.grads = [], []
        self.out = None

    def forward(self, x):
        """x: any shape -> sigmoid(x), same shape."""
        out = sigmoid(x)
        self.out = out
        return out

    def backward(self, dout):
        """dout: shape of x -> dx = dout * (1 - out) * out."""
        dx = dout * (1.0 - self.out) * self.out
        return dx


class Relu:
    """ReLU layer; keeps the mask of inputs <= 0 for the backward pass."""

    def __init__(self):
        self.params, self.grads = [], []
        self.mask = None

    def forward(self, x):
        """x: any shape -> max(0, x), same shape."""
        self.mask = (x <= 0)
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        """dout: shape of x -> dx = dout, zero where x <= 0 (dout itself is left unchanged)."""
        dx = dout.copy()
        dx[self.mask] = 0
        return dx


class Softmax:
    """Softmax layer over the last axis; keeps its output ``out``."""

    def __init__(self) -> None:
        self.params, self.grads = [], []
        self.out = None

    def forward(self, x: ArrayLike) -> NDArray[np.floating[Any]]:
        """x: (..., C) -> probabilities, same shape."""
        self.out = softmax(x)
        return self.out

    def backward(self, dout: ArrayLike) -> NDArray[np.floating[Any]]:
        """dout: (..., C) -> dx = out * dout - out * sum(out * dout) over the last axis."""
        dx = self.out * dout
        sumdx = np.sum(dx, axis=-1, keepdims=True)
        dx -= self.out * sumdx
        return dx


class SoftmaxWithLoss:
    """Softmax followed by the cross-entropy loss; keeps the probabilities ``y`` and the index
    labels ``t`` for the backward pass."""

    def __init__(self):
        self.params, self.grads = [], []
        self.y = None  # output of softmax
        self.t = None  # index labels

    def forward(self, x, t):
        """x: (N, C) scores; t: (N,) index labels or (N, C) one-hot -> scalar mean loss."""
        t = np.asarray(t)
        # one-hot labels -> indices of the correct class (shapes, not sizes: see cross_entropy_error)
        self.t = t.argmax(axis=1) if t.shape == np.shape(x) else t
        loss, self.y = softmax_cross_entropy(x, self.t)
        return loss

    def backward(self, dout=1):
        """dout: scalar -> dx (N, C) = (y - onehot(t)) * dout / N."""
        batch_size = self.t.shape[0]

        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        dx *= dout
        dx = dx / batch_size

        return dx
