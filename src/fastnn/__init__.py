"""fastnn: the layers of "Deep Learning from Scratch" on compiled kernels.

Same names and results as the pure-NumPy `fastnn.reference`, which is the oracle for every test.
"""
__version__ = "0.1.0"

# Every public name, by the submodule that defines it. `import fastnn` imports none of them: a name
# imports its submodule when it is first used (PEP 562's module __getattr__), so a script pays only
# for the submodules it uses (importing them all took ~20 ms, a tenth of a book chapter's run
# through `python -m fastnn.book` that loads saved parameters). __all__ is in this order.
_NAMES = {
    "_core": "set_num_threads get_num_threads",
    "datasets": "load_digits load_mnist load_spiral",
    "functions": "identity_function step_function sigmoid sigmoid_grad relu relu_grad softmax "
                 "sum_squared_error cross_entropy_error softmax_loss softmax_cross_entropy "
                 "bias_grad numerical_diff numerical_gradient numerical_gradient_2d "
                 "gradient_descent",
    "layers": "Repeat Sum MatMul Affine Sigmoid Relu Softmax SoftmaxWithLoss SigmoidWithLoss "
              "Dropout BatchNormalization Convolution Pooling",
    "models": "TwoLayerNet TwoLayerNetwork MultiLayerNet MultiLayerNetExtend gradient_check "
              "BaseModel SimpleConvNet DeepConvNet",
    "optimizers": "SGD Momentum Nesterov AdaGrad RMSprop Adam",
    "trainer": "Trainer NetworkTrainer ModelTrainer",
    "util": "smooth_curve shuffle_dataset clip_grads conv_output_size im2col col2im",
}
_HOME = {name: module for module, names in _NAMES.items() for name in names.split()}
__all__ = list(_HOME)
# The submodules that are attributes of fastnn without being imported by name (those the eager
# imports of the public names used to bind)
_SUBMODULES = ("_checks", "_core", "conv", "convnet", "datasets", "functions", "layers", "models",
               "multilayer", "optimizers", "reference", "trainer", "util")

# The static view for type checkers (mypy takes any name TYPE_CHECKING as true; at run time it is
# False, so this costs nothing): the same names from the same submodules as _NAMES.
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
else:  # not seen by type checkers, so an unknown fastnn.X stays an error for them
    def __getattr__(name):
        """A public name or submodule on first use: import it and keep it (later uses are plain
        attribute lookups)."""
        import importlib

        if name in _HOME:
            value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
        elif name in _SUBMODULES:
            value = importlib.import_module(f"{__name__}.{name}")
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value

    def __dir__():
        """What dir() showed when every public name was imported eagerly: the module's own
        attributes, the public names and the submodules (not this file's private tables)."""
        return sorted({*globals(), *__all__, *_SUBMODULES} - {"_NAMES", "_HOME", "_SUBMODULES"})
del TYPE_CHECKING
