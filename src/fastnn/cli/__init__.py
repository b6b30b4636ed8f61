"""The ``fastnn`` command line (SPEC section 6), one module per command:

    fastnn train      the book's training loop on the bundled digits (or spiral, or MNIST files)
    fastnn bench      fastnn.bench.run()'s table: fast against reference, with ratios
    fastnn gradcheck  backprop against numerical gradients, and the time of both numerical halves
    fastnn book       a chapter script of either book, unchanged, on fastnn (fastnn.book)
    fastnn search     the book's hyperparameter search as an Optuna study (fastnn.search)

``python -m fastnn`` is the same program. Bad arguments print one line on stderr and exit with
code 2, never a traceback. tqdm (the progress bar) and matplotlib (``--plot``) are optional: the
``cli`` extra installs them.

A command is a module of this package with ``register(subparsers)``, which adds its parser and
sets ``func(parser, args)`` -> exit code (``common.set_command``); a command that parses its own
arguments (``fastnn.book.main(argv)``) registers with ``common.add_passthrough``. Adding one is
that module and its name in ``COMMANDS``.
"""
import importlib
import sys

from .common import Parser, UsageError

COMMANDS = ("train", "bench", "gradcheck", "book", "search")  # modules of this package, in the order of --help


def build_parser():
    parser = Parser(prog="fastnn", description="fastnn: the layers of 'Deep Learning from "
                    "Scratch' on compiled kernels.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
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
