"""The command line, driven as a user drives it: `python -m fastnn ...` in a subprocess.

Exit codes, the summary lines, the files written (--plot, --save), and one-line errors with exit
code 2 for bad arguments. Runs are kept short (a few hundred steps) except one default run, which
checks the acceptance figure: at least 95% test accuracy on the digits.
"""
import gzip
import pickle
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

SUMMARY = re.compile(r"^\[(fastnn|reference)\] test accuracy ([\d.]+)% \(train ([\d.]+)%\)", re.M)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fastnn(*args, tmp_path, prelude=None, timeout=120):
    """Run `python -m fastnn *args` (or, with prelude, that code and then cli.main(args))."""
    if prelude is None:
        command = [sys.executable, "-m", "fastnn", *map(str, args)]
    else:
        code = f"{prelude}\nimport sys\nfrom fastnn.cli import main\nsys.exit(main(sys.argv[1:]))"
        command = [sys.executable, "-c", code, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=timeout)


def accuracies(stdout):
    """{'fastnn' or 'reference': (test %, train %)} from the summary lines."""
    return {m[1]: (float(m[2]), float(m[3])) for m in SUMMARY.finditer(stdout)}


def assert_ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert accuracies(result.stdout), result.stdout


def assert_usage_error(result, *words):
    """Exit code 2, nothing on stdout, exactly one line on stderr naming the problem."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def write_idx_mnist(directory, n_train=60, n_test=20, gz_train=True, gz_test=False):
    """The four MNIST IDX files with n images each (28x28, a bright band at row 2*label)."""
    rng = np.random.default_rng(0)

    def write(prefix, n, gz):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label:2 * label + 3] = 255
        opener, suffix = (gzip.open, ".gz") if gz else (open, "")
        with opener(directory / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        with opener(directory / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.tobytes())

    write("train", n_train, gz_train)
    write("t10k", n_test, gz_test)
    return directory


# --------------------------------------------------------------------------- train

@pytest.mark.slow
def test_default_run_reaches_95_percent(tmp_path):
    """The acceptance run: digits, sigmoid, hidden 50, batch 100, lr 0.1, SGD."""
    result = fastnn("train", "--no-progress", tmp_path=tmp_path)
    assert_ok(result)
    test_acc, _ = accuracies(result.stdout)["fastnn"]
    assert test_acc >= 95.0, result.stdout
    assert "TwoLayerNet 64-50-10, sigmoid, float64" in result.stdout
    assert "SGD lr 0.1, batch 100" in result.stdout
    assert re.search(r"wall time [\d.]+ s: 20000 steps in [\d.]+ s = [\d,]+ steps/s", result.stdout)
    assert re.search(r"\] epoch +\d+/\d+ +step +\d+ +loss [\d.]+ +train acc [\d.]+ +test acc",
                     result.stdout)


@pytest.mark.parametrize("optimizer, activation, dtype", [
    ("sgd", "relu", "float32"),
    ("momentum", "sigmoid", "float32"),
    ("nesterov", "relu", "float64"),
    ("adagrad", "sigmoid", "float64"),
    ("rmsprop", "relu", "float64"),
    ("adam", "sigmoid", "float32"),
])
def test_each_optimizer_activation_dtype_trains(tmp_path, optimizer, activation, dtype):
    result = fastnn("train", "--iters", 500, "--optimizer", optimizer, "--activation", activation,
                    "--dtype", dtype, "--no-progress", tmp_path=tmp_path)
    assert_ok(result)
    assert f"{activation}, {dtype}" in result.stdout
    test_acc, _ = accuracies(result.stdout)["fastnn"]
    assert test_acc > 60.0  # 500 steps: far above chance (10%) for every rule here


def test_progress_bar_shows_loss(tmp_path):
    pytest.importorskip("tqdm")
    result = fastnn("train", "--iters", 200, tmp_path=tmp_path)
    assert_ok(result)
    assert re.search(r"fastnn: +100%.*200/200.*loss [\d.]+", result.stderr), result.stderr


def test_runs_without_tqdm(tmp_path):
    result = fastnn("train", "--iters", 100, tmp_path=tmp_path,
                    prelude="import sys; sys.modules['tqdm'] = None")
    assert_ok(result)


def test_epochs_count_steps_of_the_training_set(tmp_path):
    result = fastnn("train", "--epochs", 2, "--batch-size", 500, "--no-progress",
                    tmp_path=tmp_path)
    assert_ok(result)
    assert "6 steps = 2 epochs of 3 steps" in result.stdout  # ceil(1437 / 500) = 3


@pytest.mark.slow
def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    result = fastnn("train", "--iters", 100, "--no-progress", "--plot", "curves.png",
                    tmp_path=tmp_path)
    assert_ok(result)
    png = tmp_path / "curves.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_plot_without_matplotlib_is_a_one_line_error(tmp_path):
    result = fastnn("train", "--plot", "curves.png", tmp_path=tmp_path,
                    prelude="import sys; sys.modules['matplotlib'] = None")
    assert_usage_error(result, "matplotlib")
    assert not (tmp_path / "curves.png").exists()


def test_save_then_load_reproduces_the_accuracy(tmp_path):
    trained = fastnn("train", "--iters", 300, "--no-progress", "--save", "model.npz",
                     tmp_path=tmp_path)
    assert_ok(trained)
    assert (tmp_path / "model.npz").is_file()

    loaded = fastnn("train", "--load", "model.npz", tmp_path=tmp_path)
    assert_ok(loaded)
    assert "evaluation only" in loaded.stdout
    assert accuracies(loaded.stdout) == accuracies(trained.stdout)

    # the reference reads the same file and computes the same accuracies
    loaded_ref = fastnn("train", "--load", "model.npz", "--reference", tmp_path=tmp_path)
    assert_ok(loaded_ref)
    assert accuracies(loaded_ref.stdout)["reference"] == accuracies(trained.stdout)["fastnn"]

    more = fastnn("train", "--load", "model.npz", "--iters", 300, "--no-progress",
                  tmp_path=tmp_path)
    assert_ok(more)
    assert "300 steps" in more.stdout


def test_load_checks_what_it_loads(tmp_path):
    assert_ok(fastnn("train", "--iters", 10, "--hidden", 20, "--no-progress", "--save", "m.npz",
                     tmp_path=tmp_path))
    assert_usage_error(fastnn("train", "--load", "m.npz", "--hidden", 30, tmp_path=tmp_path),
                       "--hidden 30")
    assert_usage_error(fastnn("train", "--load", "m.npz", "--data", "spiral",
                              tmp_path=tmp_path), "64-20-10")
    assert_usage_error(fastnn("train", "--load", "missing.npz", tmp_path=tmp_path),
                       "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    assert_usage_error(fastnn("train", "--load", "junk.npz", tmp_path=tmp_path), "junk.npz")


def test_reference_runs_the_pure_half(tmp_path):
    result = fastnn("train", "--reference", "--iters", 200, "--no-progress", tmp_path=tmp_path)
    assert_ok(result)
    assert set(accuracies(result.stdout)) == {"reference"}


def test_compare_runs_both_from_the_same_start(tmp_path):
    result = fastnn("train", "--compare", "--iters", 300, "--no-progress", tmp_path=tmp_path)
    assert_ok(result)
    acc = accuracies(result.stdout)
    assert acc["fastnn"] == acc["reference"]
    match = re.search(r"speed-up: +([\d.]+)x .*largest parameter difference after training "
                      r"([\d.e+-]+)", result.stdout)
    assert match, result.stdout
    assert float(match[1]) > 0
    assert float(match[2]) < 1e-8


def test_numerical_gradient_training(tmp_path):
    """Volume 1's loop with numerical gradients, both halves, on the small spiral net."""
    result = fastnn("train", "--grad", "numerical", "--compare", "--data", "spiral",
                    "--iters", 6, "--no-progress", tmp_path=tmp_path)
    assert_ok(result)
    assert "TwoLayerNetwork 2-50-3" in result.stdout
    assert "very slow" in result.stderr  # the warning about the reference
    acc = accuracies(result.stdout)
    assert acc["fastnn"] == acc["reference"]


def test_spiral(tmp_path):
    result = fastnn("train", "--data", "spiral", "--hidden", 10, "--lr", 1, "--batch-size", 30,
                    "--epochs", 300, "--no-progress", tmp_path=tmp_path)
    assert_ok(result)
    assert "spiral (240 train / 60 test, 2 features, 3 classes)" in result.stdout
    test_acc, _ = accuracies(result.stdout)["fastnn"]
    assert test_acc > 80.0  # volume 2's settings learn the spiral


def test_mnist_directory(tmp_path):
    directory = write_idx_mnist(tmp_path)
    result = fastnn("train", "--data", f"mnist:{directory}", "--iters", 20, "--batch-size", 20,
                    "--no-progress", tmp_path=tmp_path)
    assert_ok(result)
    assert "(60 train / 20 test, 784 features, 10 classes)" in result.stdout
    assert "TwoLayerNet 784-50-10" in result.stdout


def test_multilayer_extend_compare(tmp_path):
    """Chapter 6's net with every option, both halves from the same start, the same numbers."""
    result = fastnn("train", "--model", "multilayer", "--hidden", "30,20,20", "--batchnorm",
                    "--dropout", 0.2, "--weight-decay", 0.01, "--init", "xavier",
                    "--activation", "sigmoid", "--compare", "--iters", 60, "--no-progress",
                    tmp_path=tmp_path)
    assert_ok(result)
    assert ("MultiLayerNetExtend 64-30-20-20-10, sigmoid, float64, batchnorm, dropout 0.2, "
            "weight decay 0.01 (weight_init_std xavier, seed 0)") in result.stdout
    acc = accuracies(result.stdout)
    assert acc["fastnn"] == acc["reference"]
    lines = re.findall(r"^\[(?:fastnn|reference)\] (epoch .*)$", result.stdout, re.M)
    assert lines[:len(lines) // 2] == lines[len(lines) // 2:]
    diff = re.search(r"largest parameter difference after training ([\d.e+-]+)", result.stdout)
    assert float(diff[1]) < 1e-8


def test_multilayer_defaults_learn_the_digits(tmp_path):
    result = fastnn("train", "--model", "multilayer", "--epochs", 20, "--no-progress",
                    tmp_path=tmp_path)
    assert_ok(result)
    assert "MultiLayerNet 64-100-100-100-100-10, relu, float64 (weight_init_std he" in \
        result.stdout
    assert "300 steps = 20 epochs of 15 steps" in result.stdout
    test_acc, _ = accuracies(result.stdout)["fastnn"]
    assert test_acc > 90.0


def test_multilayer_float32_number_init_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    result = fastnn("train", "--model", "multilayer", "--hidden", "30,20", "--dtype", "float32",
                    "--init", 0.05, "--optimizer", "adam", "--iters", 100, "--no-progress",
                    "--plot", "curves.png", tmp_path=tmp_path)
    assert_ok(result)
    assert "MultiLayerNet 64-30-20-10, relu, float32 (weight_init_std 0.05, seed 0)" in \
        result.stdout
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_SIGNATURE
    assert accuracies(result.stdout)["fastnn"][0] > 60.0


def test_multilayer_numerical_gradient(tmp_path):
    result = fastnn("train", "--model", "multilayer", "--hidden", "5,4", "--grad", "numerical",
                    "--data", "spiral", "--iters", 3, "--compare", "--no-progress",
                    tmp_path=tmp_path)
    assert_ok(result)
    assert "MultiLayerNet 2-5-4-3" in result.stdout
    acc = accuracies(result.stdout)
    assert acc["fastnn"] == acc["reference"]


# --------------------------------------------------------------------------- convnets

def epoch_test_accuracies(stdout, label="fastnn"):
    return [float(a) for a in re.findall(rf"^\[{label}\] epoch .* test acc ([\d.]+)$", stdout,
                                         re.M)]


def test_simple_convnet_learns_the_digits(tmp_path):
    """The book's train_convnet.py settings (Adam lr 0.001) on the digits as 8x8 images."""
    result = fastnn("train", "--model", "simple-convnet", "--epochs", 8, "--print-every", 1,
                    "--no-progress", tmp_path=tmp_path)
    assert_ok(result)
    assert "digits (1437 train / 360 test, 1x8x8 images, 10 classes)" in result.stdout
    assert ("SimpleConvNet 1x8x8 - conv 30x3x3 pad 1, pool - 480-100-10, float64 "
            "(weight_init_std 0.01, seed 0)") in result.stdout
    assert "Adam lr 0.001, batch 100, backprop; 120 steps = 8 epochs of 15 steps" in \
        result.stdout
    acc = epoch_test_accuracies(result.stdout)
    assert len(acc) == 8
    assert acc[-1] > 0.7 and acc[-1] > acc[0] + 0.3, acc


@pytest.mark.parametrize("model", ["simple-convnet", "deep-convnet"])
def test_convnet_compare_on_digits(tmp_path, model):
    result = fastnn("train", "--model", model, "--compare", "--iters", 6, "--batch-size", 20,
                    "--no-progress", tmp_path=tmp_path)
    assert_ok(result)
    acc = accuracies(result.stdout)
    assert acc["fastnn"] == acc["reference"]
    match = re.search(r"speed-up: +([\d.]+)x .*largest parameter difference after training "
                      r"([\d.e+-]+)", result.stdout)
    assert match, result.stdout
    assert float(match[1]) > 0 and float(match[2]) < 1e-10


def test_convnets_on_mnist_files(tmp_path):
    """28x28 images: SimpleConvNet takes the book's Conv1, DeepConvNet its 64x4x4 Affine."""
    directory = write_idx_mnist(tmp_path, n_train=40, n_test=10)
    data = ["--data", f"mnist:{directory}", "--batch-size", 10, "--no-progress"]
    simple = fastnn("train", "--model", "simple-convnet", "--iters", 4, "--hidden", 20,
                    "--dtype", "float32", "--optimizer", "sgd", *data, tmp_path=tmp_path)
    assert_ok(simple)
    assert "(40 train / 10 test, 1x28x28 images, 10 classes)" in simple.stdout
    assert "SimpleConvNet 1x28x28 - conv 30x5x5, pool - 4320-20-10, float32" in simple.stdout
    assert "SGD lr 0.1" in simple.stdout
    deep = fastnn("train", "--model", "deep-convnet", "--iters", 2, "--compare", *data,
                  tmp_path=tmp_path)
    assert_ok(deep)
    assert "pool - 1024-50-10, float64 (weight_init_std he, seed 0)" in deep.stdout
    acc = accuracies(deep.stdout)
    assert acc["fastnn"] == acc["reference"]


def test_convnet_save_then_load(tmp_path):
    """--save writes the book's pickle (a dict of the arrays); --load reads it into either half."""
    trained = fastnn("train", "--model", "simple-convnet", "--iters", 20, "--hidden", 30,
                     "--no-progress", "--save", "params.pkl", tmp_path=tmp_path)
    assert_ok(trained)
    assert "saved:     params.pkl" in trained.stdout
    with open(tmp_path / "params.pkl", "rb") as f:
        params = pickle.load(f)
    assert {k: v.shape for k, v in params.items()} == {
        "W1": (30, 1, 3, 3), "b1": (30,), "W2": (480, 30), "b2": (30,), "W3": (30, 10),
        "b3": (10,)}

    loaded = fastnn("train", "--model", "simple-convnet", "--hidden", 30, "--load",
                    "params.pkl", "--reference", tmp_path=tmp_path)
    assert_ok(loaded)
    assert "evaluation only" in loaded.stdout
    assert accuracies(loaded.stdout)["reference"] == accuracies(trained.stdout)["fastnn"]
    more = fastnn("train", "--model", "simple-convnet", "--hidden", 30, "--load", "params.pkl",
                  "--iters", 5, "--compare", "--no-progress", tmp_path=tmp_path)
    assert_ok(more)
    assert "loaded from 'params.pkl'" in more.stdout and "5 steps" in more.stdout
    acc = accuracies(more.stdout)
    assert acc["fastnn"] == acc["reference"]

    assert_usage_error(fastnn("train", "--model", "simple-convnet", "--load", "params.pkl",
                              tmp_path=tmp_path), "params.pkl", "W2", "(480, 30)", "(480, 100)")
    assert_usage_error(fastnn("train", "--model", "deep-convnet", "--load", "params.pkl",
                              tmp_path=tmp_path), "params.pkl", "DeepConvNet", "missing")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    assert_usage_error(fastnn("train", "--model", "simple-convnet", "--load", "junk.pkl",
                              tmp_path=tmp_path), "junk.pkl")


# --------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("args, words", [
    (["--optimizer", "sgdd"], ["--optimizer", "sgdd"]),
    (["--lr", "-0.1"], ["--lr", "-0.1"]),
    (["--lr", "0"], ["--lr"]),
    (["--lr", "nan"], ["--lr"]),
    (["--hidden", "0"], ["--hidden"]),
    (["--batch-size", "ten"], ["--batch-size"]),
    (["--iters", "-5"], ["--iters"]),
    (["--activation", "tanh"], ["--activation"]),
    (["--dtype", "float16"], ["--dtype"]),
    (["--data", "mnist:no-such-dir"], ["MNIST directory not found", "no-such-dir"]),
    (["--data", "mnist:"], ["mnist:"]),
    (["--data", "cifar"], ["cifar"]),
    (["--reference", "--compare"], ["--compare"]),
    (["--iters", "5", "--epochs", "5"], ["--epochs"]),
    (["--plot", "no-such-dir/x.png"], ["no-such-dir"]),
    (["--model", "deep"], ["--model", "deep"]),
    (["--hidden", "100,0"], ["--hidden", "100,0"]),
    (["--hidden", "100,,5"], ["--hidden"]),
    (["--hidden", "100,100"], ["--hidden 100,100", "one hidden layer"]),
    (["--batchnorm"], ["--batchnorm", "--model multilayer"]),
    (["--dropout", "0.2"], ["--dropout", "--model multilayer"]),
    (["--weight-decay", "0.1"], ["--weight-decay", "--model multilayer"]),
    (["--init", "he"], ["--init he", "--model multilayer"]),
    (["--model", "multilayer", "--init", "lecun"], ["--init", "lecun"]),
    (["--model", "multilayer", "--init", "-1"], ["--init"]),
    (["--init", "0.1", "--weight-init-std", "0.1"], ["--weight-init-std"]),
    (["--model", "deep-convnet", "--weight-init-std", "0.1"], ["--weight-init-std 0.1", "he"]),
    (["--model", "deep-convnet", "--init", "0.1"], ["--init 0.1", "he"]),
    (["--model", "multilayer", "--dropout", "1"], ["--dropout", "[0, 1)"]),
    (["--model", "multilayer", "--dropout", "nan"], ["--dropout"]),
    (["--model", "multilayer", "--weight-decay", "-0.5"], ["--weight-decay"]),
    (["--model", "multilayer", "--save", "m.npz"], ["--save", "twolayer"]),
])
def test_bad_arguments_are_one_line_errors(tmp_path, args, words):
    result = fastnn("train", *args, tmp_path=tmp_path)
    assert_usage_error(result, *words)
    assert result.stdout == ""


@pytest.mark.parametrize("args, words", [
    (["train", "--model", "simple-convnet", "--hidden", "10,10"], ["--hidden 10,10", "one hidden"]),
    (["train", "--model", "simple-convnet", "--activation", "sigmoid"], ["--activation", "ReLU"]),
    (["train", "--model", "simple-convnet", "--init", "he"], ["--init he", "a number"]),
    (["train", "--model", "simple-convnet", "--batchnorm"], ["--batchnorm", "--model multilayer"]),
    (["train", "--model", "deep-convnet", "--dropout", "0.3"], ["--dropout", "--model multilayer"]),
    (["train", "--model", "deep-convnet", "--init", "0.1"], ["--init 0.1", "he"]),
    (["train", "--model", "deep-convnet", "--grad", "numerical"], ["--grad numerical", "Deep"]),
    (["train", "--model", "simple-convnet", "--data", "spiral"], ["needs images", "spiral"]),
    (["gradcheck", "--model", "simple-convnet", "--activation", "relu"], ["--activation", "ReLU"]),
    (["gradcheck", "--model", "simple-convnet", "--data", "spiral"], ["needs images", "spiral"]),
    (["gradcheck", "--model", "deep-convnet"], ["--model", "deep-convnet"]),
])
def test_bad_convnet_arguments_are_one_line_errors(capsys, args, words):
    """In this process: each is refused before a model is made."""
    from fastnn.cli import main

    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "error" in err
    for word in words:
        assert word in err, err


def test_mnist_directory_without_the_files(tmp_path):
    (tmp_path / "empty").mkdir()
    result = fastnn("train", "--data", f"mnist:{tmp_path / 'empty'}", tmp_path=tmp_path)
    assert_usage_error(result, "train-images-idx3-ubyte")


def test_a_command_is_a_module_and_a_line(monkeypatch):
    """What adding a command takes: a module with register(subparsers) and its name in
    fastnn.cli.COMMANDS; a command with its own parser (fastnn.book.main) gets every argument."""
    import types

    import fastnn.cli
    from fastnn.cli import common

    seen = []
    echo = types.ModuleType("fastnn.cli.echo")
    echo.register = lambda sub: common.add_passthrough(
        sub, "echo", lambda argv: seen.append(argv) or 7, help="echo")
    monkeypatch.setitem(sys.modules, "fastnn.cli.echo", echo)
    monkeypatch.setattr(fastnn.cli, "COMMANDS", fastnn.cli.COMMANDS + ("echo",))
    assert fastnn.cli.main(["echo", "--reference", "ch05/x.py", "-h", "--lr", "1"]) == 7
    assert fastnn.cli.main(["echo"]) == 7
    assert seen == [["--reference", "ch05/x.py", "-h", "--lr", "1"], []]
    assert "echo" in fastnn.cli.build_parser().format_help()


def test_no_command_and_help(tmp_path):
    assert_usage_error(fastnn(tmp_path=tmp_path), "COMMAND")
    assert_usage_error(fastnn("fly", tmp_path=tmp_path), "fly")
    for command in ("train", "bench", "gradcheck"):
        result = fastnn(command, "--help", tmp_path=tmp_path)
        assert result.returncode == 0 and "usage: fastnn " + command in result.stdout


# --------------------------------------------------------------------------- bench, gradcheck

@pytest.mark.slow
def test_bench_quick(tmp_path):
    result = fastnn("bench", "kernels", "--quick", "--no-torch", "-k", "softmax", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("workload") and "reference" in line for line in lines)
    assert any(line.startswith("softmax-CE") and re.search(r"\d+\.\dx", line) for line in lines)


def test_bench_bad_threads(tmp_path):
    assert_usage_error(fastnn("bench", "--threads", "0", tmp_path=tmp_path), "--threads")


@pytest.mark.parametrize("args", [[], ["--activation", "relu", "--batch-size", "5"]])
def test_gradcheck_table(tmp_path, args):
    result = fastnn("gradcheck", *args, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^(W1|b1|W2|b2) +\([\d, ]+\) +([\d.e+-]+) +([\d.e+-]+)$", result.stdout,
                      re.M)
    assert [name for name, _, _ in rows] == ["W1", "b1", "W2", "b2"]
    for _, mean, biggest in rows:
        assert 0 <= float(mean) <= float(biggest) < 1e-5
    assert re.search(r"^  fastnn +[\d.]+ s", result.stdout, re.M)
    assert re.search(r"^  reference +[\d.]+ s", result.stdout, re.M)
    agree = re.search(r"numerical gradient difference: ([\d.e+-]+)", result.stdout)
    assert float(agree[1]) < 1e-8


def test_gradcheck_simple_convnet(tmp_path):
    result = fastnn("gradcheck", "--model", "simple-convnet", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SimpleConvNet 1x8x8 - conv 10x3x3, pool - 90-10-10, float64" in result.stdout
    rows = re.findall(r"^(\w+) +\(([\d, ]+)\) +([\d.e+-]+) +([\d.e+-]+)$", result.stdout,
                      re.M)
    assert [(name, shape) for name, shape, _, _ in rows] == [
        ("W1", "10, 1, 3, 3"), ("b1", "10,"), ("W2", "90, 10"), ("b2", "10,"), ("W3", "10, 10"),
        ("b3", "10,")]
    for _, _, mean, biggest in rows:
        assert 0 <= float(mean) <= float(biggest) < 1e-5
    assert "numerical gradient of all 1120 parameters (2240 loss evaluations)" in result.stdout
    agree = re.search(r"numerical gradient difference: ([\d.e+-]+)", result.stdout)
    assert float(agree[1]) < 1e-8


def test_gradcheck_on_mnist_files(tmp_path):
    directory = write_idx_mnist(tmp_path, n_train=5, n_test=2)
    result = fastnn("gradcheck", "--data", f"mnist:{directory}", "--hidden", 5,
                    tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "TwoLayerNetwork 784-5-10" in result.stdout
    assert_usage_error(fastnn("gradcheck", "--batch-size", 6, "--data", f"mnist:{directory}",
                              tmp_path=tmp_path), "--batch-size 6")
