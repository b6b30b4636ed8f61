"""fastnn.reference, volume 1 chapters 5-6: the layers' volume-1 attributes, Dropout,
BatchNormalization, SigmoidWithLoss, the functions of chapters 3-6 and the multi-layer nets.

Every backward is checked against a central-difference gradient of its forward in float64; the
seeded tests recompute the book's formulas by hand here, with explicit np.random calls in the
book's order, so the reference's numbers are pinned without the book's code.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from fastnn import reference
from fastnn.reference import functions, layers

pytestmark = pytest.mark.filterwarnings("error")

FLOAT_DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


def check_backward(layer, x, dout, forward=None):
    """backward(dout) against central differences of sum(forward(x) * dout), in float64: the
    returned dx and every grads[i] (which must stay the very array it was, written in place)."""
    forward = forward or layer.forward
    forward(x)
    grads_before = list(layer.grads)
    dout_before = dout.copy()
    dx = layer.backward(dout)
    assert_array_equal(dout, dout_before)
    assert all(g is g0 for g, g0 in zip(layer.grads, grads_before))

    def f(_):
        return np.sum(forward(x) * dout)

    assert dx.shape == x.shape
    assert_allclose(dx, functions.numerical_gradient(f, x), rtol=1e-5, atol=1e-7)
    for param, grad in zip(layer.params, layer.grads):
        assert grad.shape == param.shape
        assert_allclose(grad, functions.numerical_gradient(f, param), rtol=1e-5, atol=1e-7)
    return dx


# --------------------------------------------------------------------------- functions

def test_identity_and_step_function():
    x = np.array([[-1.5, 0.0], [2.0, 1e-300]])
    assert functions.identity_function(x) is x
    step = functions.step_function(x)
    assert step.dtype == np.dtype(int)
    assert_array_equal(step, [[0, 0], [1, 1]])
    assert functions.step_function(3.0) == 1 and functions.step_function(-3.0) == 0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_relu_grad_is_one_from_zero_up(dtype):
    x = np.array([-2.0, -0.0, 0.0, 1e-30, 3.0], dtype=dtype)
    x_before = x.copy()
    grad = functions.relu_grad(x)
    assert grad.dtype == dtype
    assert_array_equal(grad, [0, 1, 1, 1, 1])  # the book's x >= 0: 1 at the kink
    assert_array_equal(x, x_before)


def test_sum_squared_error_is_a_sum_not_a_mean():
    # the book's chapter-4 example: t = 2, y mostly on 2
    t = np.eye(10)[2]
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    assert_allclose(functions.sum_squared_error(y, t), 0.0975, rtol=1e-13)
    assert_allclose(functions.sum_squared_error(np.ones((3, 2)), np.zeros((3, 2))), 3.0)


@given(n=st.integers(1, 6), c=st.integers(2, 6), one_hot=st.booleans(), seed=st.integers(0, 99))
@settings(max_examples=20, deadline=None)
def test_softmax_loss(n, c, one_hot, seed):
    rng = np.random.default_rng(seed)
    X, t = rng.standard_normal((n, c)) * 3, rng.integers(0, c, size=n)
    e = np.exp(X)
    expected = -np.mean(np.log(e[np.arange(n), t] / e.sum(axis=1) + 1e-7))
    assert_allclose(functions.softmax_loss(X, np.eye(c)[t] if one_hot else t), expected,
                    rtol=1e-12)


def test_numerical_gradient_2d_goes_row_by_row():
    X = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])
    X_before = X.copy()
    calls = []

    def f(row):  # the book's idiom: f sees the row being perturbed
        calls.append(row.shape)
        return np.sum(row ** 2)

    grad = functions.numerical_gradient_2d(f, X)
    assert_allclose(grad, 2 * X_before, rtol=1e-8)
    assert_array_equal(X, X_before)
    assert calls == [(3,)] * 12

    x = np.array([3.0, 4.0])
    assert_allclose(functions.numerical_gradient_2d(lambda v: np.sum(v ** 2), x), [6.0, 8.0],
                    rtol=1e-8)


@given(rows=st.integers(1, 4), cols=st.integers(1, 4), seed=st.integers(0, 99))
@settings(max_examples=20, deadline=None)
def test_numerical_gradient_2d_equals_numerical_gradient_on_the_live_array(rows, cols, seed):
    rng = np.random.default_rng(seed)
    X, A = rng.standard_normal((rows, cols)), rng.standard_normal((rows, cols))
    live = lambda _: np.sum(np.sin(X) * A)  # noqa: E731 -- reads X, whatever it is passed
    assert_array_equal(functions.numerical_gradient_2d(live, X),
                       functions.numerical_gradient(live, X))


def test_numerical_gradient_2d_restores_when_f_raises():
    X = np.array([[0.1, 0.2], [0.3, 0.4]])

    def f(row):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        functions.numerical_gradient_2d(f, X)
    assert_array_equal(X, [[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(ValueError, match="1-D or 2-D"):
        functions.numerical_gradient_2d(f, np.zeros((2, 2, 2)))


# --------------------------------------------------------------------------- volume-1 attributes

def test_affine_attributes_are_params_and_grads(rng):
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    layer = layers.Affine(W, b)
    assert layer.W is W and layer.b is b
    assert layer.dW is layer.grads[0] and layer.db is layer.grads[1]

    x = rng.standard_normal((2, 2, 2))
    layer.forward(x)
    assert layer.original_x_shape == (2, 2, 2) and layer.x.shape == (2, 4)
    dout = rng.standard_normal((2, 3))
    layer.backward(dout)
    assert layer.dW is layer.grads[0] and layer.db is layer.grads[1]
    assert_allclose(layer.dW, x.reshape(2, 4).T @ dout, rtol=1e-14)
    assert_allclose(layer.db, dout.sum(axis=0), rtol=1e-14)


def test_setting_affine_w_replaces_params_entry(rng):
    # the book's load_params: self.layers['Affine1'].W = self.params['W1']
    layer = layers.Affine(np.zeros((4, 3)), np.zeros(3))
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    layer.W, layer.b = W, b
    assert layer.params[0] is W and layer.params[1] is b
    x = rng.standard_normal((5, 4))
    assert_allclose(layer.forward(x), x @ W + b, rtol=1e-14)
    dW = np.ones((4, 3))
    layer.dW = dW
    assert layer.grads[0] is dW


def test_matmul_attributes(rng):
    W = rng.standard_normal((4, 3))
    layer = layers.MatMul(W)
    assert layer.W is W and layer.dW is layer.grads[0]
    layer.forward(rng.standard_normal((2, 4)))
    layer.backward(rng.standard_normal((2, 3)))
    assert layer.dW is layer.grads[0]
    W2 = rng.standard_normal((4, 3))
    layer.W = W2
    assert layer.params[0] is W2


def test_relu_sigmoid_softmax_with_loss_attributes(rng):
    x = np.array([[-1.0, 2.0], [0.0, 3.0]])
    relu = layers.Relu()
    relu.forward(x)
    assert_array_equal(relu.mask, x <= 0)

    sigmoid = layers.Sigmoid()
    out = sigmoid.forward(x)
    assert sigmoid.out is out

    loss_layer = layers.SoftmaxWithLoss()
    loss = loss_layer.forward(x, np.array([1, 0]))
    assert loss_layer.loss == loss
    assert_array_equal(loss_layer.t, [1, 0])
    assert loss_layer.y.shape == (2, 2)


# --------------------------------------------------------------------------- SigmoidWithLoss

@given(n=st.integers(1, 8), seed=st.integers(0, 99))
@settings(max_examples=20, deadline=None)
def test_sigmoid_with_loss(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 3
    t = rng.integers(0, 2, size=n)
    layer = layers.SigmoidWithLoss()
    loss = layer.forward(x, t)

    y = 1 / (1 + np.exp(-x))
    assert_allclose(layer.y, y, rtol=1e-14)
    p = np.where(t == 1, y, 1 - y)
    assert_allclose(loss, -np.mean(np.log(p + 1e-7)), rtol=1e-12)
    assert layer.loss == loss

    # backward is the exact gradient of the loss without the 1e-7 that guards the log
    def loss_without_eps(_):
        y = 1 / (1 + np.exp(-x))
        return -np.mean(t * np.log(y) + (1 - t) * np.log(1 - y)) * 0.7

    dx = layer.backward(0.7)
    assert_allclose(dx, functions.numerical_gradient(loss_without_eps, x), rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- Dropout

@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.999])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dropout_mask_is_the_books_draw(ratio, dtype):
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(dtype)
    np.random.seed(7)
    expected_mask = np.random.rand(6, 5) > ratio
    np.random.seed(7)
    layer = layers.Dropout(ratio)
    out = layer.forward(x)
    assert_array_equal(layer.mask, expected_mask)
    assert out.dtype == dtype
    assert_array_equal(out, x * expected_mask)
    dout = np.random.default_rng(1).standard_normal((6, 5)).astype(dtype)
    assert_array_equal(layer.backward(dout), dout * expected_mask)

    test_out = layer.forward(x, train_flg=False)
    assert test_out.dtype == dtype
    assert_array_equal(test_out, x * (1.0 - ratio))
    assert_array_equal(layer.mask, expected_mask)  # test time draws nothing
    assert layer.params == [] and layer.grads == []


def test_dropout_rng_leaves_global_state_alone():
    x = np.ones((4, 3))
    np.random.seed(11)
    expected_next = np.random.random()
    np.random.seed(11)
    layer = layers.Dropout(0.4, rng=np.random.default_rng(5))
    layer.forward(x)
    assert_array_equal(layer.mask, np.random.default_rng(5).random((4, 3)) > 0.4)
    assert np.random.random() == expected_next


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
       ratio=st.sampled_from([0.0, 0.2, 0.5, 0.9]), seed=st.integers(0, 99))
@settings(max_examples=25, deadline=None)
def test_dropout_backward_numerical(shape, ratio, seed):
    rng = np.random.default_rng(seed)
    x, dout = rng.standard_normal(shape), rng.standard_normal(shape)
    layer = layers.Dropout(ratio)

    def forward(x):
        np.random.seed(seed)  # the same mask on every call
        return layer.forward(x)

    check_backward(layer, x, dout, forward)


# --------------------------------------------------------------------------- BatchNormalization

def batchnorm_by_hand(x, gamma, beta, running_mean, running_var, momentum, train_flg):
    """The book's formulas on (N, D): returns out, new running mean, new running variance."""
    if train_flg:
        mu = x.sum(axis=0) / x.shape[0]
        var = ((x - mu) ** 2).sum(axis=0) / x.shape[0]
        out = gamma * (x - mu) / np.sqrt(var + 1e-6) + beta
        return (out, momentum * running_mean + (1 - momentum) * mu,
                momentum * running_var + (1 - momentum) * var)
    out = gamma * (x - running_mean) / np.sqrt(running_var + 1e-6) + beta
    return out, running_mean, running_var


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 2, 3)], ids=["2d", "4d"])
def test_batchnorm_forward_and_running_statistics(rng, shape):
    D = int(np.prod(shape[1:]))
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    layer = layers.BatchNormalization(gamma, beta, momentum=0.8)
    mean, var = np.zeros(D), np.zeros(D)
    for step in range(3):
        x = rng.standard_normal(shape) * (step + 1) + step
        out = layer.forward(x)
        flat = x.reshape(shape[0], -1)
        expected, mean, var = batchnorm_by_hand(flat, gamma, beta, mean, var, 0.8, True)
        assert out.shape == shape
        assert_allclose(out.reshape(shape[0], -1), expected, rtol=1e-12, atol=1e-12)
        assert_allclose(layer.running_mean, mean, rtol=1e-12, atol=1e-14)
        assert_allclose(layer.running_var, var, rtol=1e-12, atol=1e-14)
        assert layer.batch_size == shape[0] and layer.input_shape == shape
        assert_allclose(layer.xc, flat - flat.mean(axis=0), rtol=1e-12, atol=1e-14)

    x = rng.standard_normal(shape)
    out = layer.forward(x, train_flg=False)
    expected, _, _ = batchnorm_by_hand(x.reshape(shape[0], -1), gamma, beta, mean, var, 0.8,
                                       False)
    assert_allclose(out.reshape(shape[0], -1), expected, rtol=1e-12, atol=1e-12)
    assert_allclose(layer.running_mean, mean, rtol=1e-12, atol=1e-14)  # test time: unchanged


def test_batchnorm_attributes_are_params_and_grads(rng):
    gamma, beta = np.ones(3), np.zeros(3)
    layer = layers.BatchNormalization(gamma, beta)
    assert layer.gamma is gamma and layer.beta is beta
    assert layer.params[0] is gamma and layer.params[1] is beta
    assert layer.dgamma is layer.grads[0] and layer.dbeta is layer.grads[1]
    assert layer.running_mean is None and layer.running_var is None
    layer.forward(rng.standard_normal((4, 3)))
    layer.backward(rng.standard_normal((4, 3)))
    assert layer.dgamma is layer.grads[0] and layer.dbeta is layer.grads[1]
    assert layer.running_mean.shape == (3,) and layer.running_var.shape == (3,)
    gamma2 = np.full(3, 2.0)
    layer.gamma = gamma2
    assert layer.params[0] is gamma2


def separated(x, min_gap=0.05):
    """True when no two samples of x (N, ...) are within min_gap of each other in any feature:
    the batch variance is then far from 0 and the central difference well conditioned."""
    flat = np.sort(x.reshape(x.shape[0], -1), axis=0)
    return x.shape[0] == 1 or bool(np.all(np.diff(flat, axis=0) > min_gap))


@given(n=st.integers(1, 6), features=st.sampled_from([(3,), (1,), (2, 2, 3), (1, 3, 1)]),
       train_flg=st.booleans(), seed=st.integers(0, 999))
@settings(max_examples=40, deadline=None)
def test_batchnorm_backward_numerical(n, features, train_flg, seed):
    rng = np.random.default_rng(seed)
    shape = (n,) + features
    D = int(np.prod(features))
    x = rng.standard_normal(shape) * 2
    assume(separated(x))
    layer = layers.BatchNormalization(rng.standard_normal(D), rng.standard_normal(D),
                                      running_mean=rng.standard_normal(D),
                                      running_var=rng.random(D) + 0.5)
    check_backward(layer, x, rng.standard_normal(shape),
                   lambda x: layer.forward(x, train_flg=train_flg))


@pytest.mark.parametrize("train_flg", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 2, 2)], ids=["2d", "4d"])
def test_batchnorm_float32_follows_float64(rng, shape, train_flg):
    D = int(np.prod(shape[1:]))
    x, dout = rng.standard_normal(shape), rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    results = {}
    for dtype in (np.float64, np.float32):
        layer = layers.BatchNormalization(gamma.astype(dtype), beta.astype(dtype))
        layer.forward(x.astype(dtype))  # running statistics from one training batch
        out = layer.forward(x.astype(dtype) * 1.5, train_flg=train_flg)
        dx = layer.backward(dout.astype(dtype))
        results[dtype] = out, dx, layer.dgamma, layer.dbeta, layer.running_mean, layer.running_var
    for a64, a32 in zip(results[np.float64], results[np.float32]):
        assert a32.dtype == np.float32
        assert_allclose(a32, a64, rtol=2e-4, atol=2e-4)


# --------------------------------------------------------------------------- layer errors

@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_ratio_out_of_range(ratio):
    with pytest.raises(ValueError, match="dropout_ratio"):
        layers.Dropout(ratio)


def test_batchnorm_running_statistics_of_the_wrong_shape():
    with pytest.raises(ValueError, match="running_mean has shape"):
        layers.BatchNormalization(np.ones(3), np.zeros(3), running_mean=np.zeros(4))
    with pytest.raises(ValueError, match="running_var has shape"):
        layers.BatchNormalization(np.ones(3), np.zeros(3), running_var=np.zeros((3, 1)))


def test_batchnorm_input_of_the_wrong_feature_count():
    layer = layers.BatchNormalization(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="4 features per sample, gamma has shape"):
        layer.forward(np.ones((2, 4)))
    assert layer.running_mean is None  # nothing written
    with pytest.raises(ValueError, match=r"\(N, D\) or \(N, C, H, W\)"):
        layer.forward(np.ones((2, 3, 1)))
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="dout has shape"):
        layer.backward(np.ones((3, 3)))
