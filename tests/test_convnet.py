"""fastnn.SimpleConvNet and fastnn.DeepConvNet (convnet.py: the fast layers on one forward path,
images in (C, N, H, W) between layers, bias + ReLU fused) against fastnn.reference's: the book's
initial draws, outputs and gradients from identical parameters (1e-10 in float64), numerical
gradients, accuracy, the pickle format both ways, float16 inference, thread counts."""

import pickle

import numpy as np
import pytest
from helpers import FLOATS, num_threads
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import reference

needs_dropout = pytest.mark.skipif(not hasattr(fastnn.layers, "Dropout"),
                                   reason="DeepConvNet's fast Dropout is not merged yet")
TOL = {np.float64: 1e-10, np.float32: 1e-4}


def close(actual, expected, dtype):
    """Equal to dtype's tolerance, relative to the largest magnitude of expected."""
    scale = max(1.0, float(np.max(np.abs(expected))))
    assert actual.shape == np.shape(expected)
    assert_allclose(actual, expected, rtol=0, atol=TOL[dtype] * scale)


def images(rng, n, input_dim, sparse=True):
    x = rng.random((n,) + tuple(input_dim))
    if sparse:  # MNIST-like: most pixels zero
        x[x < 0.6] = 0
    return x


def test_fast_models_are_not_the_reference():
    for name in ("SimpleConvNet", "DeepConvNet"):
        fast, ref = getattr(fastnn, name), getattr(reference, name)
        assert fast is not ref and not issubclass(fast, ref)
        assert getattr(fastnn.models, name) is fast


@st.composite
def simple_configs(draw):
    C, H, W = draw(st.integers(1, 3)), draw(st.integers(4, 11)), draw(st.integers(4, 11))
    pad, stride = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    size = draw(st.integers(1, min(5, H + 2 * pad - 1, W + 2 * pad - 1)))
    oh, ow = (H + 2 * pad - size) // stride + 1, (W + 2 * pad - size) // stride + 1
    if oh < 2 or ow < 2:
        stride = 1
    return dict(input_dim=(C, H, W), conv_param={'filter_num': draw(st.integers(1, 8)),
                                                 'filter_size': size, 'pad': pad,
                                                 'stride': stride},
                hidden_size=draw(st.integers(1, 12)), output_size=draw(st.integers(2, 5)),
                weight_init_std=0.3)


def test_simple_initial_draws_are_the_books():
    np.random.seed(7)
    ref = reference.SimpleConvNet()
    after_ref = np.random.random()
    np.random.seed(7)
    fast = fastnn.SimpleConvNet()
    assert np.random.random() == after_ref
    assert list(fast.params) == list(ref.params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for key in ref.params:
        assert_array_equal(fast.params[key], ref.params[key])
    state = np.random.get_state()[1].copy()
    seeded, seeded_ref = fastnn.SimpleConvNet(seed=3), reference.SimpleConvNet(seed=3)
    assert_array_equal(np.random.get_state()[1], state)  # seed= leaves the global state alone
    for key in ref.params:
        assert_array_equal(seeded.params[key], seeded_ref.params[key])
    assert list(fast.layers) == ["Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    assert fast.layers["Conv1"].W is fast.params["W1"]
    assert fast.layers["Affine2"].params[1] is fast.params["b3"]


@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=40, deadline=None)
@given(config=simple_configs(), n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_simple_equals_the_reference(dtype, config, n, seed):
    fast = fastnn.SimpleConvNet(**config, dtype=dtype, seed=seed)
    ref = reference.SimpleConvNet(**config, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    x = images(rng, n, config["input_dim"])
    t = rng.integers(0, config["output_size"], n)
    close(fast.predict(x), ref.predict(x), dtype)
    assert fast.predict(x).dtype == dtype
    assert_allclose(fast.loss(x, t), ref.loss(x, t), rtol=TOL[dtype])
    grads, expected = fast.gradient(x, t), ref.gradient(x, t)
    assert list(grads) == list(expected)
    for key in expected:
        assert grads[key].dtype == dtype
        close(grads[key], expected[key], dtype)
    assert fast.layers["Conv1"].dW is grads["W1"] and fast.layers["Affine1"].grads[1] is grads["b2"]


def test_simple_gradient_against_numerical_gradient():
    config = dict(input_dim=(2, 7, 6), conv_param={'filter_num': 3, 'filter_size': 3, 'pad': 1,
                                                   'stride': 1},
                  hidden_size=5, output_size=3, weight_init_std=0.5)
    fast = fastnn.SimpleConvNet(**config, seed=1)
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((3, 2, 7, 6)), np.array([0, 2, 1])
    grads, numeric = fast.gradient(x, t), fast.numerical_gradient(x, t)
    for key in grads:
        assert_allclose(grads[key], numeric[key], rtol=1e-4, atol=1e-6)


def test_gradients_are_new_arrays():
    fast = fastnn.SimpleConvNet(input_dim=(1, 8, 8), conv_param={'filter_num': 2,
                                'filter_size': 3, 'pad': 0, 'stride': 1}, hidden_size=4,
                                output_size=3, seed=2)
    rng = np.random.default_rng(2)
    x, t = images(rng, 4, (1, 8, 8)), np.array([0, 1, 2, 0])
    first = fast.gradient(x, t)
    kept = {key: g.copy() for key, g in first.items()}
    scores = fast.predict(x)
    kept_scores = scores.copy()
    fast.gradient(2 * x, t[::-1])
    fast.predict(-x)
    for key in first:
        assert_array_equal(first[key], kept[key])
    assert_array_equal(scores, kept_scores)


@pytest.mark.parametrize("batch_size", [1, 3, 4, 100])
def test_accuracy(batch_size):
    fast, ref = fastnn.SimpleConvNet(seed=4, weight_init_std=0.1), reference.SimpleConvNet(
        seed=4, weight_init_std=0.1)
    rng = np.random.default_rng(4)
    x, t = images(rng, 10, (1, 28, 28)), rng.integers(0, 10, 10)
    assert fast.accuracy(x, t, batch_size) == ref.accuracy(x, t, batch_size)
    onehot = np.eye(10)[t]
    assert fast.accuracy(x, onehot, batch_size) == ref.accuracy(x, onehot, batch_size)


@pytest.mark.parametrize("writer, reader", [("fast", "reference"), ("reference", "fast")])
@pytest.mark.parametrize("dtype", FLOATS)
def test_pickles_both_ways(writer, reader, dtype, tmp_path):
    halves = {"fast": fastnn, "reference": reference}
    source = halves[writer].SimpleConvNet(seed=5, dtype=dtype)
    target = halves[reader].SimpleConvNet(seed=6)
    path = tmp_path / "params.pkl"
    source.save_params(str(path))
    with open(path, "rb") as f:
        saved = pickle.load(f)
    assert type(saved) is dict and list(saved) == list(source.params)
    target.load_params(str(path))
    x = images(np.random.default_rng(5), 3, (1, 28, 28))
    for key in source.params:
        assert_array_equal(target.params[key], source.params[key].astype(np.float64))
    close(target.predict(x), source.predict(x).astype(np.float64), dtype)


def test_float16_inference_as_half_float_network():
    """ch08/half_float_network.py: float16 images, parameters rounded to float16 in place."""
    fast, ref = fastnn.SimpleConvNet(seed=8, weight_init_std=0.1), reference.SimpleConvNet(
        seed=8, weight_init_std=0.1)
    rng = np.random.default_rng(8)
    x, t = images(rng, 20, (1, 28, 28)).astype(np.float16), rng.integers(0, 10, 20)
    for net in (fast, ref):
        for param in net.params.values():
            param[...] = param.astype(np.float16)
    close(fast.predict(x), ref.predict(x), np.float64)
    assert fast.accuracy(x, t, 10) == ref.accuracy(x, t, 10)


@pytest.mark.parametrize("dtype", FLOATS)
def test_threads(dtype):
    rng = np.random.default_rng(9)
    x, t = images(rng, 100, (1, 28, 28)), rng.integers(0, 10, 100)
    ref = reference.SimpleConvNet(seed=9, dtype=dtype, weight_init_std=0.1)
    expected = ref.gradient(x, t)
    for n in (1, 2):
        with num_threads(n):
            grads = fastnn.SimpleConvNet(seed=9, dtype=dtype, weight_init_std=0.1).gradient(x, t)
        for key in expected:
            close(grads[key], expected[key], dtype)


# --------------------------------------------------------------------------- DeepConvNet

SMALL_DEEP = dict(input_dim=(1, 12, 12),
                  conv_param_1={'filter_num': 3, 'filter_size': 3, 'pad': 1, 'stride': 1},
                  conv_param_2={'filter_num': 4, 'filter_size': 3, 'pad': 1, 'stride': 1},
                  conv_param_3={'filter_num': 2, 'filter_size': 3, 'pad': 1, 'stride': 1},
                  conv_param_4={'filter_num': 3, 'filter_size': 3, 'pad': 2, 'stride': 1},
                  conv_param_5={'filter_num': 5, 'filter_size': 2, 'pad': 1, 'stride': 1},
                  conv_param_6={'filter_num': 2, 'filter_size': 3, 'pad': 1, 'stride': 2},
                  hidden_size=6, output_size=4)


@needs_dropout
def test_deep_initial_draws_and_layers_are_the_books():
    np.random.seed(11)
    ref = reference.DeepConvNet()
    after_ref = np.random.random()
    np.random.seed(11)
    fast = fastnn.DeepConvNet()
    assert np.random.random() == after_ref
    assert list(fast.params) == list(ref.params)
    for key in ref.params:
        assert_array_equal(fast.params[key], ref.params[key])
    assert [type(layer).__name__ for layer in fast.layers] == \
        [type(layer).__name__ for layer in ref.layers]
    for i, layer_idx in enumerate((0, 2, 5, 7, 10, 12, 15, 18), start=1):
        assert fast.layers[layer_idx].W is fast.params[f"W{i}"]


@needs_dropout
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("config", [SMALL_DEEP, {}], ids=["small", "book"])
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_deep_equals_the_reference(dtype, config, threads):
    """Dropout masks from the global state (the book's draws), reseeded for each half; one
    thread and two (the convolutions' blocks a thread each, the Affine's input gradient on
    gemm_narrow)."""
    fast = fastnn.DeepConvNet(**config, dtype=dtype)  # masks from np.random, as the book
    ref = reference.DeepConvNet(**config, dtype=dtype)
    for key in ref.params:
        fast.params[key][...] = ref.params[key]
    rng = np.random.default_rng(12)
    input_dim = config.get("input_dim", (1, 28, 28))
    x, t = images(rng, 5, input_dim), rng.integers(0, config.get("output_size", 10), 5)
    close(fast.predict(x), ref.predict(x), dtype)
    for train_flg in (False, True):
        np.random.seed(1)
        expected = ref.loss(x, t, train_flg)
        np.random.seed(1)
        assert_allclose(fast.loss(x, t, train_flg), expected, rtol=TOL[dtype])
    np.random.seed(2)
    expected = ref.gradient(x, t)
    np.random.seed(2)
    grads = fast.gradient(x, t)
    assert list(grads) == list(expected)
    for key in expected:
        close(grads[key], expected[key], dtype)
    assert fast.accuracy(x, t, 2) == ref.accuracy(x, t, 2)


@needs_dropout
def test_deep_gradient_against_numerical_gradient():
    np.random.seed(13)
    fast = fastnn.DeepConvNet(**SMALL_DEEP)  # dropout masks from np.random: reseeded below
    rng = np.random.default_rng(13)
    x, t = rng.standard_normal((2, 1, 12, 12)), np.array([1, 3])
    np.random.seed(3)
    grads = fast.gradient(x, t)
    masks = [layer.mask for layer in fast.layers if hasattr(layer, "mask") and
             layer.mask is not None]
    assert len(masks) == 2

    def loss(_):  # the same dropout masks as the gradient's
        state = np.random.get_state()
        np.random.seed(3)
        try:
            return fast.loss(x, t)
        finally:
            np.random.set_state(state)

    for key in ("W1", "b2", "W6", "W7", "b8"):
        numeric = reference.functions.numerical_gradient(loss, fast.params[key])
        assert_allclose(grads[key], numeric, rtol=1e-5, atol=1e-7)


@needs_dropout
def test_deep_pickles_both_ways(tmp_path):
    for source, target in ((fastnn.DeepConvNet(seed=14), reference.DeepConvNet(seed=15)),
                           (reference.DeepConvNet(seed=16), fastnn.DeepConvNet(seed=17))):
        path = tmp_path / "deep.pkl"
        source.save_params(str(path))
        target.load_params(str(path))
        x = images(np.random.default_rng(14), 3, (1, 28, 28))
        close(target.predict(x), source.predict(x), np.float64)


@needs_dropout
def test_deep_seeded_masks_as_the_reference():
    fast, ref = fastnn.DeepConvNet(**SMALL_DEEP, seed=18), reference.DeepConvNet(**SMALL_DEEP,
                                                                                 seed=18)
    state = np.random.get_state()[1].copy()
    x, t = images(np.random.default_rng(18), 3, (1, 12, 12)), np.array([0, 1, 2])
    for _ in range(2):  # the generator's draws go on from step to step on both halves
        grads, expected = fast.gradient(x, t), ref.gradient(x, t)
        for key in expected:
            close(grads[key], expected[key], np.float64)
    assert_array_equal(np.random.get_state()[1], state)
