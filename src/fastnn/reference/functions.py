"""Activations, losses and numerical differentiation, as in the book's ``common/functions.py`` and
``common/gradient.py`` (volume 1, chapters 3-6; volume 2, chapter 1).

Plain NumPy. float32 inputs give float32 results; integer and bool inputs are computed in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "identity_function",
    "step_function",
    "sigmoid",
    "sigmoid_grad",
    "relu",
    "relu_grad",
    "softmax",
    "sum_squared_error",
    "cross_entropy_error",
    "softmax_loss",
    "softmax_cross_entropy",
    "bias_grad",
    "numerical_diff",
    "numerical_gradient",
    "numerical_gradient_2d",
    "gradient_descent",
]


def identity_function(x):
    """x itself: the output activation of regression (volume 1, chapter 3)."""
    return x


def step_function(x):
    """1 where x > 0, else 0, elementwise; an integer array (NumPy's default int) of x's shape."""
    return np.array(x > 0, dtype=int)


def sigmoid(x):
    """1 / (1 + exp(-x)) elementwise; any shape, same float dtype out.

    Stable for every finite x: exp is only taken of -|x| <= 0, so it never overflows, and
    sigmoid(-1000) is exactly 0.0, sigmoid(1000) exactly 1.0. For x < 0 the equivalent form
    e^x / (1 + e^x) is used.
    """
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        x = x.astype(np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(x):
    """Derivative of the sigmoid at x: (1 - sigmoid(x)) * sigmoid(x); shape of x."""
    return (1.0 - sigmoid(x)) * sigmoid(x)


def relu(x: ArrayLike) -> NDArray[Any]:
    """max(0, x) elementwise; shape and dtype of x."""
    return np.maximum(0, x)


def relu_grad(x):
    """Derivative of relu at x as the book takes it: 1 where x >= 0 (also at 0), else 0; shape
    and dtype of x."""
    grad = np.zeros_like(x)
    grad[x >= 0] = 1
    return grad


def softmax(x: ArrayLike) -> NDArray[np.floating[Any]]:
    """Softmax over the last axis of x (any ndim, shape kept).

    The row maximum is subtracted first, so exp never overflows; the result is unchanged because
    softmax(x + c) = softmax(x).
    """
    x = np.asarray(x)
    x = x - x.max(axis=-1, keepdims=True)
    y = np.exp(x)
    return y / y.sum(axis=-1, keepdims=True)


def sum_squared_error(y, t):
    """0.5 * sum((y - t)**2) over every element (not a batch mean): a scalar."""
    return 0.5 * np.sum((y - t) ** 2)


def cross_entropy_error(y, t):
    """Mean cross-entropy -log(y[n, t_n] + 1e-7) over the batch; returns a scalar.

    y: (N, C) probabilities, or (C,) for a single sample.
    t: (N,) index labels of any integer dtype, or one-hot of y's size (converted with argmax).
    The 1e-7 keeps log away from log(0) = -inf.
    """
    y = np.asarray(y)
    t = np.asarray(t)
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)

    # one-hot labels -> indices of the correct class (the book tests t.size == y.size, which
    # mistakes index labels for one-hot when C = 1; the shapes tell them apart)
    if t.shape == y.shape:
        t = t.argmax(axis=1)

    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


def softmax_loss(X, t):
    """Cross-entropy of softmax(X) against the labels t (as cross_entropy_error): a scalar."""
    y = softmax(X)
    return cross_entropy_error(y, t)


def softmax_cross_entropy(x, t):
    """Softmax and cross-entropy loss from logits x (N, C) and labels t (as cross_entropy_error).

    Returns (loss, y): the scalar loss and the (N, C) probabilities softmax(x).
    """
    y = softmax(x)
    return cross_entropy_error(y, t), y


def bias_grad(dout):
    """Gradient of a bias added along the last axis: dout summed over every other axis.

    dout: (..., D) -> (D,).
    """
    return np.sum(dout, axis=tuple(range(dout.ndim - 1)))


def numerical_diff(f, x, h=1e-4):
    """Central difference (f(x + h) - f(x - h)) / 2h of a function of one scalar."""
    return (f(x + h) - f(x - h)) / (2 * h)


def numerical_gradient(f, x, h=1e-4):
    """Central-difference gradient of the scalar f(x) with respect to every element of x.

    x: float array of any shape and strides. Each element is perturbed by +-h **in place** (f is
    called with x itself and usually reads the live array, e.g. a model's parameter) and then
    restored bit-exactly, also when f raises. Returns an array like x (np.zeros_like(x)).
    """
    grad = np.zeros_like(x)

    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        tmp_val = x[idx]
        try:
            x[idx] = float(tmp_val) + h
            fxh1 = f(x)  # f(x+h)
            x[idx] = float(tmp_val) - h
            fxh2 = f(x)  # f(x-h)
        finally:
            x[idx] = tmp_val  # restore the original value
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        it.iternext()

    return grad


def _numerical_gradient_1d(f, x, h):
    """Central differences over the elements of the 1-D x, each perturbed in place and
    restored; f is called with x."""
    grad = np.zeros_like(x)

    for idx in range(x.size):
        tmp_val = x[idx]
        try:
            x[idx] = float(tmp_val) + h
            fxh1 = f(x)  # f(x+h)
            x[idx] = float(tmp_val) - h
            fxh2 = f(x)  # f(x-h)
        finally:
            x[idx] = tmp_val  # restore the original value
        grad[idx] = (fxh1 - fxh2) / (2 * h)

    return grad


def numerical_gradient_2d(f, X, h=1e-4):
    """Central-difference gradient as volume 1's ``numerical_gradient_2d``: a 1-D X as one
    vector; a 2-D X row by row, with f called on the row being perturbed (a view into X).

    Every element is perturbed in place by +-h and restored bit-exactly, also when f raises.
    Returns an array like X.
    """
    if X.ndim == 1:
        return _numerical_gradient_1d(f, X, h)
    if X.ndim != 2:
        raise ValueError(f"numerical_gradient_2d takes a 1-D or 2-D X, got shape {X.shape}")

    grad = np.zeros_like(X)

    for idx, x in enumerate(X):
        grad[idx] = _numerical_gradient_1d(f, x, h)

    return grad


def gradient_descent(f, init_x, lr=0.01, step_num=100):
    """Minimise f by step_num steps x <- x - lr * grad f(x), with the numerical gradient.

    As in the book, x is init_x itself: init_x is updated in place and returned.
    """
    x = init_x

    for _ in range(step_num):
        grad = numerical_gradient(f, x)
        x -= lr * grad

    return x
