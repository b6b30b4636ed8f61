"""fastnn search: the book's hyperparameter search (volume 1, 6.5) as an Optuna study; the
library is fastnn.search."""
import argparse
import json
import sys
import time

from .common import positive_int, set_command
from ..search import (OPTIMIZERS, PRUNERS, SAMPLERS, Range, SearchError, SearchSpace, Settings,
                      require_optuna, check_storage, format_results, plot_results, results,
                      search)


def _range(text, log=True):
    """'LOW:HIGH' (or one number, fixed) -> Range."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH or one number, got {text!r}")
    try:
        return Range(values[0], values[-1], log=log and values[0] != values[-1])
    except SearchError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _hidden_choices(text):
    """'100x6' or '100-50-25', comma-separated choices -> tuple of size tuples."""
    choices = []
    for item in text.split(","):
        try:
            if "x" in item:
                size, count = item.split("x")
                sizes = (int(size),) * int(count)
            else:
                sizes = tuple(int(s) for s in item.split("-"))
        except ValueError:
            sizes = ()
        if not sizes or min(sizes) < 1:
            raise argparse.ArgumentTypeError(
                f"hidden layers must be SIZExCOUNT or SIZE-SIZE-..., positive, got {item!r}")
        choices.append(sizes)
    return tuple(choices)


def register(sub):
    """Add the 'search' command to the subparsers sub."""

    def choices(allowed):
        def parse(text):
            items = tuple(text.split(","))
            bad = [i for i in items if i not in allowed]
            if bad:
                raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; choose from {', '.join(allowed)}")
            return items
        return parse

    p = sub.add_parser(
        "search", help="hyperparameter search on Optuna (the book's section 6.5)",
        description="The book's hyperparameter search (volume 1, 6.5) as an Optuna study: "
        "learning rate 10^U(-6,-2) and weight decay 10^U(-8,-4) of a MultiLayerNet "
        "[100]x6 trained 50 epochs on 400 images, validated on 100. The study lives in a "
        "database (an SQLite file by default): the same command again adds trials to it, and "
        "commands on several machines with the same --storage and --study share it.")
    p.add_argument("--data", default="digits", metavar="{digits,mnist:DIR}",
                   help="the bundled digits (default) or the MNIST IDX files in DIR")
    p.add_argument("--train-size", type=positive_int, default=500, metavar="N",
                   help="the first N training images, before the split (default 500, the book's)")
    p.add_argument("--validation-rate", type=float, default=0.2, metavar="R",
                   help="share of them held out for validation (default 0.2)")
    p.add_argument("--model", default="multilayer", help="the network (default multilayer: "
                   "MultiLayerNetExtend with the options below)")
    p.add_argument("--hidden", type=_hidden_choices, default=((100,) * 6,), metavar="100x6[,...]",
                   help="hidden layers, several comma-separated choices to search them "
                   "(default 100x6)")
    p.add_argument("--batchnorm", choices=("off", "on", "search"), default="off",
                   help="batch normalization after each hidden Affine (default off)")
    p.add_argument("--dropout", type=lambda s: _range(s, log=False), default=Range(0, 0, False),
                   metavar="R|LOW:HIGH", help="dropout ratio, or a range to search (default 0)")
    p.add_argument("--lr", type=_range, default=Range(1e-6, 1e-2), metavar="LOW:HIGH",
                   help="learning rate range, log scale (default 1e-6:1e-2); one number fixes it")
    p.add_argument("--weight-decay", type=_range, default=Range(1e-8, 1e-4), metavar="LOW:HIGH",
                   help="weight decay range, log scale (default 1e-8:1e-4)")
    p.add_argument("--optimizer", type=choices(OPTIMIZERS), default=("sgd",), metavar="NAME[,...]",
                   help="update rule, several comma-separated to search them (default sgd)")
    p.add_argument("--epochs", type=positive_int, default=50, help="epochs per trial (default 50)")
    p.add_argument("--batch-size", type=positive_int, default=100, help="mini-batch size (default 100)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--trials", type=int, default=100, help="trials to add (default 100)")
    p.add_argument("--seed", type=int, help="the study's seed (default: random, kept in the study)")
    p.add_argument("--sampler", choices=SAMPLERS, default="random",
                   help="random (the book's, default) or Optuna's TPE")
    p.add_argument("--pruner", choices=PRUNERS, default="none",
                   help="median: stop a trial whose validation accuracy is below the median of "
                   "earlier trials at the same epoch (after 5 epochs)")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="worker processes on this machine, one thread each (default 1)")
    p.add_argument("--storage", default="sqlite:///fastnn-search.db", metavar="URL",
                   help="Optuna storage (default sqlite:///fastnn-search.db; e.g. "
                   "postgresql://user:password@host/db)")
    p.add_argument("--study", default="fastnn-search", metavar="NAME",
                   help="study name in the storage (default fastnn-search)")
    p.add_argument("--heartbeat", type=positive_int, default=10, metavar="SECONDS",
                   help="a trial silent for 3 heartbeats (its worker died) is marked failed and "
                   "retried once (default 10)")
    p.add_argument("--reference", action="store_true", help="train on fastnn.reference")
    p.add_argument("--top", type=positive_int, default=20, metavar="N",
                   help="print (and plot) the best N trials (default 20)")
    p.add_argument("--plot", metavar="FILE.png", help="the best trials' accuracy curves")
    p.add_argument("--json", metavar="FILE", help="every trial of the study, as JSON")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    set_command(p, cmd_search)


def cmd_search(parser, args):
    """fastnn search: run the trials, print the results best first; exit 0."""

    batchnorm = {"off": (False,), "on": (True,), "search": (False, True)}[args.batchnorm]
    try:
        space = SearchSpace(lr=args.lr, weight_decay=args.weight_decay, optimizers=args.optimizer,
                            hidden=args.hidden, batchnorm=batchnorm, dropout=args.dropout)
        settings = Settings(data=args.data, model=args.model, epochs=args.epochs,
                            batch_size=args.batch_size, train_size=args.train_size,
                            validation_rate=args.validation_rate, dtype=args.dtype, space=space)
        if args.trials < 1:
            raise SearchError(f"--trials must be positive, got {args.trials}")
        if args.plot:
            try:
                import matplotlib  # noqa: F401 -- only whether it is there
            except ImportError:
                raise SearchError("--plot needs matplotlib: pip install 'fastnn[cli]'") from None
        check_storage(args.storage)
        require_optuna()
    except SearchError as e:
        parser.error(str(e))

    bar = _trial_progress(args.trials, args.progress)
    start = time.perf_counter()
    try:
        study = search(settings, args.trials, storage=args.storage, study_name=args.study,
                       seed=args.seed, sampler=args.sampler, pruner=args.pruner, jobs=args.jobs,
                       heartbeat=args.heartbeat, reference=args.reference, on_trial=bar)
    except SearchError as e:
        bar.close()
        parser.error(str(e))
    except Exception as e:  # a database that refuses the connection, a corrupt file, ...
        bar.close()
        if type(e).__module__.split(".")[0] in ("sqlalchemy", "optuna", "psycopg2"):
            parser.error(f"storage {args.storage}: {' '.join(str(e).split())[:300]}")
        raise
    bar.close()
    seconds = time.perf_counter() - start
    rows = results(study)
    print("=========== Hyper-Parameter Optimization Result ===========")
    for line in format_results(rows, space.searched(), limit=args.top):
        print(line)
    states = [r["state"] for r in rows]
    print(f"study {args.study!r} (seed {study.user_attrs['seed']}): {len(rows)} finished trials "
          f"({states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, "
          f"{states.count('FAIL')} failed); this run: {args.trials} trials in {seconds:.1f} s "
          f"on {args.jobs} worker(s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(study=args.study, storage=args.storage, seed=study.user_attrs["seed"],
                           settings=study.user_attrs["settings"], trials=rows), f, indent=1)
    if args.plot:
        plot_results(args.plot, rows, count=args.top)
    sys.stdout.flush()
    return 0


class _trial_progress:
    """A tqdm bar over trials with the best validation accuracy so far (none without tqdm or with
    enabled=False). Called as on_trial(finished, best)."""

    def __init__(self, total, enabled):
        self.bar, self.done = None, 0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc="search", unit="trial")

    def __call__(self, finished, best):
        if self.bar is not None:
            self.bar.update(finished - self.done)
            if best is not None:
                self.bar.set_postfix_str(f"best val acc {best:.4f}")
        self.done = finished

    def close(self):
        if self.bar is not None:
            self.bar.close()
