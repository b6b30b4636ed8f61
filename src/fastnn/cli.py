"""The ``fastnn`` command line (SPEC section 6): ``train``, ``bench`` and ``gradcheck``.

    fastnn train      the book's training loop on the bundled digits (or spiral, or MNIST files)
    fastnn bench      fastnn.bench.run()'s table: fast against reference, with ratios
    fastnn gradcheck  backprop against numerical gradients, and the time of both numerical halves

``python -m fastnn`` is the same program. Bad arguments print one line on stderr and exit with
code 2, never a traceback. tqdm (the progress bar) and matplotlib (``--plot``) are optional: the
``cli`` extra installs them.

The training loop is the book's, written out once for both halves (``fastnn`` and
``fastnn.reference``), so ``--compare`` times the same Python around different libraries:

- backprop (volume 2, seed 000): ``loss = model.forward(x, t); model.backward();
  optimizer.update(model.params, model.grads)`` on ``TwoLayerNet``;
- numerical (volume 1, seed 002): ``grads = model.numerical_gradient(x, t);
  optimizer.update(model.params, grads); loss = model.loss(x, t)`` on ``TwoLayerNetwork``.

Mini-batches are drawn with replacement, as the book's ``np.random.choice(train_size, batch_size)``
does; an epoch is ``ceil(train_size / batch_size)`` steps.
"""
import argparse
import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PARAM_NAMES = ("W1", "b1", "W2", "b2")

# --optimizer name -> class name (the same in fastnn and fastnn.reference)
OPTIMIZERS = {"sgd": "SGD", "momentum": "Momentum", "nesterov": "Nesterov",
              "adagrad": "AdaGrad", "rmsprop": "RMSprop", "adam": "Adam"}
# Learning rates that reach 96-99% on the digits in the default 20000 steps. 0.1 (the book's
# chapter 4 value) is too large for the adaptive RMSprop and Adam: 91-97% there, 98-99% at 0.01.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.1,
              "rmsprop": 0.01, "adam": 0.01}
DEFAULT_ITERS = 20000       # SGD lr 0.1 on the digits: ~96.4% test accuracy for every seed tried
DEFAULT_HIDDEN = 50
DEFAULT_ACTIVATION = "sigmoid"
DEFAULT_DTYPE = "float64"
SPIRAL_N_TEST = 60          # held out of the 300 spiral points by a fixed permutation
EVAL_CHUNK = 10000          # rows per accuracy call, so MNIST's 60000 never convert at once


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block): 'fastnn train: error: ...'."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------- argument types

def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def _path(text):
    return Path(text).expanduser()


@dataclass(frozen=True)
class DataSpec:
    kind: str                   # "digits", "spiral" or "mnist"
    directory: Path = None      # for mnist

    def __str__(self):
        return f"mnist:{self.directory}" if self.kind == "mnist" else self.kind


def _data_spec(text):
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
        return (f"{self.name} ({len(self.x_train)} train / {len(self.x_test)} test, "
                f"{self.x_train.shape[1]} features, {self.n_classes} classes)")


def load_data(spec):
    """The data set named by a DataSpec, index labels; UsageError if files are missing or bad."""
    from . import datasets

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


# --------------------------------------------------------------------------- models

def _libraries(args):
    """[(label, module)]: the halves this run uses, the first being the main one."""
    import fastnn
    from fastnn import reference

    if args.compare:
        return [("fastnn", fastnn), ("reference", reference)]
    if args.reference:
        return [("reference", reference)]
    return [("fastnn", fastnn)]


def _param_arrays(model):
    """W1, b1, W2, b2 of either model (params list or dict)."""
    params = model.params
    return [params[name] for name in PARAM_NAMES] if isinstance(params, dict) else list(params)


def _copy_params(src, dst):
    for d, s in zip(_param_arrays(dst), _param_arrays(src)):
        d[...] = s


def _describe_model(model):
    W1, _, W2, _ = _param_arrays(model)
    activation = getattr(model, "activation", "?")
    return (f"{type(model).__name__} {W1.shape[0]}-{W1.shape[1]}-{W2.shape[1]}, "
            f"{activation}, {W1.dtype}")


def _accuracy(model, x, t):
    """model.accuracy over x in chunks of EVAL_CHUNK rows."""
    if len(x) <= EVAL_CHUNK:
        return float(model.accuracy(x, t))
    correct = 0.0
    for start in range(0, len(x), EVAL_CHUNK):
        stop = min(start + EVAL_CHUNK, len(x))
        correct += float(model.accuracy(x[start:stop], t[start:stop])) * (stop - start)
    return correct / len(x)


@contextlib.contextmanager
def _threads(n):
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

class _PlainProgress:
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


class _NoProgress(_PlainProgress):
    def update(self, n=1):
        pass


def _progress(total, desc, enabled):
    if not enabled or total == 0:
        return _NoProgress(total, desc)
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(total, desc)
    return tqdm(total=total, desc=desc, unit="step", mininterval=0.2, file=sys.stderr,
                dynamic_ncols=True)


# --------------------------------------------------------------------------- train

@dataclass
class Run:
    """What one training run produced."""

    label: str
    model: object
    losses: np.ndarray                                  # one per step
    epoch_steps: list = field(default_factory=list)     # step count at each evaluation
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    train_seconds: float = 0.0                          # the steps alone
    eval_seconds: float = 0.0                           # the accuracy evaluations
    wall_seconds: float = 0.0

    @property
    def steps(self):
        return len(self.losses)


def _in_dtype(x, dtype, max_bytes=64 << 20):
    """x in the model's dtype once rather than batch by batch (the same numbers: float32 pixels
    convert exactly), unless the copy would be big (MNIST's training set in float64: 376 MB)."""
    return x.astype(dtype) if x.size * np.dtype(dtype).itemsize <= max_bytes else x


def _train(label, lib, model, data, args, n_iters, steps_per_epoch, print_every):
    """The book's loop on one model; evaluates at every epoch end, prints every print_every."""
    optimizer = getattr(lib, OPTIMIZERS[args.optimizer])(lr=args.lr)
    batch_rng = np.random.default_rng([args.seed, 1])   # the same batches for both halves
    x_train, t_train = _in_dtype(data.x_train, args.dtype), data.t_train.astype(np.int64)
    x_test, t_test = _in_dtype(data.x_test, args.dtype), data.t_test.astype(np.int64)
    train_size = len(x_train)
    numerical = args.grad == "numerical"
    n_epochs = math.ceil(n_iters / steps_per_epoch)
    run = Run(label, model, np.empty(n_iters))
    width = len(str(n_epochs))

    def evaluate(step):
        start = time.perf_counter()
        run.epoch_steps.append(step)
        run.train_acc.append(_accuracy(model, x_train, t_train))
        run.test_acc.append(_accuracy(model, x_test, t_test))
        run.eval_seconds += time.perf_counter() - start

    def report(epoch, step, loss):
        return (f"[{label}] epoch {epoch:{width}d}/{n_epochs}  step {step:{len(str(n_iters))}d}  "
                f"loss {loss:.4f}  train acc {run.train_acc[-1]:.4f}  "
                f"test acc {run.test_acc[-1]:.4f}")

    wall_start = time.perf_counter()
    if n_iters == 0:
        evaluate(0)
        print(f"[{label}] no training steps: train acc {run.train_acc[-1]:.4f}  "
              f"test acc {run.test_acc[-1]:.4f}", flush=True)
        run.wall_seconds = time.perf_counter() - wall_start
        return run

    bar = _progress(n_iters, label, args.progress)
    bar_every = 1 if numerical else 10  # tqdm.update costs microseconds: not every fast step
    step_start = time.perf_counter()
    epoch_start = 0
    try:
        for i in range(n_iters):
            batch_mask = batch_rng.integers(0, train_size, args.batch_size)
            x_batch = x_train[batch_mask]
            t_batch = t_train[batch_mask]

            if numerical:
                grads = model.numerical_gradient(x_batch, t_batch)
                optimizer.update(model.params, grads)
                loss = model.loss(x_batch, t_batch)
            else:
                loss = model.forward(x_batch, t_batch)
                model.backward()
                optimizer.update(model.params, model.grads)
            run.losses[i] = loss

            step = i + 1
            if step % bar_every == 0:
                bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
                bar.update(bar_every)
            if numerical and step == 1:
                _warn_if_slow(bar, label, time.perf_counter() - step_start, n_iters)

            if step % steps_per_epoch == 0 or step == n_iters:
                run.train_seconds += time.perf_counter() - step_start
                epoch = math.ceil(step / steps_per_epoch)
                evaluate(step)
                if epoch % print_every == 0 or step == n_iters:
                    bar.write(report(epoch, step, float(np.mean(run.losses[epoch_start:step]))),
                              file=sys.stdout)
                epoch_start = step
                step_start = time.perf_counter()
        bar.update(n_iters % bar_every)
    finally:
        bar.close()
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
            f"{run.train_seconds:.2f} s = {rate} steps/s, evaluation {run.eval_seconds:.2f} s")


def _resolve_train_args(parser, args):
    """Fill the defaults that depend on other options; parser.error on what cannot work."""
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib, which is not installed "
                         "(pip install 'fastnn[cli]' or pip install matplotlib)")
    for option, path in (("--plot", args.plot), ("--save", args.save)):
        if path is not None and not path.resolve().parent.is_dir():
            parser.error(f"{option}: directory not found: '{path.parent}'")
    if args.load is not None and not args.load.is_file():
        parser.error(f"--load: file not found: '{args.load}'")


def _build_models(parser, args, data, libs):
    """One model per library: loaded from --load or freshly initialised from --seed; the others
    are copies of the first one's parameters, so every half starts from the same point."""
    class_name = "TwoLayerNetwork" if args.grad == "numerical" else "TwoLayerNet"
    first = getattr(libs[0][1], class_name)
    if args.load is not None:
        try:
            model = first.load(args.load)
        except Exception as e:  # whatever the file holds, the user gets one line, not a trace
            raise UsageError(f"--load: cannot read a saved model from '{args.load}': "
                             f"{type(e).__name__}: {e}") from None
        W1, _, W2, _ = _param_arrays(model)
        loaded = dict(hidden=W1.shape[1], activation=getattr(model, "activation", None),
                      dtype=W1.dtype.name)
        for option, value in loaded.items():
            asked = getattr(args, option)
            if asked is not None and value is not None and asked != value:
                parser.error(f"--{option} {asked} conflicts with the loaded model's {value} "
                             f"('{args.load}')")
        if W1.shape[0] != data.x_train.shape[1] or W2.shape[1] != data.n_classes:
            parser.error(f"the loaded model is {W1.shape[0]}-{W1.shape[1]}-{W2.shape[1]} but "
                         f"{data.name} has {data.x_train.shape[1]} features and "
                         f"{data.n_classes} classes")
        args.hidden, args.dtype = loaded["hidden"], loaded["dtype"]
        args.activation = loaded["activation"] or args.activation or DEFAULT_ACTIVATION
    else:
        args.hidden = args.hidden or DEFAULT_HIDDEN
        args.activation = args.activation or DEFAULT_ACTIVATION
        args.dtype = args.dtype or DEFAULT_DTYPE
        model = first(data.x_train.shape[1], args.hidden, data.n_classes, args.weight_init_std,
                      activation=args.activation, dtype=args.dtype, seed=args.seed)

    models = [model]
    for _, lib in libs[1:]:
        other = getattr(lib, class_name)(data.x_train.shape[1], args.hidden, data.n_classes,
                                         activation=args.activation, dtype=args.dtype,
                                         seed=args.seed)
        _copy_params(model, other)
        models.append(other)
    return models


def cmd_train(parser, args):
    _resolve_train_args(parser, args)
    data = load_data(args.data)
    libs = _libraries(args)
    models = _build_models(parser, args, data, libs)

    train_size = len(data.x_train)
    steps_per_epoch = max(1, math.ceil(train_size / args.batch_size))
    if args.epochs is not None:
        n_iters = args.epochs * steps_per_epoch
    elif args.iters is not None:
        n_iters = args.iters
    else:
        n_iters = 0 if args.load is not None else DEFAULT_ITERS
    n_epochs = math.ceil(n_iters / steps_per_epoch)
    print_every = args.print_every or max(1, math.ceil(n_epochs / 10))

    source = f"loaded from '{args.load}'" if args.load else \
        f"weight_init_std {args.weight_init_std}, seed {args.seed}"
    print(f"data:      {data.describe()}")
    print(f"model:     {_describe_model(models[0])} ({source})")
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
    with _threads(args.threads):
        for (label, lib), model in zip(libs, models):
            run = _train(label, lib, model, data, args, n_iters, steps_per_epoch, print_every)
            print(_summary(run), flush=True)
            runs.append(run)

    if len(runs) == 2 and n_iters > 0:
        fast, ref = runs
        diff = max(float(np.max(np.abs(np.asarray(f, dtype=np.float64) - r)))
                   for f, r in zip(_param_arrays(fast.model), _param_arrays(ref.model)))
        print(f"speed-up:  {ref.train_seconds / fast.train_seconds:.2f}x (training steps: "
              f"reference {ref.train_seconds:.2f} s, fastnn {fast.train_seconds:.2f} s); "
              f"largest parameter difference after training {diff:.1e}")

    if args.save is not None:
        runs[0].model.save(str(args.save))
        saved = args.save if args.save.suffix == ".npz" else Path(str(args.save) + ".npz")
        print(f"saved:     {saved}")
    if args.plot is not None:
        plot_runs(args.plot, runs, title=f"{_describe_model(models[0])} on {data.name}, "
                  f"{OPTIMIZERS[args.optimizer]} lr {args.lr:g}")
        print(f"plot:      {args.plot}")
    return 0


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


# --------------------------------------------------------------------------- bench

def cmd_bench(parser, args):
    from . import bench

    bench.run(threads=args.threads, with_torch=not args.no_torch,
              repeat=1 if args.quick else 7)
    return 0


# --------------------------------------------------------------------------- gradcheck

def cmd_gradcheck(parser, args):
    import fastnn
    from fastnn import reference

    data = load_data(args.data)
    if args.batch_size > len(data.x_train):
        parser.error(f"--batch-size {args.batch_size} exceeds the {len(data.x_train)} "
                     f"training images of {data.name}")
    x, t = data.x_train[:args.batch_size], data.t_train[:args.batch_size]
    shape = (data.x_train.shape[1], args.hidden, data.n_classes)
    config = dict(activation=args.activation, dtype=args.dtype, seed=args.seed)
    model = fastnn.TwoLayerNetwork(*shape, args.weight_init_std, **config)
    ref_model = reference.TwoLayerNetwork(*shape, args.weight_init_std, **config)
    _copy_params(model, ref_model)
    n_params = sum(p.size for p in _param_arrays(model))

    print(f"gradient check: {_describe_model(model)}, weight_init_std {args.weight_init_std}, "
          f"seed {args.seed}; the first {len(x)} training images of {data.name}")
    with _threads(args.threads):
        table = fastnn.gradient_check(model, x, t)
        grads, timings = {}, {}
        for label, m in (("fastnn", model), ("reference", ref_model)):
            start = time.perf_counter()
            grads[label] = m.numerical_gradient(x, t)
            timings[label] = time.perf_counter() - start

    print(f"{'param':6s} {'shape':>10s} {'mean |backprop - numerical|':>28s} "
          f"{'max |backprop - numerical|':>28s}")
    for name, param in zip(PARAM_NAMES, _param_arrays(model)):
        mean, biggest = table[name]
        print(f"{name:6s} {str(param.shape):>10s} {mean:28.3e} {biggest:28.3e}")

    agree = max(float(np.max(np.abs(np.asarray(grads["fastnn"][k], dtype=np.float64)
                                    - grads["reference"][k]))) for k in PARAM_NAMES)
    print(f"numerical gradient of all {n_params} parameters ({2 * n_params} loss evaluations), "
          f"one call each:")
    print(f"  fastnn     {timings['fastnn']:9.4f} s")
    print(f"  reference  {timings['reference']:9.4f} s   "
          f"({timings['reference'] / timings['fastnn']:.1f}x the fastnn time)")
    print(f"  largest |fastnn - reference| numerical gradient difference: {agree:.1e}")
    return 0


# --------------------------------------------------------------------------- parser

def build_parser():
    parser = _Parser(prog="fastnn", description="fastnn: the layers of 'Deep Learning from "
                     "Scratch' on compiled kernels.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    train = sub.add_parser(
        "train", help="train the two-layer net (digits by default)",
        description="Train the book's two-layer net with a progress bar; prints loss and "
        "train/test accuracy every few epochs and a summary (test accuracy, wall time, "
        "steps/s).")
    data = train.add_argument_group("data and model")
    data.add_argument("--data", type=_data_spec, default=DataSpec("digits"),
                      metavar="{digits,spiral,mnist:DIR}",
                      help="the bundled 8x8 digits (default), volume 2's spiral (60 of its "
                      "300 points held out), or the four MNIST IDX files (gz or raw) in DIR")
    data.add_argument("--hidden", type=_positive_int, metavar="N",
                      help=f"hidden units (default {DEFAULT_HIDDEN})")
    data.add_argument("--activation", choices=("sigmoid", "relu"),
                      help=f"hidden activation (default {DEFAULT_ACTIVATION})")
    data.add_argument("--dtype", choices=("float64", "float32"),
                      help=f"parameter dtype (default {DEFAULT_DTYPE})")
    data.add_argument("--weight-init-std", type=_positive_float, default=0.01, metavar="S",
                      help="initial weights are S * standard normal (default 0.01, the book's)")
    data.add_argument("--seed", type=_nonnegative_int, default=0,
                      help="seeds the initial weights and the mini-batches (default 0)")

    loop = train.add_argument_group("training")
    length = loop.add_mutually_exclusive_group()
    length.add_argument("--iters", type=_nonnegative_int, metavar="N",
                        help=f"training steps (default {DEFAULT_ITERS}; 0 with --load)")
    length.add_argument("--epochs", type=_nonnegative_int, metavar="N",
                        help="training epochs of ceil(train size / batch size) steps")
    loop.add_argument("--batch-size", type=_positive_int, default=100, metavar="N",
                      help="mini-batch size (default 100)")
    loop.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="sgd",
                      help="update rule (default sgd)")
    loop.add_argument("--lr", type=_positive_float, metavar="LR",
                      help="learning rate (default 0.1; 0.01 for rmsprop and adam)")
    loop.add_argument("--grad", choices=("backprop", "numerical"), default="backprop",
                      help="backprop (volume 2's TwoLayerNet, default) or numerical "
                      "(volume 1's TwoLayerNetwork.numerical_gradient; slow on the reference)")

    loop.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                      help="threads for fastnn's kernels and BLAS (default 1)")

    which = loop.add_mutually_exclusive_group()
    which.add_argument("--reference", action="store_true",
                       help="run fastnn.reference (pure NumPy) instead of fastnn")
    which.add_argument("--compare", action="store_true",
                       help="run fastnn, then the reference from the same start; print the "
                       "speed-up")

    out = train.add_argument_group("output")
    out.add_argument("--print-every", type=_positive_int, metavar="EPOCHS",
                     help="print accuracy every EPOCHS epochs (default: about 10 lines)")
    out.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no progress bar")
    out.add_argument("--plot", type=_path, metavar="FILE.png",
                     help="save loss and accuracy curves (needs matplotlib)")
    out.add_argument("--save", type=_path, metavar="FILE.npz",
                     help="save the trained parameters")
    out.add_argument("--load", type=_path, metavar="FILE.npz",
                     help="start from saved parameters: evaluate, and train on if --iters or "
                     "--epochs is given (optimizer state starts afresh)")
    train.set_defaults(func=cmd_train, command_parser=train)

    bench = sub.add_parser("bench", help="kernel timings: fastnn against the reference",
                           description="fastnn.bench.run(): median times of the fast and the "
                           "reference half, their ratio, the memory-bandwidth bound, and "
                           "PyTorch when installed.")
    bench.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                       help="threads for fastnn and BLAS (default 1)")
    bench.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    bench.add_argument("--quick", action="store_true",
                       help="one timing run per workload instead of seven")
    bench.set_defaults(func=cmd_bench, command_parser=bench)

    check = sub.add_parser("gradcheck", help="backprop against numerical gradients",
                           description="The book's gradient check (volume 1, chapter 5) on "
                           "TwoLayerNetwork, and the time of the fast and the reference "
                           "numerical gradient.")
    check.add_argument("--data", type=_data_spec, default=DataSpec("digits"),
                       metavar="{digits,spiral,mnist:DIR}", help="data set (default digits)")
    check.add_argument("--hidden", type=_positive_int, default=DEFAULT_HIDDEN, metavar="N",
                       help=f"hidden units (default {DEFAULT_HIDDEN})")
    check.add_argument("--batch-size", type=_positive_int, default=3, metavar="N",
                       help="the first N training images (default 3, as the book)")
    check.add_argument("--activation", choices=("sigmoid", "relu"), default=DEFAULT_ACTIVATION,
                       help=f"hidden activation (default {DEFAULT_ACTIVATION})")
    check.add_argument("--dtype", choices=("float64", "float32"), default=DEFAULT_DTYPE,
                       help=f"parameter dtype (default {DEFAULT_DTYPE})")
    check.add_argument("--weight-init-std", type=_positive_float, default=0.1, metavar="S",
                       help="initial weight scale (default 0.1: with large weights the "
                       "1e-7 inside the log makes backprop and numerics differ legitimately)")
    check.add_argument("--seed", type=_nonnegative_int, default=0,
                       help="seeds the initial weights (default 0)")
    check.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                       help="threads for fastnn's kernels and BLAS (default 1)")
    check.set_defaults(func=cmd_gradcheck, command_parser=check)

    from .search import add_parser as add_search
    add_search(sub)
    return parser


def main(argv=None):
    """Entry point of ``fastnn`` and ``python -m fastnn``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args.command_parser, args)
    except UsageError as e:
        args.command_parser.error(" ".join(str(e).split()))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
