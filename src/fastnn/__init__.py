"""fastnn: the layers of "Deep Learning from Scratch" on compiled kernels.

Same names and results as the pure-NumPy `fastnn.reference`, which is the oracle for every test.
"""
__version__ = "0.1.0"

from . import _lazy

# `import fastnn` imports no submodule (fastnn/_lazy.py); the public names are _core's two and the
# names the reference shares, and the submodules listed are attributes without being imported by
# name (those the eager imports of the public names used to bind)
_lazy.install(globals(), {"_core": "set_num_threads get_num_threads", **_lazy.NAMES},
              ("_checks", "_core", "conv", "convnet", "datasets", "functions", "layers", "models",
               "multilayer", "optimizers", "reference", "trainer", "util"))

# The static view for type checkers (mypy takes any name TYPE_CHECKING as true; at run time it is
# False, so this costs nothing): the same names from the same submodules as the lazy table. The
# lazy __getattr__ is not seen by type checkers, so an unknown fastnn.X stays an error for them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import (_checks, _core, conv, convnet, datasets, functions, layers, models, multilayer,
                   optimizers, reference, trainer, util)
    from ._core import get_num_threads, set_num_threads
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
