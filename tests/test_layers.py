"""fastnn.layers: every backward against a numerical gradient of its forward, on both halves (on the
reference alone for the layers the fast half re-exports from it: helpers.halves_of).

For a layer with output y = forward(x) and a random upstream gradient dout, backward(dout) must
return d/dx sum(y * dout) and write d/dp sum(y * dout) into grads[i] for every params[i].
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from helpers import LAYOUTS, examples, halves_of, with_layout

pytestmark = pytest.mark.filterwarnings("error")


def shape_id(shape):
    return "x".join(map(str, shape))


def away_from_zero(x):
    """x moved at least 0.05 away from 0, so the finite difference never straddles ReLU's kink."""
    return np.where(x >= 0, x + 0.05, x - 0.05)


def check_layer(reference, layer, x, rng):
    """Compare backward with central differences of sum(forward(x) * dout) in float64."""
    out = layer.forward(x)
    dout = rng.standard_normal(np.shape(out))
    dout_before = dout.copy()
    grads_before = list(layer.grads)

    dx = layer.backward(dout)

    assert_array_equal(dout, dout_before)  # no layer changes the caller's dout
    assert all(g is g0 for g, g0 in zip(layer.grads, grads_before))  # written in place

    def f(_):
        return np.sum(layer.forward(x) * dout)

    numerical = reference.functions.numerical_gradient
    assert dx.shape == x.shape
    assert_allclose(dx, numerical(f, x), rtol=1e-6, atol=1e-8)
    for param, grad in zip(layer.params, layer.grads):
        assert grad.shape == param.shape
        assert_allclose(grad, numerical(f, param), rtol=1e-6, atol=1e-8)


def test_public_names(reference):
    missing = [name for name in reference.layers.__all__
               if not (hasattr(fastnn.layers, name) and hasattr(fastnn, name))]
    assert missing == []


@pytest.mark.parametrize("axis", [0, 1], ids=["axis0", "axis1"])
@pytest.mark.parametrize("n", [1, 7], ids=["n1", "n7"])
@pytest.mark.parametrize("half", halves_of("layers", "Repeat"), indirect=True)
def test_repeat(half, reference, rng, n, axis):
    x = rng.standard_normal((1, 8) if axis == 0 else (8, 1))
    layer = half.layers.Repeat(n, axis=axis)
    assert_array_equal(layer.forward(x), np.repeat(x, n, axis=axis))
    assert layer.params == [] and layer.grads == []
    check_layer(reference, layer, x, rng)


@pytest.mark.parametrize("axis", [0, 1], ids=["axis0", "axis1"])
@pytest.mark.parametrize("shape", [(7, 8), (1, 3)], ids=shape_id)
@pytest.mark.parametrize("half", halves_of("layers", "Sum"), indirect=True)
def test_sum(half, reference, rng, shape, axis):
    x = rng.standard_normal(shape)
    layer = half.layers.Sum(axis=axis)
    assert_allclose(layer.forward(x), np.sum(x, axis=axis, keepdims=True), rtol=1e-14)
    check_layer(reference, layer, x, rng)


@given(n=st.integers(1, 6), d=st.integers(1, 6), h=st.integers(1, 6), seed=st.integers(0, 99))
@settings(max_examples=examples(20), deadline=None)
@pytest.mark.parametrize("half", halves_of("layers", "MatMul"), indirect=True)
def test_matmul(half, reference, n, d, h, seed):
    rng = np.random.default_rng(seed)
    x, W = rng.standard_normal((n, d)), rng.standard_normal((d, h))
    layer = half.layers.MatMul(W)
    assert_allclose(layer.forward(x), x @ W, rtol=1e-13)
    check_layer(reference, layer, x, rng)


@given(n=st.integers(1, 6), d=st.integers(1, 6), h=st.integers(1, 6), seed=st.integers(0, 99))
@settings(max_examples=examples(20), deadline=None)
def test_affine(half, reference, n, d, h, seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((n, d)), rng.standard_normal((d, h)), rng.standard_normal(h)
    layer = half.layers.Affine(W, b)
    assert_allclose(layer.forward(x), x @ W + b, rtol=1e-13)
    check_layer(reference, layer, x, rng)


def test_affine_flattens_4d_input(half, reference, rng):
    x = rng.standard_normal((3, 2, 4, 5))  # (N, C, H, W), as after a convolution
    W, b = rng.standard_normal((2 * 4 * 5, 6)), rng.standard_normal(6)
    layer = half.layers.Affine(W, b)
    assert_allclose(layer.forward(x), x.reshape(3, -1) @ W + b, rtol=1e-13)
    check_layer(reference, layer, x, rng)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("x_dtype, w_dtype", [(np.float64, np.float64), (np.float32, np.float32),
                                              (np.float32, np.float64), (np.float64, np.float32),
                                              (np.int64, np.float64), (np.bool_, np.float32)])
def test_affine_at_the_sizes_of_gemm_narrow(reference, x_dtype, w_dtype, layout):
    # a first layer of the books' networks, 784 features to 50 (gemm_narrow's products where
    # NumPy's would have W's dtype; NumPy's own for mixed dtypes that promote W): the values,
    # dtypes and gradients of the reference's layer
    rng = np.random.default_rng(7)
    x = with_layout((rng.random((100, 784)) * 3).astype(x_dtype), layout)
    W, b = rng.standard_normal((784, 50)).astype(w_dtype), rng.standard_normal(50).astype(w_dtype)
    dout = rng.standard_normal((100, 50)).astype(np.result_type(x_dtype, w_dtype))
    fast, ref = fastnn.Affine(W.copy(), b.copy()), reference.Affine(W.copy(), b.copy())
    out, expected = fast.forward(x), ref.forward(x)
    tol = 1e-12 if out.dtype == np.float64 else 1e-4
    assert out.dtype == expected.dtype
    assert_allclose(out, expected, rtol=tol, atol=tol)
    assert_allclose(fast.backward(dout), ref.backward(dout), rtol=tol, atol=tol)
    assert fast.dW.dtype == ref.dW.dtype == w_dtype
    assert_allclose(fast.dW, ref.dW, rtol=tol, atol=tol * 100)
    assert_allclose(fast.db, ref.db, rtol=tol, atol=tol * 100)


def test_affine_backward_into_grads_that_overlap_dout(rng):
    # dW replaced by a view that overlaps dout: computed as NumPy computes it (from dout as it
    # was), not by a kernel that would read what it writes
    W, b = rng.standard_normal((784, 50)), rng.standard_normal(50)
    x = rng.random((100, 784))
    layer, ref = fastnn.Affine(W.copy(), b.copy()), fastnn.reference.Affine(W.copy(), b.copy())
    layer.forward(x)
    ref.forward(x)
    store = np.zeros((834, 50))
    dout = store[734:]  # its first 50 rows are dW's last 50
    dout[...] = rng.standard_normal((100, 50))
    ref.backward(dout.copy())
    layer.grads[0] = store[:784]
    layer.backward(dout)
    assert_allclose(layer.dW, ref.dW, rtol=1e-12, atol=1e-12)


def test_grads_are_shared_with_a_model(half, rng):
    # the reason for writing in place: a model concatenates its layers' lists once
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    layer = half.layers.Affine(W, b)
    model_grads = [] + layer.grads
    layer.forward(rng.standard_normal((2, 4)))
    layer.backward(np.ones((2, 3)))
    assert_allclose(model_grads[1], [2.0, 2.0, 2.0])
    assert layer.params[0] is W and layer.params[1] is b


@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)], ids=shape_id)
def test_sigmoid(half, reference, rng, shape):
    x = rng.standard_normal(shape) * 3
    layer = half.layers.Sigmoid()
    assert_allclose(layer.forward(x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    check_layer(reference, layer, x, rng)


@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)], ids=shape_id)
def test_relu(half, reference, rng, shape):
    x = away_from_zero(rng.standard_normal(shape))
    layer = half.layers.Relu()
    assert_array_equal(layer.forward(x), np.maximum(0, x))
    check_layer(reference, layer, x, rng)


def test_relu_backward_leaves_dout_alone(half, rng):
    x = np.array([[-1.0, 2.0], [0.0, -3.0]])
    dout = rng.standard_normal((2, 2))
    dout_before = dout.copy()
    layer = half.layers.Relu()
    layer.forward(x)
    dx = layer.backward(dout)
    assert_array_equal(dout, dout_before)
    assert_array_equal(dx, [[0.0, dout[0, 1]], [0.0, 0.0]])


@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)], ids=shape_id)
@pytest.mark.parametrize("half", halves_of("layers", "Softmax"), indirect=True)
def test_softmax(half, reference, rng, shape):
    x = rng.standard_normal(shape) * 3
    layer = half.layers.Softmax()
    e = np.exp(x)
    assert_allclose(layer.forward(x), e / e.sum(axis=-1, keepdims=True), rtol=1e-13)
    check_layer(reference, layer, x, rng)


@pytest.mark.parametrize("labels", ["index", "one-hot"])
@pytest.mark.parametrize("shape", [(1, 2), (5, 3), (8, 10)], ids=shape_id)
def test_softmax_with_loss(half, reference, rng, shape, labels):
    n, c = shape
    x = rng.standard_normal(shape) * 3
    t = rng.integers(0, c, size=n)
    layer = half.layers.SoftmaxWithLoss()
    loss = layer.forward(x, t if labels == "index" else np.eye(c)[t])

    assert_array_equal(layer.t, t)  # index labels are kept, whatever was passed
    e = np.exp(x)
    y = e / e.sum(axis=1, keepdims=True)
    assert_allclose(layer.y, y, rtol=1e-13)
    assert_allclose(loss, -np.mean(np.log(y[np.arange(n), t] + 1e-7)), rtol=1e-13)

    # backward is the exact gradient of the loss without the 1e-7 that guards the log
    def loss_without_eps():
        log_y = x - x.max(axis=1, keepdims=True)
        log_y -= np.log(np.exp(log_y).sum(axis=1, keepdims=True))
        return -np.mean(log_y[np.arange(n), t])

    dout = 0.7
    dx = layer.backward(dout)
    numerical = reference.functions.numerical_gradient(lambda _: loss_without_eps() * dout, x)
    assert_allclose(dx, numerical, rtol=1e-6, atol=1e-9)


def test_softmax_with_loss_default_dout(half, rng):
    x, t = rng.standard_normal((4, 3)), np.array([0, 2, 1, 1])
    layer = half.layers.SoftmaxWithLoss()
    layer.forward(x, t)
    assert_allclose(layer.backward(), (layer.y - np.eye(3)[t]) / 4, rtol=1e-14)
