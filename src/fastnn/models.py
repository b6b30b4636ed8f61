"""The two-layer networks of the seeds, on compiled kernels: the same classes and results as
`fastnn.reference.models`.

- TwoLayerNet (volume 2, seed 000): params / grads lists [W1, b1, W2, b2], predict (scores),
  forward(x, t) -> loss, backward(dout=1), accuracy.
- TwoLayerNetwork (volume 1, seed 002): params dict, predict (probabilities), loss, accuracy,
  gradient (backprop) and numerical_gradient -> dicts.

One compiled core serves both. A training step is three matrix products forward and three backward
in NumPy's BLAS, with the elementwise work fused around them (bias add + activation, bias add +
softmax + cross-entropy, activation backward + bias gradient) and no gradient for the input x.
When x is mostly zeros (MNIST: ~80%), the two products with x skip them (csrc/twolayer.c).
Scratch buffers are reused between steps; they are never handed to the caller.
`numerical_gradient` is compiled too (csrc/twolayer.c): it never calls back into Python.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _core
from ._checks import as_buffer, as_labels, as_scalar, check_label_range, check_real_dtype, check_step
from .functions import bias_grad, sigmoid
from .reference.models import PARAM_NAMES, _TwoLayerModel, gradient_check
# volume 2's BaseModel is plain Python around its subclasses' layers: the same class here
from .reference.models import BaseModel

__all__ = ["TwoLayerNet", "TwoLayerNetwork", "MultiLayerNet", "MultiLayerNetExtend",
           "gradient_check", "BaseModel"]

# x W1 and x^T dz skip zeros when at most this share of x is nonzero: below it the sparse kernels
# beat NumPy's BLAS for a 784-50 first layer (measured: bench/, `fastnn bench`)
SPARSE_MAX_DENSITY = 0.3


_blas_controller = None  # threadpoolctl's view of NumPy's BLAS, made on first use


def _one_blas_thread(sparse, hidden):
    """A context that holds NumPy's BLAS to one thread around a sparse step (sparse: its SparseX;
    None for a dense step, whose big products are BLAS's) whose hidden layer (N, H) is big enough
    for fastnn's OpenMP threads: BLAS's own threads spin between calls and take the cores from
    fastnn's (784-1000-10, batch 256, 2 threads: 16 ms a step with both pools, 6.9 ms with BLAS on
    one). Needs threadpoolctl (optional); without it, a no-op."""
    global _blas_controller
    if sparse is None or hidden.size < _core.PARALLEL_MIN or _core.get_num_threads() < 2:
        return contextlib.nullcontext()
    if _blas_controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas_controller = False
        else:
            _blas_controller = ThreadpoolController().select(user_api="blas")
    if not _blas_controller:
        return contextlib.nullcontext()
    return _blas_controller.limit(limits=1)


def _dot_into(a, b, out):
    """out[...] = a @ b, written by BLAS straight into out when its layout allows."""
    if out.flags.c_contiguous and out.dtype == a.dtype == b.dtype:
        np.dot(a, b, out=out)
    else:
        out[...] = np.dot(a, b)


def sparse_x(x, W1, sparse):
    """sparse (a SparseX) filled with x when x is sparse enough for the first layer's products to
    skip its zeros, else None. Also None when x or W1 holds inf or NaN: skipping x's zeros would
    drop the NaN that 0 * inf gives in BLAS."""
    if not (_core.is_float_buffer(x, 2) and _core.is_float_buffer(W1, 2) and x.dtype == W1.dtype):
        return None
    sample = x.reshape(-1)[::61]  # a cheap look first: dense data skips the indexing
    if np.count_nonzero(sample) > SPARSE_MAX_DENSITY * sample.size:
        return None
    if sparse.fill(x) > SPARSE_MAX_DENSITY * x.size or not sparse.finite:
        return None
    return sparse if _core.all_finite(W1) else None


class _CompiledTwoLayer(_TwoLayerModel):
    """The compiled core shared by both models; a subclass provides _params_by_name()."""

    def _setup(self, input_size, hidden_size, output_size, *args):
        for name, size in (("input_size", input_size), ("hidden_size", hidden_size),
                           ("output_size", output_size)):
            if not (isinstance(size, (int, np.integer)) and size > 0):
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        return super()._setup(input_size, hidden_size, output_size, *args)

    def _init_core(self):
        self._lock = threading.Lock()  # gradient() is a function of its arguments, also in threads
        self._scratch = {}  # batch size -> (hidden activations, their gradient), never returned
        self._sparse = _core.SparseX()  # the nonzeros of the last training batch
        self._last = None  # (x, sparse x or None, z1, y, t) of the last training forward
        self._work = _core.TwoLayerWork()  # scratch of train_steps and accuracy, never returned

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_scratch"], state["_sparse"], state["_last"], state["_lock"] = {}, None, None, None
        state["_work"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._sparse, self._lock = _core.SparseX(), threading.Lock()
        self._work = _core.TwoLayerWork()

    @property
    def _relu(self):
        return self.activation == "relu"

    def _inputs(self, x):
        """x as an (N, I) array of the model's dtype (an N-D x is flattened per sample)."""
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

    def _hidden(self, x):
        """act(x W1 + b1), a new (N, H) array."""
        p = self._params_by_name()
        z = np.dot(x, p["W1"])
        _core.bias_act_forward(z, as_buffer(p["b1"], self.dtype), self._relu)
        return z

    def _scores(self, x):
        """z1 W2 + b2 for a new (N, O) array."""
        p = self._params_by_name()
        s = np.dot(self._hidden(x), p["W2"])
        s += p["b2"]
        return s

    _sparse_x = staticmethod(sparse_x)

    def _train_forward(self, x, t):
        """Loss of the batch; keeps what backward needs."""
        self._last = None  # a forward that fails leaves nothing for backward to mix up
        x = self._inputs(x)
        p = self._params_by_name()
        n = x.shape[0]
        if n not in self._scratch:
            hid = p["W1"].shape[1]
            self._scratch = {n: (np.empty((n, hid), self.dtype), np.empty((n, hid), self.dtype))}
        z1, _ = self._scratch[n]
        sparse = self._sparse_x(x, p["W1"], self._sparse)
        with _one_blas_thread(sparse, z1):
            if sparse is None:
                _dot_into(x, p["W1"], z1)
            else:
                _core.sparse_matmul(sparse, p["W1"], z1)
            _core.bias_act_forward(z1, as_buffer(p["b1"], self.dtype), self._relu)
            s = np.dot(z1, p["W2"])
        t = as_labels(t, s.shape)
        loss, y = _core.softmax_ce_forward(s, t, as_buffer(p["b2"], self.dtype))
        self._last = (x, sparse, z1, y, t)
        return loss

    def _train_backward(self, dout, grads):
        """Backprop of the last _train_forward into grads = (gW1, gb1, gW2, gb2), in place."""
        if self._last is None:
            raise RuntimeError("backward called before forward")
        dout = as_scalar(dout, "dout")
        x, sparse, z1, y, t = self._last
        gW1, gb1, gW2, gb2 = grads
        W2 = self._params_by_name()["W2"]
        dy = _core.softmax_ce_backward(y, t, dout)
        with _one_blas_thread(sparse, z1):
            _dot_into(z1.T, dy, gW2)
            gb2[...] = bias_grad(dy)
            dz1 = self._scratch[x.shape[0]][1]
            _dot_into(dy, W2.T, dz1)
            db1 = np.empty(dz1.shape[1], dtype=self.dtype)
            _core.act_backward_bias(dz1, z1, self._relu, db1)
            gb1[...] = db1
            if (sparse is not None and _core.is_float_buffer(gW1, 2) and gW1.dtype == x.dtype
                    and _core.all_finite(dz1)):
                _core.sparse_t_matmul(sparse, dz1, gW1)
            else:
                _dot_into(x.T, dz1, gW1)

    def _compiled_params(self) -> list[np.ndarray] | None:
        """[W1, b1, W2, b2] when each is a contiguous array of the model's dtype (what the
        one-call kernels update or read in place), else None."""
        params = [self._params_by_name()[name] for name in PARAM_NAMES]
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

    def gradient(self, x: ArrayLike, t: ArrayLike) -> dict[str, NDArray[np.floating[Any]]]:
        """Backprop gradients of the loss: a dict W1, b1, W2, b2 of new arrays."""
        grads = {name: np.empty_like(param, dtype=self.dtype)
                 for name, param in self._params_by_name().items()}
        with self._lock:  # the scratch buffers are the model's: one gradient at a time
            self._train_forward(x, t)
            self._train_backward(1, [grads[name] for name in PARAM_NAMES])
        return grads

    def numerical_gradient(self, x: ArrayLike, t: ArrayLike,
                           h: float = 1e-4) -> dict[str, NDArray[np.floating[Any]]]:
        """Central-difference gradients of the loss, (loss(p + h) - loss(p - h)) / 2h for every
        parameter p: a dict W1, b1, W2, b2 in the model's dtype.

        Returns what the book's element-by-element loop returns, computed in float64 by a kernel
        that recomputes only what a perturbation moves (csrc/twolayer.c); nothing is perturbed in
        place.
        """
        h = check_step(h)
        x = as_buffer(self._inputs(x), np.float64)
        p = {name: as_buffer(v, np.float64) for name, v in self._params_by_name().items()}
        a1 = np.empty((x.shape[0], p["W1"].shape[1]), np.float64)
        # a SparseX of its own: numerical_gradient touches no state of the model. The sparse
        # product also keeps BLAS's threads, which spin after a call, off the kernel's cores.
        sparse = self._sparse_x(x, p["W1"], _core.SparseX())
        if sparse is None:
            _dot_into(x, p["W1"], a1)
        else:
            _core.sparse_matmul(sparse, p["W1"], a1)
        a1 += p["b1"].reshape(-1)
        z1 = np.maximum(a1, 0) if self._relu else sigmoid(a1)
        s = np.dot(z1, p["W2"])
        s += p["b2"]
        t = as_labels(t, s.shape)
        grads = _core.twolayer_numerical_gradient(x, t, p["W1"], p["b1"], p["W2"], p["b2"], a1,
                                                  z1, s, self._relu, self.dtype == np.float32, h)
        if not np.isfinite(_core.softmax_ce_forward(s, t)[0]):
            # the book's loop sees a NaN loss on both sides of every difference
            grads = [np.full_like(g, np.nan) for g in grads]
        return {name: g.reshape(np.shape(param)).astype(self.dtype, copy=False)
                for (name, param), g in zip(self._params_by_name().items(), grads)}


class TwoLayerNet(_CompiledTwoLayer):
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
        self._init_core()

    def _params_by_name(self):
        return dict(zip(PARAM_NAMES, self.params))

    def predict(self, x: ArrayLike) -> NDArray[np.floating[Any]]:
        """x: (N, I) -> scores (N, O) (before softmax)."""
        return self._scores(self._inputs(x))

    def forward(self, x: ArrayLike, t: ArrayLike) -> float:
        """x: (N, I), t: index labels (N,) or one-hot (N, O) -> mean loss."""
        return self._train_forward(x, t)

    def backward(self, dout: float = 1) -> None:
        """Backprop from the last forward; fills grads in place."""
        self._train_backward(dout, self.grads)


class TwoLayerNetwork(_CompiledTwoLayer):
    """Volume 1's two-layer net (seed 002, corrected): params is a dict W1, b1, W2, b2."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01, *, activation: str = "sigmoid",
                 dtype: DTypeLike = np.float64,
                 seed: int | np.random.Generator | None = None) -> None:
        W1, b1, W2, b2 = self._setup(input_size, hidden_size, output_size, weight_init_std,
                                     activation, dtype, seed)
        self.params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
        self._init_core()

    def _params_by_name(self):
        return self.params

    def predict(self, x: ArrayLike) -> NDArray[np.floating[Any]]:
        """x: (N, I) -> probabilities (N, O)."""
        s = self._scores(self._inputs(x))
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        return s

    def loss(self, x: ArrayLike, t: ArrayLike) -> float:
        """x: (N, I), t: labels -> mean cross-entropy loss."""
        s = self._scores(self._inputs(x))
        return _core.softmax_ce_forward(s, as_labels(t, s.shape))[0]


# volume 1's networks of any depth (multilayer.py builds on this module's sparse helpers above)
from .multilayer import MultiLayerNet, MultiLayerNetExtend  # noqa: E402

# Volume 1's convolutional networks live in their own module; models is their public namespace.
from .convnet import DeepConvNet, SimpleConvNet  # noqa: E402

__all__ += ["SimpleConvNet", "DeepConvNet"]
