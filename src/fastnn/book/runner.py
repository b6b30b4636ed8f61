"""Run a chapter script of either book as ``python SCRIPT`` would, on fastnn's common.*."""
import builtins
import importlib.machinery
import os
import re
import sys
import types

from . import hook, maps, shims

# The start of a run imports only what NumPy has imported already (re, types, dis, ...): a chapter
# script that loads saved parameters runs in ~0.2 s, of which the book's own code spends ~1 ms
# before the script's first line (runpy), so argparse (~5 ms with its help formatter's imports),
# pathlib (~5 ms), traceback and signal are imported only where they are needed.

_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Files only one of the two books' repositories has, under its root (the parent of chNN/)
VOLUME_FILES = {
    1: ("common/gradient.py", "common/multi_layer_net.py", "common/multi_layer_net_extend.py",
        "dataset/mnist.py"),
    2: ("common/np.py", "common/config.py", "common/base_model.py", "common/time_layers.py",
        "dataset/spiral.py", "dataset/ptb.py", "dataset/sequence.py"),
}
# The patterns below are compiled when detect_volume first needs them (re caches them): compiling
# all four at import took ~1 ms, and the files of the book's repository or --volume usually decide.
# The repositories' names (deep-learning-from-scratch, deep-learning-from-scratch-2 and their forks)
_VOLUME_2_NAME = r"(?i)from-scratch-?2(?![0-9])"
_VOLUME_1_NAME = r"(?i)from-scratch(?!-?[0-9])"
# Imports only one volume's scripts make
_VOLUME_2_IMPORTS = (
    r"(?m)^\s*(from\s+common\.(np|config|base_model|time_layers)\s+import"
    r"|from\s+common\s+import\s+config"
    r"|from\s+dataset\s+import\s+(spiral|ptb|sequence)"
    r"|import\s+dataset\.(spiral|ptb|sequence))")
_VOLUME_1_IMPORTS = (
    r"(?m)^\s*(from\s+dataset\.mnist\s+import|from\s+dataset\s+import\s+mnist"
    r"|from\s+common\.(gradient|multi_layer_net|multi_layer_net_extend)\s+import)")


def detect_volume(script):
    """1 or 2: which book the script belongs to, from, in this order,

    1. the files of the repository it sits in: the first of its directory and the two above it that
       has files of only one book's ``common/`` or ``dataset/`` (``VOLUME_FILES``) decides;
    2. the name of one of those directories (``...from-scratch-2`` is volume 2, ``...from-scratch``
       volume 1);
    3. the script's own imports (``common.np``, ``dataset.spiral``, ... only volume 2 has;
       ``dataset.mnist``, ``common.gradient``, ... only volume 1);
    4. volume 1 when nothing tells.
    """
    dirs = [os.path.dirname(os.path.realpath(script))]
    while len(dirs) < 3 and os.path.dirname(dirs[-1]) != dirs[-1]:
        dirs.append(os.path.dirname(dirs[-1]))
    for d in dirs:
        has = {v: any(os.path.isfile(os.path.join(d, f)) for f in files)
               for v, files in VOLUME_FILES.items()}
        if has[1] != has[2]:
            return 1 if has[1] else 2
    for d in dirs:
        if re.search(_VOLUME_2_NAME, os.path.basename(d)):
            return 2
        if re.search(_VOLUME_1_NAME, os.path.basename(d)):
            return 1
    try:
        with open(script, encoding="utf-8", errors="replace") as f:
            source = f.read()
    except OSError:
        source = ""
    v2, v1 = bool(re.search(_VOLUME_2_IMPORTS, source)), bool(re.search(_VOLUME_1_IMPORTS, source))
    return 2 if v2 and not v1 else 1


def _use_agg_without_display():
    """MPLBACKEND unset and no display (Linux and the BSDs: no $DISPLAY or $WAYLAND_DISPLAY): use
    matplotlib's Agg backend, whose plt.show() returns at once instead of waiting for a window."""
    if os.environ.get("MPLBACKEND"):
        return
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["MPLBACKEND"] = "Agg"


def _ours(filename):
    return filename.startswith(_HERE)


def _print_script_traceback(exc):
    """Print exc as Python would for the script: without the runner's and the hook's frames."""
    import traceback

    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    seen = set()
    todo = [te]
    while todo:
        t = todo.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        t.stack = traceback.StackSummary.from_list([f for f in t.stack if not _ours(f.filename)])
        todo += [c for c in (t.__cause__, t.__context__) if c is not None]
    sys.stderr.write("".join(te.format()))


def _exit_by_sigint():
    """End the process as Python does after an uncaught KeyboardInterrupt: killed by SIGINT, so
    the shell sees the interrupt (status -2 to subprocess, 130 to sh)."""
    import signal

    if hasattr(signal, "SIGINT") and hasattr(os, "kill"):
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


def run_script(script, args=(), volume=None, reference=False, mnist=None, prog="fastnn book"):
    """Run SCRIPT as ``cd $(dirname SCRIPT) && python $(basename SCRIPT) ARGS`` would, with the
    book's ``common.*`` and ``dataset.*`` answered by fastnn (or fastnn.reference if ``reference``).

    Returns the exit status: 0, the script's own ``sys.exit`` status (SystemExit propagates), 1
    after printing the script's traceback when it raises, 2 after one line on stderr when the run
    cannot start or the script asks for MNIST that was not given.
    """
    path = os.path.abspath(script)
    if not os.path.isfile(path):
        sys.stderr.write(f"{prog}: error: can't open file {path!r}: no such file\n")
        return 2
    if mnist is None:
        mnist = os.environ.get("FASTNN_MNIST") or None
    mnist = os.path.abspath(mnist) if mnist is not None else None
    volume = volume or detect_volume(path)
    root = "fastnn.reference" if reference else "fastnn"

    with open(path, "rb") as f:
        source = f.read()
    shims.configure(root, mnist)
    _use_agg_without_display()
    hook.install(maps.VOLUMES[volume], root, volume)

    directory = os.path.dirname(path)
    os.chdir(directory)
    sys.argv[:] = [os.path.basename(path), *args]
    sys.path[0] = os.path.realpath(directory)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __cached__=None, __builtins__=builtins, __annotations__={},
                         __loader__=importlib.machinery.SourceFileLoader("__main__", path))
    sys.modules["__main__"] = main
    try:
        code = compile(source, path, "exec", dont_inherit=True)
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except shims.SetupError as e:
        sys.stderr.write(f"{prog}: error: {e}\n")
        return 2
    except KeyboardInterrupt as e:
        _print_script_traceback(e)
        _exit_by_sigint()
        return 130
    except BaseException as e:  # noqa: B902 -- the script's own error, reported as Python would
        _print_script_traceback(e)
        return 1
    return 0


def _parser(prog):
    """The command line's argparse parser (an error is one line, without the usage block)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            self.exit(2, f"{self.prog}: error: {message}\n")

    parser = Parser(
        prog=prog,
        description="Run a chapter script of 'Deep Learning from Scratch' (volume 1 or 2) "
                    "unchanged, as `cd SCRIPT's directory && python SCRIPT ARGS` would, with the "
                    "book's common.* and dataset.* imports answered by fastnn.")
    parser.add_argument("--reference", action="store_true",
                        help="answer them with fastnn.reference (pure NumPy) instead")
    parser.add_argument("--mnist", metavar="DIR",
                        help="directory of MNIST's four IDX files, gzipped or not, for "
                             "dataset.mnist.load_mnist (default: $FASTNN_MNIST); never downloads")
    parser.add_argument("--volume", type=int, choices=(1, 2),
                        help="the book (default: from the script's repository, see "
                             "fastnn.book.runner.detect_volume)")
    parser.add_argument("script", metavar="SCRIPT")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="the script's own arguments")
    return parser


def parse_plain(argv):
    """``{"reference", "mnist", "volume", "script", "args"}`` as ``_parser`` parses argv, when argv
    is a plain command line: options spelt out in full, their values separate (not starting with
    "-") or after "=", ``--volume`` 1 or 2, then SCRIPT (not starting with "-") and its arguments
    (none of them "--", which argparse drops). None for any other argv (--help, abbreviated
    options, mistakes, values starting with "-"), which argparse then parses, explains or
    refuses: its import and its help formatter's would take ~5 ms of the runner's start."""
    got = {"reference": False, "mnist": None, "volume": None}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg == "--reference":
            got["reference"] = True
        elif name in ("--mnist", "--volume"):
            if not eq:
                if i + 1 == len(argv) or argv[i + 1].startswith("-"):
                    return None
                i += 1
                value = argv[i]
            if name == "--mnist":
                got["mnist"] = value
            elif value in ("1", "2"):
                got["volume"] = int(value)
            else:
                return None
        elif arg.startswith("-"):
            return None
        elif "--" in argv[i + 1:]:
            return None
        else:
            return dict(got, script=arg, args=argv[i + 1:])
        i += 1
    return None


def main(argv=None, prog="fastnn book"):
    """``fastnn book [--reference] [--mnist DIR] [--volume 1|2] SCRIPT [ARGS...]``; returns the
    exit status (SystemExit from the script propagates)."""
    if argv is None:
        argv = sys.argv[1:]
    a = parse_plain(argv)
    if a is None:
        a = vars(_parser(prog).parse_args(argv))
    return run_script(a["script"], a["args"], volume=a["volume"], reference=a["reference"],
                      mnist=a["mnist"], prog=prog)
