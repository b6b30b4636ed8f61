"""``python -m fastnn.book``: scripts of our own in the books' style, run as a reader runs them.

Each test lays out a book's repository in a temporary directory (``chNN/`` with the scripts and a
chapter-local model module, and a ``common/`` and ``dataset/`` of "the book's own" that raise if
they are ever imported), writes small MNIST-format IDX files itself, and runs the scripts
through the runner in a subprocess: on fastnn, on fastnn.reference (``--reference``), and where
no book module is involved, with plain ``python SCRIPT`` to compare argv, ``__file__``, working
directory, exit status and traceback. Nothing here reads the books' repositories.
"""
import gzip
import importlib
import itertools
import os
import re
import struct
import subprocess
import sys
import textwrap
import types
from contextlib import contextmanager

import numpy as np
import pytest

import fastnn
from fastnn.book import detect_volume, hook, maps, runner, shims

SHADOWED = "raise RuntimeError('the book\\'s own {} was imported instead of fastnn\\'s')\n"
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")

# --------------------------------------------------------------------------- the books' layouts


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def book_repository(root, volume):
    """A repository as the book's: common/ and dataset/ that must never be imported (each module
    raises), with one file only that volume has, so the runner can tell the volume."""
    for package in ("common", "dataset"):
        write(root / package / "__init__.py", SHADOWED.format(package + "/"))
    own = ["common/layers.py", "common/functions.py"]
    own += ["common/gradient.py", "dataset/mnist.py"] if volume == 1 else ["common/np.py",
                                                                          "dataset/spiral.py"]
    for name in own:
        write(root / name, SHADOWED.format(name))
    return root


# Volume 1, chapter 4's kind of network: functions and numerical gradients
TWO_LAYER_NET_V1 = """
    # coding: utf-8
    import sys, os
    sys.path.append(os.pardir)
    from common.functions import *
    from common.gradient import numerical_gradient
    import numpy as np


    class TwoLayerNet:
        def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
            self.params = {}
            self.params['W1'] = weight_init_std * np.random.randn(input_size, hidden_size)
            self.params['b1'] = np.zeros(hidden_size)
            self.params['W2'] = weight_init_std * np.random.randn(hidden_size, output_size)
            self.params['b2'] = np.zeros(output_size)

        def predict(self, x):
            z1 = sigmoid(np.dot(x, self.params['W1']) + self.params['b1'])
            return softmax(np.dot(z1, self.params['W2']) + self.params['b2'])

        def loss(self, x, t):
            return cross_entropy_error(self.predict(x), t)

        def accuracy(self, x, t):
            y = np.argmax(self.predict(x), axis=1)
            return np.sum(y == np.argmax(t, axis=1)) / float(x.shape[0])

        def numerical_gradient(self, x, t):
            f = lambda W: self.loss(x, t)
            return {k: numerical_gradient(f, self.params[k]) for k in ('W1', 'b1', 'W2', 'b2')}

        def gradient(self, x, t):
            W1, b1, W2, b2 = (self.params[k] for k in ('W1', 'b1', 'W2', 'b2'))
            a1 = np.dot(x, W1) + b1
            z1 = sigmoid(a1)
            y = softmax(np.dot(z1, W2) + b2)
            dy = (y - t) / x.shape[0]
            da1 = sigmoid_grad(a1) * np.dot(dy, W2.T)
            return {'W1': np.dot(x.T, da1), 'b1': da1.sum(axis=0),
                    'W2': np.dot(z1.T, dy), 'b2': dy.sum(axis=0)}


    if __name__ == '__main__':
        print('two_layer_net.py ran as __main__')
"""

TRAIN_V1 = """
    # coding: utf-8
    import sys, os
    sys.path.append(os.pardir)
    import numpy as np
    from dataset.mnist import load_mnist
    from two_layer_net import TwoLayerNet
    from common.optimizer import SGD, Momentum

    np.random.seed(int(sys.argv[1]))
    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True)
    print('shapes', x_train.shape, t_train.shape, x_test.shape, x_train.dtype)

    network = TwoLayerNet(input_size=784, hidden_size=10, output_size=10)
    optimizer = SGD(lr=0.5) if sys.argv[2] == 'sgd' else Momentum(lr=0.1)
    for i in range(15):
        batch_mask = np.random.choice(x_train.shape[0], 20)
        grad = network.gradient(x_train[batch_mask], t_train[batch_mask])
        optimizer.update(network.params, grad)
        print('loss %.12f' % network.loss(x_train[batch_mask], t_train[batch_mask]))
    print('accuracy %.6f %.6f' % (network.accuracy(x_train, t_train),
                                  network.accuracy(x_test, t_test)))

    small = TwoLayerNet(input_size=784, hidden_size=2, output_size=10)
    numerical = small.numerical_gradient(x_train[:3], t_train[:3])
    backprop = small.gradient(x_train[:3], t_train[:3])
    for key in ('W1', 'b1', 'W2', 'b2'):
        print(key + ' diff %.3e' % np.average(np.abs(numerical[key] - backprop[key])))
        print(key + ' sum %.12f' % numerical[key].sum())
"""

# Volume 1, chapter 6's Trainer on the chapter's own network
TRAINER_V1 = """
    # coding: utf-8
    import sys, os
    sys.path.append(os.pardir)
    import numpy as np
    from dataset.mnist import load_mnist
    from two_layer_net import TwoLayerNet
    from common.trainer import Trainer

    np.random.seed(11)
    (x_train, t_train), (x_test, t_test) = load_mnist(one_hot_label=True)
    network = TwoLayerNet(input_size=784, hidden_size=10, output_size=10)
    trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=3, mini_batch_size=30,
                      optimizer='Momentum', optimizer_param={'lr': 0.1},
                      evaluate_sample_num_per_epoch=50)
    trainer.train()
    print('lists', len(trainer.train_loss_list), len(trainer.test_acc_list))
    print('last %.12f' % trainer.train_loss_list[-1])
"""

# Volume 1, chapter 5's layers, forward and backward
LAYERS_V1 = """
    # coding: utf-8
    import sys, os
    sys.path.append(os.pardir)
    import numpy as np
    from collections import OrderedDict
    from common.layers import *
    from dataset.mnist import load_mnist

    np.random.seed(7)
    (x_train, t_train), _ = load_mnist(flatten=False)
    print('image', x_train.shape, t_train.dtype)
    x = x_train[:8]
    layers = OrderedDict()
    layers['Affine1'] = Affine(0.1 * np.random.randn(784, 16), np.zeros(16))
    layers['Relu1'] = Relu()
    layers['Affine2'] = Affine(0.1 * np.random.randn(16, 10), np.zeros(10))
    last = SoftmaxWithLoss()
    h = x
    for layer in layers.values():
        h = layer.forward(h)
    print('loss %.12f' % last.forward(h, t_train[:8]))
    dout = last.backward(1)
    for layer in reversed(list(layers.values())):
        dout = layer.backward(dout)
    print('dx', dout.shape, '%.12f' % np.abs(dout).sum())
    print('dW1 %.12f db2 %.12f' % (layers['Affine1'].dW.sum(), layers['Affine2'].db.sum()))
    print('module', Affine.__module__, sigmoid.__module__, np.__name__)
"""

MULTI_LAYER = """
    # coding: utf-8
    import os, sys
    sys.path.append(os.pardir)
    import numpy as np
    from dataset.mnist import load_mnist
    from common.multi_layer_net_extend import MultiLayerNetExtend
    from common.optimizer import Adam

    np.random.seed(5)
    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=True)
    network = MultiLayerNetExtend(input_size=784, hidden_size_list=[12, 12], output_size=10,
                                  use_batchnorm=True, use_dropout=True, dropout_ration=0.2,
                                  weight_decay_lambda=0.1)
    optimizer = Adam(lr=0.01)
    for i in range(10):
        batch_mask = np.random.choice(x_train.shape[0], 25)
        grads = network.gradient(x_train[batch_mask], t_train[batch_mask])
        optimizer.update(network.params, grads)
        print('loss %.12f' % network.loss(x_train[batch_mask], t_train[batch_mask]))
    print('test acc %.6f' % network.accuracy(x_test, t_test))
"""

# Volume 1, chapter 7's kind of gradient check: the label as ch07/gradient_check.py gives it, a
# (1, 1) array, and one bias for all filters as ch07/apply_filter.py passes it
CONV_CHECK = """
    # coding: utf-8
    import sys, os
    sys.path.append(os.pardir)
    import numpy as np
    from common.layers import Convolution, Pooling, Affine, SoftmaxWithLoss
    from common.gradient import numerical_gradient

    np.random.seed(3)
    x = np.random.rand(1, 1, 6, 6)
    T = np.array([1]).reshape((1, 1))
    params = {'W1': 0.3 * np.random.randn(2, 1, 3, 3), 'b1': 0.1 * np.random.randn(2),
              'W2': 0.3 * np.random.randn(8, 3), 'b2': np.zeros(3)}
    conv = Convolution(params['W1'], params['b1'])
    pool = Pooling(pool_h=2, pool_w=2, stride=2)
    affine = Affine(params['W2'], params['b2'])
    last = SoftmaxWithLoss()

    def scores():
        return affine.forward(pool.forward(conv.forward(x)))

    y = scores()
    p = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
    print('loss %.12f by hand %.12f' % (last.forward(y, T), -np.log(p[0, 1] + 1e-7)))
    last.forward(scores(), T)
    conv.backward(pool.backward(affine.backward(last.backward(1))))
    grads = {'W1': conv.dW, 'b1': conv.db, 'W2': affine.dW, 'b2': affine.db}
    for key in ('W1', 'b1', 'W2', 'b2'):
        numerical = numerical_gradient(lambda w: last.forward(scores(), T), params[key])
        diff = np.abs(numerical - grads[key]).max()
        print(key + ' diff %.3e sum %.9f' % (diff, grads[key].sum()))

    shared = Convolution(params['W1'], 0)
    out = shared.forward(x)
    print('shared', np.allclose(out, Convolution(params['W1'], np.zeros(2)).forward(x)), out.dtype)
    shared.backward(np.ones_like(out))
    print('shared db', np.shape(shared.db), shared.db)
"""

WHERE = """
    # coding: utf-8
    import os, pickle, sys
    sys.path.append(os.pardir)
    import helper


    class Point:
        def __init__(self, x):
            self.x = x


    print('argv', sys.argv)
    print('file', __file__)
    print('cwd', os.getcwd())
    print('path0', sys.path[0])
    print('name', __name__, __package__, __spec__, __doc__, __cached__)
    print('globals', sorted(k for k in globals() if k.startswith('__')))
    print('loader', type(__loader__).__name__)
    print('main', sys.modules['__main__'].__dict__ is globals())
    with open('notes.txt') as f:
        print('notes', f.read().strip())
    print('pickle', pickle.loads(pickle.dumps(Point(3))).x)
    print('helper', helper.NAME)
    if __name__ == '__main__':
        print('main block')
"""

FAIL = """
    import sys


    def inner(word):
        raise ValueError('boom ' + word)


    def outer():
        try:
            inner(sys.argv[1])
        except ValueError as e:
            raise RuntimeError('while running outer') from e


    print('before')
    outer()
"""


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """Two directories of the same small MNIST-format data: gzipped IDX files and raw ones."""
    rng = np.random.RandomState(0)
    sets = {"train": 120, "t10k": 30}
    data = {name: (rng.randint(0, 256, (n, 28, 28)).astype(np.uint8),
                   rng.randint(0, 10, n).astype(np.uint8)) for name, n in sets.items()}
    dirs = {}
    for kind in ("gz", "raw"):
        d = tmp_path_factory.mktemp(f"mnist_{kind}")
        for name, (images, labels) in data.items():
            files = {f"{name}-images-idx3-ubyte": struct.pack(">IIII", 2051, len(images), 28, 28)
                     + images.tobytes(),
                     f"{name}-labels-idx1-ubyte": struct.pack(">II", 2049, len(labels))
                     + labels.tobytes()}
            for fname, content in files.items():
                if kind == "gz":
                    (d / (fname + ".gz")).write_bytes(gzip.compress(content))
                else:
                    (d / fname).write_bytes(content)
        dirs[kind] = d
    return dirs


@pytest.fixture
def book1(tmp_path):
    root = book_repository(tmp_path / "book", 1)
    write(root / "ch04" / "two_layer_net.py", TWO_LAYER_NET_V1)
    write(root / "ch04" / "train_neuralnet.py", TRAIN_V1)
    write(root / "ch05" / "layers_check.py", LAYERS_V1)
    write(root / "ch04" / "train_with_trainer.py", TRAINER_V1)
    write(root / "ch06" / "multi_layer.py", MULTI_LAYER)
    return root


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND", "FASTNN_MNIST")}
    env.update(extra)
    return env


def book(*args, cwd, env=None, timeout=300):
    """`python -m fastnn.book ARGS` from cwd."""
    return subprocess.run([sys.executable, "-m", "fastnn.book", *map(str, args)], cwd=cwd,
                          env=env or clean_env(), capture_output=True, text=True, timeout=timeout)


def python(script, *args, env=None):
    """`cd $(dirname script) && python $(basename script) ARGS`."""
    return subprocess.run([sys.executable, script.name, *map(str, args)], cwd=script.parent,
                          env=env or clean_env(), capture_output=True, text=True, timeout=120)


def ok(result):
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return result.stdout


def numbers(stdout):
    return np.array([float(v) for v in NUMBER.findall(stdout)])


def same_numbers(a, b, rtol=1e-7):
    """Both outputs print the same text around numbers that agree to rtol."""
    assert NUMBER.sub("#", a) == NUMBER.sub("#", b)
    x, y = numbers(a), numbers(b)
    np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-12)
    return x


# ------------------------------------------------------------------------- volume 1 on both halves

@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_volume_1_training_prints_the_same_numbers_on_both_halves(book1, mnist, optimizer):
    script = book1 / "ch04" / "train_neuralnet.py"
    fast = ok(book("--mnist", mnist["gz"], script, 3, optimizer, cwd=book1))
    ref = ok(book("--reference", "--mnist", mnist["gz"], script, 3, optimizer, cwd=book1))
    assert "shapes (120, 784) (120, 10) (30, 784) float32" in fast
    assert fast.count("loss ") == 15
    assert "__main__" not in fast  # the chapter-local module's main block did not run on import
    values = same_numbers(fast, ref)
    losses = values[:15]
    assert np.all(np.isfinite(losses)) and losses.min() > 0
    # the backprop gradient of the chapter's own network agrees with fastnn's numerical gradient
    diffs = [float(v) for v in re.findall(r"diff (\S+)", fast)]
    assert len(diffs) == 4 and max(diffs) < 1e-6


def test_volume_1_trainer_prints_the_same_numbers_on_both_halves(book1, mnist):
    script = book1 / "ch04" / "train_with_trainer.py"
    fast = ok(book("--mnist", mnist["raw"], script, cwd=book1))
    ref = ok(book("--reference", "--mnist", mnist["raw"], script, cwd=book1))
    assert "=== epoch:1" in fast and "=============== Final Test Accuracy" in fast
    assert "lists 12 3" in fast
    same_numbers(fast, ref)


def test_volume_1_multi_layer_net_prints_the_same_numbers_on_both_halves(book1, mnist):
    script = book1 / "ch06" / "multi_layer.py"
    fast = ok(book("--mnist", mnist["raw"], script, cwd=book1))
    ref = ok(book("--reference", "--mnist", mnist["raw"], script, cwd=book1))
    assert fast.count("loss ") == 10
    same_numbers(fast, ref)


def test_volume_1_conv_gradient_check_with_the_books_label_and_bias(tmp_path):
    root = book_repository(tmp_path / "book", 1)
    script = write(root / "ch07" / "conv_check.py", CONV_CHECK)
    fast = ok(book(script, cwd=root))
    ref = ok(book("--reference", script, cwd=root))
    values = same_numbers(fast, ref)
    assert abs(values[0] - values[1]) < 1e-9  # the loss of label T[0, 0], as the book's
    assert fast.count(" diff ") == 4
    assert max(float(v) for v in re.findall(r"diff (\S+)", fast)) < 1e-6
    assert "shared True float64" in fast and "shared db () 32.0" in fast


def test_another_seed_prints_other_numbers(book1, mnist):
    script = book1 / "ch04" / "train_neuralnet.py"
    a = numbers(ok(book("--mnist", mnist["gz"], script, 3, "sgd", cwd=book1)))
    b = numbers(ok(book("--mnist", mnist["gz"], script, 4, "sgd", cwd=book1)))
    assert not np.allclose(a[:15], b[:15])


def test_gzipped_and_raw_idx_files_and_fastnn_mnist(book1, mnist):
    script = book1 / "ch05" / "layers_check.py"
    gz = ok(book("--mnist", mnist["gz"], script, cwd=book1))
    raw = ok(book("--mnist", mnist["raw"], script, cwd=book1))
    env = ok(book(script, cwd=book1, env=clean_env(FASTNN_MNIST=str(mnist["raw"]))))
    # --mnist wins over $FASTNN_MNIST
    both = ok(book("--mnist", mnist["gz"], script, cwd=book1,
                   env=clean_env(FASTNN_MNIST=str(book1 / "nowhere"))))
    assert gz == raw == env == both
    assert "image (120, 1, 28, 28) uint8" in gz


def test_layers_come_from_fastnn_or_the_reference(book1, mnist):
    script = book1 / "ch05" / "layers_check.py"
    fast = ok(book("--mnist", mnist["raw"], script, cwd=book1))
    ref = ok(book("--reference", "--mnist", mnist["raw"], script, cwd=book1))
    assert "module fastnn.layers fastnn.functions numpy" in fast
    assert "module fastnn.reference.layers fastnn.reference.functions numpy" in ref
    same_numbers(fast.rpartition("module")[0], ref.rpartition("module")[0])


def test_relative_mnist_directory_and_script_path(book1, mnist):
    """--mnist and SCRIPT relative to where the runner starts, not to the script's directory."""
    rel = os.path.relpath(mnist["raw"], book1)
    out = ok(book("--mnist", rel, "ch05/layers_check.py", cwd=book1))
    assert "loss " in out


# --------------------------------------------------------------------------- as `python SCRIPT`

@pytest.fixture
def plain(tmp_path):
    """A chapter with scripts that import no book module, so plain python can run them too."""
    root = book_repository(tmp_path / "book", 1)
    chapter = root / "ch01"
    write(chapter / "where.py", WHERE)
    write(chapter / "helper.py", """
        NAME = 'chapter helper'
        if __name__ == '__main__':
            print('helper main block')
    """)
    write(chapter / "notes.txt", "read relative to the script's directory\n")
    write(chapter / "fail.py", FAIL)
    write(chapter / "exit3.py", "print('leaving')\nimport sys\nsys.exit(3)\n")
    write(chapter / "exit_message.py", "import sys\nsys.exit('stopped: ' + sys.argv[1])\n")
    write(chapter / "syntax.py", "x = 1\nprint(x +)\n")
    write(chapter / "interrupt.py", "raise KeyboardInterrupt\n")
    return chapter


def test_argv_file_cwd_path_and_main_as_python_runs_them(plain, tmp_path):
    script = plain / "where.py"
    expected = ok(python(script, "a", "--b", "c d"))
    assert "main block" in expected and "helper main block" not in expected
    assert ok(book(script, "a", "--b", "c d", cwd=tmp_path)) == expected
    assert ok(book("--reference", "ch01/where.py", "a", "--b", "c d", cwd=plain.parent)) == expected


def test_fastnn_book_is_the_same_runner(plain, tmp_path):
    """`fastnn book ARGS` (the command line's subcommand) is `python -m fastnn.book ARGS`."""
    script = plain / "where.py"
    command = subprocess.run([sys.executable, "-m", "fastnn", "book", str(script), "a", "--b"],
                             cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                             timeout=120)
    assert ok(command) == ok(book(script, "a", "--b", cwd=tmp_path))
    exit3 = subprocess.run([sys.executable, "-m", "fastnn", "book", str(plain / "exit3.py")],
                           cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                           timeout=120)
    assert exit3.returncode == 3 and exit3.stdout == "leaving\n"


def test_a_script_that_raises_prints_its_own_traceback(plain, tmp_path):
    script = plain / "fail.py"
    expected = python(script, "here")
    assert expected.returncode == 1 and "RuntimeError" in expected.stderr
    got = book(script, "here", cwd=tmp_path)
    assert (got.returncode, got.stdout, got.stderr) == (1, expected.stdout, expected.stderr)
    assert "fastnn" not in got.stderr


@pytest.mark.parametrize("name, args", [("exit3.py", ()), ("exit_message.py", ("now",)),
                                        ("syntax.py", ()), ("interrupt.py", ())])
def test_exit_status_and_errors_as_python(plain, tmp_path, name, args):
    expected = python(plain / name, *args)
    got = book(plain / name, *args, cwd=tmp_path)
    assert (got.returncode, got.stdout, got.stderr) == (
        expected.returncode, expected.stdout, expected.stderr)
    assert got.returncode == {"exit3.py": 3, "exit_message.py": 1, "syntax.py": 1,
                              "interrupt.py": -2}[name]


def test_no_such_script(tmp_path):
    got = book(tmp_path / "nothing.py", cwd=tmp_path)
    assert got.returncode == 2 and got.stderr.count("\n") == 1 and "nothing.py" in got.stderr


# The command lines the runner parses without argparse (parse_plain) and some it leaves to it
PLAIN_ARGV = [["x.py"], ["x.py", "a", "--b", "-h", "--reference"], ["--reference", "x.py"],
              ["--mnist", "DIR", "--volume", "2", "x.py", "a"],
              ["--mnist=DIR", "--volume=1", "x.py"],
              ["--volume", "1", "--volume", "2", "--reference", "--mnist", "", "a=b.py", "-5"]]
TOKENS = ["--reference", "--mnist", "--volume", "1", "3", "x.py", "--", "-h", "--help", "--ref",
          "--mnist=d", "--volume=2", "--volume=x", "-5", "", "a=b", "--b", "-"]


def argparse_parse(argv):
    """What the runner's argparse parser makes of argv, or its exit status."""
    try:
        return vars(runner._parser("fastnn book").parse_args(argv))
    except SystemExit as e:
        return e.code


def test_plain_command_lines_parse_as_argparse_parses_them(capsys):
    for argv in PLAIN_ARGV:
        assert runner.parse_plain(argv) is not None, argv
    tried = PLAIN_ARGV + [list(t) for n in range(4) for t in itertools.product(TOKENS, repeat=n)]
    for argv in tried:
        got = runner.parse_plain(argv)
        if got is not None:
            assert got == argparse_parse(argv), argv
    capsys.readouterr()  # argparse's usage and errors, printed for the argv parse_plain declines
    for argv in (["--help"], ["--ref", "x.py"], ["x.py", "--", "a"], ["--volume", "3", "x.py"],
                 ["--mnist", "-d", "x.py"], []):
        assert runner.parse_plain(argv) is None, argv


def test_other_command_lines_are_argparses(plain, tmp_path):
    got = book("--help", cwd=tmp_path)
    assert got.returncode == 0 and got.stdout.startswith("usage: ") and "--mnist DIR" in got.stdout
    got = book("--volume", "3", plain / "where.py", cwd=tmp_path)
    assert got.returncode == 2 and got.stderr.count("\n") == 1
    assert "argument --volume: invalid choice: 3" in got.stderr
    assert ok(book("--ref", plain / "where.py", "a", cwd=tmp_path)) == ok(
        book("--reference", plain / "where.py", "a", cwd=tmp_path))


# --------------------------------------------------------------------------- what a reader is told

def test_no_mnist_is_one_line_naming_both_ways(book1):
    got = book(book1 / "ch05" / "layers_check.py", cwd=book1)
    assert got.returncode == 2
    assert got.stderr.count("\n") == 1 and "Traceback" not in got.stderr
    assert "--mnist DIR" in got.stderr and "FASTNN_MNIST" in got.stderr


def test_a_bad_mnist_directory_is_one_line(book1, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for directory in (empty, tmp_path / "absent"):
        got = book("--mnist", directory, book1 / "ch05" / "layers_check.py", cwd=book1)
        assert got.returncode == 2 and got.stderr.count("\n") == 1, got.stderr
        assert str(directory) in got.stderr and "Traceback" not in got.stderr


def missing_name_repository(tmp_path):
    root = book_repository(tmp_path / "book2", 2)
    write(root / "ch06" / "explicit.py", """
        import sys
        sys.path.append('..')
        from common.layers import Affine
        from common.time_layers import TimeLSTM
        print('not reached')
    """)
    write(root / "ch06" / "rnn_model.py", """
        import sys
        sys.path.append('..')
        from common.time_layers import *


        class Model:
            def __init__(self):
                self.rnn = TimeRNN(None, None, None)
    """)
    write(root / "ch06" / "star.py", """
        import sys
        sys.path.append('..')
        from rnn_model import Model
        print('imported')
        model = Model()
    """)
    return root / "ch06"


@pytest.mark.parametrize("reference", [False, True])
def test_a_name_fastnn_lacks_is_named_where_it_is_imported(tmp_path, reference):
    chapter = missing_name_repository(tmp_path)
    root = "fastnn.reference" if reference else "fastnn"
    flag = ["--reference"] if reference else []
    got = book(*flag, chapter / "explicit.py", cwd=tmp_path)
    assert got.returncode == 1 and got.stdout == ""
    assert got.stderr.startswith("Traceback (most recent call last):\n")
    message = f"ImportError: {root} has no 'TimeLSTM' for common.time_layers yet\n"
    assert got.stderr.endswith(message)
    assert 'explicit.py", line 4, in <module>' in got.stderr
    assert "fastnn/book" not in got.stderr


def test_a_star_imported_name_fastnn_lacks_fails_where_it_is_used(tmp_path):
    chapter = missing_name_repository(tmp_path)
    got = book(chapter / "star.py", cwd=tmp_path)
    assert got.returncode == 1 and got.stdout == "imported\n"
    assert got.stderr.endswith("ImportError: fastnn has no 'TimeRNN' for common.time_layers yet\n")
    assert 'rnn_model.py", line 8, in __init__' in got.stderr
    assert "fastnn/book" not in got.stderr


def test_unknown_modules_and_names(book1, tmp_path):
    chapter = book1 / "ch09"
    write(chapter / "module.py", "import sys, os\nsys.path.append(os.pardir)\nimport common.np\n")
    write(chapter / "name.py", "import sys, os\nsys.path.append(os.pardir)\n"
                               "from common.layers import LSTMCell\n")
    write(chapter / "dataset_module.py", "import sys, os\nsys.path.append(os.pardir)\n"
                                         "from dataset import cifar\n")
    got = book(chapter / "module.py", cwd=tmp_path)
    assert got.returncode == 1
    last = got.stderr.splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: No module named 'common.np': fastnn.book answers")
    assert "volume 1" in last and "common.layers" in last and "--volume" in last
    got = book(chapter / "name.py", cwd=tmp_path)
    assert got.returncode == 1
    assert "ImportError: cannot import name 'LSTMCell' from 'common.layers'" in got.stderr
    got = book(chapter / "dataset_module.py", cwd=tmp_path)
    assert got.returncode == 1
    assert "ImportError: cannot import name 'cifar' from 'dataset'" in got.stderr
    assert "dataset.mnist" in got.stderr


# --------------------------------------------------------------------------- volume 2

TWO_LAYER_NET_V2 = """
    # coding: utf-8
    import sys
    sys.path.append('..')
    import numpy as np
    from common.layers import Affine, Sigmoid, SoftmaxWithLoss


    class TwoLayerNet:
        def __init__(self, input_size, hidden_size, output_size):
            W1 = 0.01 * np.random.randn(input_size, hidden_size)
            b1 = np.zeros(hidden_size)
            W2 = 0.01 * np.random.randn(hidden_size, output_size)
            b2 = np.zeros(output_size)
            self.layers = [Affine(W1, b1), Sigmoid(), Affine(W2, b2)]
            self.loss_layer = SoftmaxWithLoss()
            self.params, self.grads = [], []
            for layer in self.layers:
                self.params += layer.params
                self.grads += layer.grads

        def predict(self, x):
            for layer in self.layers:
                x = layer.forward(x)
            return x

        def forward(self, x, t):
            return self.loss_layer.forward(self.predict(x), t)

        def backward(self, dout=1):
            dout = self.loss_layer.backward(dout)
            for layer in reversed(self.layers):
                dout = layer.backward(dout)
            return dout
"""

TRAIN_V2 = """
    # coding: utf-8
    import sys
    sys.path.append('..')
    import numpy as np
    from common.np import *
    from common import config
    from common.optimizer import SGD
    from dataset import spiral
    from two_layer_net import TwoLayerNet

    print('GPU', config.GPU)
    x, t = spiral.load_data()
    model = TwoLayerNet(input_size=2, hidden_size=10, output_size=3)
    optimizer = SGD(lr=1.0)
    batch_size = 30
    for epoch in range(int(sys.argv[1])):
        idx = np.random.permutation(len(x))
        x, t = x[idx], t[idx]
        total = 0
        for iters in range(len(x) // batch_size):
            batch_x = x[iters * batch_size:(iters + 1) * batch_size]
            batch_t = t[iters * batch_size:(iters + 1) * batch_size]
            loss = model.forward(batch_x, batch_t)
            model.backward()
            optimizer.update(model.params, model.grads)
            total += loss
        print('| epoch %d | loss %.12f' % (epoch + 1, total / (len(x) // batch_size)))
"""

TRAINER_V2 = """
    # coding: utf-8
    import sys
    sys.path.append('..')
    from common.optimizer import SGD
    from common.trainer import Trainer
    from dataset import spiral
    from two_layer_net import TwoLayerNet

    x, t = spiral.load_data()
    model = TwoLayerNet(input_size=2, hidden_size=10, output_size=3)
    trainer = Trainer(model, SGD(lr=1.0))
    trainer.fit(x, t, int(sys.argv[1]), 30, eval_interval=10)
    trainer.plot()
    print('losses', len(trainer.loss_list), '%.12f' % trainer.loss_list[-1])
"""

SPIRAL_STATE = """
    import sys
    sys.path.append('..')
    from dataset import spiral
    from common.np import *
    x, t = spiral.load_data()
    print(x.shape, t.shape, t.dtype)
    print(repr(x.sum()), repr(t.sum(axis=0)))
    print(repr(np.random.rand(3)))
"""


@pytest.fixture
def book2(tmp_path):
    root = book_repository(tmp_path / "book2", 2)
    write(root / "ch01" / "two_layer_net.py", TWO_LAYER_NET_V2)
    write(root / "ch01" / "train_custom_loop.py", TRAIN_V2)
    write(root / "ch01" / "spiral_state.py", SPIRAL_STATE)
    write(root / "ch01" / "train.py", TRAINER_V2)
    return root


def test_volume_2_training_prints_the_same_numbers_on_both_halves(book2):
    script = book2 / "ch01" / "train_custom_loop.py"
    fast = ok(book(script, 30, cwd=book2))
    ref = ok(book("--reference", script, 30, cwd=book2))
    assert fast.startswith("GPU False\n") and fast.count("| epoch") == 30
    losses = same_numbers(fast, ref)
    assert losses[-1] < losses[0]  # it learns


def test_volume_2_trainer_prints_the_same_numbers_on_both_halves(book2):
    pytest.importorskip("matplotlib")  # Trainer.plot()
    script = book2 / "ch01" / "train.py"
    fast = ok(book(script, 20, cwd=book2))
    ref = ok(book("--reference", script, 20, cwd=book2))
    assert fast.count("| epoch") == 20 and "losses 20 " in fast
    # the times printed differ; the epochs, iterations and losses do not
    strip = re.compile(r"time \d+\[s\]")
    same_numbers(strip.sub("", fast), strip.sub("", ref))


def test_spiral_seeds_the_global_random_state_as_the_book(book2):
    out = ok(book(book2 / "ch01" / "spiral_state.py", cwd=book2))
    x, t = fastnn.load_spiral()
    np.random.seed(1984)
    for _ in range(300):
        np.random.randn()
    after = np.random.rand(3)
    t = t.astype(np.int32)
    assert out.splitlines() == ["(300, 2) (300, 3) int32", f"{x.sum()!r} {t.sum(axis=0)!r}",
                                repr(after)]


def test_volume_from_option_overrides_the_layout(book1, book2):
    """A volume-2 script in a volume-1 layout runs with --volume 2 (and fails without it)."""
    script = write(book1 / "ch01" / "spiral_state.py", SPIRAL_STATE)
    assert ok(book("--volume", "2", script, cwd=book1)) == ok(
        book(book2 / "ch01" / "spiral_state.py", cwd=book2))
    got = book(script, cwd=book1)
    assert got.returncode == 1 and "cannot import name 'spiral' from 'dataset'" in got.stderr
    assert "volume 1" in got.stderr and "--volume" in got.stderr


def test_detect_volume(tmp_path):
    v1 = book_repository(tmp_path / "a", 1)
    v2 = book_repository(tmp_path / "b", 2)
    assert detect_volume(write(v1 / "ch07" / "s.py", "")) == 1
    assert detect_volume(write(v2 / "ch07" / "s.py", "")) == 2
    assert detect_volume(write(v2 / "ch07" / "deeper" / "s.py", "")) == 2
    assert detect_volume(write(v2 / "s.py", "")) == 2
    # no book files: the repository's name, then the script's own imports, then volume 1
    named = tmp_path / "deep-learning-from-scratch-2-master" / "ch01"
    assert detect_volume(write(named / "s.py", "")) == 2
    assert detect_volume(write(tmp_path / "deep-learning-from-scratch" / "ch01" / "s.py", "")) == 1
    loose = tmp_path / "loose"
    assert detect_volume(write(loose / "a.py", "from dataset import spiral\n")) == 2
    assert detect_volume(write(loose / "b.py", "from common.np import *\n")) == 2
    assert detect_volume(write(loose / "c.py", "from dataset.mnist import load_mnist\n")) == 1
    assert detect_volume(write(loose / "d.py", "import numpy\n")) == 1


# --------------------------------------------------------------------------- matplotlib

PLOT = """
    import sys, os
    sys.path.append(os.pardir)
    import numpy as np
    import matplotlib
    import matplotlib.pyplot as plt
    from common.functions import sigmoid

    x = np.arange(-5.0, 5.0, 0.1)
    plt.plot(x, sigmoid(x))
    plt.ylim(-0.1, 1.1)
    plt.show()
    plt.savefig('sigmoid.png')
    print('backend', matplotlib.get_backend().lower())
"""


@pytest.mark.parametrize("backend", [None, "svg"])
def test_plots_do_not_wait_for_a_window(book1, backend):
    pytest.importorskip("matplotlib")
    script = write(book1 / "ch03" / "sigmoid.py", PLOT)
    env = clean_env() if backend is None else clean_env(MPLBACKEND=backend)
    out = ok(book(script, cwd=book1, env=env, timeout=120))
    assert out == f"backend {backend or 'agg'}\n"
    assert (script.parent / "sigmoid.png").stat().st_size > 0


# --------------------------------------------------------------------------- the hook itself

@contextmanager
def installed(modules, root="fastnn", volume=1):
    """A BookFinder for these book modules, in this process, removed afterwards."""
    finder = hook.install(modules, root, volume)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in list(sys.modules):
            if name.partition(".")[0] in hook.PACKAGES:
                del sys.modules[name]


@pytest.mark.parametrize("root", ["fastnn", "fastnn.reference"])
def test_names_resolve_to_the_half_and_missing_ones_say_so(root):
    made_up = {"common.made_up": {"Affine": ("nosuchmodule.Affine", "layers.Affine"),
                                  "relu": ("relu",),
                                  "np": maps.NUMPY,
                                  "Ghost": ("layers.Ghost", "Ghost"),
                                  "Checked": ("layers.Affine?no_such_attribute",)}}
    with installed(made_up, root=root):
        module = importlib.import_module("common.made_up")
        half = importlib.import_module(root)
        assert module.Affine is half.layers.Affine and module.relu is half.relu
        assert module.np is np
        assert module.__all__ == ["Affine", "relu", "np", "Ghost", "Checked"]
        with pytest.raises(ImportError, match=f"^{root} has no 'Ghost' for common.made_up yet$"):
            exec("from common.made_up import Ghost", {})
        with pytest.raises(ImportError, match="'Checked'"):
            exec("from common.made_up import Checked", {})
        names = {}
        exec("from common.made_up import *", names)
        assert names["Affine"] is half.layers.Affine
        ghost = names["Ghost"]
        assert isinstance(ghost, hook.Missing) and not hasattr(module, "Nothing")
        uses = (lambda: ghost(1), lambda: ghost.forward, lambda: types.new_class("C", (ghost,)))
        for use in uses:
            with pytest.raises(ImportError, match="has no 'Ghost'"):
                use()


@pytest.mark.parametrize("root", ["fastnn", "fastnn.reference"])
@pytest.mark.parametrize("volume", [1, 2])
def test_every_name_of_the_maps_resolves_or_is_reported(volume, root):
    """Each book module imports, and each of its names is the half's object or a Missing."""
    modules = maps.VOLUMES[volume]
    with installed(modules, root=root, volume=volume):
        for name, entries in modules.items():
            module = importlib.import_module(name)
            for attr in entries:
                value = getattr(module, attr)
                if isinstance(value, hook.Missing) or value is np or value is vars(shims).get(attr):
                    continue
                assert value.__module__.startswith(root), (name, attr, value)
                if attr == "Trainer":  # each book's own trainer
                    assert value.__name__ == ("NetworkTrainer", "ModelTrainer")[volume - 1]
                fast, ref = getattr(fastnn, attr, None), getattr(fastnn.reference, attr, None)
                if root == "fastnn" and fast is not ref:
                    assert value is not ref, (name, attr)  # never the reference's in its place
