"""fastnn.reference: the book's layer library in plain NumPy, written to be read.

The oracle for every test of the compiled ``fastnn`` and the baseline of every benchmark; it
imports nothing from the rest of fastnn but the lazy namespace both packages share
(fastnn/_lazy.py: ``import fastnn.reference`` imports no submodule until a name is used).
"""
from .. import _lazy

_lazy.install(globals(), _lazy.NAMES, ("conv", "convnet", "datasets", "functions", "layers",
                                        "models", "multilayer", "optimizers", "trainer", "util"))

# The static view for type checkers, as in fastnn/__init__.py
TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import (conv, convnet, datasets, functions, layers, models, multilayer, optimizers,
                   trainer, util)
    from .datasets import load_digits, load_mnist, load_spiral
    from .functions import (bias_grad, cross_entropy_error, gradient_descent, identity_function,
                            numerical_diff, numerical_gradient, numerical_gradient_2d, relu,
                            relu_grad, sigmoid, sigmoid_grad, softmax, softmax_cross_entropy,
                            softmax_loss, step_function, sum_squared_error)
    from .layers import (Affine, BatchNormalization, Convolution, Dropout, MatMul, Pooling, Relu,
                         Repeat, Sigmoid, SigmoidWithLoss, Softmax, SoftmaxWithLoss, Sum)
    from .models import (BaseModel, DeepConvNet, MultiLayerNet, MultiLayerNetExtend,
                         SimpleConvNet, TwoLayerNet, TwoLayerNetwork, gradient_check)
    from .optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop
    from .trainer import ModelTrainer, NetworkTrainer, Trainer
    from .util import clip_grads, col2im, conv_output_size, im2col, shuffle_dataset, smooth_curve
del TYPE_CHECKING
