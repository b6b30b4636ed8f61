"""The lazy namespaces of fastnn and fastnn.reference (PEP 562's module __getattr__).

Importing either package imports none of its submodules: a public name imports its submodule when
it is first used and is an ordinary attribute from then on, so a script pays only for the
submodules it uses (importing them all took ~20 ms, a tenth of a book chapter's run through
`python -m fastnn.book` that loads saved parameters).
"""
import importlib

# The public names both halves define, by the submodule that defines each, in __all__'s order
NAMES = {
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
# The package's globals() names this module adds, none of them in dir()
PRIVATE = {"_HOME", "_SUBMODULES", "_lazy"}


def install(namespace, names, submodules):
    """Makes the package whose globals() is ``namespace`` lazy: ``names`` maps a submodule to its
    public names ("a b c"), which become __all__ in that order; ``submodules`` are the submodules
    that are attributes without being imported by name. Sets __all__, __getattr__, __dir__ and
    the tables _HOME (name -> submodule) and _SUBMODULES."""
    package = namespace["__name__"]
    home = {name: module for module, listed in names.items() for name in listed.split()}

    def __getattr__(name):
        """A public name or submodule on first use: import it and keep it (later uses are plain
        attribute lookups)."""
        if name in home:
            value = getattr(importlib.import_module(f"{package}.{home[name]}"), name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__():
        """What dir() showed when every public name was imported eagerly: the module's own
        attributes, the public names and the submodules (not the private tables)."""
        return sorted({*namespace, *home, *submodules} - PRIVATE)

    namespace.update(__all__=list(home), __getattr__=__getattr__, __dir__=__dir__, _HOME=home,
                     _SUBMODULES=tuple(submodules))
