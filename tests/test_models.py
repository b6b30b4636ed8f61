"""fastnn.models on both halves: the seeds' training loops, gradients, labels, dtypes, saving."""

import pickle

import numpy as np
import fastnn
import pytest
from numpy.testing import assert_allclose, assert_array_equal

pytestmark = pytest.mark.filterwarnings("error")

MODELS = ["TwoLayerNet", "TwoLayerNetwork"]
PARAM_NAMES = ("W1", "b1", "W2", "b2")


def params_by_name(model):
    """W1, b1, W2, b2 of either model (a list in volume 2's, a dict in volume 1's)."""
    params = model.params
    return dict(params) if isinstance(params, dict) else dict(zip(PARAM_NAMES, params))


def probabilities(model, x):
    """predict(x) as probabilities: volume 2's model predicts scores."""
    y = model.predict(x)
    if isinstance(model.params, dict):
        return y
    e = np.exp(y - y.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def loss(model, x, t):
    return model.loss(x, t) if isinstance(model.params, dict) else model.forward(x, t)


def assert_no_global_draws(make):
    """make() without drawing from NumPy's global generator; returns what make returned."""
    np.random.seed(5)
    expected = np.random.random()
    np.random.seed(5)
    result = make()
    assert np.random.random() == expected, "drew from np.random's global state"
    return result


def small_problem(seed=0, n=6, i=7, o=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, i)), rng.integers(0, o, size=n)


def test_public_names(half, reference):
    missing = [name for name in reference.models.__all__
               if not (hasattr(half.models, name) and hasattr(half, name))]
    assert missing == []


# --------------------------------------------------------------------------- the seeds' loops

def test_seed_000_training_loop(half):
    """Seed 000's loop (volume 2, SGD over model.params/model.grads) learns the digits."""
    TwoLayerNet, SGD = half.models.TwoLayerNet, half.optimizers.SGD  # the only change: the import
    (x_train, t_train), (x_test, t_test) = half.datasets.load_digits()
    np.random.seed(0)

    # 1. model
    model = TwoLayerNet(input_size=64, hidden_size=50, output_size=10)
    # 2. stochastic gradient descent
    optimizer = SGD(lr=2.0)

    for i in range(2000):
        # 3. mini-batch
        batch_mask = np.random.choice(x_train.shape[0], 100)
        x_batch, t_batch = x_train[batch_mask], t_train[batch_mask]
        # 4. prediction and loss
        loss = model.forward(x_batch, t_batch)
        # 5. backprop
        model.backward()
        # 6. update
        optimizer.update(model.params, model.grads)

    assert loss < 0.5
    assert model.accuracy(x_test, t_test) >= 0.90


def test_seed_002_training_loop(half):
    """Seed 002's loop (volume 1, numerical gradients, dict update) lowers the loss."""
    TwoLayerNetwork = half.models.TwoLayerNetwork  # the only change: the import
    (x_train, t_train), _ = half.datasets.load_digits(one_hot_label=True)
    x_train, t_train = x_train[:100], t_train[:100]  # small, so numerical gradients stay quick
    np.random.seed(0)

    train_loss_list = []

    iters_num = 20
    train_size = x_train.shape[0]
    batch_size = 100
    learning_rate = 3.0

    network = TwoLayerNetwork(input_size=64, hidden_size=5, output_size=10)
    initial_loss = network.loss(x_train, t_train)

    for i in range(iters_num):
        batch_mask = np.random.choice(train_size, batch_size)
        x_batch = x_train[batch_mask]
        t_batch = t_train[batch_mask]

        grad = network.numerical_gradient(x_batch, t_batch)

        for key in ('W1', 'b1', 'W2', 'b2'):
            network.params[key] -= learning_rate * grad[key]

        loss = network.loss(x_batch, t_batch)
        train_loss_list.append(loss)

    assert network.loss(x_train, t_train) < initial_loss - 0.02
    assert np.mean(train_loss_list[-5:]) < np.mean(train_loss_list[:5])


# --------------------------------------------------------------------------- gradients

# Backprop differentiates the loss without the 1e-7 that guards its log, numerics the loss with
# it: they differ by about |gradient| * 1e-7 / y[n, t_n], small while no probability is tiny.

@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("model_name", MODELS)
def test_gradient_check(half, model_name, activation):
    x, t = small_problem()
    model = getattr(half.models, model_name)(7, 5, 4, weight_init_std=0.1,
                                             activation=activation, seed=1)
    result = half.models.gradient_check(model, x, t)
    assert set(result) == set(PARAM_NAMES)
    for name, (mean_diff, max_diff) in result.items():
        assert 0 <= mean_diff <= max_diff < 1e-6, name


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("model_name", MODELS)
def test_gradient_matches_numerical_gradient(half, model_name, activation):
    x, t = small_problem(seed=2)
    model = getattr(half.models, model_name)(7, 5, 4, weight_init_std=0.3,
                                             activation=activation, seed=3)
    backprop = model.gradient(x, t)
    numerical = model.numerical_gradient(x, t)
    for name in PARAM_NAMES:
        assert backprop[name].shape == params_by_name(model)[name].shape
        assert_allclose(backprop[name], numerical[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_both_models_are_the_same_function(half, activation):
    x, t = small_problem(seed=4)
    net = half.models.TwoLayerNet(7, 5, 4, 1.0, activation=activation, seed=5)
    network = half.models.TwoLayerNetwork(7, 5, 4, 1.0, activation=activation, seed=5)
    for name in PARAM_NAMES:
        assert_array_equal(params_by_name(net)[name], params_by_name(network)[name])
    assert_allclose(probabilities(net, x), network.predict(x), rtol=1e-13)
    assert_allclose(net.forward(x, t), network.loss(x, t), rtol=1e-13)
    grads_net, grads_network = net.gradient(x, t), network.gradient(x, t)
    for name in PARAM_NAMES:
        assert_allclose(grads_net[name], grads_network[name], rtol=1e-12, atol=1e-15)


def test_backward_fills_grads_in_place(half):
    x, t = small_problem()
    model = half.models.TwoLayerNet(7, 5, 4, seed=0)
    grads = list(model.grads)
    model.forward(x, t)
    dx = model.backward()
    if half is fastnn.reference:
        assert dx.shape == x.shape
    else:  # the compiled net computes no gradient for its input (nothing below needs it)
        assert dx is None
    assert all(g is g0 for g, g0 in zip(model.grads, grads))
    for g, want in zip(model.grads, model.gradient(x, t).values()):
        assert_allclose(g, want, rtol=1e-14)


def test_gradient_returns_new_arrays(half):
    x, t = small_problem()
    model = half.models.TwoLayerNet(7, 5, 4, 1.0, seed=0)
    first = model.gradient(x, t)
    kept = {name: g.copy() for name, g in first.items()}
    model.gradient(2 * x, t)
    for name in PARAM_NAMES:
        assert_array_equal(first[name], kept[name])


# --------------------------------------------------------------------------- labels

@pytest.mark.parametrize("model_name", MODELS)
def test_index_and_one_hot_labels_agree(half, model_name):
    x, t = small_problem(seed=6)
    one_hot = np.eye(4)[t]
    model = getattr(half.models, model_name)(7, 5, 4, 1.0, seed=7)
    assert_allclose(loss(model, x, one_hot), loss(model, x, t), rtol=1e-15)
    assert model.accuracy(x, one_hot) == model.accuracy(x, t)
    for label_dtype in (np.uint8, np.int32):
        assert_allclose(loss(model, x, t.astype(label_dtype)), loss(model, x, t), rtol=1e-15)
    backprop_index, backprop_one_hot = model.gradient(x, t), model.gradient(x, one_hot)
    for name in PARAM_NAMES:
        assert_allclose(backprop_one_hot[name], backprop_index[name], rtol=1e-14)


@pytest.mark.parametrize("model_name", MODELS)
def test_accuracy_closed_form(half, model_name):
    x, _ = small_problem(seed=8, n=20)
    model = getattr(half.models, model_name)(7, 5, 4, 1.0, seed=9)
    predicted = np.argmax(probabilities(model, x), axis=1)
    t = predicted.copy()
    t[:5] = (t[:5] + 1) % 4  # make exactly 5 of 20 wrong
    assert model.accuracy(x, t) == 0.75


# --------------------------------------------------------------------------- initialisation

@pytest.mark.parametrize("model_name", MODELS)
def test_initialisation_follows_the_book(half, model_name):
    np.random.seed(42)
    model = getattr(half.models, model_name)(7, 5, 4, weight_init_std=0.5)
    np.random.seed(42)
    W1, W2 = 0.5 * np.random.randn(7, 5), 0.5 * np.random.randn(5, 4)
    params = params_by_name(model)
    assert_array_equal(params["W1"], W1)
    assert_array_equal(params["W2"], W2)
    assert_array_equal(params["b1"], np.zeros(5))
    assert_array_equal(params["b2"], np.zeros(4))
    assert all(p.dtype == np.float64 for p in params.values())


@pytest.mark.parametrize("model_name", MODELS)
def test_seed_and_generator_initialisation(half, model_name):
    cls = getattr(half.models, model_name)
    # a seeded model leaves NumPy's global generator alone
    a = params_by_name(assert_no_global_draws(lambda: cls(7, 5, 4, seed=11)))
    b = params_by_name(cls(7, 5, 4, seed=np.random.default_rng(11)))
    rng = np.random.default_rng(11)
    assert_array_equal(a["W1"], 0.01 * rng.standard_normal((7, 5)))
    assert_array_equal(a["W2"], 0.01 * rng.standard_normal((5, 4)))
    for name in PARAM_NAMES:
        assert_array_equal(a[name], b[name])


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.complex128, object])
@pytest.mark.parametrize("model_name", MODELS)
def test_unsupported_dtype_is_a_type_error(half, model_name, dtype):
    with pytest.raises(TypeError):
        getattr(half.models, model_name)(7, 5, 4, dtype=dtype)


# --------------------------------------------------------------------------- float32

@pytest.mark.parametrize("model_name", MODELS)
def test_float32_model(half, model_name):
    x, t = small_problem(seed=10)
    model32 = getattr(half.models, model_name)(7, 5, 4, 0.3, dtype=np.float32, seed=12)
    model64 = getattr(half.models, model_name)(7, 5, 4, 0.3, seed=12)

    assert all(p.dtype == np.float32 for p in params_by_name(model32).values())
    assert model32.predict(x).dtype == np.float32  # float64 x is converted to the model's dtype
    assert_allclose(loss(model32, x, t), loss(model64, x, t), rtol=1e-5)
    grads32, grads64 = model32.gradient(x, t), model64.gradient(x, t)
    for name in PARAM_NAMES:
        assert grads32[name].dtype == np.float32
        assert_allclose(grads32[name], grads64[name], rtol=1e-4, atol=1e-6, err_msg=name)
    numerical32 = model32.numerical_gradient(x, t)  # float32 loss differences over 2h = 2e-4
    for name in PARAM_NAMES:
        assert numerical32[name].dtype == np.float32
        assert_allclose(numerical32[name], grads64[name], atol=5e-3, err_msg=name)


def test_float32_training_loop(half):
    (x_train, t_train), (x_test, t_test) = half.datasets.load_digits()
    model = half.models.TwoLayerNet(64, 50, 10, dtype=np.float32, seed=0)
    optimizer = half.optimizers.SGD(lr=2.0)
    rng = np.random.default_rng(0)
    for i in range(1000):
        batch_mask = rng.choice(x_train.shape[0], 100)
        model.forward(x_train[batch_mask], t_train[batch_mask])
        model.backward()
        optimizer.update(model.params, model.grads)
    assert all(p.dtype == np.float32 for p in model.params)
    assert model.accuracy(x_test, t_test) >= 0.85


# --------------------------------------------------------------------------- save, load, pickle

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("model_name", MODELS)
def test_save_load_round_trip(half, tmp_path, model_name, activation, dtype):
    x, t = small_problem()
    cls = getattr(half.models, model_name)
    model = cls(7, 5, 4, 1.0, activation=activation, dtype=dtype, seed=13)
    file = tmp_path / "model.npz"
    model.save(file)

    loaded = assert_no_global_draws(lambda: cls.load(file))

    assert type(loaded) is cls
    for name in PARAM_NAMES:
        assert params_by_name(loaded)[name].dtype == dtype
        assert_array_equal(params_by_name(loaded)[name], params_by_name(model)[name])
    assert_array_equal(loaded.predict(x), model.predict(x))
    assert loss(loaded, x, t) == loss(model, x, t)


@pytest.mark.parametrize("model_name", MODELS)
def test_pickle_round_trip(half, model_name):
    x, t = small_problem()
    model = getattr(half.models, model_name)(7, 5, 4, 1.0, activation="relu", seed=14)
    clone = pickle.loads(pickle.dumps(model))
    assert_array_equal(clone.predict(x), model.predict(x))
    assert loss(clone, x, t) == loss(model, x, t)
    # the clone trains on its own arrays, and volume 2's layers still share them
    if isinstance(clone.params, list):
        clone.forward(x, t)
        clone.backward()
        half.optimizers.SGD(lr=1.0).update(clone.params, clone.grads)
        assert not np.array_equal(clone.predict(x), model.predict(x))
        if half is fastnn.reference:
            assert clone.layers[0].params[0] is clone.params[0]
