"""``fastnn train``: the book's training loop on the bundled digits (or spiral, or MNIST files),
with a progress bar, the accuracy after every epoch and a summary.

The loop is the library's: volume 1's ``Trainer`` of each half (``fastnn`` and
``fastnn.reference``), so ``--compare`` times the same Python around different libraries; each
epoch's steps are one ``run_steps`` call (on fastnn, a two-layer net with SGD runs them in one
compiled call). This module draws the progress bar, evaluates and reports at the end of each
epoch, and plots. A step,
by model and ``--grad``:

- twolayer, backprop (volume 2, seed 000): ``loss = model.forward(x, t); model.backward();
  optimizer.update(model.params, model.grads)`` on ``TwoLayerNet``;
- twolayer, numerical (volume 1, seed 002): ``grads = model.numerical_gradient(x, t);
  optimizer.update(model.params, grads); loss = model.loss(x, t)`` on ``TwoLayerNetwork``;
- multilayer (volume 1, chapter 6): the book's Trainer step, ``grads = model.gradient(x, t)`` (or
  ``numerical_gradient``), the update, then ``loss = model.loss(x, t)``, on ``MultiLayerNet``, or
  ``MultiLayerNetExtend`` with ``--batchnorm`` or ``--dropout``;
- simple-convnet, deep-convnet (chapters 7 and 8): the same step on ``SimpleConvNet`` or
  ``DeepConvNet``, with the book's ``train_convnet.py`` defaults (Adam lr 0.001, 20 epochs), on
  the data as (N, 1, side, side) images: the digits 8x8, MNIST 28x28. SimpleConvNet's Conv1 is
  the book's (30 filters 5x5, no pad) on 28x28 and 30 filters 3x3 padded by 1 on the 8x8 digits
  (5x5 would leave 4x4 to pool). DeepConvNet keeps the book's convolutions on either: the digits
  pool to 4x4, 3x3 and 1x1 (64 inputs to its first Affine instead of MNIST's 64x4x4). Their
  ``--save`` / ``--load`` files are the book's pickles (``save_params`` / ``load_params``), so the
  book's own ``params.pkl`` loads with ``--data mnist:DIR``.

Mini-batches are drawn with replacement, as the book's ``np.random.choice(train_size,
batch_size)`` does, from a generator seeded by ``--seed`` (the same batches for both halves); an
epoch is ``ceil(train_size / batch_size)`` steps.
"""
import argparse
import copy
import math
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..reference.trainer import NetworkTrainer
from .common import (DEFAULT_ACTIVATION, DEFAULT_DTYPE, DEFAULT_HIDDEN, UsageError, accuracy,
                     add_data_option, add_threads_option, as_images, copy_params, describe_model,
                     layer_sizes, libraries, load_data, nonnegative_int, param_arrays, path,
                     positive_float, positive_int, progress, set_command, threads)

# --optimizer name -> the optimizer's class name (the same in fastnn and fastnn.reference)
OPTIMIZERS = {name: cls.__name__ for name, cls in NetworkTrainer.optimizer_classes.items()}
# Learning rates that reach 96-99% on the digits in the default 20000 steps. 0.1 (the book's
# chapter 4 value) is too large for the adaptive RMSprop and Adam: 91-97% there, 98-99% at 0.01.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.1,
              "rmsprop": 0.01, "adam": 0.01}
DEFAULT_ITERS = 20000       # SGD lr 0.1 on the digits: ~96.4% test accuracy for every seed tried
DEFAULT_HIDDEN_LIST = (100, 100, 100, 100)
DEFAULT_MULTILAYER_ACTIVATION = "relu"  # the book's MultiLayerNet default
DEFAULT_INIT = {"twolayer": 0.01, "multilayer": "he", "simple-convnet": 0.01}
INIT_NAMES = ("he", "xavier", "relu", "sigmoid")  # the book's 'relu' is he, 'sigmoid' xavier
CONVNETS = {"simple-convnet": "SimpleConvNet", "deep-convnet": "DeepConvNet"}
CONVNET_HIDDEN = {"simple-convnet": 100, "deep-convnet": 50}  # the books' hidden_size
CONVNET_OPTIMIZER = "adam"  # and lr 0.001, 20 epochs: ch07/train_convnet.py, ch08/train_deepnet.py
CONVNET_LR = {"rmsprop": 0.001, "adam": 0.001}  # the other rules: DEFAULT_LR
CONVNET_EPOCHS = 20
# SimpleConvNet's Conv1: the book's on MNIST's 28x28; on smaller images (the 8x8 digits) a
# padded 3x3, which keeps the 8x8 for the 2x2 pooling
BOOK_CONV_PARAM = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}
SMALL_CONV_PARAM = {"filter_num": 30, "filter_size": 3, "pad": 1, "stride": 1}
# Trainer's gradient= for each (--model, --grad)
GRADIENT = {("twolayer", "backprop"): "backward",
            ("twolayer", "numerical"): "numerical_gradient",
            ("multilayer", "backprop"): "gradient",
            ("multilayer", "numerical"): "numerical_gradient",
            ("simple-convnet", "backprop"): "gradient",
            ("simple-convnet", "numerical"): "numerical_gradient",
            ("deep-convnet", "backprop"): "gradient"}


# --------------------------------------------------------------------------- argument types

def hidden_sizes(text):
    """--hidden: 'N' or 'N,N,...' positive integers -> a tuple."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer or a comma-separated list of them, got {text!r}")
    return sizes


def init_spec(text):
    """--init: he, xavier (or the book's relu, sigmoid), or a positive number."""
    if text in INIT_NAMES:
        return text
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(INIT_NAMES)} or a positive number, got {text!r}") from None


def dropout_ratio(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a ratio in [0, 1), got {text!r}")
    return value


def nonnegative_float(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text!r}")
    return value


def register(subparsers):
    parser = subparsers.add_parser(
        "train", help="train the two-layer net (digits by default), a multi-layer net or a "
        "convnet",
        description="Train the book's two-layer net (or chapter 6's multi-layer net, or "
        "chapters 7-8's SimpleConvNet and DeepConvNet) with a progress bar; prints loss and "
        "train/test accuracy every few epochs and a summary (test accuracy, wall time, steps/s).")
    data = parser.add_argument_group("data and model")
    add_data_option(data)
    data.add_argument("--model", choices=("twolayer", "multilayer", *CONVNETS),
                      default="twolayer",
                      help="twolayer (default: TwoLayerNet, or TwoLayerNetwork with --grad "
                      "numerical), multilayer (chapter 6's MultiLayerNet, "
                      "MultiLayerNetExtend with --batchnorm or --dropout), simple-convnet or "
                      "deep-convnet (chapters 7-8, on digits or MNIST as images)")
    data.add_argument("--hidden", type=hidden_sizes, metavar="N[,N...]",
                      help=f"hidden units (default {DEFAULT_HIDDEN}); multilayer: one size per "
                      f"hidden layer (default {','.join(map(str, DEFAULT_HIDDEN_LIST))}); "
                      f"convnets: the units of the hidden Affine (default "
                      f"{CONVNET_HIDDEN['simple-convnet']}, deep-convnet "
                      f"{CONVNET_HIDDEN['deep-convnet']})")
    data.add_argument("--activation", choices=("sigmoid", "relu"),
                      help=f"hidden activation (default {DEFAULT_ACTIVATION}; multilayer "
                      f"{DEFAULT_MULTILAYER_ACTIVATION})")
    data.add_argument("--dtype", choices=("float64", "float32"),
                      help=f"parameter dtype (default {DEFAULT_DTYPE})")
    init = data.add_mutually_exclusive_group()
    init.add_argument("--init", type=init_spec, metavar="{he,xavier,S}",
                      help="initial weights: S * standard normal, or multilayer's he "
                      "(sqrt(2/n), the book's 'relu') or xavier (sqrt(1/n), 'sigmoid'), n the "
                      "layer's input size (default 0.01, the book's; multilayer he; "
                      "deep-convnet is always he)")
    init.add_argument("--weight-init-std", type=positive_float, metavar="S",
                      help="the same as --init S")
    data.add_argument("--batchnorm", action="store_true",
                      help="multilayer: batch normalization after every hidden Affine")
    data.add_argument("--dropout", type=dropout_ratio, default=0.0, metavar="RATIO",
                      help="multilayer: dropout of this ratio after every hidden activation "
                      "(default 0: none)")
    data.add_argument("--weight-decay", type=nonnegative_float, default=0.0, metavar="LAMBDA",
                      help="multilayer: L2 weight decay lambda (default 0)")
    data.add_argument("--seed", type=nonnegative_int, default=0,
                      help="seeds the initial weights, the mini-batches and the dropout masks "
                      "(default 0)")

    loop = parser.add_argument_group("training")
    length = loop.add_mutually_exclusive_group()
    length.add_argument("--iters", type=nonnegative_int, metavar="N",
                        help=f"training steps (default {DEFAULT_ITERS}, convnets "
                        f"{CONVNET_EPOCHS} epochs; 0 with --load)")
    length.add_argument("--epochs", type=nonnegative_int, metavar="N",
                        help="training epochs of ceil(train size / batch size) steps")
    loop.add_argument("--batch-size", type=positive_int, default=100, metavar="N",
                      help="mini-batch size (default 100)")
    loop.add_argument("--optimizer", choices=tuple(OPTIMIZERS),
                      help=f"update rule (default sgd; convnets {CONVNET_OPTIMIZER}, the book's)")
    loop.add_argument("--lr", type=positive_float, metavar="LR",
                      help="learning rate (default 0.1; 0.01 for rmsprop and adam, on the "
                      "convnets 0.001)")
    loop.add_argument("--grad", choices=("backprop", "numerical"), default="backprop",
                      help="backprop (default) or numerical gradients (twolayer: volume 1's "
                      "TwoLayerNetwork.numerical_gradient; slow on the reference, very slow "
                      "for multilayer)")

    add_threads_option(loop)

    which = loop.add_mutually_exclusive_group()
    which.add_argument("--reference", action="store_true",
                       help="run fastnn.reference (pure NumPy) instead of fastnn")
    which.add_argument("--compare", action="store_true",
                       help="run fastnn, then the reference from the same start; print the "
                       "speed-up")

    out = parser.add_argument_group("output")
    out.add_argument("--print-every", type=positive_int, metavar="EPOCHS",
                     help="print accuracy every EPOCHS epochs (default: about 10 lines)")
    out.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no progress bar")
    out.add_argument("--plot", type=path, metavar="FILE.png",
                     help="save loss and accuracy curves (needs matplotlib)")
    out.add_argument("--save", type=path, metavar="FILE",
                     help="save the trained parameters: twolayer FILE.npz; convnets the book's "
                     "pickle (save_params)")
    out.add_argument("--load", type=path, metavar="FILE",
                     help="start from saved parameters: evaluate, and train on if --iters or "
                     "--epochs is given (optimizer state starts afresh). Convnets: a pickle of "
                     "save_params or the book's (load only files you trust), into the network "
                     "--model, --data and --hidden describe")
    set_command(parser, run)


# --------------------------------------------------------------------------- runs

@dataclass
class Run:
    """What one training run produced."""

    label: str
    model: object
    losses: np.ndarray = None                           # one per step
    epoch_steps: list = field(default_factory=list)     # step count at each evaluation
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    train_seconds: float = 0.0                          # the steps alone
    eval_seconds: float = 0.0                           # the accuracy evaluations
    eval_waited: float | None = None                    # of which the steps waited for (overlapped)
    wall_seconds: float = 0.0

    @property
    def steps(self):
        return len(self.losses)


def _in_dtype(x, dtype, max_bytes=64 << 20):
    """x in the model's dtype once rather than batch by batch (the same numbers: float32 pixels
    convert exactly), unless the copy would be big (MNIST's training set in float64: 376 MB)."""
    return x.astype(dtype) if x.size * np.dtype(dtype).itemsize <= max_bytes else x


def _train(label, lib, model, data, args, n_iters, steps_per_epoch, print_every):
    """Volume 1's Trainer on one model; evaluates at every epoch end, prints every print_every."""
    x_train, t_train = _in_dtype(data.x_train, args.dtype), data.t_train.astype(np.int64)
    x_test, t_test = _in_dtype(data.x_test, args.dtype), data.t_test.astype(np.int64)
    numerical = args.grad == "numerical"
    n_epochs = math.ceil(n_iters / steps_per_epoch)
    run = Run(label, model)
    width = len(str(n_epochs))

    def evaluate(step, model):
        start = time.perf_counter()
        train_acc, test_acc = accuracy(model, x_train, t_train), accuracy(model, x_test, t_test)
        return step, train_acc, test_acc, time.perf_counter() - start

    def record(result):
        step, train_acc, test_acc, seconds = result
        run.epoch_steps.append(step)
        run.train_acc.append(train_acc)
        run.test_acc.append(test_acc)
        run.eval_seconds += seconds

    def report(epoch, step, loss):
        return (f"[{label}] epoch {epoch:{width}d}/{n_epochs}  step {step:{len(str(n_iters))}d}  "
                f"loss {loss:.4f}  train acc {run.train_acc[-1]:.4f}  "
                f"test acc {run.test_acc[-1]:.4f}")

    wall_start = time.perf_counter()
    if n_iters == 0:
        run.losses = np.empty(0)
        record(evaluate(0, model))
        print(f"[{label}] no training steps: train acc {run.train_acc[-1]:.4f}  "
              f"test acc {run.test_acc[-1]:.4f}", flush=True)
        run.wall_seconds = time.perf_counter() - wall_start
        return run

    trainer = lib.NetworkTrainer(
        model, x_train, t_train, x_test, t_test, mini_batch_size=args.batch_size,
        optimizer=args.optimizer, optimizer_param={"lr": args.lr}, verbose=False,
        rng=np.random.default_rng([args.seed, 1]),  # the same batches for both halves
        gradient=GRADIENT[args.model, args.grad])
    losses = trainer.train_loss_list

    # The steps of a two-layer or chapter-6 net are so short that the epoch-end accuracies were a
    # third of the run: they are computed on a copy of the model's parameters on a second thread
    # while the next epoch trains (the kernels and BLAS release the GIL). Evaluated in place: the
    # convnets (long epochs), numerical gradients and batch norm (whose running statistics are
    # state beside the parameters). Reports wait for their epoch's accuracies.
    overlap = not (numerical or args.model in CONVNETS or args.batchnorm)
    pool = ThreadPoolExecutor(1) if overlap else None
    snapshot = copy.deepcopy(model) if overlap else None
    pending = deque()  # (evaluation, report line or None): at most one

    def collect():
        while pending:
            future, line = pending.popleft()
            record(future.result())
            if line is not None:
                bar.write(line(), file=sys.stdout)

    if overlap:
        run.eval_waited = 0.0
    bar = progress(n_iters, label, args.progress)
    step_start = time.perf_counter()
    step = 0
    try:
        while step < n_iters:
            # to the end of the epoch in one call (numerical gradients and the convnets' steps,
            # of milliseconds or more: a step at a time, for the progress bar)
            if numerical or args.model in CONVNETS:
                k = 1
            else:
                k = min(steps_per_epoch - step % steps_per_epoch, n_iters - step)
            chunk = trainer.run_steps(k)
            step += k
            bar.set_postfix_str(f"loss {chunk[-1]:.4f}", refresh=False)
            bar.update(k)
            if numerical and step == 1:
                _warn_if_slow(bar, label, time.perf_counter() - step_start, n_iters)

            if step % steps_per_epoch == 0 or step == n_iters:
                run.train_seconds += time.perf_counter() - step_start
                epoch = math.ceil(step / steps_per_epoch)
                line = None
                if epoch % print_every == 0 or step == n_iters:
                    epoch_start = (epoch - 1) * steps_per_epoch
                    mean = float(np.mean(np.asarray(losses[epoch_start:step], dtype=np.float64)))
                    line = lambda epoch=epoch, step=step, mean=mean: report(epoch, step, mean)
                if overlap:
                    start = time.perf_counter()
                    collect()  # the previous epoch's, which had this epoch's steps to finish
                    copy_params(model, snapshot)
                    pending.append((pool.submit(evaluate, step, snapshot), line))
                    run.eval_waited += time.perf_counter() - start
                else:
                    record(evaluate(step, model))
                    if line is not None:
                        bar.write(line(), file=sys.stdout)
                step_start = time.perf_counter()
        start = time.perf_counter()
        collect()
        if overlap:
            run.eval_waited += time.perf_counter() - start
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    run.losses = np.asarray(losses, dtype=np.float64)
    run.wall_seconds = time.perf_counter() - wall_start
    return run


def _warn_if_slow(bar, label, first_step_seconds, n_iters):
    projected = first_step_seconds * n_iters
    if projected > 60:
        bar.write(f"[{label}] note: one numerical-gradient step took {first_step_seconds:.2f} s; "
                  f"{n_iters} steps will take about {_fmt_duration(projected)} "
                  f"(--iters sets fewer)", file=sys.stderr)


def _fmt_duration(seconds):
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _summary(run):
    acc = f"test accuracy {run.test_acc[-1] * 100:.2f}% (train {run.train_acc[-1] * 100:.2f}%)"
    if run.steps == 0:
        return f"[{run.label}] {acc}; evaluation {run.eval_seconds:.2f} s"
    rate = run.steps / run.train_seconds
    rate = f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"
    return (f"[{run.label}] {acc}; wall time {run.wall_seconds:.2f} s: {run.steps} steps in "
            f"{run.train_seconds:.2f} s = {rate} steps/s, evaluation {run.eval_seconds:.2f} s"
            + ("" if run.eval_waited is None else
               f" (beside the steps, on a second thread: {run.eval_waited:.2f} s of it waited for)"))


# --------------------------------------------------------------------------- models

def _resolve_args(parser, args):
    """Fill the defaults that depend on other options; parser.error on what cannot work."""
    if args.weight_init_std is not None:  # the book's name for --init S (one or the other given)
        args.init = args.weight_init_std
    convnet = args.model in CONVNETS
    if args.optimizer is None:
        args.optimizer = CONVNET_OPTIMIZER if convnet else "sgd"
    if args.lr is None:
        args.lr = (convnet and CONVNET_LR.get(args.optimizer)) or DEFAULT_LR[args.optimizer]
    if args.model == "twolayer":
        for option, given in (("--batchnorm", args.batchnorm), ("--dropout", args.dropout),
                              ("--weight-decay", args.weight_decay)):
            if given:
                parser.error(f"{option} needs --model multilayer")
        if args.hidden is not None and len(args.hidden) > 1:
            parser.error(f"--hidden {','.join(map(str, args.hidden))}: the two-layer net has "
                         f"one hidden layer (--model multilayer takes a list)")
        if isinstance(args.init, str):
            parser.error(f"--init {args.init} needs --model multilayer (the two-layer net "
                         f"takes a number)")
        if args.init is None:
            args.init = DEFAULT_INIT["twolayer"]
    elif convnet:
        _resolve_convnet(parser, args)
    else:
        if args.load is not None or args.save is not None:
            parser.error("--save and --load are for --model twolayer and the convnets")
        args.hidden = args.hidden or DEFAULT_HIDDEN_LIST
        args.activation = args.activation or DEFAULT_MULTILAYER_ACTIVATION
        args.dtype = args.dtype or DEFAULT_DTYPE
        if args.init is None:
            args.init = DEFAULT_INIT["multilayer"]
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib, which is not installed "
                         "(pip install 'fastnn[cli]' or pip install matplotlib)")
    for option, file in (("--plot", args.plot), ("--save", args.save)):
        if file is not None and not file.resolve().parent.is_dir():
            parser.error(f"{option}: directory not found: '{file.parent}'")
    if args.load is not None and not args.load.is_file():
        parser.error(f"--load: file not found: '{args.load}'")


def _resolve_convnet(parser, args):
    model = args.model
    for option, given in (("--batchnorm", args.batchnorm), ("--dropout", args.dropout),
                          ("--weight-decay", args.weight_decay)):
        if given:
            parser.error(f"{option} needs --model multilayer ({CONVNETS[model]} has none)")
    if args.activation is not None:
        parser.error(f"--activation: {CONVNETS[model]}'s activation is ReLU (the book's)")
    if args.hidden is not None and len(args.hidden) > 1:
        parser.error(f"--hidden {','.join(map(str, args.hidden))}: {CONVNETS[model]} has one "
                     f"hidden Affine layer (give its size)")
    if model == "deep-convnet":
        if args.init not in (None, "he"):
            option = "--init" if args.weight_init_std is None else "--weight-init-std"
            parser.error(f"{option} {args.init}: DeepConvNet's initialisation is he (the book's)")
        if args.grad == "numerical":
            parser.error("--grad numerical: DeepConvNet has no numerical_gradient (the book's "
                         "has none); --model simple-convnet has")
    elif isinstance(args.init, str):
        parser.error(f"--init {args.init} needs --model multilayer (SimpleConvNet takes a "
                     f"number)")
    if args.data.kind == "spiral":
        parser.error(f"--model {model} needs images: --data digits or mnist:DIR, not spiral")
    args.hidden = args.hidden or (CONVNET_HIDDEN[model],)
    args.dtype = args.dtype or DEFAULT_DTYPE
    if args.init is None:
        args.init = DEFAULT_INIT.get(model, "he")


def _convnet(lib, data, args):
    """SimpleConvNet or DeepConvNet for data's images, Conv1 fitted to their size."""
    input_dim = data.x_train.shape[1:]
    config = dict(hidden_size=args.hidden[0], output_size=data.n_classes, dtype=args.dtype,
                  seed=args.seed)
    if args.model == "deep-convnet":
        return lib.DeepConvNet(input_dim, **config)
    conv_param = BOOK_CONV_PARAM if min(input_dim[1:]) >= 28 else SMALL_CONV_PARAM
    return lib.SimpleConvNet(input_dim, dict(conv_param), weight_init_std=args.init, **config)


def _load_convnet(args, model):
    """--load's pickle into model, checked (names, shapes) before anything is written."""
    try:
        model.load_params(str(args.load))
    except Exception as e:  # whatever the file holds, the user gets one line, not a trace
        raise UsageError(f"--load: cannot load '{args.load}' into {type(model).__name__} "
                         f"(built from --model, --data and --hidden): {type(e).__name__}: "
                         f"{e}") from None


def _multilayer(lib, data, args):
    """MultiLayerNet, or MultiLayerNetExtend when batch norm or dropout is asked for."""
    config = dict(activation=args.activation, weight_init_std=args.init,
                  weight_decay_lambda=args.weight_decay, dtype=args.dtype, seed=args.seed)
    if args.batchnorm or args.dropout:
        model_class = lib.MultiLayerNetExtend
        config.update(use_dropout=args.dropout > 0, dropout_ration=args.dropout,
                      use_batchnorm=args.batchnorm)
    else:
        model_class = lib.MultiLayerNet
    return model_class(data.x_train.shape[1], list(args.hidden), data.n_classes, **config)


def _twolayer_class(lib, args):
    return lib.TwoLayerNetwork if args.grad == "numerical" else lib.TwoLayerNet


def _load_twolayer(parser, args, data, model_class):
    """The model saved in --load, checked against the options given and the data."""
    try:
        model = model_class.load(args.load)
    except Exception as e:  # whatever the file holds, the user gets one line, not a trace
        raise UsageError(f"--load: cannot read a saved model from '{args.load}': "
                         f"{type(e).__name__}: {e}") from None
    n_in, hidden, n_out = layer_sizes(model)
    loaded = dict(hidden=(hidden,), activation=getattr(model, "activation", None),
                  dtype=param_arrays(model)[0].dtype.name)
    for option, value in loaded.items():
        asked = getattr(args, option)
        if asked is not None and value is not None and asked != value:
            shown = ",".join(map(str, asked)) if option == "hidden" else asked
            parser.error(f"--{option} {shown} conflicts with the loaded model's "
                         f"{value[0] if option == 'hidden' else value} ('{args.load}')")
    if n_in != data.x_train.shape[1] or n_out != data.n_classes:
        parser.error(f"the loaded model is {n_in}-{hidden}-{n_out} but {data.name} has "
                     f"{data.x_train.shape[1]} features and {data.n_classes} classes")
    args.hidden, args.dtype = loaded["hidden"], loaded["dtype"]
    args.activation = loaded["activation"] or args.activation or DEFAULT_ACTIVATION
    return model


def _build_models(parser, args, data, libs):
    """One model per library: loaded from --load or freshly initialised from --seed; the others
    are copies of the first one's parameters, so every half starts from the same point."""
    first = libs[0][1]
    if args.model == "multilayer":
        models = [_multilayer(lib, data, args) for _, lib in libs]
    elif args.model in CONVNETS:
        models = [_convnet(lib, data, args) for _, lib in libs]
        if args.load is not None:
            _load_convnet(args, models[0])
    elif args.load is not None:
        models = [_load_twolayer(parser, args, data, _twolayer_class(first, args))]
    else:
        args.hidden = args.hidden or (DEFAULT_HIDDEN,)
        args.activation = args.activation or DEFAULT_ACTIVATION
        args.dtype = args.dtype or DEFAULT_DTYPE
        models = [_twolayer_class(first, args)(
            data.x_train.shape[1], args.hidden[0], data.n_classes, args.init,
            activation=args.activation, dtype=args.dtype, seed=args.seed)]
    for _, lib in libs[len(models):]:
        models.append(_twolayer_class(lib, args)(
            data.x_train.shape[1], args.hidden[0], data.n_classes, activation=args.activation,
            dtype=args.dtype, seed=args.seed))
    for model in models[1:]:
        copy_params(models[0], model)
    return models


def _describe(model, args):
    text = describe_model(model, args.activation)
    if args.model == "multilayer":
        extras = [("batchnorm", args.batchnorm), (f"dropout {args.dropout:g}", args.dropout),
                  (f"weight decay {args.weight_decay:g}", args.weight_decay)]
        text += "".join(f", {name}" for name, on in extras if on)
    return text


# --------------------------------------------------------------------------- the command

def run(parser, args):
    _resolve_args(parser, args)
    data = load_data(args.data)
    if args.model in CONVNETS:
        data = as_images(data, args.model)
    libs = libraries(args)
    models = _build_models(parser, args, data, libs)

    train_size = len(data.x_train)
    steps_per_epoch = max(1, math.ceil(train_size / args.batch_size))
    if args.epochs is not None:
        n_iters = args.epochs * steps_per_epoch
    elif args.iters is not None:
        n_iters = args.iters
    elif args.load is not None:
        n_iters = 0
    else:
        n_iters = CONVNET_EPOCHS * steps_per_epoch if args.model in CONVNETS else DEFAULT_ITERS
    n_epochs = math.ceil(n_iters / steps_per_epoch)
    print_every = args.print_every or max(1, math.ceil(n_epochs / 10))

    source = f"loaded from '{args.load}'" if args.load else \
        f"weight_init_std {args.init}, seed {args.seed}"
    print(f"data:      {data.describe()}")
    print(f"model:     {_describe(models[0], args)} ({source})")
    if n_iters:
        print(f"training:  {OPTIMIZERS[args.optimizer]} lr {args.lr:g}, batch {args.batch_size}, "
              f"{args.grad}; {n_iters} steps = {n_epochs} epochs of {steps_per_epoch} steps; "
              f"{args.threads} thread{'s' if args.threads > 1 else ''}", flush=True)
    else:
        print("training:  none (evaluation only; --iters or --epochs trains on)", flush=True)
    if args.grad == "numerical" and any(label == "reference" for label, _ in libs):
        print("warning: --grad numerical on the reference is very slow: every step evaluates "
              "the loss twice per parameter in Python (use a small --iters)",
              file=sys.stderr, flush=True)

    runs = []
    with threads(args.threads):
        for (label, lib), model in zip(libs, models):
            run = _train(label, lib, model, data, args, n_iters, steps_per_epoch, print_every)
            print(_summary(run), flush=True)
            runs.append(run)

    if len(runs) == 2 and n_iters > 0:
        fast, ref = runs
        diff = max(float(np.max(np.abs(np.asarray(f, dtype=np.float64) - r)))
                   for f, r in zip(param_arrays(fast.model), param_arrays(ref.model)))
        print(f"speed-up:  {ref.train_seconds / fast.train_seconds:.2f}x (training steps: "
              f"reference {ref.train_seconds:.2f} s, fastnn {fast.train_seconds:.2f} s); "
              f"largest parameter difference after training {diff:.1e}")

    if args.save is not None:
        print(f"saved:     {_save(runs[0].model, args)}")
    if args.plot is not None:
        plot_runs(args.plot, runs, title=f"{_describe(models[0], args)} on "
                  f"{data.name}, {OPTIMIZERS[args.optimizer]} lr {args.lr:g}")
        print(f"plot:      {args.plot}")
    return 0


def _save(model, args):
    """--save: a convnet's params pickled as the book's save_params does, a two-layer net's npz;
    returns the file's path."""
    if args.model in CONVNETS:
        model.save_params(str(args.save))
        return args.save
    model.save(str(args.save))
    return args.save if args.save.suffix == ".npz" else Path(str(args.save) + ".npz")


def plot_runs(path, runs, title=""):
    """Loss per step (and its running mean) and train/test accuracy per epoch, saved to path."""
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for run, color in zip(runs, ("tab:blue", "tab:orange")):
        steps = np.arange(1, run.steps + 1)
        if run.steps:
            ax_loss.plot(steps, run.losses, color=color, alpha=0.25, linewidth=0.5)
            window = max(1, min(100, run.steps // 20))
            smooth = np.convolve(run.losses, np.ones(window) / window, mode="valid")
            ax_loss.plot(steps[window - 1:], smooth, color=color,
                         label=f"{run.label} (mean of {window})")
        ax_acc.plot(run.epoch_steps, run.train_acc, color=color, label=f"{run.label} train")
        ax_acc.plot(run.epoch_steps, run.test_acc, color=color, linestyle="--",
                    label=f"{run.label} test")
    ax_loss.set(xlabel="step", ylabel="loss", title="training loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="accuracy (each epoch)",
               ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
