"""Volume 1's convolutional networks: ``SimpleConvNet`` (chapter 7) and ``DeepConvNet`` (chapter 8).

Inputs x are (N, C, H, W) images (``input_dim`` = (C, H, W)), converted to the model's dtype
(float64 or float32); labels t are (N,) indices or (N, classes) one-hot. ``params`` is a dict of
arrays W1, b1, W2, ... which are the layers' own parameter arrays, so writing into them
(``params['W1'][...] = ...``, as the book's ``half_float_network.py`` does) changes the network.

Randomness: with seed=None the initial weights are drawn with np.random.randn in the book's order
and shapes (np.random.seed applies); an int or a np.random.Generator draws them from
np.random.default_rng(seed) instead.
"""

import pickle
from collections import OrderedDict

import numpy as np

from .conv import Convolution, Pooling
from .functions import numerical_gradient
from .layers import Affine, Dropout, Relu, SoftmaxWithLoss
from .util import _positive_int, conv_output_size

__all__ = ["SimpleConvNet", "DeepConvNet"]


def _dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _generator(seed):
    """None for seed=None (NumPy's global state, as the book), else np.random.default_rng(seed)."""
    return None if seed is None else np.random.default_rng(seed)


def _randn(rng):
    """Standard-normal draws shaped like np.random.randn's arguments, from rng or (None) from
    NumPy's global state."""
    if rng is None:
        return np.random.randn
    return lambda *shape: rng.standard_normal(shape)


def _input_dim(input_dim):
    if len(input_dim) != 3:
        raise ValueError(f"input_dim must be (C, H, W), got {input_dim!r}")
    return tuple(_positive_int(size, "input_dim's sizes", 1) for size in input_dim)


def read_params(file_name, params):
    """The arrays of a pickled dict (the book's parameter files, or save_params'), checked against
    params (a name -> array dict): every name present, none unknown, each shape params', a real
    dtype. Returns name -> ndarray; raises TypeError / ValueError naming the key and the shapes."""
    with open(file_name, "rb") as f:
        loaded = pickle.load(f)
    if not isinstance(loaded, dict):
        raise TypeError(f"{file_name}: expected a pickled dict of arrays, "
                        f"got {type(loaded).__name__}")
    missing = [key for key in params if key not in loaded]
    unknown = [key for key in loaded if key not in params]
    if missing or unknown:
        raise ValueError(f"{file_name}: missing parameters {missing}, unknown parameters "
                         f"{unknown}; this network has {list(params)}")
    arrays = {}
    for key, param in params.items():
        value = np.asarray(loaded[key])
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{file_name}: parameter {key} has dtype {value.dtype}")
        if value.shape != param.shape:
            raise ValueError(f"{file_name}: parameter {key} has shape {value.shape}, "
                             f"this network's is {param.shape}")
        arrays[key] = value
    return arrays


class _ConvNet:
    """What the two networks share. A subclass sets ``params``, ``input_dim``, ``dtype``,
    ``last_layer``, ``_sequence`` (its layers in order) and ``_param_layers`` (the layer holding
    W{i}, b{i} at position i - 1)."""

    def _images(self, x):
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 4 or x.shape[1:] != self.input_dim:
            raise ValueError(f"x must have shape (N, {', '.join(map(str, self.input_dim))}) "
                             f"for input_dim {self.input_dim}, got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"x is an empty batch: shape {x.shape}")
        return x

    def predict(self, x, train_flg=False):
        """x: (N, C, H, W) -> scores (N, output_size) (before softmax). train_flg switches the
        Dropout layers to training (random masks)."""
        x = self._images(x)
        for layer in self._sequence:
            if isinstance(layer, Dropout):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def loss(self, x, t, train_flg=True):
        """Mean cross-entropy loss of softmax(predict(x, train_flg)) against the labels t."""
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t)

    def accuracy(self, x, t, batch_size=100):
        """Fraction of the images whose highest score is their label, predicted batch_size at a
        time (test mode: Dropout scales instead of masking).

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
            y = self.predict(x[start:start + batch_size], train_flg=False)
            acc += np.sum(np.argmax(y, axis=1) == t[start:start + batch_size])
        return acc / x.shape[0]

    def gradient(self, x, t):
        """Backprop gradients of the training loss: a dict W1, b1, ... of new arrays."""
        self.loss(x, t, train_flg=True)

        dout = self.last_layer.backward(1)
        for layer in reversed(self._sequence):
            dout = layer.backward(dout)

        grads = {}
        for i, layer in enumerate(self._param_layers, start=1):
            grads[f"W{i}"] = layer.grads[0].copy()
            grads[f"b{i}"] = layer.grads[1].copy()
        return grads

    def save_params(self, file_name="params.pkl"):
        """Pickle the dict W1, b1, ... of arrays to file_name (the book's format)."""
        params = {key: val for key, val in self.params.items()}
        with open(file_name, "wb") as f:
            pickle.dump(params, f)

    def load_params(self, file_name="params.pkl"):
        """Read a pickled dict of arrays written by save_params (or the book's) into the network.

        Every parameter must be present with this network's shape; the arrays are converted to
        its dtype. On any error nothing is loaded.
        """
        new = {key: value.astype(self.dtype)  # a copy
               for key, value in read_params(file_name, self.params).items()}

        self.params.update(new)
        for i, layer in enumerate(self._param_layers, start=1):
            layer.params[0] = self.params[f"W{i}"]
            layer.params[1] = self.params[f"b{i}"]


class SimpleConvNet(_ConvNet):
    """conv - relu - pool - affine - relu - affine - softmax (volume 1, chapter 7).

    Conv1 has conv_param['filter_num'] square filters of conv_param['filter_size'], with its
    'stride' and 'pad'; Pool1 is 2x2 max pooling with stride 2; Affine1 has hidden_size outputs.
    Weights are weight_init_std * standard normal draws (W1, W2, W3 in that order), biases zero.
    ``layers`` is an OrderedDict Conv1, Relu1, Pool1, Affine1, Relu2, Affine2; ``last_layer`` a
    SoftmaxWithLoss.
    """

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                 hidden_size=100, output_size=10, weight_init_std=0.01, *,
                 dtype=np.float64, seed=None):
        self.input_dim = C, H, W = _input_dim(input_dim)
        self.dtype = _dtype(dtype)
        filter_num = conv_param['filter_num']
        filter_size = conv_param['filter_size']
        filter_pad = conv_param['pad']
        filter_stride = conv_param['stride']
        conv_h = conv_output_size(H, filter_size, filter_stride, filter_pad)
        conv_w = conv_output_size(W, filter_size, filter_stride, filter_pad)
        pool_output_size = (filter_num * conv_output_size(conv_h, 2, 2)
                            * conv_output_size(conv_w, 2, 2))

        randn = _randn(_generator(seed))
        params = {}
        params['W1'] = weight_init_std * randn(filter_num, C, filter_size, filter_size)
        params['b1'] = np.zeros(filter_num)
        params['W2'] = weight_init_std * randn(pool_output_size, hidden_size)
        params['b2'] = np.zeros(hidden_size)
        params['W3'] = weight_init_std * randn(hidden_size, output_size)
        params['b3'] = np.zeros(output_size)
        self.params = {key: val.astype(self.dtype) for key, val in params.items()}

        self.layers = OrderedDict()
        self.layers['Conv1'] = Convolution(self.params['W1'], self.params['b1'],
                                           filter_stride, filter_pad)
        self.layers['Relu1'] = Relu()
        self.layers['Pool1'] = Pooling(pool_h=2, pool_w=2, stride=2)
        self.layers['Affine1'] = Affine(self.params['W2'], self.params['b2'])
        self.layers['Relu2'] = Relu()
        self.layers['Affine2'] = Affine(self.params['W3'], self.params['b3'])
        self.last_layer = SoftmaxWithLoss()

        self._sequence = list(self.layers.values())
        self._param_layers = [self.layers['Conv1'], self.layers['Affine1'],
                              self.layers['Affine2']]

    def numerical_gradient(self, x, t):
        """Central-difference gradients of the loss: a dict W1, b1, W2, b2, W3, b3."""
        x = self._images(x)
        loss_w = lambda w: self.loss(x, t)  # noqa: E731 -- the book's idiom

        return {key: numerical_gradient(loss_w, param) for key, param in self.params.items()}


class DeepConvNet(_ConvNet):
    """The chapter-8 network (over 99% on MNIST):

        conv - relu - conv - relu - pool - conv - relu - conv - relu - pool -
        conv - relu - conv - relu - pool - affine - relu - dropout - affine - dropout - softmax

    conv_param_i: each convolution's 'filter_num', square 'filter_size', 'pad' and 'stride';
    pools are 2x2 with stride 2; the Dropout layers drop with ratio 0.5. He initialisation:
    W_i = sqrt(2 / fan_in) * standard normal, fan_in being the inputs one output sees (channels
    x filter_size^2 for a convolution, its input size for an affine layer), drawn W1 ... W8 in
    that order; biases zero. For the default arguments these are the book's (hard-coded) scales
    and shapes; other input sizes and filters get the sizes they lead to. ``layers`` is the
    book's list (parameters in layers 0, 2, 5, 7, 10, 12, 15, 18); ``last_layer`` a
    SoftmaxWithLoss. With a seed, the Dropout masks are drawn from the same generator.
    """

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param_1={'filter_num': 16, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 conv_param_2={'filter_num': 16, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 conv_param_3={'filter_num': 32, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 conv_param_4={'filter_num': 32, 'filter_size': 3, 'pad': 2, 'stride': 1},
                 conv_param_5={'filter_num': 64, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 conv_param_6={'filter_num': 64, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 hidden_size=50, output_size=10, *, dtype=np.float64, seed=None):
        self.input_dim = C, H, W = _input_dim(input_dim)
        self.dtype = _dtype(dtype)
        conv_params = [conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5,
                       conv_param_6]
        rng = _generator(seed)
        randn = _randn(rng)

        params = {}
        channels, h, w = C, H, W  # the shape entering each layer
        for idx, conv_param in enumerate(conv_params, start=1):
            filter_num, filter_size = conv_param['filter_num'], conv_param['filter_size']
            fan_in = channels * filter_size * filter_size
            params[f'W{idx}'] = np.sqrt(2.0 / fan_in) * randn(filter_num, channels,
                                                              filter_size, filter_size)
            params[f'b{idx}'] = np.zeros(filter_num)
            channels = filter_num
            h = conv_output_size(h, filter_size, conv_param['stride'], conv_param['pad'])
            w = conv_output_size(w, filter_size, conv_param['stride'], conv_param['pad'])
            if idx % 2 == 0:  # a pool after every second convolution
                h, w = conv_output_size(h, 2, 2), conv_output_size(w, 2, 2)
        flat_size = channels * h * w
        params['W7'] = np.sqrt(2.0 / flat_size) * randn(flat_size, hidden_size)
        params['b7'] = np.zeros(hidden_size)
        params['W8'] = np.sqrt(2.0 / hidden_size) * randn(hidden_size, output_size)
        params['b8'] = np.zeros(output_size)
        self.params = {key: val.astype(self.dtype) for key, val in params.items()}

        def conv(idx):
            return Convolution(self.params[f'W{idx}'], self.params[f'b{idx}'],
                               conv_params[idx - 1]['stride'], conv_params[idx - 1]['pad'])

        self.layers = [
            conv(1), Relu(), conv(2), Relu(), Pooling(pool_h=2, pool_w=2, stride=2),
            conv(3), Relu(), conv(4), Relu(), Pooling(pool_h=2, pool_w=2, stride=2),
            conv(5), Relu(), conv(6), Relu(), Pooling(pool_h=2, pool_w=2, stride=2),
            Affine(self.params['W7'], self.params['b7']), Relu(), Dropout(0.5, rng=rng),
            Affine(self.params['W8'], self.params['b8']), Dropout(0.5, rng=rng),
        ]
        self.last_layer = SoftmaxWithLoss()

        self._sequence = self.layers
        self._param_layers = [self.layers[i] for i in (0, 2, 5, 7, 10, 12, 15, 18)]
