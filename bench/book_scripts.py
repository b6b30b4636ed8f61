"""The books' own chapter scripts, timed on the book's code and through `python -m fastnn.book`.

    python bench/book_scripts.py --book DIR [--book2 DIR] [--mnist DIR] [-k TEXT,...] [--reference]
                                 [--seed 0] [--threads 1] [--train 2000] [--test 500] [--repeat 1]
                                 [--json FILE]

--book is the reader's checkout of the book's repository (deep-learning-from-scratch), --book2
that of volume 2 (deep-learning-from-scratch-2) for its chapter-1 scripts. This file holds no
book code: each checkout is copied (without .git) to a temporary directory, and every listed
script is run there twice, seeded (NumPy's global random state, before the script starts):

- the book's code: `cd chNN && python SCRIPT`, with the book's own common/ and dataset/ (the MNIST
  files are put where the book's dataset/mnist.py looks, and its mnist.pkl made before timing);
- fastnn: `cd chNN && python -m fastnn.book --mnist DIR SCRIPT` (and fastnn.reference with
  --reference).

MNIST: --mnist DIR (the four IDX files, gzipped or not), or files this script writes from
fastnn's bundled 8x8 digits (each upscaled 3x to 24x24 and centred in 28x28, moved by up to two
pixels to make --train and --test images). The files a script saves (ch07's params.pkl, ch08's
deep_convnet_params.pkl) are restored from the checkout before every run, so each run loads the
parameters the book ships. Prints one row per script: CPU seconds (user + system of the run's
process) of each, the ratio book / fastnn, whether both exited 0 and printed the same numbers
(the same text, numbers equal to a relative 1e-6 or 1e-12; the largest relative difference is
shown). With --repeat N each script runs N times each way, interleaved (book, fastnn, book, ...),
and the row shows the medians (the scripts that finish in under a second, where the start of the
process decides, need that on a shared machine), the output compared is the first run's.
Asserts nothing.
"""
import argparse
import gzip
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

import fastnn

# (volume, script): every chapter script of volume 1's ch03-ch08 and volume 2's ch01 that trains
# a network, checks a gradient or loads saved parameters (and the rest of ch06-ch08)
SCRIPTS = [(1, s) for s in (
    "ch03/neuralnet_mnist.py", "ch03/neuralnet_mnist_batch.py",
    "ch04/gradient_simplenet.py", "ch04/train_neuralnet.py",
    "ch05/gradient_check.py", "ch05/train_neuralnet.py",
    "ch06/batch_norm_gradient_check.py", "ch06/batch_norm_test.py",
    "ch06/hyperparameter_optimization.py", "ch06/optimizer_compare_mnist.py",
    "ch06/optimizer_compare_naive.py", "ch06/overfit_dropout.py", "ch06/overfit_weight_decay.py",
    "ch06/weight_init_activation_histogram.py", "ch06/weight_init_compare.py",
    "ch07/apply_filter.py", "ch07/gradient_check.py", "ch07/train_convnet.py",
    "ch07/visualize_filter.py",
    "ch08/awesome_net.py", "ch08/half_float_network.py", "ch08/misclassified_mnist.py",
    "ch08/train_deepnet.py")] + [(2, "ch01/" + s) for s in (
    "forward_net.py", "show_spiral_dataset.py", "train.py", "train_custom_loop.py")]

NUMBER = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:e[-+]?\d+)?", re.I)
IDX = {"train-images-idx3-ubyte": 2051, "train-labels-idx1-ubyte": 2049,
       "t10k-images-idx3-ubyte": 2051, "t10k-labels-idx1-ubyte": 2049}

# Run SCRIPT (argv[1]) as `python SCRIPT` does, NumPy seeded with argv[2] first
BOOK_RUN = ("import runpy, sys, numpy; script = sys.argv[1]; numpy.random.seed(int(sys.argv[2])); "
            "sys.argv = [script]; runpy.run_path(script, run_name='__main__')")
# The same through the runner: `python -m fastnn.book [--reference] --mnist DIR SCRIPT`
FASTNN_RUN = ("import sys, numpy; from fastnn.book import main; seed = int(sys.argv.pop(1)); "
              "numpy.random.seed(seed); sys.exit(main(sys.argv[1:]))")


def digits_mnist(directory, n_train, n_test):
    """Writes MNIST's four gzipped IDX files made from fastnn's 8x8 digits (train images from its
    training split, test images from its test split)."""
    rng = np.random.RandomState(0)
    for prefix, (x, t), n in (("train", fastnn.load_digits(normalize=False)[0], n_train),
                              ("t10k", fastnn.load_digits(normalize=False)[1], n_test)):
        pick = np.arange(n) % x.shape[0]
        big = np.kron(x[pick].reshape(-1, 8, 8), np.ones((3, 3), np.uint8))  # 0..16
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 2:26, 2:26] = np.minimum(big.astype(np.int32) * 16, 255)
        for i, (dy, dx) in enumerate(rng.randint(-2, 3, (n, 2))):
            images[i] = np.roll(images[i], (dy, dx), axis=(0, 1))
        labels = t[pick].astype(np.uint8)
        with gzip.open(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        with gzip.open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.tobytes())


def gzipped_into(mnist, directory):
    """Copies the four IDX files of mnist into directory, gzipped (as the book's loader reads)."""
    for name in IDX:
        src = os.path.join(mnist, name)
        if os.path.exists(src + ".gz"):
            shutil.copy(src + ".gz", directory)
        else:
            with open(src, "rb") as f, gzip.open(os.path.join(directory, name + ".gz"), "wb") as g:
                shutil.copyfileobj(f, g)


def run(argv, cwd, env, timeout):
    """(exit status, stdout, stderr, CPU seconds, wall seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=timeout)
        status, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        status, out, err = "timeout", e.stdout or "", e.stderr or ""
        out, err = (s.decode() if isinstance(s, bytes) else s for s in (out, err))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return status, out, err, cpu, wall


def compare(a, b, rtol=1e-6, atol=1e-12):
    """None when the outputs differ in their text around the numbers, else (the numbers agree to
    rtol, or atol: the gradient checks print differences of the order of the numerical gradient's
    rounding, ~1e-13; the largest relative difference)."""
    if NUMBER.sub("#", a) != NUMBER.sub("#", b):
        return None
    x = np.array([float(v) for v in NUMBER.findall(a)])
    y = np.array([float(v) for v in NUMBER.findall(b)])
    both_nan = np.isnan(x) & np.isnan(y)
    diff = np.where(both_nan | (x == y), 0, np.abs(x - y))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(diff == 0, 0, diff / np.maximum(np.abs(x), np.abs(y)))
    ok = bool(np.all(diff <= rtol * np.maximum(np.abs(x), np.abs(y)) + atol))
    return ok, float(rel.max()) if rel.size else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--book", required=True, help="checkout of deep-learning-from-scratch")
    p.add_argument("--book2", help="checkout of deep-learning-from-scratch-2 (volume 2's ch01)")
    p.add_argument("--mnist", help="MNIST's four IDX files (default: made from the digits)")
    p.add_argument("--train", type=int, default=2000, help="digits-made training images")
    p.add_argument("--test", type=int, default=500, help="digits-made test images")
    p.add_argument("-k", dest="keywords", default="",
                   help="only scripts whose path has one of these comma-separated texts")
    p.add_argument("--reference", action="store_true", help="also time fastnn.reference")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="BLAS and fastnn threads, both runs")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each script each way, interleaved; the medians are shown")
    p.add_argument("--json", help="write every run's figures and output here")
    p.add_argument("--verbose", action="store_true", help="print each run's output")
    a = p.parse_args()

    env = dict(os.environ, MPLBACKEND="Agg")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(a.threads)
    env.pop("FASTNN_MNIST", None)
    books = {1: a.book, 2: a.book2}
    todo = [(v, s) for v, s in SCRIPTS
            if books[v] and any(k in f"v{v} {s}" for k in a.keywords.split(","))]
    records = []
    with tempfile.TemporaryDirectory(prefix="fastnn-book-") as tmp:
        mnist = a.mnist
        if mnist is None:
            mnist = os.path.join(tmp, "mnist")
            os.mkdir(mnist)
            digits_mnist(mnist, a.train, a.test)
        copies = {}
        for v in sorted({v for v, _ in todo}):
            copies[v] = os.path.join(tmp, f"volume{v}")
            shutil.copytree(books[v], copies[v], ignore=shutil.ignore_patterns(".git"))
            if v == 1:  # the book's loader: the .gz files beside it, then its mnist.pkl
                dataset = os.path.join(copies[v], "dataset")
                for f in ("mnist.pkl", *(n + ".gz" for n in IDX)):
                    if os.path.exists(os.path.join(dataset, f)):
                        os.remove(os.path.join(dataset, f))
                gzipped_into(mnist, dataset)
                subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '.'); "
                                "from dataset.mnist import init_mnist; init_mnist()"],
                               cwd=copies[v], env=env, check=True, capture_output=True)
        print(f"fastnn {fastnn.__version__}, numpy {np.__version__}, {a.threads} thread(s), "
              f"seed {a.seed}, MNIST {a.mnist or f'from the digits ({a.train} + {a.test})'}; "
              f"CPU seconds")
        header = f"{'script':44s} {'book':>8s} {'fastnn':>8s} {'ratio':>6s}"
        header += f" {'reference':>9s}" if a.reference else ""
        print(header + "  same numbers")
        for v, script in todo:
            path = os.path.join(copies[v], script)
            chapter = os.path.dirname(path)
            modes = {"book": [sys.executable, "-c", BOOK_RUN, path, str(a.seed)],
                     "fastnn": [sys.executable, "-c", FASTNN_RUN, str(a.seed), "--mnist", mnist,
                                "--volume", str(v), path]}
            if a.reference:
                modes["reference"] = modes["fastnn"][:4] + ["--reference"] + modes["fastnn"][4:]
            runs = {mode: [] for mode in modes}
            for _ in range(a.repeat):
                for mode, argv in modes.items():
                    for f in os.listdir(os.path.join(books[v], os.path.dirname(script))):
                        if f.endswith(".pkl"):  # what the script may have overwritten
                            shutil.copy(os.path.join(books[v], os.path.dirname(script), f),
                                        chapter)
                    runs[mode].append(run(argv, chapter, env, a.timeout))
                    r = runs[mode][-1]
                    if a.verbose:
                        print(f"--- {mode} {script}: {r[0]}\n{r[1]}{r[2]}")
            # the first run's status and output, the median CPU and wall seconds
            got = {mode: rs[0][:3] + tuple(float(np.median([r[i] for r in rs])) for i in (3, 4))
                   for mode, rs in runs.items()}
            book, fast = got["book"], got["fastnn"]
            same = compare(book[1], fast[1])
            status = "" if book[0] == fast[0] == 0 else f", exit {book[0]} / {fast[0]}"
            if same is None:
                verdict = "no (the text differs)"
            else:
                verdict = ("yes" if same[0] else "no") + (f" ({same[1]:.0e})" if same[1] else "")
            verdict += status
            digits = 2 if max(book[3], fast[3]) < 10 else 1  # sub-second runs: 10 ms matter
            line = (f"v{v} {script:41s} {book[3]:8.{digits}f} {fast[3]:8.{digits}f} "
                    f"{book[3] / fast[3]:5.2f}x")
            line += f" {got['reference'][3]:9.{digits}f}" if a.reference else ""
            print(line + "  " + verdict, flush=True)
            records.append({"volume": v, "script": script, "same": same,
                            **{f"{m}_{k}": r[i] for m, r in got.items()
                               for i, k in enumerate(("status", "stdout", "stderr", "cpu",
                                                      "wall"))},
                            **{f"{m}_cpu_runs": [r[3] for r in rs] for m, rs in runs.items()}})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
