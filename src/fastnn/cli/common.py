"""What the commands share: one-line errors, argument types, the data sets, the models'
parameters, thread limits and the progress bar."""
import argparse
import contextlib
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_HIDDEN = 50
DEFAULT_ACTIVATION = "sigmoid"
DEFAULT_DTYPE = "float64"
SPIRAL_N_TEST = 60          # held out of the 300 spiral points by a fixed permutation
EVAL_CHUNK = 10000          # rows per accuracy call, so MNIST's 60000 never convert at once


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block): 'fastnn train: error: ...'."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def set_command(parser, func):
    """Make func(parser, args) -> exit code what ``fastnn <parser's command>`` runs."""
    parser.set_defaults(func=func, command_parser=parser)


def add_passthrough(subparsers, name, main, help=None):
    """Register ``fastnn NAME ARGS...`` as ``main(ARGS)``: for a command with a parser of its own
    (e.g. ``fastnn.book.main``), which gets every argument after NAME, options and --help too."""
    parser = subparsers.add_parser(name, help=help, add_help=False, prefix_chars="\0")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    set_command(parser, lambda parser, args: main(args.argv))


# --------------------------------------------------------------------------- argument types

def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def path(text):
    return Path(text).expanduser()


@dataclass(frozen=True)
class DataSpec:
    kind: str                   # "digits", "spiral" or "mnist"
    directory: Path = None      # for mnist

    def __str__(self):
        return f"mnist:{self.directory}" if self.kind == "mnist" else self.kind


def data_spec(text):
    """--data: 'digits', 'spiral' or 'mnist:DIR' with DIR an existing directory."""
    if text in ("digits", "spiral"):
        return DataSpec(text)
    if text.startswith("mnist:"):
        if text == "mnist:":
            raise argparse.ArgumentTypeError("'mnist:' needs a directory, e.g. mnist:~/mnist")
        directory = Path(text[len("mnist:"):]).expanduser()
        if not directory.exists():
            raise argparse.ArgumentTypeError(f"MNIST directory not found: '{directory}'")
        if not directory.is_dir():
            raise argparse.ArgumentTypeError(f"MNIST path is not a directory: '{directory}'")
        return DataSpec("mnist", directory)
    raise argparse.ArgumentTypeError(
        f"unknown data set {text!r}: use digits, spiral or mnist:DIR")


def add_data_option(parser):
    parser.add_argument("--data", type=data_spec, default=DataSpec("digits"),
                        metavar="{digits,spiral,mnist:DIR}",
                        help="the bundled 8x8 digits (default), volume 2's spiral (60 of its "
                        "300 points held out), or the four MNIST IDX files (gz or raw) in DIR")


def add_threads_option(parser):
    parser.add_argument("--threads", type=positive_int, default=1, metavar="N",
                        help="threads for fastnn's kernels and BLAS (default 1)")


# --------------------------------------------------------------------------- data

@dataclass
class Data:
    name: str
    x_train: np.ndarray
    t_train: np.ndarray         # index labels (N,)
    x_test: np.ndarray
    t_test: np.ndarray
    n_classes: int

    def describe(self):
        if self.x_train.ndim == 4:
            inputs = "x".join(map(str, self.x_train.shape[1:])) + " images"
        else:
            inputs = f"{self.x_train.shape[1]} features"
        return (f"{self.name} ({len(self.x_train)} train / {len(self.x_test)} test, "
                f"{inputs}, {self.n_classes} classes)")


def load_data(spec):
    """The data set named by a DataSpec, index labels; UsageError if files are missing or bad."""
    from .. import datasets

    if spec.kind == "digits":
        (x_train, t_train), (x_test, t_test) = datasets.load_digits()
        return Data("digits", x_train, t_train, x_test, t_test, 10)
    if spec.kind == "spiral":
        x, t = datasets.load_spiral()
        t = np.argmax(t, axis=1)
        order = np.random.RandomState(0).permutation(len(x))  # fixed, independent of --seed
        test, train = order[:SPIRAL_N_TEST], order[SPIRAL_N_TEST:]
        return Data("spiral", x[train], t[train], x[test], t[test], 3)
    try:
        (x_train, t_train), (x_test, t_test) = datasets.load_mnist(spec.directory)
    except (OSError, ValueError) as e:
        raise UsageError(str(e)) from None
    for part, x in (("training", x_train), ("test", x_test)):
        if len(x) == 0:
            raise UsageError(f"the MNIST {part} files in '{spec.directory}' hold no images")
    return Data(str(spec), x_train, t_train, x_test, t_test, 10)


def as_images(data, model):
    """data with x as (N, 1, side, side) images, for a convolutional network (the digits are 8x8,
    MNIST 28x28; views, no copy); UsageError naming --model for data that are not square
    images (the spiral's points)."""
    side = math.isqrt(data.x_train.shape[1])
    if data.name == "spiral" or side * side != data.x_train.shape[1]:
        raise UsageError(f"--model {model} needs images: --data digits or mnist:DIR, "
                         f"not {data.name}")
    shape = (-1, 1, side, side)
    return dataclasses.replace(data, x_train=data.x_train.reshape(shape),
                               x_test=data.x_test.reshape(shape))


# --------------------------------------------------------------------------- models

def libraries(args):
    """[(label, module)]: the halves this run uses, the first being the main one."""
    import fastnn
    from fastnn import reference

    if args.compare:
        return [("fastnn", fastnn), ("reference", reference)]
    if args.reference:
        return [("reference", reference)]
    return [("fastnn", fastnn)]


def param_arrays(model):
    """A model's parameter arrays in order: its params list, or its params dict's values."""
    params = model.params
    return list(params.values()) if isinstance(params, dict) else list(params)


def copy_params(src, dst):
    """dst's parameters set to src's (two models of one architecture, from either half)."""
    if isinstance(dst.params, dict):
        for name, param in dst.params.items():
            param[...] = src.params[name]
    else:
        for d, s in zip(dst.params, src.params):
            d[...] = s


def layer_sizes(model):
    """[input, hidden..., output] of the Affine layers, from the weight matrices: the 2-D ones of
    W1, W2, ... of a params dict (a convolutional net's filters are 4-D), or of a params list."""
    params = model.params
    if isinstance(params, dict):
        weights = [params[f"W{i}"] for i in range(1, 1 + sum(k[:1] == "W" for k in params))]
    else:
        weights = list(params)
    weights = [W for W in weights if W.ndim == 2]
    return [weights[0].shape[0]] + [W.shape[1] for W in weights]


def describe_model(model, activation=None):
    """'TwoLayerNet 64-50-10, sigmoid, float64' for any model with W1, W2, ... parameters;
    a convolutional net's layers in order, e.g. 'SimpleConvNet 1x8x8 - conv 30x3x3 pad 1 - pool
    - 480-100-10, float64'."""
    if hasattr(model, "input_dim"):
        return describe_convnet(model)
    sizes = "-".join(map(str, layer_sizes(model)))
    activation = getattr(model, "activation", None) or activation or "?"
    return f"{type(model).__name__} {sizes}, {activation}, {param_arrays(model)[0].dtype}"


def describe_convnet(model):
    layers = model.layers.values() if isinstance(model.layers, dict) else model.layers
    parts = []
    for layer in layers:
        kind = type(layer).__name__
        if kind == "Convolution":
            FN, _, FH, FW = layer.W.shape
            pad = f" pad {layer.pad}" if layer.pad else ""
            stride = f" stride {layer.stride}" if layer.stride != 1 else ""
            parts.append(f"{FN}x{FH}x{FW}{pad}{stride}")
        elif kind == "Pooling":
            parts.append("pool")
    convs = ", ".join(parts)
    sizes = "-".join(map(str, layer_sizes(model)))
    return (f"{type(model).__name__} {'x'.join(map(str, model.input_dim))} - conv {convs} - "
            f"{sizes}, {param_arrays(model)[0].dtype}")


def accuracy(model, x, t):
    """model.accuracy over x in chunks of EVAL_CHUNK rows."""
    if len(x) <= EVAL_CHUNK:
        return float(model.accuracy(x, t))
    correct = 0.0
    for start in range(0, len(x), EVAL_CHUNK):
        stop = min(start + EVAL_CHUNK, len(x))
        correct += float(model.accuracy(x[start:stop], t[start:stop])) * (stop - start)
    return correct / len(x)


@contextlib.contextmanager
def threads(n):
    """fastnn's kernels and, when threadpoolctl is installed, BLAS on n threads.

    One thread is the default: a two-layer net's matrices are small, and on a busy two-core machine
    a second BLAS thread makes an accuracy evaluation several times slower, not faster.
    """
    import fastnn

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=n)
    fastnn.set_num_threads(n)
    try:
        with limits:
            yield
    finally:
        fastnn.set_num_threads(0)


# --------------------------------------------------------------------------- progress

class PlainProgress:
    """What the loop needs of tqdm, for when tqdm is missing: a line on stderr every few seconds."""

    def __init__(self, total, desc, interval=2.0):
        self.total, self.desc, self.interval = total, desc, interval
        self.n = 0
        self.postfix = ""
        self.start = self.last = time.perf_counter()

    def update(self, n=1):
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            print(f"{self.desc}: step {self.n}/{self.total} {self.postfix} "
                  f"({now - self.start:.1f} s)", file=sys.stderr, flush=True)

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text

    @staticmethod
    def write(line, file=None):
        print(line, file=file or sys.stdout, flush=True)

    def close(self):
        pass


class NoProgress(PlainProgress):
    def update(self, n=1):
        pass


def progress(total, desc, enabled):
    """A tqdm bar on stderr, a line every few seconds without tqdm, or nothing."""
    if not enabled or total == 0:
        return NoProgress(total, desc)
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainProgress(total, desc)
    return tqdm(total=total, desc=desc, unit="step", mininterval=0.2, file=sys.stderr,
                dynamic_ncols=True)
