"""The two-layer networks of the seeds, on compiled kernels: the same classes and results as
`fastnn.reference.models`.

- TwoLayerNet (volume 2, seed 000): params / grads lists [W1, b1, W2, b2], layers [Affine,
  Sigmoid (or Relu), Affine] and loss_layer SoftmaxWithLoss, predict (scores), forward(x, t) ->
  loss, backward(dout=1), accuracy.
- TwoLayerNetwork (volume 1, seed 002): params dict, predict (probabilities), loss, accuracy,
  gradient (backprop) and numerical_gradient -> dicts.

Both are one composition of fastnn's layers (layers.py), as multilayer.py's networks: Affine,
the activation and Affine, then SoftmaxWithLoss. Prediction, the training pass and the numerical
gradient run the same forward path through the layers' fused internal methods (bias add +
activation after the product, the last bias inside the softmax-cross-entropy kernel, the first
layer's products skipping the zeros of a sparse x, no gradient for x); scratch belongs to the
layers and is never returned. On top of it, two compiled fast paths: `train_steps` (many SGD
steps in one call, csrc/train_steps.c) and `accuracy` (csrc/train_steps.c), and
`numerical_gradient` (csrc/numgrad_twolayer.c), which never calls back into Python.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _core
from ._checks import as_buffer, as_labels, as_scalar, check_label_range, check_real_dtype, check_step
from .functions import bias_grad
from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss
from ._sparse import _blas_one_thread, sparse_x
# public names of the reference, shared: volume 2's BaseModel is plain Python around its
# subclasses' layers, gradient_check plain Python around a model's two gradients
from .reference.models import (PARAM_NAMES, BaseModel, gradient_check, load_two_layer,
                               save_two_layer, two_layer_setup)

__all__ = ["TwoLayerNet", "TwoLayerNetwork", "MultiLayerNet", "MultiLayerNetExtend",
           "gradient_check", "BaseModel"]

_ACTIVATIONS = {"sigmoid": Sigmoid, "relu": Relu}

class _TwoLayerCore:
    """What both models share: the configuration and initial weights, the composition of layers
    with its one forward path, backprop, the compiled fast paths, save and load. A subclass
    provides _params_by_name() (its arrays keyed W1, b1, W2, b2)."""

    def _setup(self, input_size, hidden_size, output_size, weight_init_std, activation, dtype,
               seed):
        """Check and record the configuration (the reference's two_layer_setup, after the sizes);
        return the initial [W1, b1, W2, b2]."""
        for name, size in (("input_size", input_size), ("hidden_size", hidden_size),
                           ("output_size", output_size)):
            if not (isinstance(size, (int, np.integer)) and size > 0):
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        self.activation, self.dtype, self.config, params = two_layer_setup(
            input_size, hidden_size, output_size, weight_init_std, activation, dtype, seed)
        return params

    def _compose(self):
        """The layers over the model's arrays: Affine, the activation, Affine; SoftmaxWithLoss.
        Also the model's lock and scratch, none of which a pickle keeps."""
        W1, b1, W2, b2 = self._param_list()
        self._layers = [Affine(W1, b1), _ACTIVATIONS[self.activation](), Affine(W2, b2)]
        self._loss_layer = SoftmaxWithLoss()
        grads = getattr(self, "grads", None)
        if grads is not None:  # volume 2's grads are the layers' own lists, concatenated
            self._layers[0].grads[:], self._layers[2].grads[:] = grads[:2], grads[2:]
        self._lock = threading.Lock()  # gradient() is a function of its arguments, also in threads
        self._sparse = _core.SparseX()  # the nonzeros of the last training batch
        self._eval_sparse = _core.SparseX()  # ... of the last evaluation (predict, loss, ...)
        self._last = None  # (x, params, sparse x or None, z1, y, t) of the last training forward
        self._work = _core.TwoLayerWork()  # scratch of train_steps and accuracy, never returned

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in ("_layers", "_loss_layer", "_lock", "_sparse", "_eval_sparse", "_last",
                     "_work"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._compose()

    def _param_list(self):
        """[W1, b1, W2, b2]: the model's arrays now (the book's loops may replace them)."""
        p = self._params_by_name()
        return [p[name] for name in PARAM_NAMES]

    def _sync(self, params, grads=None):
        """Points the layers at params [W1, b1, W2, b2] (and grads, when given); returns the
        layers."""
        affine1, act, affine2 = self._layers
        affine1.params[:], affine2.params[:] = params[:2], params[2:]
        if grads is not None:
            affine1.grads[:], affine2.grads[:] = grads[:2], grads[2:]
        return affine1, act, affine2

    def _inputs(self, x, W1=None):
        """x as an (N, I) array of the model's dtype (an N-D x is flattened per sample)."""
        if W1 is None:
            W1 = self._params_by_name()["W1"]
        x = np.asarray(x)
        check_real_dtype(x, "x")
        x = x.astype(self.dtype, copy=False)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim > 2:
            x = x.reshape(x.shape[0], -1)
        if x.ndim != 2 or x.shape[1] != W1.shape[0] or x.shape[0] == 0:
            raise ValueError(f"x has shape {x.shape}; the network takes (N, {W1.shape[0]}), N >= 1")
        return x

    # ------------------------------------------------------------------ the one forward path

    def _forward(self, x, params, sparse, scratch, keep_pre=False):
        """x (N, I) through the layers with params [W1, b1, W2, b2], in x's dtype (the model's;
        float64 for the numerical gradient); sparse: x's filled SparseX, to skip its zeros, or
        None. Returns z1 = act(x W1 + b1) (N, H) and the scores before the last bias, z1 W2
        (N, O), both in the layers' scratch `scratch` ("out": the training pass, kept for
        backward; "eval": the others, so that they never clobber it), and x W1 + b1 as a new
        array when keep_pre, else None."""
        affine1, act, affine2 = self._sync(params)
        a = affine1._matmul_into(x, sparse, scratch)
        b1 = as_buffer(affine1.params[1], x.dtype).reshape(-1)
        pre = a + b1 if keep_pre else None
        with _blas_one_thread(sparse, a.size):
            act._bias_forward(a, b1)
            s = affine2._matmul_into(a, None, scratch)
        return a, s, pre

    def _eval_scores(self, x, params):
        """z1 W2 (N, O) of x, the model's inputs, in the layers' evaluation scratch; under the
        lock. Dense products: without a backward to share x's index, BLAS is as fast."""
        return self._forward(x, params, None, "eval")[1]

    def _scores(self, x):
        """The scores z1 W2 + b2 of x (any input the model takes), a new (N, O) array."""
        params = self._param_list()
        x = self._inputs(x, params[0])
        with self._lock:
            return self._eval_scores(x, params) + as_buffer(params[3], self.dtype).reshape(-1)

    def _train_forward(self, x, t):
        """Loss of the batch; keeps what backward needs."""
        self._last = None  # a forward that fails leaves nothing for backward to mix up
        params = self._param_list()
        x = self._inputs(x, params[0])
        sparse = sparse_x(x, params[0], self._sparse)
        z1, s, _ = self._forward(x, params, sparse, "out")
        t = as_labels(t, s.shape)
        loss, y = _core.softmax_ce_forward(s, t, as_buffer(params[3], self.dtype).reshape(-1))
        self._loss_layer.loss, self._loss_layer.y, self._loss_layer.t = loss, y, t
        self._last = (x, params, sparse, z1, y, t)
        return loss

    def _train_backward(self, dout, grads):
        """Backprop of the last _train_forward into grads = (gW1, gb1, gW2, gb2), in place."""
        if self._last is None:
            raise RuntimeError("backward called before forward")
        dout = as_scalar(dout, "dout")
        x, params, sparse, z1, y, t = self._last
        affine1, act, affine2 = self._sync(params, grads)
        dy = _core.softmax_ce_backward(y, t, dout)
        with _blas_one_thread(sparse, z1.size):
            affine2._grads_into(z1, dy, bias_grad(dy))
            dz1 = affine2._dx_into(dy)
            db1 = np.empty(dz1.shape[1], dtype=self.dtype)
            act._bias_backward(dz1, z1, db1)
            affine1._grads_into(x, dz1, db1, sparse)

    # ------------------------------------------------------------------ compiled fast paths

    def _compiled_params(self) -> list[np.ndarray] | None:
        """[W1, b1, W2, b2] when each is a contiguous array of the model's dtype (what the
        one-call kernels update or read in place), else None."""
        params = self._param_list()
        ok = all(_core.is_float_buffer(p, p.ndim) and p.dtype == self.dtype
                 for p in params if isinstance(p, np.ndarray))
        return params if ok and all(isinstance(p, np.ndarray) for p in params) else None

    def train_steps(self, x: ArrayLike, t: ArrayLike, batch_indices: ArrayLike,
                    lr: float) -> NDArray[np.float64]:
        """SGD steps in one compiled call: step s trains on the rows batch_indices[s] of x as
        ``forward(x[b], t[b]); backward(); SGD(lr).update(params, grads)`` does, to rounding.

        x (N, I); t index labels (N,) or one-hot (N, O); batch_indices (S, B) integers in [0, N);
        lr a finite number. Returns the S mini-batch losses (float64). The parameters are
        updated in place; a TwoLayerNet's grads hold the last step's gradients. Bad input raises
        before anything is written."""
        x = as_buffer(self._inputs(x), self.dtype)
        t = as_labels(t, (x.shape[0], self._params_by_name()["b2"].size))
        batches = np.asarray(batch_indices)
        if batches.dtype.kind not in "iu":
            raise TypeError(f"batch_indices must be integers, got dtype {batches.dtype}")
        if batches.ndim != 2:
            raise ValueError(f"batch_indices must be 2-D (steps, batch size), got shape "
                             f"{batches.shape}")
        if batches.dtype == np.uint64 and batches.size and batches.max() > np.iinfo(np.int64).max:
            raise IndexError(f"batch index out of range: {batches.max()}, x has {len(x)} rows")
        batches = np.ascontiguousarray(batches, dtype=np.int64)
        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.integer,
                                                                   np.floating)):
            raise TypeError(f"lr must be a real number, got {lr!r}")
        if not np.isfinite(lr):
            raise ValueError(f"lr must be finite, got {lr!r}")
        params = self._compiled_params()
        if params is None:
            raise ValueError("train_steps needs the parameters as contiguous arrays of the "
                             f"model's dtype {np.dtype(self.dtype).name}")
        grads = getattr(self, "grads", None)
        if not (isinstance(grads, list) and len(grads) == 4 and all(
                _core.is_float_buffer(g, g.ndim) and g.dtype == self.dtype and g.shape == p.shape
                for g, p in zip(grads, params) if isinstance(g, np.ndarray))
                and all(isinstance(g, np.ndarray) for g in grads)):
            grads = [np.empty_like(p) for p in params]
        with self._lock:
            self._last = None  # backward after train_steps would mix up batches
            return _core.twolayer_sgd_steps(x, t, batches, *params, self._relu, float(lr),
                                            *grads, self._work)

    def accuracy(self, x: ArrayLike, t: ArrayLike) -> float:
        """Fraction of the rows of x whose highest score is the label t (index or one-hot)."""
        x = as_buffer(self._inputs(x), self.dtype)
        params = self._compiled_params()
        if params is not None:
            t = as_labels(t, (x.shape[0], params[3].size))
            with self._lock:
                correct = _core.twolayer_accuracy(x, t, *params, self._relu, self._work)
            return float(correct / x.shape[0])
        scores = self._scores(x)
        t = as_labels(t, scores.shape)
        check_label_range(t, scores.shape[1])
        return float(np.mean(np.argmax(scores, axis=1) == t))

    @property
    def _relu(self):
        return self.activation == "relu"

    def gradient(self, x: ArrayLike, t: ArrayLike) -> dict[str, NDArray[np.floating[Any]]]:
        """Backprop gradients of the loss: a dict W1, b1, W2, b2 of new arrays."""
        grads = {name: np.empty_like(param, dtype=self.dtype)
                 for name, param in self._params_by_name().items()}
        with self._lock:  # the layers' scratch is the model's: one gradient at a time
            self._train_forward(x, t)
            self._train_backward(1, [grads[name] for name in PARAM_NAMES])
        return grads

    def numerical_gradient(self, x: ArrayLike, t: ArrayLike,
                           h: float = 1e-4) -> dict[str, NDArray[np.floating[Any]]]:
        """Central-difference gradients of the loss, (loss(p + h) - loss(p - h)) / 2h for every
        parameter p: a dict W1, b1, W2, b2 in the model's dtype.

        Returns what the book's element-by-element loop returns, computed in float64 by a kernel
        that recomputes only what a perturbation moves (csrc/numgrad_twolayer.c) from the forward
        path's a1, z1 and scores; nothing is perturbed in place.
        """
        h = check_step(h)
        x = as_buffer(self._inputs(x), np.float64)
        with self._lock:
            params = [as_buffer(v, np.float64) for v in self._param_list()]
            W1, b1, W2, b2 = params
            # x's zeros skipped: that also keeps BLAS's threads, which spin after a call, off
            # the kernel's cores
            sparse = sparse_x(x, W1, self._eval_sparse)
            z1, s, a1 = self._forward(x, params, sparse, "eval", keep_pre=True)
            s = s + b2.reshape(-1)
            t = as_labels(t, s.shape)
            grads = _core.twolayer_numerical_gradient(x, t, W1, b1, W2, b2, a1, z1, s,
                                                      self._relu, self.dtype == np.float32, h)
        if not np.isfinite(_core.softmax_ce_forward(s, t)[0]):
            # the book's loop sees a NaN loss on both sides of every difference
            grads = [np.full_like(g, np.nan) for g in grads]
        return {name: g.reshape(np.shape(param)).astype(self.dtype, copy=False)
                for (name, param), g in zip(self._params_by_name().items(), grads)}

    save = save_two_layer
    load = classmethod(load_two_layer)


class TwoLayerNet(_TwoLayerCore):
    """Volume 2's two-layer net (seed 000): Affine, Sigmoid (or Relu), Affine and SoftmaxWithLoss.

    params and grads are lists [W1, b1, W2, b2]; backward overwrites grads in place. backward
    returns None: nothing below the first layer needs the input's gradient, so it is not computed.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01, *, activation: str = "sigmoid",
                 dtype: DTypeLike = np.float64,
                 seed: int | np.random.Generator | None = None) -> None:
        self.params = self._setup(input_size, hidden_size, output_size, weight_init_std,
                                  activation, dtype, seed)
        self.grads = [np.zeros_like(p) for p in self.params]
        self._compose()

    @property
    def layers(self) -> list[Any]:
        """[Affine, Sigmoid or Relu, Affine]: their params and grads are the model's arrays."""
        return self._layers

    @property
    def loss_layer(self) -> SoftmaxWithLoss:
        """The SoftmaxWithLoss: loss, y and t of the last forward."""
        return self._loss_layer

    def _params_by_name(self):
        return dict(zip(PARAM_NAMES, self.params))

    def _param_list(self):
        return self.params

    def predict(self, x: ArrayLike) -> NDArray[np.floating[Any]]:
        """x: (N, I) -> scores (N, O) (before softmax)."""
        return self._scores(x)

    def forward(self, x: ArrayLike, t: ArrayLike) -> float:
        """x: (N, I), t: index labels (N,) or one-hot (N, O) -> mean loss."""
        return self._train_forward(x, t)

    def backward(self, dout: float = 1) -> None:
        """Backprop from the last forward; fills grads in place."""
        self._train_backward(dout, self.grads)


class TwoLayerNetwork(_TwoLayerCore):
    """Volume 1's two-layer net (seed 002, corrected): params is a dict W1, b1, W2, b2."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01, *, activation: str = "sigmoid",
                 dtype: DTypeLike = np.float64,
                 seed: int | np.random.Generator | None = None) -> None:
        W1, b1, W2, b2 = self._setup(input_size, hidden_size, output_size, weight_init_std,
                                     activation, dtype, seed)
        self.params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
        self._compose()

    def _params_by_name(self):
        return self.params

    def predict(self, x: ArrayLike) -> NDArray[np.floating[Any]]:
        """x: (N, I) -> probabilities (N, O)."""
        s = self._scores(x)
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        return s

    def loss(self, x: ArrayLike, t: ArrayLike) -> float:
        """x: (N, I), t: labels -> mean cross-entropy loss."""
        params = self._param_list()
        x = self._inputs(x, params[0])
        with self._lock:
            s = self._eval_scores(x, params)
            return _core.softmax_ce_forward(s, as_labels(t, s.shape),
                                            as_buffer(params[3], self.dtype).reshape(-1))[0]


# volume 1's networks of any depth (multilayer.py builds on this module's sparse helpers above)
from .multilayer import MultiLayerNet, MultiLayerNetExtend  # noqa: E402

# Volume 1's convolutional networks live in their own module; models is their public namespace.
from .convnet import DeepConvNet, SimpleConvNet  # noqa: E402

__all__ += ["SimpleConvNet", "DeepConvNet"]
