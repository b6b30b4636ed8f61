"""Graph nodes and layers in both books' conventions (``common/layers.py`` of each volume).

Volume 2: every layer has ``params`` and ``grads``, lists of arrays (empty when the layer has no
parameters), ``forward(...)`` and ``backward(dout)``. ``backward`` writes each gradient into its
existing array (``grads[i][...] = ...``), so a model that concatenated its layers' lists sees
them, and returns the gradient with respect to the layer's input. No layer modifies the ``dout``
it is given.

Volume 1 reads the same layers through attributes (``Affine.W``, ``Affine.dW``, ...): these are
properties over the very arrays in ``params`` and ``grads`` (``layer.dW is layer.grads[0]``), and
assigning one (``layer.W = params['W1']``, as the book's ``load_params`` does) replaces the list
entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .functions import bias_grad, cross_entropy_error, sigmoid, softmax, softmax_cross_entropy

__all__ = ["Repeat", "Sum", "MatMul", "Affine", "Sigmoid", "Relu", "Softmax", "SoftmaxWithLoss",
           "SigmoidWithLoss", "Dropout", "BatchNormalization"]


def _list_entry(list_name, index, doc):
    """A property reading and assigning entry ``index`` of the list attribute ``list_name``."""

    def read(self):
        return getattr(self, list_name)[index]

    def assign(self, value):
        getattr(self, list_name)[index] = value

    return property(read, assign, doc=doc)


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

    W = _list_entry("params", 0, "the weight (D, H): params[0]")
    dW = _list_entry("grads", 0, "its gradient (D, H): grads[0]")

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

    W = _list_entry("params", 0, "the weight (D, H): params[0]")
    b = _list_entry("params", 1, "the bias (H,): params[1]")
    dW = _list_entry("grads", 0, "the weight's gradient (D, H): grads[0]")
    db = _list_entry("grads", 1, "the bias's gradient (H,): grads[1]")

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
    """Softmax followed by the cross-entropy loss; keeps the ``loss``, the probabilities ``y``
    and the index labels ``t`` for the backward pass."""

    def __init__(self):
        self.params, self.grads = [], []
        self.loss = None
        self.y = None  # output of softmax
        self.t = None  # index labels

    def forward(self, x, t):
        """x: (N, C) scores; t: (N,) index labels or (N, C) one-hot -> scalar mean loss."""
        t = np.asarray(t)
        # one-hot labels -> indices of the correct class (shapes, not sizes: see cross_entropy_error)
        self.t = t.argmax(axis=1) if t.shape == np.shape(x) else t
        self.loss, self.y = softmax_cross_entropy(x, self.t)
        return self.loss

    def backward(self, dout=1):
        """dout: scalar -> dx (N, C) = (y - onehot(t)) * dout / N."""
        batch_size = self.t.shape[0]

        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        dx *= dout
        dx = dx / batch_size

        return dx


class SigmoidWithLoss:
    """Sigmoid followed by the binary cross-entropy loss (volume 2); keeps ``loss``, the
    probabilities ``y`` and the labels ``t`` for the backward pass."""

    def __init__(self):
        self.params, self.grads = [], []
        self.loss = None
        self.y = None  # output of sigmoid
        self.t = None  # labels, 0 or 1

    def forward(self, x, t):
        """x: (N,) scores; t: (N,) labels 0 or 1 -> scalar mean loss -log(P(t) + 1e-7)."""
        self.t = np.asarray(t)
        self.y = sigmoid(x)
        # the two-class cross-entropy over the columns P(0) = 1 - y, P(1) = y
        self.loss = cross_entropy_error(np.c_[1 - self.y, self.y], self.t)
        return self.loss

    def backward(self, dout=1):
        """dout: scalar -> dx (N,) = (y - t) * dout / N."""
        batch_size = self.t.shape[0]

        dx = (self.y - self.t) * dout / batch_size
        return dx


class Dropout:
    """Dropout (http://arxiv.org/abs/1207.0580): at training time each element is kept where a
    uniform draw exceeds ``dropout_ratio``; at test time every element is scaled by the fraction
    kept on average, 1 - dropout_ratio. Keeps the boolean ``mask`` of the last training pass.

    The mask is drawn with ``np.random.rand(*x.shape)`` from NumPy's global state as in the book;
    ``rng`` (a np.random.Generator, or a seed for one) draws ``rng.random(x.shape)`` instead.
    """

    def __init__(self, dropout_ratio=0.5, *, rng=None):
        if not 0 <= dropout_ratio < 1:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {dropout_ratio!r}")
        self.params, self.grads = [], []
        self.dropout_ratio = dropout_ratio
        self.rng = None if rng is None else np.random.default_rng(rng)
        self.mask = None

    def forward(self, x, train_flg=True):
        """x: any shape -> x * mask (training) or x * (1 - dropout_ratio) (test), same shape."""
        if train_flg:
            if self.rng is None:
                draw = np.random.rand(*np.shape(x))
            else:
                draw = self.rng.random(np.shape(x))
            self.mask = draw > self.dropout_ratio
            return x * self.mask
        else:
            return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        """dout: shape of x -> dx = dout * mask (the mask of the last training forward)."""
        return dout * self.mask


class BatchNormalization:
    """Batch normalization (http://arxiv.org/abs/1502.03167) over the batch axis.

    gamma, beta: (D,) scale and shift, the parameters (``params = [gamma, beta]``, ``grads =
    [dgamma, dbeta]``). Input (N, D), or 4-D (N, C, H, W) flattened per sample to (N, C*H*W) as
    in the book (then D = C*H*W). Training normalises with the batch's mean and variance and
    updates ``running_mean`` / ``running_var`` by ``momentum``; test time (train_flg=False)
    normalises with the running statistics, created as zeros of length D at the first forward
    when not given. The variance gets 10e-7 added before its square root, as in the book.
    """

    gamma = _list_entry("params", 0, "the scale (D,): params[0]")
    beta = _list_entry("params", 1, "the shift (D,): params[1]")
    dgamma = _list_entry("grads", 0, "the scale's gradient (D,): grads[0]")
    dbeta = _list_entry("grads", 1, "the shift's gradient (D,): grads[1]")

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.params = [gamma, beta]
        self.grads = [np.zeros_like(gamma), np.zeros_like(beta)]
        self.momentum = momentum
        self.input_shape = None  # (N, D), or (N, C, H, W) after a convolution

        # mean and variance used at test time
        for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
            if stat is not None and np.shape(stat) != np.shape(gamma):
                raise ValueError(f"{name} has shape {np.shape(stat)}, gamma has shape "
                                 f"{np.shape(gamma)}: one value per feature is needed")
        self.running_mean = running_mean
        self.running_var = running_var

        # what backward needs from forward
        self.train_flg = None
        self.batch_size = None
        self.xc = None
        self.xn = None
        self.std = None

    def forward(self, x, train_flg=True):
        """x: (N, D) or (N, C, H, W) with C*H*W = D -> gamma * normalised x + beta, x's shape."""
        self.input_shape = x.shape
        if x.ndim not in (2, 4):
            raise ValueError(f"x must be (N, D) or (N, C, H, W), got shape {x.shape}")
        x = x.reshape(x.shape[0], -1)

        out = self._forward(x, train_flg)

        return out.reshape(*self.input_shape)

    def _forward(self, x, train_flg):
        N, D = x.shape
        for name in ("gamma", "beta", "running_mean", "running_var"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != (D,):
                raise ValueError(f"x has {D} features per sample, {name} has shape "
                                 f"{np.shape(value)}")
        if self.running_mean is None:
            self.running_mean = np.zeros(D, dtype=x.dtype)
        if self.running_var is None:
            self.running_var = np.zeros(D, dtype=x.dtype)

        if train_flg:
            mu = x.mean(axis=0)
            xc = x - mu
            var = np.mean(xc**2, axis=0)
            std = np.sqrt(var + 10e-7)
            xn = xc / std

            self.batch_size = N
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            xc = x - self.running_mean
            std = np.sqrt(self.running_var + 10e-7)
            xn = xc / std

        self.train_flg = train_flg
        self.xc, self.xn, self.std = xc, xn, std
        out = self.gamma * xn + self.beta
        return out

    def backward(self, dout):
        """dout: x's shape -> dx, x's shape; grads = [dgamma (D,), dbeta (D,)]."""
        if dout.shape != self.input_shape:
            raise ValueError(f"dout has shape {dout.shape}, the input had {self.input_shape}")
        dout = dout.reshape(dout.shape[0], -1)

        dx = self._backward(dout)

        return dx.reshape(*self.input_shape)

    def _backward(self, dout):
        dbeta = dout.sum(axis=0)
        dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        if self.train_flg:
            # mu and std depend on x too: xn = (x - mu) / sqrt(var + eps), var = mean(xc**2)
            dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
            dvar = 0.5 * dstd / self.std
            dxc += (2.0 / self.batch_size) * self.xc * dvar
            dmu = np.sum(dxc, axis=0)
            dx = dxc - dmu / self.batch_size
        else:
            # test time the running statistics are constants: the layer is affine in x
            dx = dxc

        self.grads[0][...] = dgamma
        self.grads[1][...] = dbeta
        return dx


# Volume 1's convolution layers live in their own module; layers is their public namespace.
from .conv import Convolution, Pooling  # noqa: E402

__all__ += ["Convolution", "Pooling"]
