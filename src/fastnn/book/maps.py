"""Which fastnn name answers each name of the books' ``common`` and ``dataset`` modules.

``VOLUMES[v][module][name]`` is a tuple of places to look, first found wins:

- ``"layers.Affine"``: attribute ``Affine`` of ``<root>.layers``, where ``<root>`` is ``fastnn``
  (or ``fastnn.reference`` with ``--reference``); a submodule that does not exist is skipped;
- ``"Affine"``: attribute ``Affine`` of ``<root>`` itself;
- ``"numpy"``: the module NumPy (the book's modules hold it as ``np``);
- ``"fastnn.book.shims.load_mnist"``: an object of ``fastnn.book.shims`` (the same for both halves).

An empty tuple, or no place holding the name, means fastnn does not have it: importing it by name
raises an ImportError naming it and the book's module. Each module's names are the ones
``from module import *`` gives on the book's code (``np`` included, and the names the book's module
itself star-imports), plus the underscored helpers it defines, so a script sees the same names.

A trailing ``"?attr"`` on a place accepts it only if the object has that attribute: each book's
``common.trainer.Trainer`` is fastnn's trainer of that book (``NetworkTrainer``, with ``train``, for
volume 1; ``ModelTrainer``, with ``fit``, for volume 2), never the other's.
"""

NUMPY = ("numpy",)


def _names(places, names):
    """{name: (f"{p}.{name}" for each p in places) + (name,)}: looked up in those submodules of the
    root, then at its top level (where every public name of fastnn is re-exported)."""
    return {name: tuple(f"{p}.{name}" for p in places) + (name,) for name in names.split()}


def _missing(names):
    """Names of the book's module that fastnn does not provide."""
    return {name: () for name in names.split()}


def _shim(names):
    return {name: (f"fastnn.book.shims.{name}",) for name in names.split()}


def _with(extra, *maps):
    out = {}
    for m in maps:
        out.update(m)
    out.update(extra)
    return out


# ------------------------------------------------------------------------------------ volume 1

_V1_FUNCTIONS = _names(("functions",), "identity_function step_function sigmoid sigmoid_grad relu "
                                       "relu_grad softmax sum_squared_error cross_entropy_error "
                                       "softmax_loss")
_V1_UTIL = _names(("util", "conv"), "smooth_curve shuffle_dataset conv_output_size im2col col2im")
_V1_LAYERS = _names(("layers", "conv"), "Relu Sigmoid Affine SoftmaxWithLoss Dropout "
                                        "BatchNormalization Convolution Pooling")
# what `from common.layers import *` gives: the book's layers.py star-imports common.functions and
# imports im2col, col2im; multi_layer_net*.py star-import layers.py and import numerical_gradient
_V1_STAR_LAYERS = _with({"im2col": _V1_UTIL["im2col"], "col2im": _V1_UTIL["col2im"]},
                        _V1_FUNCTIONS, _V1_LAYERS)
_V1_GRADIENT = _names(("functions", "gradient"), "numerical_gradient numerical_gradient_2d")
_V1_STAR_MODEL = _with({"np": NUMPY, "numerical_gradient": _V1_GRADIENT["numerical_gradient"]},
                       _V1_STAR_LAYERS)
_OPTIMIZERS = _names(("optimizers",), "SGD Momentum Nesterov AdaGrad RMSprop Adam")

VOLUME_1 = {
    "common.functions": _with({"np": NUMPY}, _V1_FUNCTIONS),
    "common.gradient": _with(
        {"np": NUMPY,
         # the book's per-row helper of numerical_gradient_2d; fastnn's numerical_gradient is the
         # same computation for a 1-D x
         "_numerical_gradient_1d": ("functions._numerical_gradient_1d",
                                    "gradient._numerical_gradient_1d",
                                    "functions.numerical_gradient")},
        _V1_GRADIENT),
    "common.layers": _with({"np": NUMPY}, _V1_STAR_LAYERS),
    "common.multi_layer_net": _with(_V1_STAR_MODEL, _names(("models",), "MultiLayerNet")),
    "common.multi_layer_net_extend": _with(_V1_STAR_MODEL,
                                           _names(("models",), "MultiLayerNetExtend")),
    "common.optimizer": _with({"np": NUMPY}, _OPTIMIZERS),
    "common.trainer": _with(
        {"np": NUMPY, "Trainer": ("trainer.NetworkTrainer", "trainer.Trainer?train")},
        _OPTIMIZERS),
    "common.util": _with({"np": NUMPY}, _V1_UTIL),
    "dataset.mnist": _with({"np": NUMPY}, _shim("load_mnist"),
                           _missing("download_mnist init_mnist")),
}

# ------------------------------------------------------------------------------------ volume 2

_V2_BASE = {"np": NUMPY, "GPU": ("fastnn.book.shims.GPU",)}  # what `from common.np import *` gives
_V2_FUNCTIONS = _names(("functions",), "sigmoid relu softmax cross_entropy_error")
_V2_LAYERS = _with({"softmax": _V2_FUNCTIONS["softmax"],
                    "cross_entropy_error": _V2_FUNCTIONS["cross_entropy_error"]},
                   _names(("layers",), "MatMul Affine Softmax SoftmaxWithLoss Sigmoid "
                                       "SigmoidWithLoss Dropout Embedding"))
_V2_UTIL_NAMES = ("preprocess cos_similarity most_similar convert_one_hot create_co_matrix ppmi "
                  "create_contexts_target eval_perplexity eval_seq2seq analogy normalize")

VOLUME_2 = {
    "common.config": {"GPU": ("fastnn.book.shims.GPU",)},
    "common.np": dict(_V2_BASE),
    "common.functions": _with(_V2_BASE, _V2_FUNCTIONS),
    "common.layers": _with(_V2_BASE, _V2_LAYERS),
    "common.time_layers": _with(
        _V2_BASE, _V2_LAYERS, {"sigmoid": _V2_FUNCTIONS["sigmoid"]},
        _names(("time_layers", "layers"),
               "RNN TimeRNN LSTM TimeLSTM TimeEmbedding TimeAffine TimeSoftmaxWithLoss TimeDropout "
               "TimeBiLSTM TimeSigmoidWithLoss GRU TimeGRU Simple_TimeSoftmaxWithLoss "
               "Simple_TimeAffine")),
    "common.optimizer": _with(_V2_BASE, _OPTIMIZERS),
    "common.trainer": _with(
        _V2_BASE,
        {"Trainer": ("trainer.ModelTrainer", "trainer.Trainer?fit"),
         "clip_grads": ("util.clip_grads", "clip_grads")},
        _names(("trainer",), "RnnlmTrainer remove_duplicate")),
    "common.util": _with(_V2_BASE, _shim("to_cpu to_gpu"),
                         _names(("util",), "clip_grads " + _V2_UTIL_NAMES)),
    "common.base_model": _with(_V2_BASE, _shim("to_cpu to_gpu"),
                               _names(("models", "base_model"), "BaseModel")),
    "dataset.spiral": _with({"np": NUMPY}, _shim("load_data")),
    "dataset.ptb": _with({"np": NUMPY}, _missing("load_vocab load_data")),
    "dataset.sequence": _missing("load_data get_vocab"),
}

VOLUMES = {1: VOLUME_1, 2: VOLUME_2}
