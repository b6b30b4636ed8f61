"""fastnn.functions against closed forms (and the book's examples), on both halves."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from helpers import examples, halves_of

# Any overflow, divide or invalid-value warning is a failure.
pytestmark = pytest.mark.filterwarnings("error")

finite_rows = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
    elements=st.floats(-1e3, 1e3),
)


def test_public_names(reference):
    missing = [name for name in reference.functions.__all__
               if not (hasattr(fastnn.functions, name) and hasattr(fastnn, name))]
    assert missing == []


# --------------------------------------------------------------------------- sigmoid, relu

def test_sigmoid_closed_form(half):
    x = np.linspace(-30, 30, 601)
    assert_allclose(half.functions.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_without_warnings(half, dtype):
    x = np.array([-1000, -100, 0, 100, 1000], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = half.functions.sigmoid(x)
    assert y.dtype == dtype
    assert y[0] == 0.0
    assert y[2] == 0.5
    assert y[-1] == 1.0


def test_sigmoid_float32_stays_float32(half):
    x = np.linspace(-5, 5, 11, dtype=np.float32)
    y = half.functions.sigmoid(x)
    assert y.dtype == np.float32
    assert_allclose(y, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint8, np.bool_])
def test_sigmoid_promotes_integers_to_float64(half, dtype):
    x = np.array([0, 1, 1], dtype=dtype)
    y = half.functions.sigmoid(x)
    assert y.dtype == np.float64
    assert_allclose(y, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-15)


def test_sigmoid_nan_in_nan_out(half):
    y = half.functions.sigmoid(np.array([np.nan, 0.0]))
    assert np.isnan(y[0]) and y[1] == 0.5


def test_sigmoid_grad_closed_form(half):
    x = np.linspace(-10, 10, 201)
    s = 1 / (1 + np.exp(-x))
    assert_allclose(half.functions.sigmoid_grad(x), s * (1 - s), rtol=1e-12, atol=1e-300)


def test_relu(half):
    x = np.array([[-2.0, -0.0, 0.0], [0.5, 3.0, -1e-300]])
    assert_array_equal(half.functions.relu(x), [[0, 0, 0], [0.5, 3.0, 0]])


# --------------------------------------------------------------------------- softmax

# the fast half's softmax is the reference's, re-exported: its tests run once (helpers.halves_of)
SOFTMAX_HALVES = halves_of("functions", "softmax")


@given(x=finite_rows)
@settings(max_examples=examples(50), deadline=None)
@pytest.mark.parametrize("half", SOFTMAX_HALVES, indirect=True)
def test_softmax_rows_sum_to_one(half, x):
    y = half.functions.softmax(x)
    assert y.shape == x.shape
    assert np.all(y >= 0)
    assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-12)


@given(x=finite_rows, c=st.floats(-1e3, 1e3))
@settings(max_examples=examples(50), deadline=None)
@pytest.mark.parametrize("half", SOFTMAX_HALVES, indirect=True)
def test_softmax_invariant_to_adding_a_constant(half, x, c):
    assert_allclose(half.functions.softmax(x + c), half.functions.softmax(x), rtol=1e-9,
                    atol=1e-12)


@pytest.mark.parametrize("half", SOFTMAX_HALVES, indirect=True)
def test_softmax_closed_form_last_axis(half):
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
    e = np.exp(x)
    assert_allclose(half.functions.softmax(x), e / e.sum(axis=-1, keepdims=True), rtol=1e-14)


@pytest.mark.parametrize("half", SOFTMAX_HALVES, indirect=True)
def test_softmax_1d_is_one_sample(half):
    x = np.array([0.3, 2.9, 4.0])  # the book's example
    e = np.exp(x)
    assert_allclose(half.functions.softmax(x), e / e.sum(), rtol=1e-14)


@pytest.mark.parametrize("half", SOFTMAX_HALVES, indirect=True)
def test_softmax_does_not_overflow(half):
    x = np.array([[1000.0, 1000.0], [-1000.0, -1000.0], [1000.0, -1000.0]])
    assert_allclose(half.functions.softmax(x), [[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])


# --------------------------------------------------------------------------- cross entropy

Y = np.array([[0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0],
              [0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0]])
T = np.array([2, 2])


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_cross_entropy_index_labels(half, label_dtype):
    expected = -(np.log(0.6 + 1e-7) + np.log(0.1 + 1e-7)) / 2
    assert_allclose(half.functions.cross_entropy_error(Y, T.astype(label_dtype)), expected,
                    rtol=1e-14)


def test_cross_entropy_one_hot_equals_index(half):
    one_hot = np.eye(10)[T]
    assert_allclose(half.functions.cross_entropy_error(Y, one_hot),
                    half.functions.cross_entropy_error(Y, T), rtol=1e-15)


def test_cross_entropy_1d_is_one_sample(half):
    expected = -np.log(0.6 + 1e-7)  # the book's example: 0.510825457099338
    assert_allclose(half.functions.cross_entropy_error(Y[0], 2), expected, rtol=1e-14)
    assert_allclose(half.functions.cross_entropy_error(Y[0], np.eye(10)[2]), expected, rtol=1e-14)


def test_cross_entropy_zero_probability_is_finite(half):
    loss = half.functions.cross_entropy_error(np.array([[1.0, 0.0]]), np.array([1]))
    assert_allclose(loss, -np.log(1e-7), rtol=1e-12)


def test_softmax_cross_entropy_equals_composition(half, rng):
    x = rng.standard_normal((7, 5)) * 3
    t = rng.integers(0, 5, size=7)
    loss, y = half.functions.softmax_cross_entropy(x, t)
    e = np.exp(x)
    expected_y = e / e.sum(axis=1, keepdims=True)
    assert_allclose(y, expected_y, rtol=1e-13)
    assert_allclose(loss, -np.mean(np.log(expected_y[np.arange(7), t] + 1e-7)), rtol=1e-13)
    loss_one_hot, _ = half.functions.softmax_cross_entropy(x, np.eye(5)[t])
    assert_allclose(loss_one_hot, loss, rtol=1e-15)


# --------------------------------------------------------------------------- bias_grad

@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4), (2, 1, 3, 5)])
def test_bias_grad_sums_all_but_last_axis(half, rng, shape):
    dout = rng.standard_normal(shape)
    expected = dout.reshape(-1, shape[-1]).sum(axis=0)
    assert_allclose(half.functions.bias_grad(dout), expected, rtol=1e-13, atol=1e-14)


# --------------------------------------------------------------------------- numerical derivatives

def function_1(x):
    return 0.01 * x ** 2 + 0.1 * x


def function_2(x):
    return np.sum(x ** 2)


def test_numerical_diff_book_example(half):
    # d/dx (0.01 x^2 + 0.1 x) = 0.02 x + 0.1
    assert_allclose(half.functions.numerical_diff(function_1, 5.0), 0.2, rtol=1e-9)
    assert_allclose(half.functions.numerical_diff(function_1, 10.0), 0.3, rtol=1e-9)
    assert_allclose(half.functions.numerical_diff(np.sin, 1.0, h=1e-3), np.cos(1.0), rtol=1e-6)


def test_numerical_gradient_book_example(half):
    x = np.array([3.0, 4.0])
    assert_allclose(half.functions.numerical_gradient(function_2, x), [6.0, 8.0], rtol=1e-9)


def make_layout(name):
    """A fresh array of a given shape, memory order or stride pattern."""
    base = np.random.default_rng(7).standard_normal((6, 9))
    return {
        "1d": lambda: base[0],
        "2d": lambda: base,
        "3d": lambda: base.reshape(3, 2, 9),
        "fortran": lambda: np.asfortranarray(base),
        "strided": lambda: base[::2, 1::3],
        "transposed": lambda: base.T,
        "0d": lambda: np.array(1.5),
    }[name]()


@pytest.mark.parametrize("layout", ["1d", "2d", "3d", "fortran", "strided", "transposed", "0d"])
def test_numerical_gradient_of_sum_of_squares_is_2x(half, layout):
    x = make_layout(layout)
    grad = half.functions.numerical_gradient(function_2, x)
    assert grad.shape == x.shape
    assert_allclose(grad, 2 * x, rtol=1e-7, atol=1e-9)


def test_numerical_gradient_reads_the_live_array(half):
    # f ignores its argument, as a model's loss does: the perturbation must happen in place.
    W = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = half.functions.numerical_gradient(lambda _: np.sum(W ** 3), W)
    assert_allclose(grad, 3 * W ** 2, rtol=1e-7)


def test_numerical_gradient_float32(half):
    x = np.array([[3.0, -4.0], [0.5, 2.0]], dtype=np.float32)
    grad = half.functions.numerical_gradient(function_2, x)
    assert grad.dtype == np.float32
    assert_allclose(grad, 2 * x, rtol=1e-2)


def bits(x):
    return x.view(np.uint64).copy()


def awkward_values():
    """Values that x + h - h does not reproduce, and the signed zero and NaN."""
    x = np.random.default_rng(3).standard_normal((4, 5)) * 1e-3 + 0.1
    x[0, 0], x[1, 1], x[2, 2] = -0.0, np.nan, 1e-300
    return x


@pytest.mark.parametrize("layout", ["c", "fortran", "strided"])
def test_numerical_gradient_restores_x_bit_exactly(half, layout):
    base = awkward_values()
    if layout == "fortran":
        base = np.asfortranarray(base)
    x = base[::2, ::2] if layout == "strided" else base
    before = bits(np.ascontiguousarray(base))
    half.functions.numerical_gradient(lambda a: np.nansum(a ** 2), x)
    assert_array_equal(bits(np.ascontiguousarray(base)), before)


@pytest.mark.parametrize("failing_call", [1, 2, 7])
def test_numerical_gradient_restores_x_when_f_raises(half, failing_call):
    x = awkward_values()
    before = bits(x)
    calls = 0

    def f(a):
        nonlocal calls
        calls += 1
        if calls == failing_call:
            raise RuntimeError("boom")
        return np.nansum(a)

    with pytest.raises(RuntimeError, match="boom"):
        half.functions.numerical_gradient(f, x)
    assert_array_equal(bits(x), before)


def test_gradient_descent_book_example(half):
    init_x = np.array([-3.0, 4.0])
    x = half.functions.gradient_descent(function_2, init_x=init_x, lr=0.1, step_num=100)
    # each step multiplies x by (1 - 2 lr) = 0.8: 4 * 0.8**100 ~ 8e-10
    assert_allclose(x, [-3.0 * 0.8 ** 100, 4.0 * 0.8 ** 100], rtol=1e-5)
    assert x is init_x  # the book's semantics: init_x is updated in place and returned


def test_gradient_descent_learning_rate_too_small(half):
    x = half.functions.gradient_descent(function_2, np.array([-3.0, 4.0]), lr=1e-10, step_num=100)
    assert_allclose(x, [-3.0, 4.0], rtol=1e-7)
