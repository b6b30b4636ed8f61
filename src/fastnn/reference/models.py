"""The two-layer network of both books, and the gradient check between backprop and numerics.

- ``TwoLayerNet``: volume 2, chapter 1 (seed 000) -- a list of layers, ``params``/``grads`` lists.
- ``TwoLayerNetwork``: volume 1, chapter 4 (seed 002, corrected) -- a ``params`` dict and plain
  functions, with ``gradient`` the backprop of volume 1's ``two_layer_net.py``.
- ``MultiLayerNet``, ``MultiLayerNetExtend``: volume 1, chapter 6, from ``multilayer.py``.

Both are the same function of the same parameters: W1 (I, H), b1 (H,), W2 (H, O), b2 (O,),
scores = activation(x W1 + b1) W2 + b2, loss = cross-entropy of softmax(scores). Inputs x are
(N, I) and converted to the model's dtype (float64 or float32); labels are (N,) indices of any
integer dtype or (N, O) one-hot.
"""

import json
import os
import pickle

import numpy as np

from .functions import (cross_entropy_error, numerical_gradient, relu, sigmoid, sigmoid_grad,
                        softmax)
from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss
from .multilayer import MultiLayerNet, MultiLayerNetExtend

__all__ = ["TwoLayerNet", "TwoLayerNetwork", "MultiLayerNet", "MultiLayerNetExtend",
           "gradient_check", "BaseModel"]

PARAM_NAMES = ("W1", "b1", "W2", "b2")
_ACTIVATIONS = ("sigmoid", "relu")


def two_layer_setup(input_size, hidden_size, output_size, weight_init_std, activation, dtype,
                    seed):
    """Check a two-layer model's configuration; return (activation, dtype, config, [W1, b1, W2,
    b2]) with config the dict a pickle keeps.

    Weights are weight_init_std * standard normal draws, biases zeros, all cast to dtype.
    seed=None draws from NumPy's global generator as the book does (np.random.seed applies);
    an int or a np.random.Generator draws from np.random.default_rng(seed).
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    config = dict(input_size=input_size, hidden_size=hidden_size, output_size=output_size,
                  weight_init_std=weight_init_std, activation=activation, dtype=dtype.name)

    if seed is None:
        randn = np.random.randn
    else:
        rng = np.random.default_rng(seed)

        def randn(*shape):
            return rng.standard_normal(shape)

    W1 = weight_init_std * randn(input_size, hidden_size)
    b1 = np.zeros(hidden_size)
    W2 = weight_init_std * randn(hidden_size, output_size)
    b2 = np.zeros(output_size)
    return activation, dtype, config, [p.astype(dtype) for p in (W1, b1, W2, b2)]


def save_two_layer(model, file):
    """Write W1, b1, W2, b2 and the constructor configuration to the .npz file ``file``.

    ``file`` is a path or an open binary file; np.savez appends ".npz" to a path without it.
    """
    np.savez(file, config=json.dumps(model.config), **model._params_by_name())


def load_two_layer(cls, file):
    """A model of class cls built from the configuration and parameters that save_two_layer wrote
    to ``file``."""
    with np.load(file, allow_pickle=False) as data:
        # seed=0: the drawn values are overwritten; it keeps np.random's global state untouched
        model = cls(**json.loads(data["config"][()]), seed=0)
        for name, param in model._params_by_name().items():
            param[...] = data[name]
    return model


class _TwoLayerModel:
    """What the two models share: initialisation, accuracy, save and load.

    A subclass provides ``predict(x)`` and ``_params_by_name()`` (its arrays keyed W1, b1, W2, b2).
    """

    def _setup(self, input_size, hidden_size, output_size, weight_init_std, activation, dtype,
               seed):
        """Check and record the configuration (two_layer_setup); return the initial W1, b1, W2,
        b2."""
        self.activation, self.dtype, self.config, params = two_layer_setup(
            input_size, hidden_size, output_size, weight_init_std, activation, dtype, seed)
        return params

    def accuracy(self, x, t):
        """Fraction of the rows of x whose highest score is the label t (index or one-hot)."""
        y = self.predict(x)
        y = np.argmax(y, axis=1)
        t = np.asarray(t)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)

        accuracy = np.sum(y == t) / float(y.shape[0])
        return accuracy

    save = save_two_layer
    load = classmethod(load_two_layer)


class TwoLayerNet(_TwoLayerModel):
    """Volume 2's two-layer net: layers [Affine, Sigmoid (or Relu), Affine] and SoftmaxWithLoss.

    ``params`` and ``grads`` are the layers' lists concatenated: [W1, b1, W2, b2] and their
    gradients, which ``backward`` overwrites in place.
    """

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01, *,
                 activation="sigmoid", dtype=np.float64, seed=None):
        W1, b1, W2, b2 = self._setup(input_size, hidden_size, output_size, weight_init_std,
                                     activation, dtype, seed)

        hidden_layer = Sigmoid() if activation == "sigmoid" else Relu()
        self.layers = [Affine(W1, b1), hidden_layer, Affine(W2, b2)]
        self.loss_layer = SoftmaxWithLoss()

        self.params, self.grads = [], []
        for layer in self.layers:
            self.params += layer.params
            self.grads += layer.grads

    def _params_by_name(self):
        return dict(zip(PARAM_NAMES, self.params))

    def predict(self, x):
        """x: (N, I) -> scores (N, O) (before softmax)."""
        x = np.asarray(x, dtype=self.dtype)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def forward(self, x, t):
        """x: (N, I), t: labels -> scalar mean loss."""
        score = self.predict(x)
        loss = self.loss_layer.forward(score, t)
        return loss

    def backward(self, dout=1):
        """Backprop from the last forward; fills ``grads`` in place and returns dx (N, I)."""
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def gradient(self, x, t):
        """Backprop gradients of the loss: a dict W1, b1, W2, b2 of new arrays."""
        self.forward(x, t)
        self.backward()
        return {name: grad.copy() for name, grad in zip(PARAM_NAMES, self.grads)}

    def numerical_gradient(self, x, t):
        """Central-difference gradients of the loss: a dict W1, b1, W2, b2."""
        x = np.asarray(x, dtype=self.dtype)
        loss_W = lambda W: self.forward(x, t)  # noqa: E731 -- the book's idiom

        return {name: numerical_gradient(loss_W, param)
                for name, param in zip(PARAM_NAMES, self.params)}


class TwoLayerNetwork(_TwoLayerModel):
    """Volume 1's two-layer net (seed 002, corrected): ``params`` is a dict W1, b1, W2, b2."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01, *,
                 activation="sigmoid", dtype=np.float64, seed=None):
        W1, b1, W2, b2 = self._setup(input_size, hidden_size, output_size, weight_init_std,
                                     activation, dtype, seed)
        self.params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}

    def _params_by_name(self):
        return self.params

    def _hidden(self, a1):
        return sigmoid(a1) if self.activation == "sigmoid" else relu(a1)

    def predict(self, x):
        """x: (N, I) -> probabilities (N, O)."""
        x = np.asarray(x, dtype=self.dtype)
        W1, W2 = self.params["W1"], self.params["W2"]
        b1, b2 = self.params["b1"], self.params["b2"]

        a1 = np.dot(x, W1) + b1
        z1 = self._hidden(a1)
        a2 = np.dot(z1, W2) + b2
        y = softmax(a2)

        return y

    def loss(self, x, t):
        """x: (N, I), t: labels -> scalar mean cross-entropy loss."""
        y = self.predict(x)

        return cross_entropy_error(y, t)

    def numerical_gradient(self, x, t):
        """Central-difference gradients of the loss: a dict W1, b1, W2, b2."""
        x = np.asarray(x, dtype=self.dtype)
        loss_W = lambda W: self.loss(x, t)  # noqa: E731 -- the book's idiom

        grads = {}
        grads["W1"] = numerical_gradient(loss_W, self.params["W1"])
        grads["b1"] = numerical_gradient(loss_W, self.params["b1"])
        grads["W2"] = numerical_gradient(loss_W, self.params["W2"])
        grads["b2"] = numerical_gradient(loss_W, self.params["b2"])

        return grads

    def gradient(self, x, t):
        """Backprop gradients of the loss: a dict W1, b1, W2, b2."""
        x = np.asarray(x, dtype=self.dtype)
        t = np.asarray(t)
        W1, W2 = self.params["W1"], self.params["W2"]
        b1, b2 = self.params["b1"], self.params["b2"]
        grads = {}

        batch_num = x.shape[0]

        # forward
        a1 = np.dot(x, W1) + b1
        z1 = self._hidden(a1)
        a2 = np.dot(z1, W2) + b2
        y = softmax(a2)

        # backward: d loss / d a2 = (y - onehot(t)) / N
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        dy = y.copy()
        dy[np.arange(batch_num), t] -= 1
        dy /= batch_num

        grads["W2"] = np.dot(z1.T, dy)
        grads["b2"] = np.sum(dy, axis=0)

        da1 = np.dot(dy, W2.T)
        if self.activation == "sigmoid":
            dz1 = sigmoid_grad(a1) * da1
        else:
            dz1 = (a1 > 0) * da1
        grads["W1"] = np.dot(x.T, dz1)
        grads["b1"] = np.sum(dz1, axis=0)

        return grads


def gradient_check(model, x, t):
    """Compare a model's backprop gradients with its numerical ones (volume 1, chapter 5).

    Returns {name: (mean |difference|, max |difference|)} for W1, b1, W2, b2, as Python floats.
    """
    grad_numerical = model.numerical_gradient(x, t)
    grad_backprop = model.gradient(x, t)

    result = {}
    for key in PARAM_NAMES:
        diff = np.abs(grad_backprop[key] - grad_numerical[key])
        result[key] = (float(np.mean(diff)), float(np.max(diff)))
    return result


class BaseModel:
    """Volume 2's base class of models: ``params`` and ``grads`` lists (None until a subclass sets
    them), ``forward``/``backward`` for a subclass to define, and the book's parameter files:
    ``save_params`` pickles the list of parameters as float16, ``load_params`` reads them back as
    float32 into the model's arrays. The file name defaults to '<class name>.pkl'. Load only
    files you trust: they are pickles.
    """

    def __init__(self):
        self.params, self.grads = None, None

    def forward(self, *args):
        raise NotImplementedError

    def backward(self, *args):
        raise NotImplementedError

    def _file_name(self, file_name):
        return type(self).__name__ + ".pkl" if file_name is None else file_name

    def save_params(self, file_name=None):
        """Pickle [p.astype(float16) for p in params] to file_name."""
        params = [p.astype(np.float16) for p in self.params]
        with open(self._file_name(file_name), "wb") as f:
            pickle.dump(params, f)

    def load_params(self, file_name=None):
        """Copy the parameters pickled in file_name (as float32) into params, in place."""
        file_name = self._file_name(file_name).replace("/", os.sep)
        if not os.path.exists(file_name):
            raise IOError("No file: " + file_name)
        with open(file_name, "rb") as f:
            loaded = pickle.load(f)

        loaded = [np.asarray(p).astype("f") for p in loaded]
        shapes = [p.shape for p in self.params]
        if [p.shape for p in loaded] != shapes:  # checked before any parameter is written
            raise ValueError(f"'{file_name}' holds parameters of shapes "
                             f"{[p.shape for p in loaded]}, the model's are {shapes}")
        for param, value in zip(self.params, loaded):
            param[...] = value


# Volume 1's convolutional networks live in their own module; models is their public namespace.
from .convnet import DeepConvNet, SimpleConvNet  # noqa: E402

__all__ += ["SimpleConvNet", "DeepConvNet"]
