"""The fully connected networks of volume 1, chapter 6 (``common/multi_layer_net.py`` and
``common/multi_layer_net_extend.py``).

- ``MultiLayerNet``: Affine and an activation per hidden layer, a last Affine and SoftmaxWithLoss,
  with L2 weight decay.
- ``MultiLayerNetExtend``: the same, optionally with BatchNormalization after each hidden Affine
  and Dropout after each activation.

``params`` is a dict W1, b1, ..., W{L+1}, b{L+1} (and gamma1, beta1, ..., gammaL, betaL with
batch norm) holding the very arrays of the layers, so an optimizer's in-place update reaches them.
``layers`` is an OrderedDict named as the book's: Affine1, BatchNorm1, Activation_function1,
Dropout1, ..., Affine{L+1}; ``last_layer`` the SoftmaxWithLoss. Inputs x are (N, input_size) and
converted to the model's dtype; labels are (N,) indices of any integer dtype or (N, output_size)
one-hot.
"""

import numbers
import operator
from collections import OrderedDict

import numpy as np

from .functions import numerical_gradient
from .layers import Affine, BatchNormalization, Dropout, Relu, Sigmoid, SoftmaxWithLoss

__all__ = ["MultiLayerNet", "MultiLayerNetExtend"]

_ACTIVATIONS = {"sigmoid": Sigmoid, "relu": Relu}
_INIT_SCALES = {"relu": 2.0, "he": 2.0, "sigmoid": 1.0, "xavier": 1.0}  # std = sqrt(this / n_in)


def _size(value, name):
    """value as a positive int (any integer type), or a clear error naming it."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r}") from None
    if size <= 0:
        raise ValueError(f"{name} must be positive, got {size}")
    return size


class _MultiLayerModel:
    """What both networks are: construction, predict, loss, accuracy and both gradients."""

    def __init__(self, input_size, hidden_size_list, output_size, activation, weight_init_std,
                 weight_decay_lambda, use_dropout, dropout_ration, use_batchnorm, dtype, seed):
        self.input_size = _size(input_size, "input_size")
        self.output_size = _size(output_size, "output_size")
        self.hidden_size_list = [_size(size, f"hidden_size_list[{i}]")
                                 for i, size in enumerate(hidden_size_list)]
        self.hidden_layer_num = len(self.hidden_size_list)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(_ACTIVATIONS)}, "
                             f"got {activation!r}")
        if isinstance(weight_init_std, str):
            if weight_init_std.lower() not in _INIT_SCALES:
                raise ValueError(f"weight_init_std must be a number or one of "
                                 f"{tuple(_INIT_SCALES)}, got {weight_init_std!r}")
        elif not isinstance(weight_init_std, numbers.Real):
            raise TypeError(f"weight_init_std must be a number or one of {tuple(_INIT_SCALES)}, "
                            f"got {weight_init_std!r}")
        if not 0 <= dropout_ration < 1:
            raise ValueError(f"dropout_ration must be in [0, 1), got {dropout_ration!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")

        self.activation = activation
        self.weight_decay_lambda = weight_decay_lambda
        self.use_dropout = use_dropout
        self.use_batchnorm = use_batchnorm
        self.dtype = dtype
        # seed=None: NumPy's global state, as the book (np.random.seed applies); an int or a
        # Generator: np.random.default_rng(seed), for the weights and the dropout masks alike
        self.rng = None if seed is None else np.random.default_rng(seed)
        self.params = {}

        self._init_weight(weight_init_std)

        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers[f"Affine{idx}"] = Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])
            if self.use_batchnorm:
                size = self.hidden_size_list[idx - 1]
                self.params[f"gamma{idx}"] = np.ones(size, dtype=dtype)
                self.params[f"beta{idx}"] = np.zeros(size, dtype=dtype)
                self.layers[f"BatchNorm{idx}"] = BatchNormalization(self.params[f"gamma{idx}"],
                                                                    self.params[f"beta{idx}"])

            self.layers[f"Activation_function{idx}"] = _ACTIVATIONS[activation]()

            if self.use_dropout:
                self.layers[f"Dropout{idx}"] = Dropout(dropout_ration, rng=self.rng)

        idx = self.hidden_layer_num + 1
        self.layers[f"Affine{idx}"] = Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])

        self.last_layer = SoftmaxWithLoss()

    def _init_weight(self, weight_init_std):
        """W{idx} = std * standard normal (n_in, n_out), b{idx} = zeros, layer by layer.

        std is weight_init_std itself, or sqrt(2 / n_in) for 'relu'/'he' (He's initial value)
        and sqrt(1 / n_in) for 'sigmoid'/'xavier' (Xavier's), n_in the layer's input size.
        """
        all_size_list = [self.input_size] + self.hidden_size_list + [self.output_size]
        for idx in range(1, len(all_size_list)):
            n_in, n_out = all_size_list[idx - 1], all_size_list[idx]
            scale = weight_init_std
            if isinstance(weight_init_std, str):
                scale = np.sqrt(_INIT_SCALES[weight_init_std.lower()] / n_in)

            if self.rng is None:
                draw = np.random.randn(n_in, n_out)
            else:
                draw = self.rng.standard_normal((n_in, n_out))
            self.params[f"W{idx}"] = (scale * draw).astype(self.dtype)
            self.params[f"b{idx}"] = np.zeros(n_out, dtype=self.dtype)

    def _param_names(self):
        """The parameters' names in the book's order: W1, b1, (gamma1, beta1,) W2, ..."""
        names = []
        for idx in range(1, self.hidden_layer_num + 2):
            names += [f"W{idx}", f"b{idx}"]
            if self.use_batchnorm and idx != self.hidden_layer_num + 1:
                names += [f"gamma{idx}", f"beta{idx}"]
        return names

    def predict(self, x, train_flg=False):
        """x: (N, input_size) -> scores (N, output_size), before softmax.

        train_flg=True: dropout draws masks and batch norm uses (and updates) batch statistics;
        False: test-time scaling and running statistics.
        """
        x = np.asarray(x, dtype=self.dtype)
        for layer in self.layers.values():
            if isinstance(layer, (Dropout, BatchNormalization)):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)

        return x

    def loss(self, x, t, train_flg=False):
        """Mean cross-entropy of softmax(predict(x)) against t, plus the weight decay
        0.5 * weight_decay_lambda * sum(W**2) of every weight W1, W2, ...: a scalar."""
        y = self.predict(x, train_flg)

        weight_decay = 0
        for idx in range(1, self.hidden_layer_num + 2):
            W = self.params[f"W{idx}"]
            weight_decay += 0.5 * self.weight_decay_lambda * np.sum(W**2)

        return self.last_layer.forward(y, t) + weight_decay

    def accuracy(self, x, t):
        """Fraction of the rows of x (predicted at test time) whose top score is the label t."""
        y = self.predict(x, train_flg=False)
        y = np.argmax(y, axis=1)
        t = np.asarray(t)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)

        accuracy = np.sum(y == t) / float(y.shape[0])
        return accuracy

    def numerical_gradient(self, x, t):
        """Central-difference gradients of loss(x, t, train_flg=True): a dict keyed as params.

        As in the book, each loss draws new dropout masks, so with dropout this is the gradient
        of a different network at every call; the parameters go in the book's order.
        """
        x = np.asarray(x, dtype=self.dtype)
        loss_W = lambda W: self.loss(x, t, train_flg=True)  # noqa: E731 -- the book's idiom

        grads = {}
        for name in self._param_names():
            grads[name] = numerical_gradient(loss_W, self.params[name])

        return grads

    def gradient(self, x, t):
        """Backprop gradients of loss(x, t, train_flg=True): a dict keyed as params, of new
        arrays; each dW includes the weight decay's weight_decay_lambda * W."""
        # forward
        self.loss(x, t, train_flg=True)

        # backward
        dout = 1
        dout = self.last_layer.backward(dout)

        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)

        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            affine = self.layers[f"Affine{idx}"]
            grads[f"W{idx}"] = affine.dW + self.weight_decay_lambda * affine.W
            grads[f"b{idx}"] = affine.db.copy()

            if self.use_batchnorm and idx != self.hidden_layer_num + 1:
                batchnorm = self.layers[f"BatchNorm{idx}"]
                grads[f"gamma{idx}"] = batchnorm.dgamma.copy()
                grads[f"beta{idx}"] = batchnorm.dbeta.copy()

        return grads


class MultiLayerNet(_MultiLayerModel):
    """Volume 1's fully connected net: (Affine, activation) per hidden size, Affine, softmax.

    activation: 'relu' or 'sigmoid'. weight_init_std: a number, 'relu'/'he' (sqrt(2 / n_in)) or
    'sigmoid'/'xavier' (sqrt(1 / n_in)). weight_decay_lambda: the L2 penalty's strength.
    dtype: float64 or float32. seed: None draws the weights from NumPy's global state in the
    book's order; an int or a np.random.Generator draws from np.random.default_rng(seed).
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, *, dtype=np.float64, seed=None):
        super().__init__(input_size, hidden_size_list, output_size, activation, weight_init_std,
                         weight_decay_lambda, use_dropout=False, dropout_ration=0.5,
                         use_batchnorm=False, dtype=dtype, seed=seed)


class MultiLayerNetExtend(_MultiLayerModel):
    """MultiLayerNet with optional batch norm (after each hidden Affine) and dropout (after each
    activation, ratio ``dropout_ration`` as the book spells it).

    The other arguments as MultiLayerNet's; with a seed the dropout masks come from the same
    generator as the weights, and NumPy's global state is never touched.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, use_dropout=False,
                 dropout_ration=0.5, use_batchnorm=False, *, dtype=np.float64, seed=None):
        super().__init__(input_size, hidden_size_list, output_size, activation, weight_init_std,
                         weight_decay_lambda, use_dropout, dropout_ration, use_batchnorm, dtype,
                         seed)
