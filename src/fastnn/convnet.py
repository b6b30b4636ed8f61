"""Volume 1's convolutional networks (chapters 7 and 8), fast: the same classes and results as
`fastnn.reference.convnet`.

- SimpleConvNet: conv - relu - pool - affine - relu - affine - softmax (ch07/simple_convnet.py).
- DeepConvNet: (conv - relu - conv - relu - pool) x 3 - affine - relu - dropout - affine -
  dropout - softmax (ch08/deep_convnet.py), He initialisation.

The book's constructors, layer names, params dict and initial draws (np.random.randn in the
book's order, or a generator from seed=), accuracy(x, t, batch_size=100), gradient and
save_params / load_params in the book's pickle format (a dict of the arrays by name).

Each model is a composition of the fast layers (conv.py, layers.py) run by one forward path for
predict, loss and gradient: between convolutions and poolings the images stay in (C, N, H, W),
where a convolution is one matrix product; each ReLU is fused into the layer before it (its Relu
layer object is kept for the book's names, not run); the last pooling writes the (N, C, H, W) the
first Affine flattens; the first convolution computes no input gradient. gradient() returns new
arrays, which the layers' dW / db then name, as in the book. Inputs are converted to the model's
dtype (float16 exactly to float64, the computation of ch08/half_float_network.py).
"""
import pickle
from collections import OrderedDict

import numpy as np

from . import _core
from ._checks import as_buffer
from .conv import Convolution, Pooling, _Scratch
from .functions import bias_grad, numerical_gradient
from .layers import GEMM_NARROW_COLS, Affine, Relu, SoftmaxWithLoss, _narrow
from .reference.convnet import read_params
from .reference.util import _positive_int, conv_output_size

__all__ = ["SimpleConvNet", "DeepConvNet"]


def _model_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _randn(rng):
    """np.random.randn (the book's draws from the global state) for rng=None, else the standard
    normal draws of the generator rng."""
    if rng is None:
        return np.random.randn
    return lambda *shape: rng.standard_normal(shape)


class _ConvNet:
    """The forward and backward of a sequence of fast layers (the subclass's self._stages: pairs
    (layer, relu), relu when a ReLU follows the layer and is fused into it)."""

    def _init_core(self):
        self._workspace = _Scratch()  # buffers the layers share (im2col's rows, col2im's input)
        self._trace = None  # what the last forward left for backward

    def _images(self, x):
        """x as a C-contiguous (N, C, H, W) array of the model's dtype, (C, H, W) = input_dim."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"x must be a real number array, got dtype {x.dtype}")
        if x.ndim != 4 or x.shape[1:] != self.input_dim:
            raise ValueError(f"x must have shape (N, {', '.join(map(str, self.input_dim))}) "
                             f"for input_dim {self.input_dim}, got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"x is an empty batch: shape {x.shape}")
        return as_buffer(x, self.dtype)

    def _forward(self, x, train_flg):
        """Scores (N, output_size), a new array; keeps what backward needs."""
        self._trace = None
        h = self._images(x)
        n, cnhw, trace = h.shape[0], False, []
        for i, (layer, relu) in enumerate(self._stages):
            shape, was_cnhw = h.shape, cnhw
            if isinstance(layer, Convolution):
                h, cnhw = layer._forward_planes(h, cnhw, relu, self._workspace), True
            elif isinstance(layer, Pooling):
                following = self._stages[i + 1][0] if i + 1 < len(self._stages) else None
                out_cnhw = isinstance(following, Convolution)
                h, cnhw = layer._forward_planes(h, cnhw, out_cnhw), out_cnhw
            elif isinstance(layer, Affine):
                if cnhw:  # an Affine right after a convolution flattens (N, C, H, W)
                    h = np.ascontiguousarray(h.transpose(1, 0, 2, 3))
                    cnhw = False
                W, b = layer.params
                flat, W = h.reshape(n, -1), as_buffer(W, self.dtype)
                if _narrow(flat, W, _core.get_num_threads() > 1):
                    a = np.empty((n, W.shape[1]), self.dtype)
                    _core.gemm_narrow(flat, W, a)
                else:
                    a = np.dot(flat, W)
                if relu:
                    _core.bias_act_forward(a, as_buffer(b, self.dtype), True)
                else:
                    a += b
                h = a
                trace.append(flat)
            else:  # Dropout
                h = layer.forward(h, train_flg)
            trace.append((shape, was_cnhw, h))
        self._trace = trace
        return h

    def _backward(self, dout=1):
        """Backprop of the last training forward: a dict of new gradient arrays by name, which
        the layers' grads lists then hold."""
        if self._trace is None:
            raise RuntimeError("backward called before a forward")
        d = self.last_layer.backward(dout)
        trace = list(self._trace)
        grads = {}
        relu_done = False  # the convolution's ReLU mask is in d already
        for i in range(len(self._stages) - 1, -1, -1):
            layer, relu = self._stages[i]
            shape, was_cnhw, out = trace.pop()
            if isinstance(layer, Convolution):
                dW = np.empty(layer.params[0].shape, self.dtype)
                db = np.empty(layer.params[1].shape, self.dtype)
                d = layer._backward_planes(d, relu and not relu_done, dW, db,
                                           shape if i else None, self._workspace)
                self._store(layer, dW, db, grads)
                relu_done = False
            elif isinstance(layer, Pooling):
                before = self._stages[i - 1] if i else (None, False)
                if isinstance(before[0], Convolution) and before[1]:
                    # the ReLU's mask on the pooled gradient (a quarter of the elements for 2x2
                    # windows): a window's maximum is the ReLU output where its gradient goes, so
                    # this zeroes the same elements as the mask on the convolution's output would
                    # (the row sums it also gives are not needed)
                    _core.conv_act_backward_bias(d, out, np.empty(d.shape[0], self.dtype))
                    relu_done = True
                d = layer._backward_planes(d)
            elif isinstance(layer, Affine):
                flat = trace.pop()
                W = layer.params[0]
                dW = np.empty(W.shape, self.dtype)
                db = np.empty(layer.params[1].shape, self.dtype)
                d = np.ascontiguousarray(d, self.dtype)
                if relu:
                    _core.act_backward_bias(d, out, True, db)
                else:
                    db[...] = bias_grad(d)
                if _narrow(flat, d, _core.get_num_threads() > 1):
                    _core.gemm_narrow(flat, d, dW, True)
                else:
                    np.dot(flat.T, d, out=dW)
                self._store(layer, dW, db, grads)
                if i:
                    d = self._affine_dx(d, as_buffer(W, self.dtype))
                    if was_cnhw:
                        d = np.ascontiguousarray(
                            d.reshape(shape[1], shape[0], *shape[2:]).transpose(1, 0, 2, 3))
                    else:
                        d = d.reshape(shape)
            else:  # Dropout
                d = np.ascontiguousarray(layer.backward(d), self.dtype)
        return {key: grads[key] for key in self.params}  # W1, b1, W2, ... as the book's

    def _affine_dx(self, d, W):
        """d (N, M) . W^T for W (D, M): a new (N, D) array. With threads and at most
        GEMM_NARROW_COLS columns in W, gemm_narrow's d . W^T (W^T transposed into the model's
        scratch), as the Affines' other products with threads (_narrow's any_size): BLAS would
        hand the product to its own threads, which spin for a while after it and take the cores
        the convolutions' threads need next (DeepConvNet float32 on 2 threads: 94 -> 47 ms a
        step); on one thread BLAS is as fast or faster (float64 (100, 100) (100, 4320): 1.6 ms,
        the transpose and gemm_narrow 2.3)."""
        if _core.get_num_threads() == 1 or W.shape[1] > GEMM_NARROW_COLS:
            return np.dot(d, W.T)
        WT = self._workspace.get(f"W^T {W.shape[1]}x{W.shape[0]}", W.shape[::-1], W.dtype)
        _core.transpose(W, WT, 0, True)
        dx = np.empty((d.shape[0], W.shape[0]), W.dtype)
        _core.gemm_narrow(d, WT, dx)
        return dx

    def _store(self, layer, dW, db, grads):
        layer.grads[0], layer.grads[1] = dW, db
        name = self._param_names[id(layer)]
        grads["W" + name], grads["b" + name] = dW, db

    # ------------------------------------------------------------------ the book's methods

    def predict(self, x, train_flg=False):
        """x: (N, C, H, W) -> scores (N, output_size) (before softmax), a new array. train_flg
        switches the Dropout layers to training (random masks)."""
        return self._forward(x, train_flg)

    def loss(self, x, t, train_flg=True):
        """Mean cross-entropy loss of softmax(predict(x, train_flg)) against the labels t."""
        y = self._forward(x, train_flg)
        return self.last_layer.forward(y, t)

    def accuracy(self, x, t, batch_size=100):
        """Fraction of the images whose highest score is their label (index or one-hot),
        predicted batch_size at a time (test mode: Dropout scales instead of masking).

        Every image counts: the book's loop leaves out a last batch shorter than batch_size (and
        still divides by N); the two agree when batch_size divides N.
        """
        batch_size = _positive_int(batch_size, "batch_size", 1)
        x = self._images(x)
        t = np.asarray(t)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} images but t has {t.shape[0]} labels")
        acc = 0
        for start in range(0, x.shape[0], batch_size):
            y = self._forward(x[start:start + batch_size], False)
            acc += np.sum(np.argmax(y, axis=1) == t[start:start + batch_size])
        return acc / x.shape[0]

    def gradient(self, x, t):
        """Backprop gradients of the training loss: a dict W1, b1, ... of new arrays."""
        self.loss(x, t, train_flg=True)
        return self._backward(1)

    def save_params(self, file_name="params.pkl"):
        """Pickle the params dict (name -> array), the book's format."""
        params = {key: val for key, val in self.params.items()}
        with open(file_name, "wb") as f:
            pickle.dump(params, f)

    def load_params(self, file_name="params.pkl"):
        """Load parameters pickled by save_params (of either half, or the book's files) into the
        model's arrays, converted to its dtype. Every name and shape is checked first: a missing,
        unknown or misshaped parameter raises ValueError and nothing is written."""
        for key, value in read_params(file_name, self.params).items():
            self.params[key][...] = value


def _input_dim(input_dim):
    if len(input_dim) != 3:
        raise ValueError(f"input_dim must be (C, H, W), got {input_dim!r}")
    return tuple(_positive_int(size, "input_dim's sizes", 1) for size in input_dim)


def _build(model, layers, stages):
    model.layers = layers
    model.last_layer = SoftmaxWithLoss()
    model._stages = stages
    model._param_names = {}
    k = 0
    for layer, _ in stages:
        if layer.params:
            k += 1
            model._param_names[id(layer)] = str(k)
    model._init_core()


class SimpleConvNet(_ConvNet):
    """conv - relu - pool - affine - relu - affine - softmax; params W1, b1 (Conv1), W2, b2
    (Affine1), W3, b3 (Affine2)."""

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                 hidden_size=100, output_size=10, weight_init_std=0.01, *, dtype=np.float64,
                 seed=None):
        self.input_dim = C, H, W = _input_dim(input_dim)
        self.dtype = _model_dtype(dtype)
        filter_num = conv_param['filter_num']
        filter_size = conv_param['filter_size']
        filter_pad = conv_param['pad']
        filter_stride = conv_param['stride']
        conv_h = conv_output_size(H, filter_size, filter_stride, filter_pad)
        conv_w = conv_output_size(W, filter_size, filter_stride, filter_pad)
        pool_output_size = (filter_num * conv_output_size(conv_h, 2, 2)
                            * conv_output_size(conv_w, 2, 2))

        randn = _randn(None if seed is None else np.random.default_rng(seed))
        p = {}
        p['W1'] = weight_init_std * randn(filter_num, C, filter_size, filter_size)
        p['b1'] = np.zeros(filter_num)
        p['W2'] = weight_init_std * randn(pool_output_size, hidden_size)
        p['b2'] = np.zeros(hidden_size)
        p['W3'] = weight_init_std * randn(hidden_size, output_size)
        p['b3'] = np.zeros(output_size)
        self.params = {key: val.astype(self.dtype) for key, val in p.items()}

        layers = OrderedDict()
        layers['Conv1'] = Convolution(self.params['W1'], self.params['b1'], filter_stride,
                                      filter_pad)
        layers['Relu1'] = Relu()
        layers['Pool1'] = Pooling(pool_h=2, pool_w=2, stride=2)
        layers['Affine1'] = Affine(self.params['W2'], self.params['b2'])
        layers['Relu2'] = Relu()
        layers['Affine2'] = Affine(self.params['W3'], self.params['b3'])
        _build(self, layers, [(layers['Conv1'], True), (layers['Pool1'], False),
                              (layers['Affine1'], True), (layers['Affine2'], False)])

    def numerical_gradient(self, x, t):
        """Central-difference gradients of the loss for every parameter: a dict W1, b1, ...
        (slow: two forwards per parameter element, as the book's)."""
        x = self._images(x)
        loss_w = lambda w: self.loss(x, t)  # noqa: E731 (the book's form)
        return {key: numerical_gradient(loss_w, self.params[key]) for key in self.params}


class DeepConvNet(_ConvNet):
    """(conv - relu - conv - relu - pool) x 3 - affine - relu - dropout - affine - dropout -
    softmax, He initialisation; params W1, b1, ..., W8, b8. layers is the book's list."""

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param_1={'filter_num': 16, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 conv_param_2={'filter_num': 16, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 conv_param_3={'filter_num': 32, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 conv_param_4={'filter_num': 32, 'filter_size': 3, 'pad': 2, 'stride': 1},
                 conv_param_5={'filter_num': 64, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 conv_param_6={'filter_num': 64, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 hidden_size=50, output_size=10, *, dtype=np.float64, seed=None):
        from .layers import Dropout

        self.input_dim = C, H, W = _input_dim(input_dim)
        self.dtype = _model_dtype(dtype)
        conv_params = [conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5,
                       conv_param_6]
        rng = None if seed is None else np.random.default_rng(seed)
        randn = _randn(rng)

        # He: sqrt(2 / fan_in), fan_in the inputs one output sees; for the default arguments the
        # book's hard-coded scales
        p = {}
        channels, h, w = C, H, W  # the shape entering each layer
        for idx, conv_param in enumerate(conv_params, start=1):
            filter_num, filter_size = conv_param['filter_num'], conv_param['filter_size']
            fan_in = channels * filter_size * filter_size
            p[f'W{idx}'] = np.sqrt(2.0 / fan_in) * randn(filter_num, channels, filter_size,
                                                         filter_size)
            p[f'b{idx}'] = np.zeros(filter_num)
            channels = filter_num
            h = conv_output_size(h, filter_size, conv_param['stride'], conv_param['pad'])
            w = conv_output_size(w, filter_size, conv_param['stride'], conv_param['pad'])
            if idx % 2 == 0:  # a pool after every second convolution
                h, w = conv_output_size(h, 2, 2), conv_output_size(w, 2, 2)
        flat_size = channels * h * w
        p['W7'] = np.sqrt(2.0 / flat_size) * randn(flat_size, hidden_size)
        p['b7'] = np.zeros(hidden_size)
        p['W8'] = np.sqrt(2.0 / hidden_size) * randn(hidden_size, output_size)
        p['b8'] = np.zeros(output_size)
        self.params = {key: val.astype(self.dtype) for key, val in p.items()}

        layers, stages = [], []
        for idx, conv_param in enumerate(conv_params):
            conv = Convolution(self.params['W' + str(idx + 1)], self.params['b' + str(idx + 1)],
                               conv_param['stride'], conv_param['pad'])
            layers += [conv, Relu()]
            stages.append((conv, True))
            if idx % 2 == 1:
                layers.append(Pooling(pool_h=2, pool_w=2, stride=2))
                stages.append((layers[-1], False))
        affine1, affine2 = Affine(self.params['W7'], self.params['b7']), Affine(
            self.params['W8'], self.params['b8'])
        dropout1, dropout2 = Dropout(0.5, rng=rng), Dropout(0.5, rng=rng)  # masks from seed's
        layers += [affine1, Relu(), dropout1, affine2, dropout2]
        stages += [(affine1, True), (dropout1, False), (affine2, False), (dropout2, False)]
        _build(self, layers, stages)
