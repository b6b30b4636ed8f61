"""csrc/softmax_ce.c through fastnn.softmax_cross_entropy and fastnn.layers.SoftmaxWithLoss,
against fastnn.reference, closed forms and numerical derivatives.

Tolerances: the probabilities differ from the reference by the kernel's exp (about 1 ulp), its row
sum in eight lanes (NumPy sums pairwise) and a multiplication by 1 / sum where the reference
divides: measured up to 12 eps for C = 2000, so rtol 1e-13 (float64) and 4e-6 (float32), plus a
few of the smallest subnormals where y itself is subnormal. The kernel accumulates the loss in
float64 for both dtypes; the float32 reference adds 1e-7 and takes the log in float32, so the
float32 losses agree to about eps32 * (1 + |loss|).
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import reference
from helpers import (FLOATS, LAYOUTS, PARALLEL_MIN, VECTOR_PATHS, examples, num_threads, vector_path,
                     with_layout)

pytestmark = pytest.mark.filterwarnings("error")

RTOL = {np.float64: 1e-13, np.float32: 4e-6}
LOSS_RTOL = {np.float64: 1e-13, np.float32: 1e-6}


# --------------------------------------------------------------------------- helpers

def atol_y(dtype):
    return 4 * np.finfo(dtype).smallest_subnormal


def assert_probabilities_close(actual, desired, dtype):
    assert actual.dtype == dtype and actual.shape == desired.shape
    assert_allclose(actual, desired, rtol=RTOL[dtype], atol=atol_y(dtype))  # NaN == NaN


def assert_loss_close(actual, desired, dtype):
    if np.isnan(desired):
        assert np.isnan(actual)
        return
    assert abs(actual - desired) <= LOSS_RTOL[dtype] * (1 + abs(desired)), (actual, desired)


def assert_dx_close(actual, desired, dout, n, dtype):
    """dx = (y - onehot) * dout / N: y's tolerance, and at the label the cancellation y - 1 turns
    y's error into an absolute one, rtol * |dout| / N."""
    assert actual.dtype == dtype and actual.shape == desired.shape
    assert_allclose(actual, desired, rtol=RTOL[dtype],
                    atol=RTOL[dtype] * abs(dout) / n + atol_y(dtype))


def reference_layer(x, t, dout=1):
    """(loss, y, dx) of reference.layers.SoftmaxWithLoss: forward(x, t), then backward(dout)."""
    layer = reference.layers.SoftmaxWithLoss()
    with np.errstate(all="ignore"):  # the reference may warn on infinities; the kernel must not
        loss = layer.forward(x, t)
        return loss, layer.y, layer.backward(dout)


def reference_forward(x, t):
    with np.errstate(all="ignore"):
        return reference.softmax_cross_entropy(x, t)


@st.composite
def batches(draw, dtype, max_abs=1000.0):
    """(x, t): logits (N, C) and int64 index labels, N = 1 or small, C = 1, small or 1000+.

    Small batches come element by element from hypothesis; large ones from a seeded generator at
    a drawn scale (the logits' spread decides how peaked the softmax is).
    """
    n = draw(st.sampled_from([1, 1, 2, 3, 5, 17]))
    c = draw(st.sampled_from([1, 2, 3, 4, 7, 10, 1000, 1031]))
    if n * c <= 64:
        width = 8 * np.dtype(dtype).itemsize
        x = draw(hnp.arrays(dtype, (n, c), elements=st.floats(-max_abs, max_abs, width=width)))
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        scale = draw(st.sampled_from([1e-3, 1.0, 10.0, 100.0, max_abs]))
        x = np.clip(rng.standard_normal((n, c)) * scale, -max_abs, max_abs).astype(dtype)
    t = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=np.int64)
    return x, t


# --------------------------------------------------------------------------- forward

@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(100), deadline=None)
def test_forward_matches_reference(dtype, path, data):
    x, t = data.draw(batches(dtype))
    x_before, t_before = x.copy(), t.copy()
    with vector_path(path):
        loss, y = fastnn.softmax_cross_entropy(x, t)
    ref_loss, ref_y = reference_forward(x, t)
    assert_probabilities_close(y, ref_y, dtype)
    assert_loss_close(loss, ref_loss, dtype)
    assert_array_equal(x, x_before)
    assert_array_equal(t, t_before)


@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(100), deadline=None)
def test_invariants(dtype, data):
    x, t = data.draw(batches(dtype))
    n, c = x.shape
    eps = np.finfo(dtype).eps
    layer = fastnn.layers.SoftmaxWithLoss()
    loss = layer.forward(x, t)
    y = layer.y
    assert np.all((y >= 0) & (y <= 1))
    # every row is a probability distribution: its sum is 1 up to the rounding of C terms
    assert_allclose(y.astype(np.float64).sum(axis=1), 1.0, rtol=0, atol=(c + 2) * eps)
    # the loss is the batch mean of -log(y[n, t_n] + 1e-7) of the returned y (closed form)
    y_t = y.astype(np.float64)[np.arange(n), t]
    assert_allclose(loss, np.mean(-np.log(y_t + 1e-7)), rtol=1e-13, atol=1e-15)
    # d loss / d x: every row sums to 0 (the softmax's sum is constant), and dx is y / N away
    # from the label
    dx = layer.backward(1)
    assert_allclose(dx.astype(np.float64).sum(axis=1), 0.0, rtol=0, atol=(c + 2) * eps / n)
    off_label = np.ones_like(dx, dtype=bool)
    off_label[np.arange(n), t] = False
    assert_allclose(dx[off_label], y[off_label] / n, rtol=2 * eps, atol=atol_y(dtype))
    assert np.all(dx[~off_label] <= 0)


@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(40), deadline=None)
def test_adding_a_constant_to_a_row_changes_nothing_exactly(dtype, data):
    # integer logits and shifts: x + k is exact, so x - max(x) is the same array and every result
    # must be the same bits
    n = data.draw(st.integers(1, 6))
    c = data.draw(st.integers(1, 12))
    x = data.draw(hnp.arrays(dtype, (n, c), elements=st.integers(-1000, 1000)))
    shift = data.draw(hnp.arrays(dtype, (n, 1), elements=st.integers(-10**4, 10**4)))
    t = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    a, b = fastnn.layers.SoftmaxWithLoss(), fastnn.layers.SoftmaxWithLoss()
    assert a.forward(x + shift, t) == b.forward(x, t)
    assert_array_equal(a.y, b.y)
    assert_array_equal(a.backward(1), b.backward(1))


@given(data=st.data())
@settings(max_examples=examples(40), deadline=None)
def test_adding_a_constant_to_a_row_changes_nothing_float64(data):
    n = data.draw(st.integers(1, 6))
    c = data.draw(st.integers(1, 12))
    x = data.draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-50, 50)))
    shift = data.draw(hnp.arrays(np.float64, (n, 1), elements=st.floats(-1000, 1000)))
    t = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    loss_shifted, y_shifted = fastnn.softmax_cross_entropy(x + shift, t)
    loss, y = fastnn.softmax_cross_entropy(x, t)
    # x + shift is rounded by ulp(1050) / 2 ~ 1.1e-13: exp(x - m) moves by that, relatively
    assert_allclose(y_shifted, y, rtol=1e-12, atol=1e-300)
    assert_allclose(loss_shifted, loss, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- extremes

EXTREMES = {
    "f64_pm1000": (np.float64, [[1000, -1000, 0], [-1000, -1000, -1000], [1000, 1000, -1000]]),
    "f64_pm1e308": (np.float64, [[1e308, -1e308, 0], [-1e308, -1e308, 1e308]]),
    "f64_max": (np.float64, [[1.7976931348623157e308, -1.7976931348623157e308]]),
    "f32_pm90": (np.float32, [[90, -90, 0], [-90, -90, -90], [90, 90, 90]]),
    "f32_near_max": (np.float32, [[3e38, -3e38, 0], [3.4e38, -3.4e38, 3.4e38]]),
    "f64_nan_first": (np.float64, [[np.nan, 1, 2], [0, 1, 2]]),
    "f64_nan_last": (np.float64, [[0, 1, 2], [1, 2, np.nan]]),
    "f32_nan_middle": (np.float32, [[0, np.nan, 2], [0, 1, 2]]),
    "f64_row_of_minus_inf": (np.float64, [[-np.inf, -np.inf, -np.inf], [0, 1, 2]]),
    "f32_row_of_minus_inf": (np.float32, [[0, 1, 2], [-np.inf, -np.inf, -np.inf]]),
    "f64_plus_inf": (np.float64, [[np.inf, 0, 1], [0, 1, 2]]),
    "f64_plus_and_minus_inf": (np.float64, [[np.inf, -np.inf, 1], [-np.inf, 0, 1]]),
}


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("width", ["short", "long"])
@pytest.mark.parametrize("case", list(EXTREMES))
@pytest.mark.parametrize("label", [0, -1], ids=["t_first", "t_last"])
def test_extremes_as_reference_without_warnings(case, label, width, path):
    # long: the rows repeated to 100 columns, the kernel's long-row path (a row's exps find the
    # next row's max)
    dtype, x = EXTREMES[case]
    x = np.array(x, dtype=dtype)
    if width == "long":
        x = np.tile(x, (1, 34))[:, :100]
    t = np.full(x.shape[0], label % x.shape[1])
    with warnings.catch_warnings(), vector_path(path):
        warnings.simplefilter("error")
        loss, y = fastnn.softmax_cross_entropy(x, t)
        layer = fastnn.layers.SoftmaxWithLoss()
        layer.forward(x, t)
        dx = layer.backward(1)
    ref_loss, ref_y = reference_forward(x, t)
    _, _, ref_dx = reference_layer(x, t)
    assert_probabilities_close(y, ref_y, dtype)
    assert_loss_close(loss, ref_loss, dtype)
    assert_dx_close(dx, ref_dx, 1, x.shape[0], dtype)
    # a row with a NaN, +inf or all -inf is NaN throughout; it never spills into another row
    bad_rows = np.any(np.isnan(x) | np.isposinf(x), axis=1) | np.all(np.isneginf(x), axis=1)
    assert_array_equal(np.isnan(y).all(axis=1), bad_rows)
    assert_array_equal(np.isnan(y).any(axis=1), bad_rows)
    assert np.isnan(loss) == bad_rows.any()
    for i in np.flatnonzero(~bad_rows):
        _, row = fastnn.softmax_cross_entropy(x[i:i + 1], t[i:i + 1])
        assert_array_equal(y[i:i + 1], row)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("position", [0, 3, 7, 8, 17, 40, 63, 100, 998, 1002])
def test_nan_anywhere_in_a_long_row_propagates(dtype, position, path):
    # the row maximum runs in four registers of 8 (float32: 16) lanes plus a tail, the exp in
    # registers plus a masked tail: a NaN in any lane or the tail must not be dropped by a max
    x = np.random.default_rng(position).standard_normal((2, 1003)).astype(dtype)
    x[1, position] = np.nan
    with vector_path(path):
        loss, y = fastnn.softmax_cross_entropy(x, np.array([5, 5]))
    ref_loss, ref_y = reference_forward(x, np.array([5, 5]))
    assert np.isnan(loss) and np.isnan(ref_loss)
    assert np.all(np.isnan(y[1])) and not np.any(np.isnan(y[0]))
    assert_probabilities_close(y, ref_y, dtype)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("c", [64, 65, 67, 71, 1003])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_long_rows_far_below_zero_find_their_max(dtype, c, where, path):
    # every logit near -800: a max taken wrong (say 0 from a masked-out lane of a row's last
    # register, where the next row's max is found with this row's exps) makes every exp 0 and
    # the row NaN; the max is put at the row's start, in its middle or in its tail
    rng = np.random.default_rng(c)
    x = (-800 + rng.standard_normal((4, c))).astype(dtype)
    at = {"first": 0, "middle": c // 2, "last": c - 1}[where]
    x[:, at] = -790
    t = np.arange(4) % c
    with vector_path(path):
        loss, y = fastnn.softmax_cross_entropy(x, t)
    ref_loss, ref_y = reference_forward(x, t)
    assert np.all(np.isfinite(y))
    assert_probabilities_close(y, ref_y, dtype)
    assert_loss_close(loss, ref_loss, dtype)


# --------------------------------------------------------------------------- the layer

@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data(), dout=st.sampled_from([1, 1.0, 0.5, -2.0, 0.0, 3]))
@settings(max_examples=examples(100), deadline=None)
def test_layer_forward_backward_match_reference(dtype, data, dout):
    x, t = data.draw(batches(dtype))
    x_before = x.copy()
    fast = fastnn.layers.SoftmaxWithLoss()
    loss = fast.forward(x, t)
    dx = fast.backward(dout)
    expected_loss, expected_y, expected_dx = reference_layer(x, t, dout)
    assert_loss_close(loss, expected_loss, dtype)
    assert_probabilities_close(fast.y, expected_y, dtype)
    assert_dx_close(dx, expected_dx, dout, x.shape[0], dtype)
    assert_array_equal(x, x_before)


@given(data=st.data())
@settings(max_examples=examples(40), deadline=None)
def test_layer_backward_is_the_numerical_gradient(data):
    n = data.draw(st.integers(1, 4))
    c = data.draw(st.integers(1, 8))
    # |x| <= 2 keeps y[t] >= e^-4 / 8: the loss's 1e-7 guard, which backward ignores, changes the
    # derivative by at most a factor 1e-7 / y[t] < 5e-5
    x = data.draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-2, 2)))
    t = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    dout = data.draw(st.sampled_from([1.0, 0.5, -3.0]))
    layer = fastnn.layers.SoftmaxWithLoss()
    layer.forward(x, t)
    dx = layer.backward(dout)
    probe = fastnn.layers.SoftmaxWithLoss()
    numerical = reference.numerical_gradient(lambda _: probe.forward(x, t) * dout, x)
    assert_allclose(dx, numerical, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("dtype", FLOATS)
def test_layer_thread_counts_agree(dtype, threads):
    rng = np.random.default_rng(17)
    n, c = PARALLEL_MIN // 1000 * 3 + 1, 1000  # 394k logits: the kernel's threads start
    x = (rng.standard_normal((n, c)) * 5).astype(dtype)
    t = rng.integers(0, c, n)
    layer = fastnn.layers.SoftmaxWithLoss()
    loss = layer.forward(x, t)
    dx = layer.backward(2.0)
    with num_threads(1):
        serial = fastnn.layers.SoftmaxWithLoss()
        serial_loss = serial.forward(x, t)
        serial_dx = serial.backward(2.0)
    # rows are independent: y and dx are the same bits; only the loss's sum is split by thread
    assert_array_equal(layer.y, serial.y)
    assert_array_equal(dx, serial_dx)
    assert_allclose(loss, serial_loss, rtol=1e-14)
    ref_loss, ref_y = reference_forward(x, t)
    assert_probabilities_close(layer.y, ref_y, dtype)
    assert_loss_close(loss, ref_loss, dtype)


def test_one_sample_as_1d_logits():
    x = np.array([0.3, 2.9, 4.0])  # the book's example
    loss, y = fastnn.softmax_cross_entropy(x, 2)
    ref_loss, ref_y = reference.softmax_cross_entropy(x, 2)
    assert y.shape == (1, 3)
    assert_allclose(y.reshape(-1), ref_y, rtol=1e-13)
    assert_allclose(loss, ref_loss, rtol=1e-13)
    assert_array_equal(fastnn.softmax_cross_entropy(x, np.eye(3)[2])[1], y)  # 1-D one-hot


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_],
                         ids=lambda d: np.dtype(d).name)
def test_integer_logits_promote_to_float64(dtype):
    x = np.array([[0, 1, 1], [1, 0, 0]], dtype=dtype)
    t = np.array([1, 2])
    loss, y = fastnn.softmax_cross_entropy(x, t)
    loss64, y64 = fastnn.softmax_cross_entropy(x.astype(np.float64), t)
    assert y.dtype == np.float64
    assert_array_equal(y, y64)
    assert loss == loss64
    ref_loss, ref_y = reference.softmax_cross_entropy(x.astype(np.float64), t)
    assert_allclose(y, ref_y, rtol=1e-13)
    assert_allclose(loss, ref_loss, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float16, np.complex128, object],
                         ids=["float16", "complex128", "object"])
def test_other_logit_dtypes_raise_type_error(dtype):
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        fastnn.softmax_cross_entropy(np.zeros((2, 3), dtype=dtype), np.array([0, 1]))
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        fastnn.layers.SoftmaxWithLoss().forward(np.zeros((2, 3), dtype=dtype), np.array([0, 1]))


@pytest.mark.parametrize("shape", [(0, 3), (2, 0), (0,)], ids=["no_rows", "no_classes", "empty_1d"])
def test_empty_batch_is_a_clear_error(shape):
    t = np.zeros(shape[0] if len(shape) == 2 else 1, dtype=np.int64)
    with pytest.raises(ValueError, match="empty"):
        fastnn.softmax_cross_entropy(np.zeros(shape), t)
    with pytest.raises(ValueError, match="empty"):
        fastnn.layers.SoftmaxWithLoss().forward(np.zeros(shape), t)


# --------------------------------------------------------------------------- layouts

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_any_layout_of_logits_equals_contiguous_copy(dtype, layout):
    rng = np.random.default_rng(19)
    x0 = (rng.standard_normal((6, 11)) * 4).astype(dtype)
    t = rng.integers(0, 11, 6)
    x = with_layout(x0, layout)
    before = x.copy()
    loss, y = fastnn.softmax_cross_entropy(x, t)
    expected_loss, expected_y = fastnn.softmax_cross_entropy(np.ascontiguousarray(x0), t)
    assert y.dtype == dtype
    assert loss == expected_loss
    assert_array_equal(y, expected_y)
    assert_array_equal(x, before)
    assert x.dtype == before.dtype
    layer = fastnn.layers.SoftmaxWithLoss()
    assert layer.forward(x, t) == expected_loss
    assert_array_equal(layer.y, expected_y)
    ref_loss, ref_y = reference_forward(x, t)
    assert_probabilities_close(y, ref_y.astype(dtype), dtype)
    assert_loss_close(loss, ref_loss, dtype)


@pytest.mark.parametrize("layout", ["strided", "reversed", "readonly", "byteswapped"])
@pytest.mark.parametrize("kind", ["index", "one_hot"])
def test_any_layout_of_labels(layout, kind):
    rng = np.random.default_rng(23)
    x = rng.standard_normal((6, 5))
    t0 = rng.integers(0, 5, 6)
    labels = t0 if kind == "index" else np.eye(5)[t0]
    t = with_layout(labels, layout)
    before = t.copy()
    expected_loss, expected_y = fastnn.softmax_cross_entropy(x, t0)
    loss, y = fastnn.softmax_cross_entropy(x, t)
    assert loss == expected_loss
    assert_array_equal(y, expected_y)
    layer = fastnn.layers.SoftmaxWithLoss()
    assert layer.forward(x, t) == expected_loss
    _, _, expected_dx = reference_layer(x, t0)
    assert_dx_close(layer.backward(1), expected_dx, 1, 6, np.float64)
    assert_array_equal(t, before)


# --------------------------------------------------------------------------- labels

INT_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_index_labels_of_any_integer_dtype(dtype):
    rng = np.random.default_rng(29)
    x = rng.standard_normal((7, 6))
    t64 = rng.integers(0, 6, 7)
    expected_loss, expected_y = fastnn.softmax_cross_entropy(x, t64)
    loss, y = fastnn.softmax_cross_entropy(x, t64.astype(dtype))
    assert loss == expected_loss
    assert_array_equal(y, expected_y)
    ref_loss, _ = reference.softmax_cross_entropy(x, t64.astype(dtype))
    assert_allclose(loss, ref_loss, rtol=1e-13)
    layer = fastnn.layers.SoftmaxWithLoss()
    assert layer.forward(x, t64.astype(dtype)) == expected_loss
    _, _, ref_dx = reference_layer(x, t64.astype(dtype))
    assert_dx_close(layer.backward(1), ref_dx, 1, 7, np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.uint8, np.bool_],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("c", [1, 2, 10], ids=["C1", "C2", "C10"])
def test_one_hot_labels_equal_index_labels(dtype, c):
    rng = np.random.default_rng(31)
    x = rng.standard_normal((5, c))
    t = rng.integers(0, c, 5)
    one_hot = np.eye(c, dtype=dtype)[t]
    expected_loss, expected_y = fastnn.softmax_cross_entropy(x, t)
    loss, y = fastnn.softmax_cross_entropy(x, one_hot)
    assert loss == expected_loss
    assert_array_equal(y, expected_y)
    layer = fastnn.layers.SoftmaxWithLoss()
    assert layer.forward(x, one_hot) == expected_loss
    _, _, expected_dx = reference_layer(x, one_hot)
    assert_dx_close(layer.backward(1), expected_dx, 1, 5, np.float64)


@pytest.mark.parametrize("kind", ["index", "one_hot"])
def test_one_class(kind):
    # C = 1 (where (N,) index labels and (N, 1) one-hot have the same size): the only probability
    # is 1, the loss is -log(1 + 1e-7) and the gradient 0 (closed forms), as in the reference
    x = np.array([[3.0], [-2.0], [0.0]])
    t = np.zeros(3, dtype=np.int64) if kind == "index" else np.ones((3, 1))
    loss, y = fastnn.softmax_cross_entropy(x, t)
    assert_array_equal(y, np.ones((3, 1)))
    assert_allclose(loss, -np.log(1 + 1e-7), rtol=1e-15)
    layer = fastnn.layers.SoftmaxWithLoss()
    assert layer.forward(x, t) == loss
    assert_array_equal(layer.backward(1), np.zeros((3, 1)))
    ref_loss, ref_y, ref_dx = reference_layer(x, t)
    assert_allclose(loss, ref_loss, rtol=1e-15)
    assert_array_equal(y, ref_y)
    assert_array_equal(layer.backward(1), ref_dx)


BAD_LABELS = {
    # name: (dtype, the out-of-range value); C = 4
    "C": (np.int64, 4),
    "C_plus_1_uint8": (np.uint8, 5),
    "minus_1": (np.int64, -1),
    "minus_1_int8": (np.int8, -1),
    "2_31": (np.int64, 2**31),
    "int64_min": (np.int64, np.iinfo(np.int64).min),
    "int64_max": (np.int64, np.iinfo(np.int64).max),
    "uint64_2_63": (np.uint64, 2**63),
    "uint64_max": (np.uint64, 2**64 - 1),
}


@pytest.mark.parametrize("case", list(BAD_LABELS))
@pytest.mark.parametrize("row", [0, 2, 4], ids=["row0", "row2", "row4"])
def test_out_of_range_label_raises_naming_it(case, row):
    dtype, value = BAD_LABELS[case]
    x = np.random.default_rng(37).standard_normal((5, 4))
    t = np.array([1, 3, 0, 2, 1], dtype=dtype)
    t[row] = value
    message = rf"t\[{row}\] = {value}\b"
    with pytest.raises(ValueError, match=message):
        fastnn.softmax_cross_entropy(x, t)
    layer = fastnn.layers.SoftmaxWithLoss()
    with pytest.raises(ValueError, match=message):
        layer.forward(x, t)
    assert layer.y is None and layer.t is None  # raised before anything was kept


@pytest.mark.parametrize("value", [4, -1, 2**31, np.iinfo(np.int64).min, np.iinfo(np.int64).max],
                         ids=["C", "minus_1", "2_31", "int64_min", "int64_max"])
def test_out_of_range_label_in_backward_raises_naming_it(value):
    # backward checks its own input: labels changed in place after forward
    x = np.random.default_rng(41).standard_normal((3, 4))
    layer = fastnn.layers.SoftmaxWithLoss()
    layer.forward(x, np.array([0, 1, 2]))
    layer.t[1] = value
    with pytest.raises(ValueError, match=rf"t\[1\] = {value}\b"):
        layer.backward(1)


@pytest.mark.parametrize("case", [
    pytest.param("valid_int32"),
    pytest.param("out_of_range_int32"),
    pytest.param("float"),
])
def test_replaced_labels_in_backward_are_checked_like_forward(case):
    x = np.random.default_rng(43).standard_normal((3, 4))
    layer = fastnn.layers.SoftmaxWithLoss()
    layer.forward(x, np.array([0, 1, 2]))
    if case == "valid_int32":
        layer.t = np.array([3, 1, 0], dtype=np.int32)
        _, _, expected_dx = reference_layer(x, np.array([3, 1, 0], dtype=np.int32))
        assert_dx_close(layer.backward(1), expected_dx, 1, 3, np.float64)
    elif case == "out_of_range_int32":
        layer.t = np.array([3, 5, 0], dtype=np.int32)
        with pytest.raises(ValueError, match=r"t\[1\] = 5\b"):
            layer.backward(1)
    else:
        layer.t = np.array([0.0, 1.0, 2.0])
        with pytest.raises(TypeError):
            layer.backward(1)


@pytest.mark.parametrize("labels", [
    pytest.param(np.array([0.0, 1.0, 2.0]), id="float64"),
    pytest.param(np.array([0, 1, 2], dtype=np.float32), id="float32"),
    pytest.param(np.array([True, False, True]), id="bool"),
    pytest.param(np.array(1.0), id="float_scalar"),
])
def test_float_and_bool_index_labels_raise_type_error(labels):
    x = np.zeros((3, 4)) if labels.ndim else np.zeros((1, 4))
    with pytest.raises(TypeError, match=str(labels.dtype)):
        fastnn.softmax_cross_entropy(x, labels)
    with pytest.raises(TypeError, match=str(labels.dtype)):
        fastnn.layers.SoftmaxWithLoss().forward(x, labels)


@pytest.mark.parametrize("labels", [
    pytest.param(np.array([0, 1, 2, 3]), id="more_index_labels"),
    pytest.param(np.array([0, 1]), id="fewer_index_labels"),
    pytest.param(np.array([[0, 1, 2]]), id="index_labels_2d"),
    pytest.param(np.eye(4)[[0, 1, 2, 3]], id="more_one_hot_rows"),
    pytest.param(np.eye(5)[[0, 1, 2]], id="one_hot_too_wide"),
    pytest.param(np.zeros((3, 4, 1), dtype=np.int64), id="labels_3d"),
])
def test_batch_size_mismatch_raises_value_error(labels):
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"shape|mismatch"):
        fastnn.softmax_cross_entropy(x, labels)
    with pytest.raises(ValueError, match=r"shape|mismatch"):
        fastnn.layers.SoftmaxWithLoss().forward(x, labels)
