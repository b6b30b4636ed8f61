"""Volume 1's fully connected networks of any depth (chapter 6), fast: the same classes, layers,
parameters and numbers as `fastnn.reference.multilayer`.

A network is a composition of fastnn's layers, kept in `layers` under the book's names (Affine1,
BatchNorm1, Activation_function1, Dropout1, ..., last_layer). predict, loss and gradient share
one forward path, which calls each layer's fused internal methods: the bias add and the
activation follow the matrix product in one pass (batch norm and ReLU in one kernel), the first
layer's products skip the zeros of a sparse x (MNIST: ~80%), the last bias is fused into the
softmax-cross-entropy kernel, and the first layer computes no input gradient. Scratch buffers
belong to the layers and are never returned; `gradient` returns new arrays.
"""
import threading
from collections import OrderedDict

import numpy as np

from . import _core
from ._checks import as_buffer, as_labels, as_scalar, check_label_range, check_real_dtype
from .functions import bias_grad, numerical_gradient as _numerical_gradient
from .layers import (Affine, BatchNormalization, Dropout, Relu, Sigmoid, SoftmaxWithLoss,
                     check_dropout_ratio)
from ._sparse import _one_blas_thread, sparse_x

__all__ = ["MultiLayerNet", "MultiLayerNetExtend"]

_ACTIVATIONS = {"sigmoid": Sigmoid, "relu": Relu}
_INIT_NAMES = {"relu": 2.0, "he": 2.0, "sigmoid": 1.0, "xavier": 1.0}  # scale sqrt(k / fan-in)


class _MultiLayer:
    """What both networks share: configuration, initial weights, the one forward path, backprop,
    accuracy and the numerical gradient."""

    def _setup(self, input_size, hidden_size_list, output_size, activation, weight_init_std,
               weight_decay_lambda, dtype, seed):
        sizes = [input_size] + list(hidden_size_list) + [output_size]
        for name, size in zip(["input_size"] + ["hidden_size_list"] * len(hidden_size_list)
                              + ["output_size"], sizes):
            if not (isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size > 0):
                raise ValueError(f"{name} must hold positive integers, got {size!r}"
                                 + (f" in {list(hidden_size_list)}" if name == "hidden_size_list"
                                    else ""))
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be 'relu' or 'sigmoid', got {activation!r}")
        if isinstance(weight_init_std, str):
            if weight_init_std.lower() not in _INIT_NAMES:
                raise ValueError(f"weight_init_std must be a number or one of 'relu', 'he', "
                                 f"'sigmoid', 'xavier', got {weight_init_std!r}")
        else:
            as_scalar(weight_init_std, "weight_init_std")
        self.weight_decay_lambda = weight_decay_lambda
        as_scalar(weight_decay_lambda, "weight_decay_lambda")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")

        self.input_size = input_size
        self.output_size = output_size
        self.hidden_size_list = hidden_size_list
        self.hidden_layer_num = len(hidden_size_list)
        self.activation = activation
        self.dtype = dtype
        self._rng = None if seed is None else np.random.default_rng(seed)
        self.params = {}
        for idx in range(1, len(sizes)):  # the book's draws, in its order
            scale = weight_init_std
            if isinstance(scale, str):
                scale = np.sqrt(_INIT_NAMES[scale.lower()] / sizes[idx - 1])
            shape = (sizes[idx - 1], sizes[idx])
            draw = np.random.randn(*shape) if self._rng is None else self._rng.standard_normal(shape)
            self.params["W" + str(idx)] = (scale * draw).astype(dtype)
            self.params["b" + str(idx)] = np.zeros(sizes[idx], dtype)
        self._lock = threading.Lock()  # the layers' scratch: one pass through the network at a time
        self._sparse = _core.SparseX()

    def _build(self, use_batchnorm, use_dropout, dropout_ration):
        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            i = str(idx)
            self.layers["Affine" + i] = Affine(self.params["W" + i], self.params["b" + i])
            if use_batchnorm:
                size = self.hidden_size_list[idx - 1]
                self.params["gamma" + i] = np.ones(size, self.dtype)
                self.params["beta" + i] = np.zeros(size, self.dtype)
                self.layers["BatchNorm" + i] = BatchNormalization(self.params["gamma" + i],
                                                                  self.params["beta" + i])
            self.layers["Activation_function" + i] = _ACTIVATIONS[self.activation]()
            if use_dropout:
                self.layers["Dropout" + i] = Dropout(dropout_ration, rng=self._rng)
        i = str(self.hidden_layer_num + 1)
        self.layers["Affine" + i] = Affine(self.params["W" + i], self.params["b" + i])
        self.last_layer = SoftmaxWithLoss()
        # per hidden layer: (Affine, BatchNormalization or None, activation, Dropout or None)
        self._blocks = [tuple(self.layers.get(name + str(idx)) for name in
                              ("Affine", "BatchNorm", "Activation_function", "Dropout"))
                        for idx in range(1, self.hidden_layer_num + 1)]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_lock"], state["_sparse"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock, self._sparse = threading.Lock(), _core.SparseX()

    # ------------------------------------------------------------------ the one forward path

    def _inputs(self, x):
        """x as an (N, input_size) array of the model's dtype (N-D x flattened per sample)."""
        x = np.asarray(x)
        check_real_dtype(x, "x")
        if x.ndim >= 2 and x.size:
            x = x.reshape(x.shape[0], -1)
        if x.ndim != 2 or x.shape[1] != self.input_size or x.shape[0] == 0:
            raise ValueError(f"x has shape {np.shape(x)}; the network takes (N, {self.input_size}),"
                             f" N >= 1")
        return as_buffer(x, self.dtype)

    def _labels(self, t, n):
        """t as int64 index labels (N,), each checked before the forward moves any state (batch
        norm's running statistics, dropout's masks and draws)."""
        t = as_labels(t, (n, self.output_size))
        check_label_range(t, self.output_size)
        return t

    def _forward(self, x, train_flg):
        """The scores before the last bias, (N, O) in the last Affine's scratch, and what backward
        needs: x's SparseX or None, and per hidden layer (its input, a, bn stats, z, output)."""
        sparse = sparse_x(x, as_buffer(self.layers["Affine1"].params[0], self.dtype), self._sparse)
        h, trace = x, []
        for k, (affine, bn, act, dropout) in enumerate(self._blocks):
            a = affine._matmul_into(h, sparse if k == 0 else None)
            b = as_buffer(affine.params[1], self.dtype).reshape(-1)
            stats = None
            if bn is None:
                act._bias_forward(a, b)
                z = a
            else:
                a += b
                z, stats = bn._forward_into(a, train_flg, act._relu)
                if not act._relu:
                    _core.sigmoid_forward(z.reshape(-1), z.reshape(-1))
            out = z if dropout is None else dropout._forward_into(z, train_flg)
            trace.append((h, a, stats, z))
            h = out
        last = self.layers["Affine" + str(self.hidden_layer_num + 1)]
        s = last._matmul_into(h, sparse if not self._blocks else None)
        return s, h, sparse, trace

    def _weight_decay(self):
        lam = self.weight_decay_lambda
        if lam == 0:
            return 0
        return sum(0.5 * lam * np.sum(self.params["W" + str(idx)] ** 2)
                   for idx in range(1, self.hidden_layer_num + 2))

    def _predict(self, x, train_flg):
        x = self._inputs(x)
        last_b = as_buffer(self.layers["Affine" + str(self.hidden_layer_num + 1)].params[1],
                           self.dtype).reshape(-1)
        with self._lock:
            s = self._forward(x, train_flg)[0]
            return s + last_b

    def _loss(self, x, t, train_flg):
        x = self._inputs(x)
        t = self._labels(t, x.shape[0])
        last = self.layers["Affine" + str(self.hidden_layer_num + 1)]
        with self._lock:
            s = self._forward(x, train_flg)[0]
            loss = self._last_loss(s, t, last)
        # in the model's dtype, as the reference's float32 network returns a float32 loss
        return self.dtype.type(loss) + self._weight_decay()

    def _last_loss(self, s, t, last):
        """The SoftmaxWithLoss of s + the last bias, through last_layer (which keeps y, t, loss);
        t checked int64 labels."""
        b = as_buffer(last.params[1], self.dtype).reshape(-1)
        loss, y = _core.softmax_ce_forward(s, t, b)
        self.last_layer.loss, self.last_layer.y, self.last_layer.t = loss, y, t
        return loss

    def accuracy(self, x, t):
        """Fraction of the rows of x whose highest score is the label t (index or one-hot)."""
        y = np.argmax(self.predict(x), axis=1)
        t = np.asarray(t)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        if t.shape != y.shape:
            raise ValueError(f"batch-size mismatch: {y.shape[0]} rows of x, labels of shape {t.shape}")
        return float(np.sum(y == t) / float(y.shape[0]))

    # ------------------------------------------------------------------ gradients

    def gradient(self, x, t):
        """Backprop gradients of the loss (training mode, weight decay included): a dict W1, b1,
        (gamma1, beta1,) W2, ... of new arrays in the model's dtype."""
        x = self._inputs(x)
        t = self._labels(t, x.shape[0])
        L = self.hidden_layer_num
        last = self.layers["Affine" + str(L + 1)]
        grads = {}
        with self._lock:
            s, h, sparse, trace = self._forward(x, True)
            with _one_blas_thread(sparse, s if not trace else trace[0][1]):
                self._last_loss(s, t, last)
                dy = _core.softmax_ce_backward(self.last_layer.y, self.last_layer.t, 1.0)
                layer_grads = [None] * (L + 1)
                layer_grads[L] = last._grads_from(h, dy, bias_grad(dy),
                                                  sparse if not trace else None)
                dh = last._dx_into(dy) if trace else None
                bn_grads = [None] * L
                for k in range(L - 1, -1, -1):
                    affine, bn, act, dropout = self._blocks[k]
                    h_in, a, stats, z = trace[k]
                    if dropout is not None:
                        dropout._backward_inplace(dh)
                    if bn is None:
                        db = np.empty(a.shape[1], self.dtype)
                        act._bias_backward(dh, z, db)
                        da = dh
                    else:
                        if not act._relu:
                            _core.sigmoid_backward(dh.reshape(-1), z.reshape(-1), dh.reshape(-1))
                        da = bn._backward_into(dh, z if act._relu else None, a, stats)
                        bn_grads[k] = bn.grads[0], bn.grads[1]
                        db = bias_grad(da)
                    layer_grads[k] = affine._grads_from(h_in, da, db, sparse if k == 0 else None)
                    if k > 0:
                        dh = affine._dx_into(da)
        lam = self.weight_decay_lambda
        for idx in range(1, L + 2):
            i = str(idx)
            dW, db = layer_grads[idx - 1]
            if lam != 0:  # dW + lam W in one pass, into a new array (dW stays Affine.dW)
                dW = np.empty_like(dW)
                _core.weight_decay_grad(layer_grads[idx - 1][0],
                                        as_buffer(self.params["W" + i], self.dtype), lam, dW)
            grads["W" + i] = dW
            grads["b" + i] = db
            if idx <= L and bn_grads[idx - 1] is not None:
                grads["gamma" + i], grads["beta" + i] = bn_grads[idx - 1]
        return grads

    def _numerical_gradient(self, loss_W, names):
        grads = {}
        for name in names:
            grads[name] = _numerical_gradient(loss_W, self.params[name])
        return grads


class MultiLayerNet(_MultiLayer):
    """A fully connected network: (Affine, activation) per hidden layer, Affine, SoftmaxWithLoss.

    input_size, hidden_size_list (e.g. [100, 100, 100]), output_size; activation 'relu' or
    'sigmoid'; weight_init_std a number or 'relu' / 'he' (sqrt(2 / fan-in)) or 'sigmoid' /
    'xavier' (sqrt(1 / fan-in)); weight_decay_lambda the L2 strength, in loss and gradient.
    dtype float64 or float32; seed (an int or a np.random.Generator) draws the initial weights
    from np.random.default_rng(seed), None from NumPy's global state as the book.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, *, dtype=np.float64, seed=None):
        self._setup(input_size, hidden_size_list, output_size, activation, weight_init_std,
                    weight_decay_lambda, dtype, seed)
        self._build(False, False, 0.5)

    def predict(self, x):
        """x: (N, input_size) -> scores (N, output_size)."""
        return self._predict(x, False)

    def loss(self, x, t):
        """Mean cross-entropy of softmax(predict(x)) against t, plus 0.5 lambda sum W^2."""
        return self._loss(x, t, False)

    def numerical_gradient(self, x, t):
        """Central-difference gradients of loss(x, t), the book's loop over every parameter."""
        return self._numerical_gradient(lambda W: self.loss(x, t), [
            name for idx in range(1, self.hidden_layer_num + 2) for name in ("W" + str(idx), "b" + str(idx))])


class MultiLayerNetExtend(_MultiLayer):
    """MultiLayerNet with dropout (use_dropout, dropout_ration in [0, 1)) after each activation
    and batch normalization (use_batchnorm: BatchNorm layers, params gamma1, beta1, ...) before
    it. predict and loss take train_flg (False: dropout scales, batch norm uses its running
    statistics). With seed, the dropout masks are drawn from the same generator as the weights.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, use_dropout=False,
                 dropout_ration=0.5, use_batchnorm=False, *, dtype=np.float64, seed=None):
        if use_dropout:
            check_dropout_ratio(dropout_ration, "dropout_ration")
        self._setup(input_size, hidden_size_list, output_size, activation, weight_init_std,
                    weight_decay_lambda, dtype, seed)
        self.use_dropout = use_dropout
        self.use_batchnorm = use_batchnorm
        self._build(use_batchnorm, use_dropout, dropout_ration)

    def predict(self, x, train_flg=False):
        """x: (N, input_size) -> scores (N, output_size)."""
        return self._predict(x, train_flg)

    def loss(self, x, t, train_flg=False):
        """Mean cross-entropy of softmax(predict(x, train_flg)) against t, plus 0.5 lambda sum W^2."""
        return self._loss(x, t, train_flg)

    def numerical_gradient(self, x, t):
        """Central-difference gradients of loss(x, t, train_flg=True), the book's loop (each call
        of the loss draws new dropout masks and updates the running statistics, as the book's)."""
        names = []
        for idx in range(1, self.hidden_layer_num + 2):
            i = str(idx)
            names += ["W" + i, "b" + i]
            if self.use_batchnorm and idx != self.hidden_layer_num + 1:
                names += ["gamma" + i, "beta" + i]
        return self._numerical_gradient(lambda W: self.loss(x, t, train_flg=True), names)
