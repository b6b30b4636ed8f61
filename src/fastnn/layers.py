"""The book's layers, fast: the same classes and results as `fastnn.reference.layers`.

Sigmoid, Relu, Dropout, BatchNormalization, Affine's bias gradient and SoftmaxWithLoss run
compiled kernels; Repeat, Sum, MatMul and Softmax are the reference's NumPy (matrix products go to
NumPy's BLAS either way), SigmoidWithLoss is the compiled sigmoid and NumPy.
Both books' conventions on one object: `params` and `grads` are lists and `backward` writes
`grads[i][...]` in place (volume 2); the same arrays are attributes, `Affine.W/.b/.dW/.db`,
`BatchNormalization.gamma/.beta/.dgamma/.dbeta` (volume 1). Every forward and backward returns
new arrays, which fastnn never writes again.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._checks import as_buffer, as_float, as_labels, as_logits, as_scalar, check_real_dtype
from .functions import bias_grad, cross_entropy_error, sigmoid, sigmoid_backward
from .reference.layers import MatMul, Repeat, Softmax, Sum

__all__ = ["Repeat", "Sum", "MatMul", "Affine", "Sigmoid", "Relu", "Softmax", "SoftmaxWithLoss",
           "SigmoidWithLoss", "Dropout", "BatchNormalization"]

# the book's 10e-7 under the square root of the variance
BATCHNORM_EPS = 10e-7


def _entry(listname, index, doc):
    """A property over self.<listname>[index] ("params" or "grads"): reading it gives the very
    array of the list, setting it replaces the list's entry."""

    def get(self):
        return getattr(self, listname)[index]

    def set(self, value):
        getattr(self, listname)[index] = value

    return property(get, set, doc=doc)


# Products x W and x^T d whose right-hand side has at most GEMM_NARROW_COLS columns, from
# GEMM_NARROW_WORK multiply-adds on, run _core.gemm_narrow (register-blocked, no packing) instead of
# NumPy's BLAS: a 784-50 first layer at batch 100 takes 1.3-1.4x less time in float64 and about
# the same to 1.1x less in float32 (AVX-512); below that size BLAS is as fast (100x50x10: 0.8-1.2x).
# gemm_narrow reads the right-hand side once per block of rows, from the cache: beyond
# GEMM_NARROW_BYTES of it (this CPU's L2 cache) BLAS's packing wins ((100, 4320) (4320, 100)
# float64: 3.0 ms against 1.8; up to 800 kB it was as fast or faster).
GEMM_NARROW_COLS = 128
GEMM_NARROW_WORK = 1 << 18
GEMM_NARROW_BYTES = 1 << 20


def _narrow(a, b, any_size=False):
    """Whether a (M, K) or a^T, with b (K, N), is a product for _core.gemm_narrow: contiguous
    operands of one dtype, N, M K N and the bytes of b in its range (any_size: N alone)."""
    n = b.shape[1]
    sized = any_size or (a.size * n >= GEMM_NARROW_WORK and b.nbytes <= GEMM_NARROW_BYTES)
    return (n <= GEMM_NARROW_COLS and sized and a.dtype == b.dtype
            and _core.is_float_buffer(a, 2) and _core.is_float_buffer(b, 2))


def _narrow_operand(a, b, out=None):
    """a as gemm_narrow's left operand (converted to b's dtype, as NumPy's product would) for
    a b or a^T b written into out (None: a new array of b's dtype), or None when the product is
    not one for gemm_narrow (then NumPy computes it, with its own dtype rules and overlaps)."""
    n = b.shape[1] if b.ndim == 2 else 0
    if not (0 < n <= GEMM_NARROW_COLS and a.ndim == 2 and a.size * n >= GEMM_NARROW_WORK
            and b.nbytes <= GEMM_NARROW_BYTES and np.result_type(a, b) == b.dtype
            and _core.is_float_buffer(b, 2)):
        return None
    if out is not None and not (type(out) is np.ndarray and out.dtype == b.dtype
                                and _core.is_float_buffer(out, 2)
                                and not np.may_share_memory(out, a)
                                and not np.may_share_memory(out, b)):
        return None
    return as_buffer(a, b.dtype)


# The models' internal path (multilayer.py) calls the layers' underscored methods: they compute
# into scratch buffers the layer owns (one per name, made again when the batch shape changes),
# with the operands already in the model's dtype, C-contiguous. Scratch is never returned by a
# public method.

def _scratch(layer, name, shape, dtype):
    """The layer's own buffer `name`, as an array of the given shape and dtype. Made again only
    when it has less room than the shape needs or more than four times that: a model's training
    batches and its evaluations of a few times as many rows share one buffer."""
    work = layer.__dict__.setdefault("_work", {})
    held = work.get(name)  # (the flat buffer, its last view)
    if held is not None and held[1].shape == shape and held[1].dtype == dtype:
        return held[1]
    size = math.prod(shape)
    buffer = held[0] if held is not None else None
    if buffer is None or buffer.dtype != dtype or not size <= buffer.size <= 4 * size:
        buffer = np.empty(size, dtype)
    view = buffer[:size].reshape(shape)
    work[name] = buffer, view
    return view


class Affine:
    """Fully connected layer x W + b, with W (D, H) and b (H,) the parameters.

    An N-D input (N, d1, d2, ...) is flattened to (N, D) and its gradient gets the input's shape back.
    """

    def __init__(self, W: NDArray[np.floating[Any]], b: NDArray[np.floating[Any]]) -> None:
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.x = None
        self.original_x_shape = None

    W = _entry("params", 0, "weights (D, H): params[0]")
    b = _entry("params", 1, "bias (H,): params[1]")
    dW = _entry("grads", 0, "dW: grads[0], written by backward")
    db = _entry("grads", 1, "db: grads[1], written by backward")

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
        a = _narrow_operand(flat, W)
        if a is None:
            out = np.dot(flat, W)
        else:
            out = np.empty((a.shape[0], W.shape[1]), W.dtype)
            _core.gemm_narrow(a, W, out)
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
        a = _narrow_operand(self.x, dout, dW)
        if a is None:
            np.matmul(self.x.T, dout, out=dW)
        else:
            _core.gemm_narrow(a, dout, dW, True)
        db[...] = bias_grad(dout)
        if not need_dx:
            return None
        return np.dot(dout, W.T).reshape(self.original_x_shape)

    def _matmul_into(self, x, sparse=None, scratch="out"):
        """x W (no bias: the model fuses it with what follows) into the layer's scratch (N, H);
        x (N, D) in W's dtype, sparse: x's filled SparseX, to skip its zeros, or None. scratch
        names the buffer: a model keeps its training pass apart from its evaluations in two."""
        W = as_buffer(self.params[0], x.dtype)
        a = _scratch(self, scratch, (x.shape[0], W.shape[1]), x.dtype)
        if sparse is None and _narrow(x, W):
            _core.gemm_narrow(x, W, a)
        elif sparse is None:
            np.dot(x, W, out=a)
        else:
            _core.sparse_matmul(sparse, W, a)
        return a

    def _grads_from(self, x, da, db, sparse=None):
        """grads become new arrays: dW = x^T da (sparse: x's SparseX) and db (H,) computed by the
        caller; returns them."""
        dW = np.empty((x.shape[1], da.shape[1]), da.dtype)
        if sparse is not None and _core.all_finite(da):
            _core.sparse_t_matmul(sparse, da, dW)
        elif _narrow(x, da):
            _core.gemm_narrow(x, da, dW, True)
        else:
            np.dot(x.T, da, out=dW)
        self.grads[0], self.grads[1] = dW, db
        return dW, db

    def _grads_into(self, x, da, db, sparse=None):
        """grads written in place, as volume 2's backward keeps its arrays: dW = x^T da (sparse:
        x's SparseX), db (H,) computed by the caller."""
        dW, gb = self.grads
        if (sparse is not None and _core.is_float_buffer(dW, 2) and dW.dtype == da.dtype
                and _core.all_finite(da)):
            _core.sparse_t_matmul(sparse, da, dW)
        elif _narrow(x, da) and _core.is_float_buffer(dW, 2) and dW.dtype == da.dtype:
            _core.gemm_narrow(x, da, dW, True)
        elif type(dW) is np.ndarray and dW.flags.c_contiguous and dW.dtype == x.dtype == da.dtype:
            np.dot(x.T, da, out=dW)
        else:
            dW[...] = np.dot(x.T, da)
        gb[...] = db

    def _dx_into(self, da):
        """da W^T into the layer's scratch (N, D)."""
        W = as_buffer(self.params[0], da.dtype)
        dx = _scratch(self, "dx", (da.shape[0], W.shape[0]), da.dtype)
        if W.shape[0] <= GEMM_NARROW_COLS and _core.is_float_buffer(da, 2):
            # W^T copied into scratch makes this gemm_narrow's a b: with the copy, (100, 100)
            # (100, 100) in about half BLAS's time (float64 38 -> 21 us), (100, 10) (10, 100) 7 -> 3
            WT = _scratch(self, "WT", W.shape[::-1], da.dtype)
            np.copyto(WT, W.T)
            _core.gemm_narrow(da, WT, dx)
        else:
            np.dot(da, W.T, out=dx)
        return dx


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

    # fused with the Affine before it (csrc/bias_act.c); in place on the model's scratch
    _relu = False

    def _bias_forward(self, a, b):
        """a <- sigmoid(a + b)."""
        _core.bias_act_forward(a, b, self._relu)

    def _bias_backward(self, dz, z, db):
        """dz <- dz * (1 - z) z, db <- its column sums."""
        _core.act_backward_bias(dz, z, self._relu, db)


class SoftmaxWithLoss:
    """Softmax followed by the cross-entropy loss, fused in one kernel; keeps the probabilities `y`
    and the int64 index labels `t` for the backward pass."""

    def __init__(self) -> None:
        self.params, self.grads = [], []
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x: ArrayLike, t: ArrayLike) -> float:
        """x: (N, C) scores; t: (N,) index labels or (N, C) one-hot -> mean loss (float)."""
        x = as_logits(x)
        t = as_labels(t, x.shape)
        self.loss, self.y = _core.softmax_ce_forward(x, t)
        self.t = t
        return self.loss

    def backward(self, dout: float = 1) -> NDArray[np.floating[Any]]:
        """dout: scalar -> dx (N, C) = (y - onehot(t)) * dout / N."""
        if self.y is None:
            raise RuntimeError("SoftmaxWithLoss.backward called before forward")
        return _core.softmax_ce_backward(self.y, as_labels(self.t, self.y.shape),
                                         as_scalar(dout, "dout"))


class SigmoidWithLoss:
    """Sigmoid followed by the binary cross-entropy loss (volume 2): keeps `y` = sigmoid(x), the
    labels `t` and `loss`. The sigmoid is compiled; the loss and dx are NumPy over N elements."""

    def __init__(self):
        self.params, self.grads = [], []
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        """x: (N,) scores; t: (N,) labels 0 or 1 -> mean of -log(y or 1 - y, as t says, + 1e-7)."""
        y = sigmoid(x)
        loss = cross_entropy_error(np.c_[1 - y.reshape(-1), y.reshape(-1)], np.asarray(t).reshape(-1))
        self.y, self.t, self.loss = y, t, loss
        return loss

    def backward(self, dout=1):
        """dout: scalar -> dx = (y - t) * dout / N."""
        if self.y is None:
            raise RuntimeError("SigmoidWithLoss.backward called before forward")
        return (self.y - self.t) * as_scalar(dout, "dout") / self.t.shape[0]


class Relu:
    """ReLU layer: max(0, x); keeps the bool `mask` of the inputs x <= 0 for backward."""

    def __init__(self):
        self.params, self.grads = [], []
        self.mask = None

    def forward(self, x):
        """Any shape -> max(0, x), same shape and dtype (NaN stays NaN, as the book's)."""
        x = as_float(x, "x")
        out = np.empty_like(x)
        mask = np.empty(x.shape, dtype=bool)
        _core.relu_forward(x.reshape(-1), out.reshape(-1), mask.reshape(-1))
        self.mask = mask
        return out

    def backward(self, dout):
        """dout (shape of x) -> dx = dout, zero where x <= 0; dout itself is left unchanged."""
        if self.mask is None:
            raise RuntimeError("Relu.backward called before forward")
        dout = as_float(dout, "dout")
        if dout.shape != self.mask.shape:
            raise ValueError(f"dout has shape {dout.shape}, the forward's x had {self.mask.shape}")
        dx = np.empty_like(dout)
        _core.relu_backward(dout.reshape(-1), self.mask.reshape(-1), dx.reshape(-1))
        return dx

    # fused with the Affine before it (csrc/bias_act.c): the mask is z <= 0 of the output z
    _relu = True
    _bias_forward = Sigmoid._bias_forward
    _bias_backward = Sigmoid._bias_backward


def check_dropout_ratio(ratio, name="dropout_ratio"):
    """ratio as a float in [0, 1): the share of units dropped in training."""
    value = as_scalar(ratio, name)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {ratio!r}")
    return value


@functools.cache
def _mt19937_compiled():
    """Whether _core.mt19937_random draws NumPy's own numbers here: it reads the state struct of
    NumPy's MT19937, which NumPy does not publish, so the layout is checked once against NumPy."""
    ours, numpys = np.random.MT19937(20261203), np.random.MT19937(20261203)
    draws = np.empty(1001)  # 2002 words: across three regenerations of the state
    _core.mt19937_random(ours, draws)
    expected = np.random.Generator(numpys).random(1001)
    state, numpys_state = ours.state["state"], numpys.state["state"]
    return (np.array_equal(draws, expected) and state["pos"] == numpys_state["pos"]
            and np.array_equal(state["key"], numpys_state["key"]))


def uniform_draws(rng, shape, out=None):
    """Uniform [0, 1) float64 draws of shape: np.random.rand(*shape) from NumPy's global state, as
    the book draws them (rng None), else rng.random(shape). The same numbers come from compiled
    code when the bit generator is an MT19937 (the global state's is), into out (a float64 array
    of that shape) when given."""
    owner = getattr(np.random.rand, "__self__", None) if rng is None else rng
    bit_generator = getattr(owner, "_bit_generator" if rng is None else "bit_generator", None)
    if isinstance(bit_generator, np.random.MT19937) and _mt19937_compiled():
        draws = np.empty(shape) if out is None else out
        _core.mt19937_random(bit_generator, draws.reshape(-1))
        return draws
    return np.asarray(np.random.rand(*shape) if rng is None else rng.random(shape))


class Dropout:
    """Dropout (http://arxiv.org/abs/1207.0580): in training, each unit is kept where a uniform
    draw exceeds dropout_ratio (the bool `mask`); at test time, x * (1 - dropout_ratio).

    The draws are the book's np.random.rand(*x.shape) from NumPy's global random state; rng (a
    np.random.Generator, or a seed for one) draws rng.random(x.shape) instead. MT19937 draws
    (the global state's) are compiled (csrc/mt19937.c), the same numbers; the mask and the product
    are one compiled pass.
    """

    def __init__(self, dropout_ratio=0.5, *, rng=None):
        self.dropout_ratio = check_dropout_ratio(dropout_ratio)
        self.params, self.grads = [], []
        self.mask = None
        self.rng = None if rng is None else np.random.default_rng(rng)

    def forward(self, x, train_flg=True):
        """Any shape -> x * mask (training) or x * (1 - dropout_ratio); x's dtype."""
        x = as_float(x, "x")
        if not train_flg:
            return x * (1.0 - self.dropout_ratio)
        u = uniform_draws(self.rng, x.shape, _scratch(self, "u", x.shape, np.float64))
        out = np.empty_like(x)
        mask = np.empty(x.shape, dtype=bool)
        _core.dropout_forward(x.reshape(-1), u.reshape(-1), self.dropout_ratio, out.reshape(-1),
                              mask.reshape(-1))
        self.mask = mask
        return out

    def backward(self, dout):
        """dout (shape of x) -> dout * mask."""
        if self.mask is None:
            raise RuntimeError("Dropout.backward called before a training forward")
        dout = as_float(dout, "dout")
        if dout.shape != self.mask.shape:
            raise ValueError(f"dout has shape {dout.shape}, the forward's x had {self.mask.shape}")
        dx = np.empty_like(dout)
        _core.dropout_backward(dout.reshape(-1), self.mask.reshape(-1), dx.reshape(-1))
        return dx

    def _forward_into(self, z, train_flg):
        """The forward into the layer's scratch; in training `mask` is a new array, as forward's."""
        out = _scratch(self, "out", z.shape, z.dtype)
        if not train_flg:
            np.multiply(z, 1.0 - self.dropout_ratio, out=out)
            return out
        mask = np.empty(z.shape, dtype=bool)
        u = uniform_draws(self.rng, z.shape, _scratch(self, "u", z.shape, np.float64))
        _core.dropout_forward(z.reshape(-1), u.reshape(-1), self.dropout_ratio, out.reshape(-1),
                              mask.reshape(-1))
        self.mask = mask
        return out

    def _backward_inplace(self, dout):
        """dout <- dout * mask."""
        _core.dropout_backward(dout.reshape(-1), self.mask.reshape(-1), dout.reshape(-1))


class BatchNormalization:
    """Batch normalization (http://arxiv.org/abs/1502.03167) with scale gamma (D,) and shift
    beta (D,), the parameters; running_mean / running_var (D,) for test time, updated in training
    as the book's: running = momentum * running + (1 - momentum) * batch statistic.

    Input (N, D), or (N, C, H, W) normalized per flattened sample position as the book's
    (D = C * H * W). Training statistics are computed in one pass with float64 sums, the backward
    in two passes (csrc/batchnorm.c). The layer computes in x's dtype promoted with gamma's and
    beta's (float32 or float64).
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.params = [gamma, beta]
        self.grads = [np.zeros_like(gamma), np.zeros_like(beta)]
        self.momentum = momentum
        self.input_shape = None
        for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
            if stat is not None and np.shape(stat) != np.shape(gamma):
                raise ValueError(f"{name} has shape {np.shape(stat)}, gamma has shape "
                                 f"{np.shape(gamma)}: one value per feature is needed")
        self.running_mean = running_mean
        self.running_var = running_var
        # what backward needs: (train_flg, x (N, D), gamma, mean, rstd (float64), x's shape)
        self._saved = None

    gamma = _entry("params", 0, "scale (D,): params[0]")
    beta = _entry("params", 1, "shift (D,): params[1]")
    dgamma = _entry("grads", 0, "dgamma: grads[0], written by backward")
    dbeta = _entry("grads", 1, "dbeta: grads[1], written by backward")

    def _operands(self, x):
        """x as (N, D) with gamma and beta as buffers of the computing dtype; checks every shape."""
        x = as_float(x, "x")
        if x.ndim not in (2, 4) or x.size == 0:
            raise ValueError(f"x must be a non-empty (N, D) or (N, C, H, W), got shape {x.shape}")
        gamma, beta = (np.asarray(p) for p in self.params)
        flat = x.reshape(x.shape[0], -1)
        d = flat.shape[1]
        for name, p in (("gamma", gamma), ("beta", beta)):
            check_real_dtype(p, name)
            if p.size != d:
                raise ValueError(f"x has shape {x.shape}: {d} features per sample, "
                                 f"{name} has shape {p.shape}")
        dtype = np.result_type(flat.dtype, gamma.dtype, beta.dtype)
        if dtype.kind != "f":
            dtype = np.dtype(np.float64)
        return (as_buffer(flat, dtype), as_buffer(gamma.reshape(d), dtype),
                as_buffer(beta.reshape(d), dtype))

    def _running(self, d, dtype):
        """The running statistics, (d,) each: zeros of dtype when not there yet, as the book's."""
        stats = []
        for name in ("running_mean", "running_var"):
            r = getattr(self, name)
            if r is None:
                r = np.zeros(d, dtype)
            r = np.asarray(r)
            check_real_dtype(r, name)
            if r.shape != (d,):
                raise ValueError(f"x has {d} features per sample, {name} has shape {r.shape}")
            stats.append(r)
        return stats

    def forward(self, x, train_flg=True):
        """x: (N, D) or (N, C, H, W) -> the normalized x * gamma + beta, x's shape."""
        input_shape = np.shape(x)
        flat, gamma, beta = self._operands(x)
        n, d = flat.shape
        rm, rv = self._running(d, flat.dtype)
        if train_flg:
            out = np.empty_like(flat)
            mean, var, rstd = np.empty(d), np.empty(d), np.empty(d)
            _core.batchnorm_forward_train(flat, gamma, beta, BATCHNORM_EPS, False, out, mean,
                                          var, rstd)
            m = self.momentum
            self.running_mean = m * rm + (1 - m) * mean.astype(flat.dtype)
            self.running_var = m * rv + (1 - m) * var.astype(flat.dtype)
        else:
            # the running statistics join the dtype as in the book's x - running_mean
            dtype = np.result_type(flat.dtype, rm.dtype, rv.dtype)
            flat, gamma, beta = (as_buffer(a, dtype) for a in (flat, gamma, beta))
            mean, var = as_buffer(rm, np.float64), as_buffer(rv, np.float64)
            rstd = 1 / np.sqrt(var + BATCHNORM_EPS)
            out = np.empty_like(flat)
            _core.batchnorm_forward_test(flat, gamma, beta, mean, var, BATCHNORM_EPS, False, out)
            self.running_mean, self.running_var = rm, rv
        self._saved = (train_flg, flat, gamma, mean, rstd, input_shape)
        self.input_shape = input_shape
        return out.reshape(input_shape)

    def backward(self, dout):
        """dout (shape of the training forward's x) -> dx, same shape; fills dgamma, dbeta."""
        if self._saved is None:
            raise RuntimeError("BatchNormalization.backward called before forward")
        train_flg, x, gamma, mean, rstd, shape = self._saved
        dout = as_float(dout, "dout")
        if dout.shape != shape:
            raise ValueError(f"dout has shape {dout.shape}, the forward's x had {shape}")
        dout = as_buffer(dout.reshape(x.shape), x.dtype)
        if train_flg:
            dx = np.empty_like(x)
            dgamma, dbeta = np.empty_like(gamma), np.empty_like(gamma)
            _core.batchnorm_backward(dout, None, x, gamma, mean, rstd, dx, dgamma, dbeta)
        else:
            # with the running statistics fixed the layer is affine in x: dx = gamma rstd dout.
            # A rare path (no training step backpropagates a test-time forward): NumPy.
            rstd = rstd.astype(x.dtype)
            dx = gamma * rstd * dout
            dgamma = np.sum((x - mean.astype(x.dtype)) * rstd * dout, axis=0)
            dbeta = np.sum(dout, axis=0)
        self.grads[0][...] = dgamma.reshape(np.shape(self.grads[0]))
        self.grads[1][...] = dbeta.reshape(np.shape(self.grads[1]))
        return dx.reshape(shape)

    def _forward_into(self, a, train_flg, relu):
        """The forward of a (N, D) in the model's dtype into the layer's scratch, then max(0, .)
        when relu; returns (out, (mean, rstd)) for _backward_into."""
        n, d = a.shape
        gamma = as_buffer(self.params[0], a.dtype).reshape(d)
        beta = as_buffer(self.params[1], a.dtype).reshape(d)
        rm, rv = self._running(d, a.dtype)
        out = _scratch(self, "out", a.shape, a.dtype)
        if not train_flg:
            _core.batchnorm_forward_test(a, gamma, beta, as_buffer(rm, np.float64),
                                         as_buffer(rv, np.float64), BATCHNORM_EPS, relu, out)
            self.running_mean, self.running_var = rm, rv
            return out, None
        mean, var, rstd = (_scratch(self, name, (d,), np.float64) for name in ("mean", "var", "rstd"))
        _core.batchnorm_forward_train(a, gamma, beta, BATCHNORM_EPS, relu, out, mean, var, rstd)
        m = self.momentum
        self.running_mean = m * rm + (1 - m) * mean.astype(a.dtype)
        self.running_var = m * rv + (1 - m) * var.astype(a.dtype)
        return out, (mean, rstd)

    def _backward_into(self, dout, y, a, stats):
        """dx of _forward_into(a, True, relu) into the layer's scratch; y: that forward's out
        when relu (dout counts where it passed), else None. grads become new arrays."""
        mean, rstd = stats
        d = a.shape[1]
        gamma = as_buffer(self.params[0], a.dtype).reshape(d)
        dx = _scratch(self, "dx", a.shape, a.dtype)
        dgamma, dbeta = np.empty(d, a.dtype), np.empty(d, a.dtype)
        _core.batchnorm_backward(dout, y, a, gamma, mean, rstd, dx, dgamma, dbeta)
        self.grads[0] = dgamma.reshape(np.shape(self.params[0]))
        self.grads[1] = dbeta.reshape(np.shape(self.params[1]))
        return dx


# Volume 1's convolution layers live in their own module; layers is their public namespace.
from .conv import Convolution, Pooling  # noqa: E402

__all__ += ["Convolution", "Pooling"]
