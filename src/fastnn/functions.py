"""The book's functions, fast: the same names and results as `fastnn.reference.functions`.

sigmoid, softmax_cross_entropy, bias_grad and numerical_gradient run compiled kernels (csrc/ via
_core); the others are the reference's NumPy, already as fast as NumPy gets.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._checks import (as_float, as_labels, as_logits, check_label_range, check_real_dtype,
                      check_step)
from .reference import functions as reference
from .reference.functions import relu, softmax

__all__ = ["identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu", "relu_grad",
           "softmax", "sum_squared_error", "cross_entropy_error", "softmax_loss",
           "softmax_cross_entropy", "bias_grad", "numerical_diff", "numerical_gradient",
           "numerical_gradient_2d", "gradient_descent"]


def identity_function(x):
    """x itself (the output layer's activation of a regression)."""
    return x


def step_function(x):
    """1 where x > 0, else 0, as an int array of x's shape. One NumPy comparison and cast: a kernel
    would do the same single pass."""
    return np.array(np.asarray(x) > 0, dtype=int)


def relu_grad(x):
    """Derivative of relu as the book takes it: 1 where x >= 0 (also at 0), else 0; x's shape and
    dtype. One NumPy comparison and cast, the whole pass."""
    x = np.asarray(x)
    return (x >= 0).astype(x.dtype)


def sum_squared_error(y, t):
    """0.5 * sum((y - t)**2) over every element. NumPy's subtract, square and pairwise sum are one
    pass each over small arrays; a fused kernel would change the sum's rounding for no measured
    gain."""
    return 0.5 * np.sum((np.asarray(y) - np.asarray(t)) ** 2)


def sigmoid(x: ArrayLike) -> NDArray[np.floating[Any]]:
    """1 / (1 + exp(-x)) elementwise, any shape; float32 stays float32, other input -> float64.

    Stable for every finite x, no warnings: sigmoid(-1000) == 0.0, sigmoid(1000) == 1.0; NaN -> NaN.
    """
    x = as_float(x, "x")
    y = np.empty_like(x)
    _core.sigmoid_forward(x.reshape(-1), y.reshape(-1))
    return y


def sigmoid_grad(x: ArrayLike) -> NDArray[np.floating[Any]]:
    """Derivative of the sigmoid at x: (1 - sigmoid(x)) * sigmoid(x); shape of x."""
    y = sigmoid(x)
    return sigmoid_backward(np.ones_like(y), y)


def sigmoid_backward(dout: ArrayLike, out: ArrayLike) -> NDArray[np.floating[Any]]:
    """dout * (1 - out) * out: the Sigmoid layer's backward.

    One compiled pass when dout and out have one shape and dtype; otherwise NumPy's broadcasting
    and type promotion, as in the reference (a scalar dout, a float64 dout on float32 out).
    """
    out = as_float(out, "out")
    dout = np.asarray(dout)
    check_real_dtype(dout, "dout")
    if dout.shape != out.shape or dout.dtype != out.dtype:
        return dout * (1.0 - out) * out
    dout = as_float(dout, "dout")
    dx = np.empty_like(out)
    _core.sigmoid_backward(dout.reshape(-1), out.reshape(-1), dx.reshape(-1))
    return dx


def cross_entropy_error(y: ArrayLike, t: ArrayLike) -> float:
    """Mean cross-entropy -log(y[n, t_n] + 1e-7) over the batch, as the reference, with its
    labels checked: y (N, C) probabilities (1-D: one sample); t index labels (N,) of any integer
    dtype, each in 0..C-1, or one-hot (N, C)."""
    y = as_logits(y, "y")
    t = as_labels(t, y.shape)
    check_label_range(t, y.shape[1])
    return reference.cross_entropy_error(y, t)


def numerical_diff(f: Callable[[Any], Any], x: Any, h: float = 1e-4) -> Any:
    """Central difference (f(x + h) - f(x - h)) / 2h; h finite and > 0."""
    return reference.numerical_diff(f, x, check_step(h))


def softmax_cross_entropy(x: ArrayLike, t: ArrayLike) -> tuple[float, NDArray[np.floating[Any]]]:
    """Fused softmax and cross-entropy: (loss, y) from logits in one pass per row.

    x: (N, C) logits (1-D: one sample), float32 or float64; t: index labels (N,) of any integer
    dtype or one-hot (N, C). Returns the batch mean of -log(y[n, t_n] + 1e-7) as a float and
    y = softmax(x), (N, C). Equals cross_entropy_error(softmax(x), t).
    """
    x = as_logits(x)
    return _core.softmax_ce_forward(x, as_labels(t, x.shape))


def softmax_loss(X, t):
    """cross_entropy_error(softmax(X), t), through the fused softmax-cross-entropy kernel: X (N, C)
    logits (1-D: one sample), t index labels (N,) or one-hot (N, C) -> the mean loss."""
    X = as_logits(X, "X")
    return _core.softmax_ce_forward(X, as_labels(t, X.shape))[0]


def bias_grad(dout: ArrayLike) -> NDArray[np.floating[Any]]:
    """Sum of dout over every axis but the last: (..., D) -> (D,), dout's dtype.

    Accumulated in float64 also for float32 input; the gradient of a bias added to every row.
    """
    dout = as_float(dout, "dout")
    if dout.ndim == 0:
        raise ValueError("dout must have at least one axis, got a 0-d array")
    d = dout.shape[-1]
    db = np.empty(d, dtype=dout.dtype)
    _core.bias_grad(dout.reshape(dout.size // d if d else 0, d), db)
    return db


def numerical_gradient(f: Callable[[Any], Any], x: NDArray[np.floating[Any]],
                       h: float = 1e-4) -> NDArray[np.floating[Any]]:
    """Central-difference gradient of f at x: (f(x+h) - f(x-h)) / 2h for every element.

    x: float32 or float64 array of any shape and strides, writable. It is perturbed in place, one
    element at a time (f usually ignores its argument and reads the live array), and every element
    is restored bit-exactly, also when f raises. f must return a scalar. Returns an array shaped like
    x, of x's dtype.
    """
    h = check_step(h)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a NumPy array (it is perturbed in place), got {type(x).__name__}")
    if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        raise TypeError(f"numerical_gradient needs a float32 or float64 array, x has dtype {x.dtype}: "
                        "an integer array cannot hold x + h (the book's version returns garbage)")
    if not x.flags.writeable:
        raise ValueError("x must be writable: numerical_gradient perturbs it in place")
    if not x.dtype.isnative:  # byte-swapped: the reference's loop, which NumPy translates
        return reference.numerical_gradient(f, x, h)
    grad = np.empty(x.shape, dtype=x.dtype)
    _core.numerical_gradient(f, x, h, grad.reshape(-1))
    return grad


def numerical_gradient_2d(f, X, h=1e-4):
    """Volume 1's row-by-row central difference: a 1-D X as one vector; a 2-D X row by row, with f
    called on the row being perturbed (a view into X). The compiled loop of numerical_gradient on
    each row; returns an array like X."""
    X = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if X.ndim == 1:
        return numerical_gradient(f, X, h)
    if X.ndim != 2:
        raise ValueError(f"numerical_gradient_2d takes a 1-D or 2-D X, got shape {X.shape}")
    h = check_step(h)
    grad = np.zeros_like(X)
    for idx, x in enumerate(X):
        grad[idx] = numerical_gradient(f, x, h)
    return grad


def gradient_descent(f: Callable[[Any], Any], init_x: NDArray[np.floating[Any]],
                     lr: float = 0.01, step_num: int = 100) -> NDArray[np.floating[Any]]:
    """x <- x - lr * numerical_gradient(f, x), step_num times; returns x.

    As in the book, x is init_x itself: it is updated in place and returned.
    """
    x = init_x
    for _ in range(step_num):
        grad = numerical_gradient(f, x)
        x -= lr * grad
    return x
