"""Hyperparameter search (volume 1, section 6.5) on Optuna: one process, several, or many machines.

The book's search (``ch06/hyperparameter_optimization.py``) trains a MultiLayerNet 784-[100]x6-10
for 50 epochs on 400 of 500 training images, validates on the other 100 (split after
``shuffle_dataset``), and samples the learning rate from 10^U(-6, -2) and the weight decay from
10^U(-8, -4) at random. :func:`search` runs the same trials as an Optuna study, whose storage (an
SQLite file by default, or any database URL Optuna accepts) many worker processes and machines
share: each asks the storage for its next trial, so none is run twice, and with heartbeats a trial
whose worker died is marked failed and retried once with the same parameters.

Reproducibility: every random draw of a trial (its parameters under random sampling, its initial
weights, its mini-batches) comes from the study's seed and the trial's number, so a seeded study
gives the same trials whatever the number of workers; the seed is kept in the study, and a study
created without one gets a random seed there, so all its workers see the same validation split.

Needs the ``search`` extra (``pip install 'fastnn[search]'``: optuna, and psycopg2 for PostgreSQL).
"""
import math
import os
import socket
import time
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SearchSpace", "search", "SearchError"]

SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "median")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
MODELS = ("multilayer",)
# URL schemes Optuna's RDB storage takes through SQLAlchemy (a driver may follow a "+")
STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql")


class SearchError(ValueError):
    """A search that cannot start: bad options, an unusable storage, an incompatible study."""


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise SearchError("fastnn search needs optuna: pip install 'fastnn[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass(frozen=True)
class Range:
    """A float range [low, high] sampled on a log scale (log) or uniformly; low == high fixes it."""

    low: float
    high: float
    log: bool = True

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise SearchError(f"range bounds must be finite, got {self.low}..{self.high}")
        if self.low > self.high:
            raise SearchError(f"range low must be below high, got {self.low} >= {self.high}")
        if self.log and self.low <= 0:
            raise SearchError(f"a log-scale range needs low > 0, got {self.low}")

    @property
    def fixed(self):
        return self.low == self.high


@dataclass(frozen=True)
class SearchSpace:
    """What a trial samples. The defaults are the book's: lr 10^U(-6, -2), weight decay
    10^U(-8, -4), SGD, six hidden layers of 100, no batch norm, no dropout."""

    lr: Range = Range(1e-6, 1e-2)
    weight_decay: Range = Range(1e-8, 1e-4)
    optimizers: tuple = ("sgd",)
    hidden: tuple = ((100,) * 6,)
    batchnorm: tuple = (False,)
    dropout: Range = Range(0.0, 0.0, log=False)

    def __post_init__(self):
        if not self.optimizers or any(o not in OPTIMIZERS for o in self.optimizers):
            raise SearchError(f"optimizers must be among {', '.join(OPTIMIZERS)}, "
                              f"got {', '.join(self.optimizers) or 'none'}")
        if not self.hidden or any(not h or min(h) < 1 for h in self.hidden):
            raise SearchError(f"hidden layer sizes must be positive, got {self.hidden}")
        if not (0 <= self.dropout.low and self.dropout.high < 1):
            raise SearchError(f"dropout must lie in [0, 1), got {self.dropout.low}..{self.dropout.high}")

    def searched(self):
        """Names of the dimensions that vary (the columns of the results table)."""
        names = [name for name in ("lr", "weight_decay", "dropout") if not getattr(self, name).fixed]
        names += [name for name, choices in (("optimizer", self.optimizers), ("hidden", self.hidden),
                                             ("batchnorm", self.batchnorm)) if len(choices) > 1]
        return names

    def suggest(self, trial):
        """The trial's hyperparameters, sampled through the Optuna trial."""
        def real(name, r):
            return r.low if r.fixed else trial.suggest_float(name, r.low, r.high, log=r.log)

        def choice(name, choices, encode=str):
            if len(choices) == 1:
                return choices[0]
            by_name = {encode(c): c for c in choices}
            return by_name[trial.suggest_categorical(name, list(by_name))]

        return dict(lr=real("lr", self.lr), weight_decay=real("weight_decay", self.weight_decay),
                    optimizer=choice("optimizer", self.optimizers),
                    hidden=choice("hidden", self.hidden, _hidden_text),
                    batchnorm=choice("batchnorm", self.batchnorm),
                    dropout=real("dropout", self.dropout))

    def describe(self):
        return {"lr": _range_text(self.lr), "weight_decay": _range_text(self.weight_decay),
                "optimizer": ",".join(self.optimizers),
                "hidden": ",".join(_hidden_text(h) for h in self.hidden),
                "batchnorm": ",".join(str(b) for b in self.batchnorm),
                "dropout": _range_text(self.dropout)}


def _hidden_text(sizes):
    """(100, 100, 100) -> '100x3'; mixed sizes are listed: (100, 50) -> '100-50'."""
    if len(set(sizes)) == 1:
        return f"{sizes[0]}x{len(sizes)}"
    return "-".join(str(s) for s in sizes)


def _range_text(r):
    return f"{r.low:g}" if r.fixed else f"{r.low:g}:{r.high:g}{'' if r.log else ' (linear)'}"


class SeededRandomSampler:
    """Random sampling in which a trial's value of each parameter depends only on the study's
    seed, the trial's number and the parameter's name: the same trials in one worker or many
    (a retried trial's parameters are fixed by Optuna and not sampled).
    Log-scale ranges are 10^U(log10 low, log10 high), the book's draw."""

    def __new__(cls, seed):
        optuna = require_optuna()
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        class _Sampler(optuna.samplers.BaseSampler):
            def infer_relative_search_space(self, study, trial):
                return {}

            def sample_relative(self, study, trial, search_space):
                return {}

            def sample_independent(self, study, trial, name, distribution):
                rng = np.random.default_rng([seed, trial.number, zlib.crc32(name.encode())])
                if isinstance(distribution, CategoricalDistribution):
                    return distribution.choices[rng.integers(len(distribution.choices))]
                if isinstance(distribution, FloatDistribution):
                    lo, hi = distribution.low, distribution.high
                    if distribution.log:
                        return float(10 ** rng.uniform(math.log10(lo), math.log10(hi)))
                    return float(rng.uniform(lo, hi))
                raise TypeError(f"no seeded sampling for {type(distribution).__name__}")

        return _Sampler()


def origin(trial):
    """The number of the trial whose draws this one runs: its own, or for a retry of a failed
    trial the first one's (a retry inherits the user attribute "origin", so it repeats the same
    weights and mini-batches; its parameters are fixed by Optuna)."""
    return trial.user_attrs.get("origin", trial.number)


@dataclass
class Data:
    """The training and validation sets of a search, split as the book does."""

    name: str
    x_train: np.ndarray
    t_train: np.ndarray
    x_val: np.ndarray
    t_val: np.ndarray


def split_data(x, t, train_size, validation_rate, seed, shuffle):
    """The book's split: the first train_size images, shuffled by shuffle_dataset (NumPy's global
    state seeded with seed, restored afterwards), the first validation_rate of them for validation."""
    x, t = x[:train_size], t[:train_size]
    n_val = int(x.shape[0] * validation_rate)
    if n_val < 1 or n_val >= x.shape[0]:
        raise SearchError(f"{x.shape[0]} images leave no validation or no training set at "
                          f"validation rate {validation_rate}")
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        x, t = shuffle(x, t)
    finally:
        np.random.set_state(state)
    return x[n_val:], t[n_val:], x[:n_val], t[:n_val]


@dataclass
class Settings:
    """Everything that defines a study's trials (stored with the study; a later run with other
    settings is refused, so that one study never mixes two experiments)."""

    data: str = "digits"
    model: str = "multilayer"
    epochs: int = 50
    batch_size: int = 100
    train_size: int = 500
    validation_rate: float = 0.2
    dtype: str = "float64"
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self):
        if self.model not in MODELS:
            raise SearchError(f"unknown model {self.model!r}; choose from {', '.join(MODELS)}")
        for name in ("epochs", "batch_size", "train_size"):
            if getattr(self, name) < 1:
                raise SearchError(f"{name.replace('_', ' ')} must be positive, got {getattr(self, name)}")
        if not 0 < self.validation_rate < 1:
            raise SearchError(f"validation rate must lie in (0, 1), got {self.validation_rate}")
        if not (self.data == "digits" or self.data.startswith("mnist:")):
            raise SearchError(f"unknown data {self.data!r}: expected digits or mnist:DIR")
        if self.dtype not in ("float64", "float32"):
            raise SearchError(f"dtype must be float64 or float32, got {self.dtype}")

    def describe(self):
        d = {k: getattr(self, k) for k in ("data", "model", "epochs", "batch_size", "train_size",
                                           "validation_rate", "dtype")}
        d.update(self.space.describe())
        return d


def train_trial(lib, data, settings, params, seed, on_epoch=None):
    """Train one network as the book's search does with volume 1's Trainer, and return
    (validation accuracies, training accuracies), one per epoch.

    The Trainer's steps written out: a mini-batch drawn with replacement, the gradient, the
    optimizer's update, and both accuracies after the first step of each epoch. Its per-step
    mini-batch loss is left out (a quarter of a step's time): the search never reads it, and it
    moves no state (the loss runs with train_flg=False: no dropout draws, running statistics
    kept), so the accuracies are the Trainer's (tests/test_search.py compares them).

    lib: fastnn or fastnn.reference; seed (a tuple of ints) seeds the network's weights and the
    mini-batches; on_epoch(val_accs, train_accs), called after each epoch's evaluation with the
    lists so far, may raise to stop the trial (the pruner does)."""
    net = lib.MultiLayerNetExtend(
        data.x_train.shape[1], list(params["hidden"]), 10,
        weight_decay_lambda=params["weight_decay"], use_batchnorm=params["batchnorm"],
        use_dropout=params["dropout"] > 0, dropout_ration=params["dropout"],
        dtype=np.dtype(settings.dtype), seed=np.random.default_rng([*seed, 1]))
    x, t = data.x_train.astype(settings.dtype, copy=False), data.t_train
    x_val = data.x_val.astype(settings.dtype, copy=False)
    optimizer = lib.NetworkTrainer.optimizer_classes[params["optimizer"]](lr=params["lr"])
    rng = np.random.default_rng([*seed, 2])
    n, batch_size = x.shape[0], settings.batch_size
    iter_per_epoch = max(n / batch_size, 1)
    val_accs, train_accs = [], []
    for i in range(int(settings.epochs * iter_per_epoch)):
        mask = rng.integers(0, n, batch_size)  # the Trainer's draw with rng
        optimizer.update(net.params, net.gradient(x[mask], t[mask]))
        if i % iter_per_epoch == 0:
            train_accs.append(net.accuracy(x, t))
            val_accs.append(net.accuracy(x_val, data.t_val))
            if on_epoch is not None:
                on_epoch(val_accs, train_accs)
    return val_accs, train_accs


# ---------------------------------------------------------------------------- storage and study

def check_storage(url):
    """url if Optuna can use it as a storage; else SearchError naming the problem."""
    scheme = url.split(":", 1)[0].split("+", 1)[0] if ":" in url else ""
    if scheme not in STORAGE_SCHEMES:
        raise SearchError(f"unknown storage {url!r}: expected a database URL starting with "
                          f"{', '.join(s + '://' for s in STORAGE_SCHEMES)}")
    if scheme == "postgresql":
        try:
            import psycopg2  # noqa: F401 -- only whether it is there
        except ImportError:
            raise SearchError("a postgresql:// storage needs psycopg2: "
                              "pip install 'fastnn[search]'") from None
    return url


def open_storage(url, heartbeat):
    """Optuna's RDB storage at url. heartbeat (seconds, or None): a running trial's worker
    reports every heartbeat seconds; a trial silent for 3 heartbeats is marked failed by the
    next worker that starts a trial, and retried once with the same parameters.

    An SQLite file is put in WAL mode with synchronous=NORMAL: a commit does not wait for the
    disk (Optuna commits about ten times a trial: 0.18 s of waiting a trial here, 0.05 s in WAL
    mode). A killed process loses nothing; a power failure may lose the last trials, never the
    file. WAL needs the file on a local disk: machines share a study through a database server."""
    optuna = require_optuna()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    sqlite = url.startswith("sqlite")
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else {}
    if heartbeat is None:
        storage = RDBStorage(url, engine_kwargs=engine_kwargs)
    else:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                                 grace_period=3 * heartbeat,
                                 heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                     max_retry=1))
    if sqlite:
        import sqlalchemy

        def pragmas(connection, record):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        sqlalchemy.event.listen(storage.engine, "connect", pragmas)
        storage.engine.dispose()  # the connections of Optuna's set-up, made without them
    return storage


def open_study(storage, name, settings, seed, sampler, pruner, worker=0):
    """Create the study or join the one stored under name; SearchError when the stored one was
    made with other settings (so one study never mixes two experiments) or another seed."""
    optuna = require_optuna()
    wanted = settings.describe()
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                load_if_exists=True)
    stored = study.user_attrs.get("settings")
    if stored is None:
        # a new study: its settings and seed are written once; a worker that created the same
        # study at the same moment may have written first, so read back what is stored
        study.set_user_attr("seed", int(np.random.SeedSequence().entropy % 2**32)
                            if seed is None else int(seed))
        study.set_user_attr("settings", wanted)
        study = optuna.load_study(storage=storage, study_name=name)
        stored = study.user_attrs["settings"]
    if stored != wanted:
        diff = ", ".join(f"{k}: {stored.get(k)!r} stored, {wanted.get(k)!r} asked"
                         for k in sorted(set(stored) | set(wanted)) if stored.get(k) != wanted.get(k))
        raise SearchError(f"study {name!r} was made with other settings ({diff}); "
                          f"use another --study")
    stored_seed = study.user_attrs["seed"]
    if seed is not None and seed != stored_seed:
        raise SearchError(f"study {name!r} has seed {stored_seed}, asked for {seed}; "
                          f"use another --study or leave out --seed")
    # TPE learns from the finished trials, which differ between workers: seeded per worker, it is
    # reproducible with one worker only
    study.sampler = (SeededRandomSampler(stored_seed) if sampler == "random"
                     else optuna.samplers.TPESampler(seed=stored_seed + worker))
    study.pruner = (optuna.pruners.MedianPruner(n_warmup_steps=5) if pruner == "median"
                    else optuna.pruners.NopPruner())
    return study


# ---------------------------------------------------------------------------- running trials

def load_training_set(settings):
    """(x, t): the training images and index labels of settings.data ('digits' or 'mnist:DIR');
    SearchError when the MNIST files are missing or corrupt."""
    import fastnn
    if settings.data == "digits":
        (x, t), _ = fastnn.load_digits()
    else:
        try:
            (x, t), _ = fastnn.load_mnist(os.path.expanduser(settings.data[len("mnist:"):]))
        except (OSError, ValueError) as e:
            raise SearchError(f"--data {settings.data}: {e}") from None
    return x, t


def load_search_data(settings, seed, xt=None):
    """The search's training and validation sets (split with seed) from settings.data, or from
    xt = load_training_set(settings) when given."""
    import fastnn
    x, t = load_training_set(settings) if xt is None else xt
    return Data(settings.data, *split_data(x, t, settings.train_size, settings.validation_rate,
                                           seed, fastnn.util.shuffle_dataset))


def _objective(lib, data, settings, seed, pruning):
    optuna = require_optuna()

    def objective(trial):
        params = settings.space.suggest(trial)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("origin", origin(trial))
        curves = [[], []]

        def on_epoch(val_accs, train_accs):
            curves[:] = [float(a) for a in val_accs], [float(a) for a in train_accs]
            # a report is a database write: only for the pruner, which reads them
            if pruning:
                trial.report(val_accs[-1], len(val_accs) - 1)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        try:
            train_trial(lib, data, settings, params, (seed, origin(trial)), on_epoch)
        finally:  # the curves so far, also of a pruned trial
            trial.set_user_attr("val_acc", curves[0])
            trial.set_user_attr("train_acc", curves[1])
        return curves[0][-1]

    return objective


def run_worker(settings, trials, storage_url, study_name, seed=None, sampler="random",
               pruner="none", heartbeat=10, reference=False, worker=0, callbacks=(),
               storage=None):
    """Run `trials` trials of the study in this process (one thread for fastnn and BLAS);
    storage: an open storage for storage_url, else one is opened."""
    import fastnn
    lib = fastnn.reference if reference else fastnn
    if storage is None:
        storage = open_storage(storage_url, heartbeat)
    study = open_study(storage, study_name, settings, seed, sampler, pruner, worker)
    data = load_search_data(settings, study.user_attrs["seed"])
    with _one_thread():
        study.optimize(_objective(lib, data, settings, study.user_attrs["seed"],
                                  pruner != "none"),
                       n_trials=trials, callbacks=list(callbacks), catch=())
    return study


def _one_thread():
    """fastnn and NumPy's BLAS on one thread each: workers are one per core."""
    import contextlib

    import fastnn
    stack = contextlib.ExitStack()
    fastnn.set_num_threads(1)
    stack.callback(fastnn.set_num_threads, 0)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
    return stack


def _worker_main(kwargs):
    run_worker(**kwargs)


def search(settings, trials, storage="sqlite:///fastnn-search.db", study_name="fastnn-search",
           seed=None, sampler="random", pruner="none", jobs=1, heartbeat=10, reference=False,
           on_trial=None):
    """Run `trials` more trials of the study `study_name` in `storage` on `jobs` worker
    processes (this one and jobs - 1 started beside it); returns the Optuna study.

    on_trial(finished, best) is called as trials finish (finished: trials finished since the
    start, best: the study's best value or None) -- the command line's progress bar."""
    if sampler not in SAMPLERS:
        raise SearchError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise SearchError(f"unknown pruner {pruner!r}; choose from {', '.join(PRUNERS)}")
    if trials < 1:
        raise SearchError(f"trials must be positive, got {trials}")
    if jobs < 1:
        raise SearchError(f"jobs must be positive, got {jobs}")
    if heartbeat is not None and heartbeat < 1:
        raise SearchError(f"heartbeat must be at least 1 second, got {heartbeat}")
    check_storage(storage)
    optuna = require_optuna()
    xt = load_training_set(settings)
    # open (and check) the study here first: a bad storage or a mismatched study stops the
    # command before any worker starts
    opened = open_storage(storage, heartbeat)
    study = open_study(opened, study_name, settings, seed, sampler, pruner)
    load_search_data(settings, study.user_attrs["seed"], xt)
    kwargs = dict(settings=settings, storage_url=storage, study_name=study_name, seed=seed,
                  sampler=sampler, pruner=pruner, heartbeat=heartbeat, reference=reference)
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                       optuna.trial.TrialState.FAIL)
    before = len(study.get_trials(deepcopy=False, states=finished_states))
    reported = 0

    def report():
        nonlocal reported
        if on_trial is None:
            return
        finished = len(study.get_trials(deepcopy=False, states=finished_states)) - before
        if finished != reported:
            on_trial(finished, _best_value(study))
        reported = finished

    # this process is worker 0, with the storage it has open; jobs - 1 more start beside it (a
    # process start and Optuna's storage take seconds, which this one spends on its trials)
    import multiprocessing
    context = multiprocessing.get_context("spawn")  # no fork after OpenMP and BLAS threads
    share = [trials // jobs + (i < trials % jobs) for i in range(jobs)]
    workers = [context.Process(target=_worker_main,
                               kwargs=dict(kwargs=dict(kwargs, trials=share[i], worker=i)))
               for i in range(1, jobs)]
    for w in workers:
        w.start()
    try:
        run_worker(trials=share[0], callbacks=[lambda study, trial: report()], storage=opened,
                   **kwargs)
        while any(w.is_alive() for w in workers):
            report()
            time.sleep(0.5)
    finally:
        for w in workers:
            w.join()
    failed = [i for i, w in enumerate(workers, 1) if w.exitcode != 0]
    if failed:
        raise SearchError(f"worker process(es) {failed} exited with status "
                          f"{[workers[i - 1].exitcode for i in failed]}; their running trials "
                          f"are retried by the next search on this study")
    report()
    return study


def _best_value(study):
    values = [t.value for t in study.get_trials(deepcopy=False)
              if t.value is not None and t.state.name == "COMPLETE"]
    return max(values) if values else None


# ---------------------------------------------------------------------------- results

def results(study):
    """The study's finished trials, best validation accuracy first: a list of dicts with number,
    state, value (last validation accuracy; None unless complete), params (all of them, the
    fixed ones too), val_acc and train_acc per epoch, seconds."""
    settings = study.user_attrs["settings"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name not in ("COMPLETE", "PRUNED", "FAIL"):
            continue
        params = {"lr": settings["lr"], "weight_decay": settings["weight_decay"],
                  "optimizer": settings["optimizer"], "hidden": settings["hidden"],
                  "batchnorm": settings["batchnorm"], "dropout": settings["dropout"]}
        params.update(t.params)
        seconds = ((t.datetime_complete - t.datetime_start).total_seconds()
                   if t.datetime_complete and t.datetime_start else None)
        rows.append(dict(number=t.number, state=t.state.name, value=t.value, params=params,
                         val_acc=t.user_attrs.get("val_acc", []),
                         train_acc=t.user_attrs.get("train_acc", []), seconds=seconds))
    complete = sorted((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: -r["value"])
    return complete + [r for r in rows if r["state"] != "COMPLETE"]


def format_results(rows, searched, limit=None):
    """The book's lines: 'Best-1 (val acc: 0.83) | lr: ..., weight decay: ...' and the other
    searched dimensions, for the complete trials best first."""
    lines = []
    names = ["lr", "weight_decay"] + [n for n in searched if n not in ("lr", "weight_decay")]
    for i, row in enumerate(r for r in rows if r["state"] == "COMPLETE"):
        if limit is not None and i >= limit:
            break
        cols = ", ".join(f"{n.replace('_', ' ')}: {_fmt_param(row['params'][n])}" for n in names)
        lines.append(f"Best-{i + 1} (val acc: {row['value']:.4g}) | {cols}  [trial {row['number']}]")
    return lines


def _fmt_param(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_results(path, rows, count=20, columns=5):
    """The book's figure: validation (solid) and training (dashed) accuracy per epoch of the best
    `count` complete trials, in a grid of `columns`; written to path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    best = [r for r in rows if r["state"] == "COMPLETE"][:count]
    n_rows = max(1, math.ceil(len(best) / columns))
    fig = plt.figure(figsize=(2.4 * columns, 2.0 * n_rows))
    for i, row in enumerate(best):
        ax = fig.add_subplot(n_rows, columns, i + 1)
        ax.set_title(f"Best-{i + 1}")
        ax.set_ylim(0.0, 1.0)
        if i % columns:
            ax.set_yticks([])
        ax.set_xticks([])
        epochs = np.arange(len(row["val_acc"]))
        ax.plot(epochs, row["val_acc"])
        ax.plot(epochs, row["train_acc"], "--")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
