"""Both books' trainers (``Trainer``, ``NetworkTrainer``, ``ModelTrainer``), ``BaseModel`` and the
util helpers (``smooth_curve``, ``shuffle_dataset``, ``clip_grads``), on both halves.

The trainers are checked against loops written here in the books' way (the same NumPy random
calls in the same order), seeded alike: the lists and the printed lines must be equal exactly
within a half, and to floating-point tolerance between the halves.
"""
import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn
import fastnn.reference


def tiny_digits(half, n_train=230, n_test=50):
    (x, t), (xt, tt) = half.load_digits()
    return x[:n_train], t[:n_train], xt[:n_test], tt[:n_test]


# --------------------------------------------------------------------------- volume 1

def book_loop_v1(half, network, x, t, xt, tt, epochs, batch, optimizer, lr, sample_num):
    """Volume 1's trainer written out: returns (printed lines, losses, train accs, test accs)."""
    opt = getattr(half, optimizer)(lr=lr)
    lines, losses, train_accs, test_accs = [], [], [], []
    train_size = x.shape[0]
    iter_per_epoch = max(train_size / batch, 1)
    epoch = 0
    for i in range(int(epochs * iter_per_epoch)):
        mask = np.random.choice(train_size, batch)
        grads = network.gradient(x[mask], t[mask])
        opt.update(network.params, grads)
        loss = network.loss(x[mask], t[mask])
        losses.append(loss)
        lines.append("train loss:" + str(loss))
        if i % iter_per_epoch == 0:
            epoch += 1
            n = len(x) if sample_num is None else sample_num
            train_acc = network.accuracy(x[:n], t[:n])
            test_acc = network.accuracy(xt[:n], tt[:n])
            train_accs.append(train_acc)
            test_accs.append(test_acc)
            lines.append("=== epoch:" + str(epoch) + ", train acc:" + str(train_acc)
                         + ", test acc:" + str(test_acc) + " ===")
    test_acc = network.accuracy(xt, tt)
    lines += ["=============== Final Test Accuracy ===============", "test acc:" + str(test_acc)]
    return lines, losses, train_accs, test_accs


@pytest.mark.parametrize("name, cls, epochs, batch, sample_num", [
    ("SGD", "SGD", 3, 40, None),          # 5.75 steps per epoch: evaluated at step 0 only
    ("adam", "Adam", 2, 23, 30),          # 10 steps per epoch
    ("MoMenTum", "Momentum", 2, 50, 7),
    ("nesterov", "Nesterov", 1.5, 46, None),
    ("AdaGrad", "AdaGrad", 2, 100, None),
    ("rmsprop", "RMSprop", 3, 500, 10),   # a batch larger than the data: one step per epoch
])
def test_network_trainer_is_the_books_loop(half, capsys, name, cls, epochs, batch, sample_num):
    x, t, xt, tt = tiny_digits(half)
    lr = 0.01 if cls in ("Adam", "RMSprop") else 0.1

    np.random.seed(5)
    network = half.TwoLayerNetwork(64, 20, 10, weight_init_std=0.1)
    trainer = half.Trainer(network, x, t, xt, tt, epochs=epochs, mini_batch_size=batch,
                           optimizer=name, optimizer_param={"lr": lr},
                           evaluate_sample_num_per_epoch=sample_num)
    trainer.train()
    printed = capsys.readouterr().out.splitlines()

    np.random.seed(5)
    network = half.TwoLayerNetwork(64, 20, 10, weight_init_std=0.1)
    lines, losses, train_accs, test_accs = book_loop_v1(half, network, x, t, xt, tt, epochs,
                                                        batch, cls, lr, sample_num)
    assert isinstance(trainer, half.NetworkTrainer)
    assert isinstance(trainer.optimizer, getattr(half, cls))
    assert printed == lines
    assert trainer.train_loss_list == losses
    assert trainer.train_acc_list == train_accs
    assert trainer.test_acc_list == test_accs
    assert len(losses) == int(epochs * max(len(x) / batch, 1))


@pytest.mark.parametrize("extend", [
    dict(),
    dict(use_batchnorm=True),
    dict(use_dropout=True, dropout_ration=0.2, use_batchnorm=True, weight_decay_lambda=0.1),
], ids=["plain", "batchnorm", "dropout-batchnorm-decay"])
def test_network_trainer_on_chapter_6_nets(half, capsys, extend):
    """Chapter 6's use: MultiLayerNetExtend, weights and dropout masks from NumPy's global state
    (no seed), as the book's scripts run it; then the same numbers on the other half."""
    x, t, xt, tt = tiny_digits(half, n_train=200)
    runs = {}
    for lib in (half, fastnn.reference):
        np.random.seed(3)
        net = lib.MultiLayerNetExtend(64, [20, 15, 10], 10, **extend)
        trainer = lib.Trainer(net, x, t, xt, tt, epochs=3, mini_batch_size=50,
                              optimizer="momentum", optimizer_param={"lr": 0.05})
        trainer.train()
        runs[lib] = (capsys.readouterr().out.splitlines(), trainer)

    np.random.seed(3)
    net = half.MultiLayerNetExtend(64, [20, 15, 10], 10, **extend)
    lines, losses, train_accs, test_accs = book_loop_v1(half, net, x, t, xt, tt, 3, 50,
                                                        "Momentum", 0.05, None)
    printed, trainer = runs[half]
    assert printed == lines
    assert trainer.train_loss_list == losses
    assert trainer.train_acc_list == train_accs and len(train_accs) == 3  # steps 0, 4, 8
    assert trainer.test_acc_list == test_accs
    ref = runs[fastnn.reference][1]
    np.testing.assert_allclose(trainer.train_loss_list, ref.train_loss_list, rtol=1e-9)
    assert trainer.test_acc_list == ref.test_acc_list


def test_network_trainer_same_numbers_on_both_halves(capsys):
    runs = []
    for half in (fastnn.reference, fastnn):
        x, t, xt, tt = tiny_digits(half)
        np.random.seed(11)
        network = half.TwoLayerNetwork(64, 30, 10, weight_init_std=0.1, activation="relu")
        trainer = half.Trainer(network, x, t, xt, tt, epochs=4, mini_batch_size=23,
                               optimizer="Adam", optimizer_param={"lr": 0.01}, verbose=False)
        trainer.train()
        runs.append(trainer)
    assert capsys.readouterr().out == ""  # verbose=False prints nothing
    ref, fast = runs
    np.testing.assert_allclose(fast.train_loss_list, ref.train_loss_list, rtol=1e-10)
    assert fast.train_acc_list == ref.train_acc_list
    assert fast.test_acc_list == ref.test_acc_list
    assert len(ref.train_acc_list) == 4


def test_network_trainer_rng_leaves_the_global_state_alone(half):
    x, t, xt, tt = tiny_digits(half)
    network = half.TwoLayerNetwork(64, 10, 10, seed=0)
    trainer = half.Trainer(network, x, t, xt, tt, mini_batch_size=17, verbose=False, rng=3)
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    losses = list(trainer.steps(5))

    network2 = half.TwoLayerNetwork(64, 10, 10, seed=0)
    opt = half.SGD(lr=0.01)
    rng = np.random.default_rng(3)
    expected = []
    for _ in range(5):
        mask = rng.choice(len(x), 17)
        opt.update(network2.params, network2.gradient(x[mask], t[mask]))
        expected.append(network2.loss(x[mask], t[mask]))
    assert losses == expected == trainer.train_loss_list
    assert np.array_equal(np.random.get_state()[1], state)
    assert trainer.current_iter == 5 and trainer.train_acc_list == []


@pytest.mark.parametrize("gradient", ["backward", "numerical_gradient"])
def test_network_trainer_gradient_modes(half, capsys, gradient):
    """'backward' steps a volume-2 model (loss before the update), 'numerical_gradient' a
    volume-1 one with chapter 4's numerical gradients."""
    x, t, xt, tt = tiny_digits(half, n_train=60)
    model_class = half.TwoLayerNet if gradient == "backward" else half.TwoLayerNetwork
    trainer = half.Trainer(model_class(64, 4, 10, seed=1), x, t, xt, tt, mini_batch_size=6,
                           optimizer="sgd", optimizer_param={"lr": 0.5}, gradient=gradient,
                           rng=9)
    losses = list(trainer.steps(4))
    assert capsys.readouterr().out == ""

    model = model_class(64, 4, 10, seed=1)
    opt, rng = half.SGD(lr=0.5), np.random.default_rng(9)
    for loss in losses:
        mask = rng.choice(len(x), 6)
        if gradient == "backward":
            assert model.forward(x[mask], t[mask]) == loss
            model.backward()
            opt.update(model.params, model.grads)
        else:
            opt.update(model.params, model.numerical_gradient(x[mask], t[mask]))
            assert model.loss(x[mask], t[mask]) == loss
    for a, b in zip(model.params, trainer.network.params):
        a, b = (model.params[a], trainer.network.params[b]) if isinstance(a, str) else (a, b)
        assert np.array_equal(a, b)


def test_steps_then_train_step_continue_the_count(half, capsys):
    x, t, xt, tt = tiny_digits(half, n_train=40)
    trainer = half.Trainer(half.TwoLayerNetwork(64, 5, 10, seed=0), x, t, xt, tt,
                           mini_batch_size=10)  # 4 steps per epoch
    list(trainer.steps(3))
    trainer.train_step()  # step index 3: not an epoch start
    trainer.train_step()  # step index 4: the second epoch starts
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["train loss", "train loss", "=== epoch"]
    assert lines[2].startswith("=== epoch:1, train acc:")
    assert len(trainer.train_loss_list) == 5 and len(trainer.test_acc_list) == 1


# --------------------------------------------------------------------------- dispatch

def test_trainer_tells_the_books_apart(half):
    x, t, xt, tt = tiny_digits(half, n_train=20, n_test=5)
    model, opt = half.TwoLayerNet(64, 5, 10, seed=0), half.SGD()
    for trainer in (half.Trainer(model, opt), half.Trainer(model, optimizer=opt),
                    half.Trainer(model=model, optimizer=opt)):
        assert type(trainer) is half.ModelTrainer and isinstance(trainer, half.Trainer)
        assert trainer.optimizer is opt
    network = half.TwoLayerNetwork(64, 5, 10, seed=0)
    for trainer in (half.Trainer(network, x, t, xt, tt, optimizer="adam"),
                    half.Trainer(network, x_train=x, t_train=t, x_test=xt, t_test=tt),
                    half.Trainer(network=network, x_train=x, t_train=t, x_test=xt, t_test=tt)):
        assert type(trainer) is half.NetworkTrainer and isinstance(trainer, half.Trainer)
    # each book's class directly, as the book runner gives each book its own
    assert type(half.ModelTrainer(model, opt)) is half.ModelTrainer
    assert type(half.NetworkTrainer(network, x, t, xt, tt)) is half.NetworkTrainer


def test_fast_trainers_use_the_fast_optimizers():
    """The fast half's classes are its own, and volume 1's names build fastnn's optimizers."""
    x, t, xt, tt = tiny_digits(fastnn, n_train=20, n_test=5)
    for name in ("Trainer", "NetworkTrainer", "ModelTrainer"):
        assert getattr(fastnn, name) is not getattr(fastnn.reference, name)
    trainer = fastnn.Trainer(fastnn.TwoLayerNetwork(64, 5, 10, seed=0), x, t, xt, tt)
    assert type(trainer.optimizer) is fastnn.optimizers.SGD
    assert fastnn.optimizers.SGD is not fastnn.reference.optimizers.SGD
    for name, cls in fastnn.NetworkTrainer.optimizer_classes.items():
        assert cls is getattr(fastnn.optimizers, cls.__name__)
        assert name == cls.__name__.lower()


# --------------------------------------------------------------------------- volume 2

TIME = re.compile(r"\| time \d+\[s\] \|")


def book_fit(half, model, optimizer, x, t, max_epoch, batch_size, max_grad, eval_interval):
    """Volume 2's fit written out (no shared weights here): (printed lines, loss_list)."""
    lines, loss_list = [], []
    max_iters = len(x) // batch_size
    total, count = 0, 0
    for epoch in range(max_epoch):
        idx = np.random.permutation(np.arange(len(x)))
        x, t = x[idx], t[idx]
        for iters in range(max_iters):
            bx = x[iters * batch_size:(iters + 1) * batch_size]
            bt = t[iters * batch_size:(iters + 1) * batch_size]
            loss = model.forward(bx, bt)
            model.backward()
            if max_grad is not None:
                norm = math.sqrt(sum(float(np.sum(g ** 2)) for g in model.grads))
                if max_grad / (norm + 1e-6) < 1:
                    for g in model.grads:
                        g *= max_grad / (norm + 1e-6)
            optimizer.update(model.params, model.grads)
            total += loss
            count += 1
            if eval_interval is not None and iters % eval_interval == 0:
                lines.append("| epoch %d |  iter %d / %d | time 0[s] | loss %.2f"
                             % (epoch + 1, iters + 1, max_iters, total / count))
                loss_list.append(float(total / count))
                total, count = 0, 0
    return lines, loss_list


@pytest.mark.parametrize("max_grad, eval_interval", [(None, 2), (0.5, 1), (None, None)])
def test_model_trainer_fit_is_the_books_loop(half, capsys, max_grad, eval_interval):
    x, t = half.load_spiral()
    np.random.seed(1984)
    model = half.TwoLayerNet(2, 10, 3, weight_init_std=1.0)
    trainer = half.Trainer(model, half.SGD(lr=1.0))
    trainer.fit(x, t, max_epoch=20, batch_size=30, max_grad=max_grad,
                eval_interval=eval_interval)
    printed = TIME.sub("| time 0[s] |", capsys.readouterr().out).splitlines()

    np.random.seed(1984)
    model2 = half.TwoLayerNet(2, 10, 3, weight_init_std=1.0)
    lines, loss_list = book_fit(half, model2, half.SGD(lr=1.0), x, t, 20, 30, max_grad,
                                eval_interval)
    assert printed == lines
    assert trainer.loss_list == loss_list
    assert trainer.current_epoch == 20 and trainer.eval_interval == eval_interval
    for a, b in zip(model.params, model2.params):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)  # clip's sum order may differ


def test_model_trainer_same_numbers_on_both_halves(capsys):
    """Volume 2's chapter 1 (spiral, hidden 10, SGD lr 1, batch 30, 300 epochs) on each half."""
    runs = []
    for half in (fastnn.reference, fastnn):
        x, t = half.load_spiral()
        np.random.seed(1984)
        trainer = half.Trainer(half.TwoLayerNet(2, 10, 3), half.SGD(lr=1.0))
        trainer.fit(x, t, max_epoch=300, batch_size=30, eval_interval=10)
        runs.append((TIME.sub("", capsys.readouterr().out), trainer))
    (ref_out, ref), (fast_out, fast) = runs
    assert len(ref.loss_list) == 300
    np.testing.assert_allclose(fast.loss_list, ref.loss_list, rtol=1e-9)
    assert fast_out == ref_out
    assert ref.loss_list[-1] < 0.3 * ref.loss_list[0]  # it learns the spiral
    assert ref.model.accuracy(x, t) == fast.model.accuracy(x, t) > 0.85


def test_plot_draws_the_loss_list_and_writes_nothing(half, tmp_path, monkeypatch, capsys):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    trainer = half.Trainer(half.TwoLayerNet(2, 4, 3, seed=0), half.SGD())
    trainer.loss_list, trainer.eval_interval = [1.5, 1.0, 0.75], 20
    plt.close("all")
    with warnings.catch_warnings():  # Agg's plt.show() may warn that it cannot show
        warnings.simplefilter("ignore", UserWarning)
        trainer.plot(ylim=(0, 2))
    ax = plt.gca()
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == [1.5, 1.0, 0.75]
    assert list(line.get_xdata()) == [0, 1, 2]
    assert ax.get_ylim() == (0, 2)
    assert ax.get_xlabel() == "iterations (x20)" and ax.get_ylabel() == "loss"
    plt.close("all")
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().out == ""


def test_remove_duplicate(half):
    from importlib import import_module
    remove_duplicate = import_module(half.__name__ + ".trainer").remove_duplicate
    W = np.arange(6.0).reshape(2, 3)
    tied = W.T.copy()
    b = np.zeros(3)
    gW, gW2, gtied, gb = np.ones((2, 3)), np.full((2, 3), 2.0), np.arange(6.0).reshape(3, 2), \
        np.ones(3)
    params, grads = remove_duplicate([W, b, W, tied], [gW, gb, gW2, gtied])
    assert params[0] is W and params[1] is b and len(params) == 2
    np.testing.assert_array_equal(grads[0], 1.0 + 2.0 + np.arange(6.0).reshape(3, 2).T)
    assert grads[0] is gW  # summed in place, as the book does
    params, grads = remove_duplicate([W, b], [gW, gb])
    assert params == [W, b] and grads[1] is gb


# --------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("kwargs, error, words", [
    (dict(optimizer="sgdd"), ValueError, ["sgdd", "adam"]),
    (dict(optimizer=None), TypeError, ["optimizer must be a name"]),
    (dict(epochs=0), ValueError, ["epochs", "0"]),
    (dict(epochs=-1.5), ValueError, ["epochs"]),
    (dict(epochs=float("nan")), ValueError, ["epochs"]),
    (dict(mini_batch_size=0), ValueError, ["mini_batch_size"]),
    (dict(mini_batch_size=2.5), TypeError, ["mini_batch_size"]),
    (dict(evaluate_sample_num_per_epoch=0), ValueError, ["evaluate_sample_num_per_epoch"]),
    (dict(gradient="adjoint"), ValueError, ["gradient", "adjoint"]),
    (dict(gradient="backward"), TypeError, ["network.forward"]),
    (dict(optimizer_param={"lrr": 1}), TypeError, ["lrr"]),
])
def test_network_trainer_bad_arguments(half, kwargs, error, words):
    x, t, xt, tt = tiny_digits(half, n_train=20, n_test=5)
    network = half.TwoLayerNetwork(64, 5, 10, seed=0)
    with pytest.raises(error) as info:
        half.Trainer(network, x, t, xt, tt, **kwargs)
    for word in words:
        assert word in str(info.value)


def test_trainer_bad_data(half):
    x, t, xt, tt = tiny_digits(half, n_train=20, n_test=5)
    network = half.TwoLayerNetwork(64, 5, 10, seed=0)
    with pytest.raises(ValueError, match=r"x_train.shape=\(20, 64\), t_train.shape=\(19,\)"):
        half.Trainer(network, x, t[:19], xt, tt)
    with pytest.raises(ValueError, match="x_test and t_test"):
        half.Trainer(network, x, t, xt[:0], tt[:0])
    trainer = half.Trainer(network, x, t, xt, tt)
    with pytest.raises(ValueError, match="n_steps"):
        next(trainer.steps(-1))

    model = half.TwoLayerNet(64, 5, 10, seed=0)
    with pytest.raises(TypeError, match="update"):
        half.ModelTrainer(model, "SGD")
    with pytest.raises(TypeError, match="e.g. SGD()"):
        half.Trainer(model, half.SGD)  # the class, not an optimizer
    trainer = half.Trainer(model, half.SGD())
    before = [p.copy() for p in model.params]
    for kwargs, words in [(dict(batch_size=21), "batch_size 21 is larger than the 20"),
                          (dict(batch_size=0), "batch_size"),
                          (dict(max_epoch=-1), "max_epoch"),
                          (dict(eval_interval=0), "eval_interval"),
                          (dict(max_grad=0), "max_grad"),
                          (dict(max_grad=float("nan")), "max_grad")]:
        with pytest.raises(ValueError, match=words):
            trainer.fit(x, t, **{"batch_size": 5, **kwargs})
    with pytest.raises(ValueError, match="x and t"):
        trainer.fit(x, t[:3])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.params))


# --------------------------------------------------------------------------- BaseModel

def test_base_model_params_files(half, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    class Tiny(half.BaseModel):
        def __init__(self):
            super().__init__()
            self.params = [np.arange(6.0).reshape(2, 3) / 7, np.array([1e-3, 6000.0])]
            self.grads = [np.zeros_like(p) for p in self.params]

    base = half.BaseModel()
    assert base.params is None and base.grads is None
    with pytest.raises(NotImplementedError):
        base.forward(1, 2)
    with pytest.raises(NotImplementedError):
        base.backward()

    model = Tiny()
    model.save_params()
    assert (tmp_path / "Tiny.pkl").is_file()
    model.save_params("sub.pkl")
    other = Tiny()
    other.params = [np.zeros((2, 3)), np.zeros(2)]
    arrays = list(other.params)
    other.load_params()
    for loaded, p, array in zip(other.params, model.params, arrays):
        assert loaded is array  # loaded in place
        np.testing.assert_array_equal(loaded, p.astype(np.float16).astype(np.float32))

    import pickle
    with open("sub.pkl", "rb") as f:
        saved = pickle.load(f)
    assert [s.dtype for s in saved] == [np.float16, np.float16]

    with pytest.raises(IOError, match="No file: missing.pkl"):
        other.load_params("missing.pkl")
    other.params = [np.zeros((3, 2)), np.zeros(2)]
    with pytest.raises(ValueError, match="shapes"):
        other.load_params("sub.pkl")
    assert all(not p.any() for p in other.params)  # nothing written


# --------------------------------------------------------------------------- util

def smooth_direct(x):
    """Kaiser-weighted mean of 11 points around each value, ends mirrored as the book pads."""
    w = np.kaiser(11, 2)
    w = w / w.sum()
    n = len(x)
    padded = [x[10 - i] for i in range(10)] + list(x) + [x[n - 1 - i] for i in range(10)]
    # y[k] of the valid convolution is sum_j w[j] * padded[k + 10 - j]; the book keeps y[5:-5]
    full = [sum(w[j] * padded[k + 10 - j] for j in range(11)) for k in range(n + 10)]
    return np.array(full[5:n + 5])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=11, max_size=60))
def test_smooth_curve(values):
    for half in (fastnn.reference, fastnn):
        smoothed = half.smooth_curve(values)
        assert smoothed.shape == (len(values),)
        np.testing.assert_allclose(smoothed, smooth_direct(values), rtol=1e-12, atol=1e-9)
        np.testing.assert_array_equal(smoothed, half.smooth_curve(np.array(values)))


def test_smooth_curve_of_a_constant_and_too_short(half):
    np.testing.assert_allclose(half.smooth_curve(np.full(20, 3.0)), 3.0, rtol=1e-15)
    with pytest.raises(ValueError, match="at least 11"):
        half.smooth_curve(np.ones(10))
    with pytest.raises(ValueError, match="1-D"):
        half.smooth_curve(np.ones((11, 2)))


@pytest.mark.parametrize("shape", [(10, 3), (7, 2, 4, 4), (5,)])
def test_shuffle_dataset(half, shape):
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    t = np.arange(shape[0]) * 10
    np.random.seed(42)
    xs, ts = half.shuffle_dataset(x, t)
    np.random.seed(42)
    order = np.random.permutation(shape[0])
    np.testing.assert_array_equal(xs, x[order])
    np.testing.assert_array_equal(ts, t[order])
    assert not np.array_equal(order, np.arange(shape[0]))
    with pytest.raises(ValueError, match="same number of rows"):
        half.shuffle_dataset(x, t[:-1])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.floats(0.01, 100.0),
       st.floats(0.01, 10.0), st.sampled_from([np.float64, np.float32]))
def test_clip_grads(sizes, max_norm, scale, dtype):
    rng = np.random.default_rng(len(sizes))
    grads = [(scale * rng.standard_normal(n)).astype(dtype) for n in sizes]
    for half in (fastnn.reference, fastnn):
        clipped = [g.copy() for g in grads]
        norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
        rate = max_norm / (norm + 1e-6)
        assert half.clip_grads(clipped, max_norm) is None
        for g, c in zip(grads, clipped):
            expected = g * rate if rate < 1 else g
            np.testing.assert_allclose(c, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
            assert c.dtype == dtype


def test_clip_grads_in_place_and_bad_arguments(half):
    g1, g2 = np.array([3.0, 0.0]), np.array([[4.0]])
    half.clip_grads({"a": g1, "b": g2}, 1.0)  # the norm is 5
    np.testing.assert_allclose(g1, [3 / (5 + 1e-6), 0.0])
    np.testing.assert_allclose(g2, [[4 / (5 + 1e-6)]])

    ok, readonly = np.ones(3), np.ones(3)
    readonly.flags.writeable = False
    for grads, max_norm, error, words in [
        ([ok, readonly], 0.1, ValueError, "gradient 1 is read-only"),
        ([ok, np.ones(3, dtype=np.int64)], 0.1, TypeError, "gradient 1 must be a float array"),
        ([ok, [1.0]], 0.1, TypeError, "gradient 1"),
        ([ok], 0.0, ValueError, "max_norm"),
        ([ok], float("nan"), ValueError, "max_norm"),
    ]:
        with pytest.raises(error, match=words):
            half.clip_grads(grads, max_norm)
        assert np.array_equal(ok, np.ones(3))  # nothing written
