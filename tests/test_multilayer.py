"""fastnn.MultiLayerNet / MultiLayerNetExtend (src/fastnn/multilayer.py) against
fastnn.reference's, from identical parameters.

- The fast classes are fastnn's own composition of fast layers, not the reference's.
- Same layer names, parameter names, initial weights (global state or seed) and draws.
- loss, gradient (every key), predict (train_flg both ways), accuracy within 1e-10 (float64) /
  1e-4 (float32) of the reference, relative to each array's magnitude; sparse (MNIST-like, ~80%
  zeros: the first layer's products skip them) and dense inputs; ReLU and sigmoid; batch norm,
  dropout, weight decay; 1 or 2 threads; read-only and N-D inputs.
- The book's loop seeded with np.random.seed(s) prints the same numbers on both halves.
- numerical_gradient equals the reference's, and backprop agrees with it.
- gradient returns new arrays, which later calls do not overwrite.
"""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import fastnn
from fastnn import reference
from helpers import num_threads

pytestmark = pytest.mark.filterwarnings("error")

TOL = {np.float64: 1e-10, np.float32: 1e-4}
CONFIGS = {
    "relu": ("MultiLayerNet", dict(activation="relu")),
    "sigmoid-decay": ("MultiLayerNet", dict(activation="sigmoid", weight_init_std="xavier",
                                            weight_decay_lambda=0.1)),
    "batchnorm": ("MultiLayerNetExtend", dict(use_batchnorm=True)),
    "batchnorm-sigmoid": ("MultiLayerNetExtend", dict(use_batchnorm=True, activation="sigmoid")),
    "dropout-decay": ("MultiLayerNetExtend", dict(use_dropout=True, dropout_ration=0.2,
                                                  weight_decay_lambda=0.1)),
    "all": ("MultiLayerNetExtend", dict(use_dropout=True, use_batchnorm=True, weight_init_std=0.3,
                                        weight_decay_lambda=0.01)),
}


def inputs(rng, n, size, sparse, dtype=np.float64):
    x = rng.random((n, size))
    if sparse:
        x[rng.random(x.shape) < 0.8] = 0
    return x.astype(dtype)


def pair(kind, kwargs, sizes, dtype, seed=None):
    """The fast and the reference network, from the same draws of np.random's global state."""
    state = np.random.get_state()
    fast = getattr(fastnn, kind)(sizes[0], sizes[1:-1], sizes[-1], dtype=dtype, seed=seed, **kwargs)
    after = np.random.get_state()
    np.random.set_state(state)
    ref = getattr(reference, kind)(sizes[0], sizes[1:-1], sizes[-1], dtype=dtype, seed=seed, **kwargs)
    assert np.array_equal(np.random.get_state()[1], after[1])
    return fast, ref


def close(actual, expected, dtype, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, what
    scale = max(np.max(np.abs(expected), initial=0), 1.0)
    assert_allclose(actual, expected, rtol=0, atol=TOL[dtype] * scale, err_msg=what)


def same_step(fast, ref, x, t, dtype, seed):
    np.random.seed(seed)
    g_fast = fast.gradient(x, t)
    np.random.seed(seed)
    g_ref = ref.gradient(x, t)
    assert list(g_fast) == list(g_ref)
    for name in g_ref:  # relative to max(|g|, 1): a bias before a batch norm has g ~ 1e-17
        close(g_fast[name], g_ref[name], dtype, name)
    return g_fast, g_ref


def test_fast_classes_are_their_own():
    for name in ("MultiLayerNet", "MultiLayerNetExtend"):
        cls = getattr(fastnn, name)
        assert cls is not getattr(reference, name)
        assert not issubclass(cls, getattr(reference, name))
        assert cls.__module__ == "fastnn.multilayer"
    net = fastnn.MultiLayerNetExtend(6, [4, 3], 2, use_batchnorm=True, use_dropout=True, seed=0)
    for layer in list(net.layers.values()) + [net.last_layer]:
        assert type(layer).__module__ == "fastnn.layers", type(layer)


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
@pytest.mark.parametrize("threads", [1, 2])
def test_training_equals_reference(config, dtype, sparse, threads):
    kind, kwargs = CONFIGS[config]
    rng = np.random.default_rng(0)
    np.random.seed(1)
    fast, ref = pair(kind, kwargs, [30, 12, 9, 7, 5], dtype)
    assert list(fast.layers) == list(ref.layers) and list(fast.params) == list(ref.params)
    for name in ref.params:
        assert np.array_equal(fast.params[name], ref.params[name])
    x, t = inputs(rng, 20, 30, sparse, dtype), rng.integers(0, 5, 20)
    with num_threads(threads):
        for step in range(3):
            g_fast, g_ref = same_step(fast, ref, x, t, dtype, seed=step)
            for name in ref.params:  # SGD on both, so later steps start from moved parameters
                fast.params[name] -= 0.1 * g_fast[name]
                ref.params[name] -= 0.1 * g_ref[name]
        train = kind == "MultiLayerNetExtend"
        for flag in ([False, True] if train else [None]):
            args = () if flag is None else (flag,)
            np.random.seed(9)
            loss_fast = fast.loss(x, t, *args)
            np.random.seed(9)
            loss_ref = ref.loss(x, t, *args)
            close(loss_fast, loss_ref, dtype, "loss")
            np.random.seed(9)
            pred_fast = fast.predict(x, *args)
            np.random.seed(9)
            close(pred_fast, ref.predict(x, *args), dtype, "predict")
        assert fast.accuracy(x, t) == ref.accuracy(x, t)
        assert fast.accuracy(x, np.eye(5)[t]) == ref.accuracy(x, np.eye(5)[t])
    if "use_batchnorm" in kwargs:
        for idx in (1, 2, 3):
            for stat in ("running_mean", "running_var"):
                close(getattr(fast.layers[f"BatchNorm{idx}"], stat),
                      getattr(ref.layers[f"BatchNorm{idx}"], stat), dtype, stat)


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_batch_sizes_in_turn_equal_reference(config, sparse):
    # training batches between evaluations of more rows and of fewer (a search's epochs): the
    # layers' scratch is shared by sizes up to 4x apart and remade beyond, never stale
    kind, kwargs = CONFIGS[config]
    rng = np.random.default_rng(3)
    np.random.seed(4)
    fast, ref = pair(kind, kwargs, [30, 12, 9, 7, 5], np.float64)
    x, t = inputs(rng, 90, 30, sparse, np.float64), rng.integers(0, 5, 90)
    for step, (batch, evaluated) in enumerate([(20, 80), (20, 20), (20, 5), (20, 90), (7, 3)]):
        g_fast, g_ref = same_step(fast, ref, x[:batch], t[:batch], np.float64, seed=step)
        for name in ref.params:
            fast.params[name] -= 0.1 * g_fast[name]
            ref.params[name] -= 0.1 * g_ref[name]
        close(fast.predict(x[:evaluated]), ref.predict(x[:evaluated]), np.float64, "predict")
        assert fast.accuracy(x[:evaluated], t[:evaluated]) == ref.accuracy(x[:evaluated],
                                                                            t[:evaluated])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hidden", [[100, 100], [150, 60], [60, 150]])
def test_layers_wider_and_narrower_than_gemm_narrow_equal_reference(hidden, dtype):
    # a hidden layer's input gradient da W^T runs in gemm_narrow for inputs of at most
    # GEMM_NARROW_COLS (128) features and in BLAS beyond: both against the reference
    rng = np.random.default_rng(5)
    fast, ref = pair("MultiLayerNet", {}, [40, *hidden, 10], dtype, seed=5)
    x, t = inputs(rng, 30, 40, False, dtype), rng.integers(0, 10, 30)
    same_step(fast, ref, x, t, dtype, 5)


@settings(max_examples=25, deadline=None)
@given(config=st.sampled_from(list(CONFIGS)), hidden=st.lists(st.integers(1, 12), max_size=4),
       n=st.integers(1, 9), inp=st.integers(1, 20), out=st.integers(1, 6),
       seed=st.integers(0, 2**16), sparse=st.booleans(), readonly=st.booleans())
def test_shapes_against_reference(config, hidden, n, inp, out, seed, sparse, readonly):
    kind, kwargs = CONFIGS[config]
    if "use_batchnorm" in kwargs and n == 1:
        n = 2  # a batch norm of one row is 0 / sqrt(eps): defined, but every gradient is noise
    rng = np.random.default_rng(seed)
    fast, ref = pair(kind, kwargs, [inp, *hidden, out], np.float64, seed=seed)
    x, t = inputs(rng, n, inp, sparse), rng.integers(0, out, n)
    if readonly:
        x.flags.writeable = False
    same_step(fast, ref, x, t, np.float64, seed)
    close(fast.predict(x), ref.predict(x), np.float64, "predict")


def test_seeded_fidelity_of_the_books_loop(capsys):
    # a chapter-6 script in the book's style: seed, build, train with SGD, print
    def script(half):
        np.random.seed(2024)
        x_train = np.random.rand(60, 16)
        x_train[x_train < 0.7] = 0
        t_train = np.random.randint(0, 4, 60)
        network = half.MultiLayerNetExtend(16, [10, 10, 10], 4, use_batchnorm=True,
                                           use_dropout=True, dropout_ration=0.2,
                                           weight_decay_lambda=0.05)
        optimizer = half.SGD(lr=0.1)
        for i in range(20):
            batch_mask = np.random.choice(60, 20)
            grads = network.gradient(x_train[batch_mask], t_train[batch_mask])
            optimizer.update(network.params, grads)
            if i % 5 == 0:
                print(f"{i} {network.loss(x_train, t_train):.10f} "
                      f"{network.accuracy(x_train, t_train):.4f}")
        return capsys.readouterr().out

    printed = script(fastnn)
    assert printed == script(reference)
    assert len(printed.splitlines()) == 4


@pytest.mark.parametrize("config", ["relu", "batchnorm", "dropout-decay"])
def test_numerical_gradient_equals_reference(config):
    kind, kwargs = CONFIGS[config]
    rng = np.random.default_rng(4)
    fast, ref = pair(kind, kwargs, [5, 4, 3], np.float64, seed=3)
    x, t = inputs(rng, 4, 5, False), rng.integers(0, 3, 4)
    # dropout: each loss draws new masks from the model's generator, in the same order on both
    numerical = fast.numerical_gradient(x, t)
    expected = ref.numerical_gradient(x, t)
    assert list(numerical) == list(expected)
    for name in expected:
        assert_allclose(numerical[name], expected[name], rtol=1e-7, atol=1e-9, err_msg=name)
    if "use_dropout" not in kwargs:  # backprop and the numerical gradient of one network
        backprop = fast.gradient(x, t)
        for name in expected:
            assert_allclose(backprop[name], numerical[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_gradient_returns_new_arrays():
    rng = np.random.default_rng(0)
    net = fastnn.MultiLayerNetExtend(8, [6, 5], 3, use_batchnorm=True, seed=1)
    x, t = inputs(rng, 7, 8, True), rng.integers(0, 3, 7)
    first = net.gradient(x, t)
    kept = {k: v.copy() for k, v in first.items()}
    net.predict(x)
    second = net.gradient(x * 2, t)
    for name in first:
        assert np.array_equal(first[name], kept[name]), name
        assert not np.shares_memory(first[name], second[name])
        assert not any(np.shares_memory(first[name], p) for p in net.params.values())
    # volume 1's attributes show the last step's gradients
    assert np.array_equal(net.layers["Affine2"].dW, second["W2"])


def test_pickle_round_trip():
    net = fastnn.MultiLayerNetExtend(8, [6], 3, use_batchnorm=True, seed=1)
    x = np.random.default_rng(0).random((4, 8))
    net.gradient(x, np.array([0, 1, 2, 0]))
    copy = pickle.loads(pickle.dumps(net))
    assert np.array_equal(copy.predict(x), net.predict(x))


def test_nd_input_is_flattened():
    net = fastnn.MultiLayerNet(12, [5], 3, seed=0)
    x = np.random.default_rng(0).random((4, 3, 4))
    assert_allclose(net.predict(x), net.predict(x.reshape(4, 12)))
