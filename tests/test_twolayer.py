"""The two-layer network's kernels (csrc/sparse.c, bias_act.c, finite.c, numgrad_twolayer.c),
through fastnn._core and the models of fastnn.models, against NumPy, closed forms and
fastnn.reference.

- sparse_index / sparse_combine (_core.SparseX, sparse_matmul, sparse_t_matmul) against NumPy's
  x @ W and x.T @ d. Both sum the same products in another order: a finite entry may differ by the
  rounding of two sums of I products, 2 (I + 2) eps (|x| @ |W|). NaN and infinities must land where
  NumPy puts them (W is kept finite there: a kernel that skips x's zeros cannot see 0 * inf).
- bias_act_forward: relu bit-exact, sigmoid within 4 ulps of the reference (tests/test_sigmoid.py).
- act_backward_bias: bit-exact to the reference layers' backward; the column sums within the
  rounding of a float64 sum (math.fsum is the exact sum).
- softmax_ce_forward(x, t, bias): the reference's softmax_cross_entropy(x + bias, t), with the
  tolerances of tests/test_softmax_ce.py.
- The compiled models on sparse (MNIST-like, ~80% zeros) and dense inputs: losses and gradients
  within 1e-12 (float64) / 2e-5 (float32) of the reference, relative to each entry's magnitude
  (the sum of its terms' absolute values: see magnitudes()).
- The model's numerical gradient (compiled, float64): within 1e-8 of the reference's loop.

Regression tests for divergences found here and fixed: relu kept NaN as NaN, and the sparse first
layer (which skips x's zeros, so 0 * NaN would be 0) is not taken when x or W1 holds inf / NaN.
"""

import math
import pickle
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import _core, reference
from helpers import FLOATS, MAX_ULPS, PARALLEL_MIN, VECTOR_PATHS, examples, num_threads, vector_path

pytestmark = pytest.mark.filterwarnings("error")

ACTIVATIONS = [pytest.param("sigmoid", id="sigmoid"), pytest.param("relu", id="relu")]
MODELS = [pytest.param("TwoLayerNet", id="TwoLayerNet"),
          pytest.param("TwoLayerNetwork", id="TwoLayerNetwork")]
DATA = [pytest.param("sparse", id="sparse"), pytest.param("dense", id="dense")]
LABELS = [pytest.param("index", id="index"), pytest.param("one_hot", id="one_hot")]
PARAM_NAMES = ("W1", "b1", "W2", "b2")
DEFAULT_THREADS = fastnn.get_num_threads()  # what set_num_threads(0) returns to

# sizes 1..50 with the edges of 8 (float64) and 16 (float32) lane vectors drawn often: the AVX-512
# compaction handles whole registers, then a tail of I % 8 (I % 16) elements
SIZES = st.one_of(st.integers(1, 50), st.sampled_from([1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 50]))
SPECIALS = [np.nan, np.inf, -np.inf, -0.0]


# --------------------------------------------------------------------------- helpers

@contextmanager
def counting_calls(name):
    """Counts the calls of _core.<name> made by fastnn.models (which looks it up at each call):
    the guard that a model test really runs the sparse path it is about, or really does not."""
    calls = []
    original = getattr(_core, name)

    def spy(*args):
        calls.append(args)
        return original(*args)

    setattr(_core, name, spy)
    try:
        yield calls
    finally:
        setattr(_core, name, original)


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def assert_matmul_close(actual, a, b):
    """actual is NumPy's a @ b: NaN and infinities at the same places, and every finite entry
    within the rounding of two different orders of summing k products."""
    with np.errstate(all="ignore"):
        expected = a @ b
        magnitude = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg="NaN at different places")
    infinite = np.isinf(expected)
    assert_array_equal(np.isinf(actual), infinite, err_msg="infinities at different places")
    assert_array_equal(actual[infinite], expected[infinite])
    finite = np.isfinite(expected)
    k = a.shape[1]
    info = np.finfo(a.dtype)
    tol = 2 * (k + 2) * float(info.eps) * magnitude[finite] + k * float(info.smallest_normal)
    err = np.abs(actual[finite].astype(np.float64) - expected[finite].astype(np.float64))
    if err.size and not np.all(err <= tol):
        i = int(np.argmax(err - tol))
        raise AssertionError(f"entry {i} of the finite ones: {actual[finite][i]!r} vs NumPy's "
                             f"{expected[finite][i]!r}, error {err[i]:.3g} > {tol[i]:.3g}")


def assert_ulp_close(actual, desired, max_ulps=MAX_ULPS):
    """One dtype and shape, NaN and infinities at the same places, at most max_ulps apart."""
    assert actual.dtype == desired.dtype and actual.shape == desired.shape
    assert_array_equal(np.isnan(actual), np.isnan(desired), err_msg="NaN at different places")
    a, d = actual[~np.isnan(actual)], desired[~np.isnan(desired)]
    assert_array_equal(a[np.isinf(a) | np.isinf(d)], d[np.isinf(a) | np.isinf(d)])
    ulp = np.spacing(np.maximum(np.abs(a), np.abs(d))).astype(np.float64)
    ulps = np.abs(a.astype(np.float64) - d.astype(np.float64)) / ulp
    assert not ulps.size or ulps.max() <= max_ulps, f"{ulps.max()} ulps apart"


def assert_column_sums(db, dz):
    """db[j] is the sum of column j of dz accumulated in float64: within (N + 1) eps64 of the
    exact sum (math.fsum), then rounded once to db's dtype (one ulp of it, for float32)."""
    dz64 = dz.astype(np.float64)
    assert db.dtype == dz.dtype and db.shape == (dz.shape[1],)
    for j in range(dz.shape[1]):
        column = dz64[:, j]
        if not np.all(np.isfinite(column)):  # NaN, or infinities: the plain sum's result
            with np.errstate(invalid="ignore"):
                assert_array_equal(db[j], column.sum().astype(db.dtype), err_msg=str(j))
            continue
        exact = math.fsum(column)
        tol = (dz.shape[0] + 1) * np.finfo(np.float64).eps * math.fsum(np.abs(column))
        if db.dtype == np.float32:
            tol += float(np.spacing(np.float32(abs(exact))))
        assert abs(float(db[j]) - exact) <= tol, (j, float(db[j]), exact, tol)


def mnist_like(rng, n, i, density=0.2):
    """x in [0, 1) with about `density` of its entries nonzero, as MNIST's pixels."""
    return rng.random((n, i)) * (rng.random((n, i)) < density)


def make_data(kind, rng, n, i, o, labels="index"):
    x = mnist_like(rng, n, i) if kind == "sparse" else rng.random((n, i)) + 0.01
    t = rng.integers(0, o, size=n)
    return x, (np.eye(o)[t] if labels == "one_hot" else t)


def model_pair(model_name, *args, **kwargs):
    """The compiled model and the reference one, with the same parameters (the same seed)."""
    return (getattr(fastnn.models, model_name)(*args, **kwargs),
            getattr(reference.models, model_name)(*args, **kwargs))


def params_by_name(model):
    params = model.params
    return dict(params) if isinstance(params, dict) else dict(zip(PARAM_NAMES, params))


def loss_of(model, x, t):
    return model.loss(x, t) if isinstance(model.params, dict) else model.forward(x, t)


def backprop(model, x, t):
    """(loss, gradients by name): forward + backward for volume 2, gradient() for volume 1."""
    if isinstance(model.params, dict):
        return model.loss(x, t), model.gradient(x, t)
    loss = model.forward(x, t)
    model.backward()
    return loss, {name: g.copy() for name, g in zip(PARAM_NAMES, model.grads)}


# Relative to the magnitudes below: float64 ~1e-16 measured, float32 ~3e-7
MODEL_RTOL = {np.float64: 1e-12, np.float32: 2e-5}


def magnitudes(model, x, t):
    """The scale of each value's rounding error, whatever the order of summation: the network and
    its backprop in float64 with every term made positive, a first-order error model. Gradients
    cancel (b2 is a column sum of y - onehot: 1e-6 from terms of 0.5), and so does x W1.
    - a1 = x W1 + b1 errs by eps (|x| |W1| + |b1|) = eps A1, so z1 by eps A1 (|z1| + A1 below);
    - scores err by eps S, S = (|z1| + A1) |W2| + |b2|, so y by 2 y eps max S (softmax);
    - y - onehot is bounded by y + onehot, the sigmoid's z (1 - z) by z (1 + A1) (1 - z cancels).
    """
    signed = {name: np.asarray(v, np.float64) for name, v in params_by_name(model).items()}
    p = {name: np.abs(v) for name, v in signed.items()}
    x = np.asarray(x, np.float64)
    t = np.asarray(t)
    t = t.argmax(axis=1) if t.ndim == 2 else t
    relu = model.activation == "relu"
    a1 = x @ signed["W1"] + signed["b1"]
    z1 = reference.relu(a1) if relu else reference.sigmoid(a1)
    y = reference.softmax(z1 @ signed["W2"] + signed["b2"])
    A1 = np.abs(x) @ p["W1"] + p["b1"]
    Z1 = np.abs(z1) + A1
    S = Z1 @ p["W2"] + p["b2"]
    dy = y * (1 + 2 * S.max(axis=1, keepdims=True))
    dy[np.arange(len(t)), t] += 1
    dy /= len(t)
    da1 = (dy @ p["W2"].T) * ((a1 > 0) if relu else z1 * (1 + A1))
    return {"W1": np.abs(x).T @ da1, "b1": da1.sum(axis=0), "W2": Z1.T @ dy, "b2": dy.sum(axis=0),
            "scores": S}


def assert_model_close(actual, desired, magnitude, dtype, what=""):
    """actual (the model's dtype) and desired within MODEL_RTOL of the magnitude of each entry."""
    rtol = MODEL_RTOL[np.dtype(dtype).type]
    assert actual.dtype == dtype and actual.shape == desired.shape, what
    err = np.abs(actual.astype(np.float64) - desired)
    tol = rtol * magnitude + 1e3 * float(np.finfo(dtype).smallest_normal)
    if not np.all(err <= tol):
        i = np.unravel_index(np.argmax(err - tol), err.shape)
        raise AssertionError(f"{what}{list(i)}: {actual[i]!r} vs {desired[i]!r}, error "
                             f"{err[i]:.3g} > {tol[i]:.3g} (magnitude {magnitude[i]:.3g})")


def assert_grads_close(grads, ref_grads, model, x, t, dtype):
    mags = magnitudes(model, x, t)
    for name in PARAM_NAMES:
        assert_model_close(grads[name], ref_grads[name], mags[name], dtype, name)


def assert_loss_close(actual, desired, dtype, rtol=None, what=""):
    """Losses within rtol * (1 + |loss|): the float32 reference adds the 1e-7 guard and takes the
    log in float32 (-log(1 + 1e-7) is -1.19e-7 there), the kernels in float64."""
    rtol = MODEL_RTOL[np.dtype(dtype).type] if rtol is None else rtol
    assert abs(float(actual) - float(desired)) <= rtol * (1 + abs(float(desired))), \
        (what, float(actual), float(desired))


def sgd_step(params, grads, lr):
    """The plain update p -= lr * g, the same NumPy code for both halves."""
    for name in PARAM_NAMES:
        params[name] -= lr * grads[name]


# --------------------------------------------------------------------------- strategies

@st.composite
def sparse_x(draw, dtype, specials=True):
    """(N, I) with a drawn density from 0 to 1, some all-zero rows and columns, and a few NaN,
    infinities and negative zeros at drawn places; values from a seeded generator."""
    n, i = draw(SIZES), draw(SIZES)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from([0.0, 0.05, 0.2, 0.5, 0.9, 1.0]))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    x = rng.uniform(-scale, scale, (n, i)) * (rng.random((n, i)) < density)
    for r in draw(st.lists(st.integers(0, n - 1), max_size=2)):
        x[r] = 0
    for c in draw(st.lists(st.integers(0, i - 1), max_size=2)):
        x[:, c] = 0
    if specials:
        for _ in range(draw(st.integers(0, 3))):
            r, c = draw(st.integers(0, n - 1)), draw(st.integers(0, i - 1))
            x[r, c] = draw(st.sampled_from(SPECIALS))
    return x.astype(dtype)


def finite_weights(rng, shape, dtype):
    """Finite weights in [-1, 1] with about 10% exact zeros (inf * 0 in x @ W gives NaN)."""
    w = rng.uniform(-1, 1, shape) * (rng.random(shape) >= 0.1)
    return w.astype(dtype)


@st.composite
def matrices(draw, dtype, shape=None, max_abs=None, max_rows=12, max_cols=50):
    """(N, H) (or the given shape): element by element from hypothesis (finite values up to
    max_abs, any finite value without it) when small, else from a seeded generator at a drawn
    scale."""
    if shape is None:
        shape = (draw(st.integers(1, max_rows)), draw(st.integers(1, max_cols)))
    if shape[0] * shape[1] <= 48:
        width = 8 * np.dtype(dtype).itemsize
        bound = {} if max_abs is None else dict(min_value=-max_abs, max_value=max_abs)
        return draw(hnp.arrays(dtype, shape, elements=st.floats(
            allow_nan=False, allow_infinity=False, width=width, **bound)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 1e4]))
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ================================================================ sparse_index, sparse_combine

@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(150), deadline=None)
def test_sparse_matmul_and_t_matmul_match_numpy(dtype, path, data):
    x = read_only(data.draw(sparse_x(dtype)))
    n, i = x.shape
    h = data.draw(SIZES)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    W = read_only(finite_weights(rng, (i, h), dtype))
    d = read_only(finite_weights(rng, (n, h), dtype))
    kept = x.copy(), W.copy(), d.copy()

    sx = _core.SparseX()
    out = np.full((n, h), np.nan, dtype)  # poisoned: every entry must be written
    dW = np.full((i, h), np.nan, dtype)
    with vector_path(path):
        assert sx.fill(x) == np.count_nonzero(x)  # NaN and inf count, -0.0 does not
        _core.sparse_matmul(sx, W, out)
        _core.sparse_t_matmul(sx, d, dW)

    assert_matmul_close(out, x, W)
    assert_matmul_close(dW, x.T, d)
    for before, after in zip(kept, (x, W, d)):
        assert same_bits(before, after)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("h", [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 24, 25, 47, 48, 49, 50, 56,
                               63, 64, 65, 97, 120, 127, 128, 129, 200])
@pytest.mark.parametrize("i", [40, 1100])
def test_sparse_products_every_register_count(dtype, h, i, path):
    # h up to 16 registers (128 float64, 256 float32) takes the AVX-512 register kernel, one case
    # per register count, the last register masked unless h fills it; wider h the portable loop.
    # The AVX2 kernel splits any h into column blocks of up to 6 registers (24 float64, 48
    # float32), the last one's last register masked: one, two and more blocks, full or not. Rows
    # with an odd and an even number of nonzeros, and empty ones (the two accumulator sets).
    # i = 1100: W (i, h) is too big for the padded copy when h does not fill whole registers.
    rng = np.random.default_rng(h)
    x = mnist_like(rng, 9, i, 0.3).astype(dtype)
    x[3] = 0
    x[:, 5] = 0
    x[4] = 0
    x[4, 7] = 2.0  # one nonzero: the odd term alone
    W = read_only(finite_weights(rng, (i, h), dtype))
    d = read_only(finite_weights(rng, (9, h), dtype))
    sx = _core.SparseX()
    out_buf, dW_buf = np.full(9 * h + 32, np.nan, dtype), np.full(i * h + 32, np.nan, dtype)
    out, dW = out_buf[:9 * h].reshape(9, h), dW_buf[:i * h].reshape(i, h)  # poisoned
    with vector_path(path):
        sx.fill(x)
        _core.sparse_matmul(sx, W, out)
        _core.sparse_t_matmul(sx, d, dW)
    assert_matmul_close(out, x, W)
    assert_matmul_close(dW, x.T, d)
    assert np.isnan(out_buf[9 * h:]).all() and np.isnan(dW_buf[i * h:]).all()  # nothing past the end


@pytest.mark.parametrize("dtype", FLOATS)
def test_one_sparse_x_refilled_with_other_batch_sizes(dtype):
    # a fill of N rows reuses the buffers of one of N' rows, N <= N' <= 4 N (a search's batches of
    # 100 and evaluations of 400): every product after each fill is that fill's, and a fill of
    # other columns or dtype, or of more rows, or of far fewer, takes new buffers
    rng = np.random.default_rng(7)
    sx = _core.SparseX()
    for n, i, kind in [(400, 30, dtype), (100, 30, dtype), (101, 30, dtype), (400, 30, dtype),
                       (3, 30, dtype), (700, 30, dtype), (100, 31, dtype), (100, 31, np.float64),
                       (100, 31, np.float32), (5, 31, np.float32)]:
        x = mnist_like(rng, n, i, 0.3).astype(kind)
        W, d = finite_weights(rng, (i, 9), kind), finite_weights(rng, (n, 9), kind)
        out, dW = np.full((n, 9), np.nan, kind), np.full((i, 9), np.nan, kind)
        assert sx.fill(x) == np.count_nonzero(x) and (sx.n, sx.inp) == (n, i)
        _core.sparse_matmul(sx, W, out)
        _core.sparse_t_matmul(sx, d, dW)
        assert_matmul_close(out, x, W)
        assert_matmul_close(dW, x.T, d)
    with pytest.raises(ValueError, match="empty"):  # refused: the last fill stands
        sx.fill(np.zeros((0, 31), np.float32))
    assert (sx.n, sx.inp) == (5, 31)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("i", [1, 7, 8, 9, 16, 17, 33])
def test_nan_in_x_gives_nan_rows_as_numpy(dtype, i):
    # NaN in x[r, c]: NumPy's x @ W is NaN in all of row r, x.T @ d in all of row c; -0.0 is a zero
    rng = np.random.default_rng(i)
    n, h = 5, 11
    x = mnist_like(rng, n, i, 0.5).astype(dtype)
    x[2, i - 1] = np.nan
    x[4, 0] = -0.0
    W = rng.uniform(0.5, 1, (i, h)).astype(dtype)  # no zeros: only the NaN row is NaN
    d = rng.uniform(0.5, 1, (n, h)).astype(dtype)
    sx = _core.SparseX()
    assert sx.fill(x) == np.count_nonzero(x)
    out, dW = np.empty((n, h), dtype), np.empty((i, h), dtype)
    _core.sparse_matmul(sx, W, out)
    _core.sparse_t_matmul(sx, d, dW)
    with np.errstate(invalid="ignore"):
        assert_array_equal(np.isnan(out), np.isnan(x @ W))
        assert_array_equal(np.isnan(dW), np.isnan(x.T @ d))
    assert np.isnan(out[2]).all() and not np.isnan(np.delete(out, 2, axis=0)).any()
    assert np.isnan(dW[i - 1]).all()
    assert_matmul_close(out, x, W)
    assert_matmul_close(dW, x.T, d)


@st.composite
def refills(draw):
    """A sequence of inputs for one SparseX: each keeps the last shape and dtype or draws new."""
    xs = [draw(sparse_x(draw(st.sampled_from([np.float64, np.float32]))))]
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):  # the same shape and dtype: the buffers are reused
            n, i = xs[-1].shape
            rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
            density = draw(st.sampled_from([0.0, 0.1, 1.0]))
            xs.append(mnist_like(rng, n, i, density).astype(xs[-1].dtype))
        else:
            xs.append(draw(sparse_x(draw(st.sampled_from([np.float64, np.float32])))))
    return xs


@given(xs=refills(), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=examples(60), deadline=None)
def test_refill_with_other_values_shapes_and_dtypes(xs, seed):
    rng = np.random.default_rng(seed)
    sx = _core.SparseX()
    previous = None
    for x in xs:
        n, i = x.shape
        assert sx.fill(x) == np.count_nonzero(x)
        indexed = x.copy()
        x[...] = 1  # fill copied what it needs: a later change of x is not seen
        h = int(rng.integers(1, 20))
        W, d = finite_weights(rng, (i, h), x.dtype), finite_weights(rng, (n, h), x.dtype)
        out, dW = np.empty((n, h), x.dtype), np.empty((i, h), x.dtype)
        _core.sparse_matmul(sx, W, out)
        _core.sparse_t_matmul(sx, d, dW)
        assert_matmul_close(out, indexed, W)
        assert_matmul_close(dW, indexed.T, d)
        if previous is not None and previous.shape[1] != i:  # the old shape is gone
            with pytest.raises(ValueError, match="W: expected"):
                _core.sparse_matmul(sx, np.zeros((previous.shape[1], h), x.dtype), out)
        if previous is not None and previous.dtype != x.dtype:  # so is the old dtype
            with pytest.raises(TypeError, match="dtype"):
                _core.sparse_matmul(sx, W.astype(previous.dtype), out)
        previous = indexed


def _filled(n=3, i=4):
    sx = _core.SparseX()
    sx.fill(np.arange(1.0, 1.0 + n * i).reshape(n, i))
    return sx


def _ro(shape, dtype=np.float64):
    return read_only(np.full(shape, 7.0, dtype))


# (call, exception, message): every call on a SparseX filled with a (3, 4) float64 x unless noted
SPARSE_ERRORS = {
    "unfilled-matmul": (lambda out: _core.sparse_matmul(_core.SparseX(), np.ones((4, 2)), out),
                        ValueError, "not been filled"),
    "unfilled-t_matmul": (lambda out: _core.sparse_t_matmul(_core.SparseX(), np.ones((3, 2)), out),
                          ValueError, "not been filled"),
    "W-wrong-rows": (lambda out: _core.sparse_matmul(_filled(), np.ones((5, 2)), out),
                     ValueError, r"W: expected \(4, H\), got shape \(5, 2\)"),
    "W-1d": (lambda out: _core.sparse_matmul(_filled(), np.ones(4), out),
             ValueError, "W: expected"),
    "W-float32": (lambda out: _core.sparse_matmul(_filled(), np.ones((4, 2), np.float32), out),
                  TypeError, "W: dtype float32"),
    "W-not-contiguous": (lambda out: _core.sparse_matmul(_filled(), np.ones((4, 4))[:, ::2], out),
                         ValueError, "W: expected a C-contiguous"),
    "out-float32": (lambda out: _core.sparse_matmul(_filled(), np.ones((4, 2)),
                                                    np.zeros((3, 2), np.float32)),
                    TypeError, "out: dtype float32"),
    "out-wrong-size": (lambda out: _core.sparse_matmul(_filled(), np.ones((4, 3)), out),
                       ValueError, "out: 6 elements, expected 9"),
    "out-read-only": (lambda out: _core.sparse_matmul(_filled(), np.ones((4, 2)), _ro((3, 2))),
                      ValueError, "read-only"),
    "d-wrong-rows": (lambda out: _core.sparse_t_matmul(_filled(), np.ones((2, 2)), out),
                     ValueError, r"d: expected \(3, H\)"),
    "d-float32": (lambda out: _core.sparse_t_matmul(_filled(), np.ones((3, 2), np.float32), out),
                  TypeError, "d: dtype float32"),
    "dW-wrong-size": (lambda out: _core.sparse_t_matmul(_filled(), np.ones((3, 2)), out),
                      ValueError, "dW: 6 elements, expected 8"),
    "dW-read-only": (lambda out: _core.sparse_t_matmul(_filled(), np.ones((3, 2)), _ro((4, 2))),
                     ValueError, "read-only"),
    "x-not-SparseX": (lambda out: _core.sparse_matmul(np.ones((3, 4)), np.ones((4, 2)), out),
                      TypeError, "SparseX"),
}


@pytest.mark.parametrize("case", list(SPARSE_ERRORS))
def test_sparse_product_errors_name_the_problem_and_write_nothing(case):
    call, error, message = SPARSE_ERRORS[case]
    out = np.full((3, 2), 7.0)
    with pytest.raises(error, match=message):
        call(out)
    assert_array_equal(out, 7.0)


FILL_ERRORS = {
    "float16": (np.ones((3, 4), np.float16), TypeError, "float16"),
    "int64": (np.ones((3, 4), np.int64), TypeError, "int64"),
    "byteswapped": (np.ones((3, 4), ">f8"), TypeError, ">f8"),
    "1d": (np.ones(4), ValueError, r"shape \(4,\)"),
    "3d": (np.ones((2, 3, 4)), ValueError, "2-D"),
    "no-rows": (np.ones((0, 4)), ValueError, "empty"),
    "no-columns": (np.ones((3, 0)), ValueError, "empty"),
    "not-contiguous": (np.ones((3, 8))[:, ::2], ValueError, "C-contiguous"),
}


@pytest.mark.parametrize("case", list(FILL_ERRORS))
def test_bad_fill_raises_and_keeps_the_last_good_fill(case):
    x, error, message = FILL_ERRORS[case]
    good = np.array([[0.0, 2.0, 0.0, 1.0], [3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    sx = _core.SparseX()
    assert sx.fill(good) == 3
    with pytest.raises(error, match=message):
        sx.fill(x)
    W = np.arange(8.0).reshape(4, 2)
    out = np.empty((3, 2))
    _core.sparse_matmul(sx, W, out)
    assert_array_equal(out, good @ W)


@pytest.mark.parametrize("dtype", FLOATS)
def test_sparse_products_thread_counts_agree(dtype):
    # nonzeros * H >= 16 * PARALLEL_MIN: sparse_combine splits the output rows over the threads
    rng = np.random.default_rng(21)
    n, i, h = 600, 301, 64
    x = mnist_like(rng, n, i, 0.5).astype(dtype)
    assert np.count_nonzero(x) * h >= 16 * PARALLEL_MIN
    W, d = finite_weights(rng, (i, h), dtype), finite_weights(rng, (n, h), dtype)
    results = []
    for threads in (1, 2):
        with num_threads(threads):
            sx = _core.SparseX()
            sx.fill(x)
            out, dW = np.empty((n, h), dtype), np.empty((i, h), dtype)
            _core.sparse_matmul(sx, W, out)
            _core.sparse_t_matmul(sx, d, dW)
            results.append((out, dW))
    (out1, dW1), (out2, dW2) = results
    assert same_bits(out1, out2) and same_bits(dW1, dW2)  # every output row by one thread
    assert_matmul_close(out2, x, W)
    assert_matmul_close(dW2, x.T, d)


# =========================================================================== bias_act_forward

@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(80), deadline=None)
def test_bias_act_forward_matches_reference(dtype, activation, path, data):
    a = data.draw(matrices(dtype))
    b = read_only(data.draw(hnp.arrays(dtype, a.shape[1], elements=st.floats(
        -1e3, 1e3, width=8 * np.dtype(dtype).itemsize))))
    with np.errstate(over="ignore"):  # a + b may overflow to inf: both sides see the same inf
        logits = a + b
    kept = b.copy()
    with vector_path(path):
        _core.bias_act_forward(a, b, activation == "relu")  # in place
    if activation == "relu":
        assert_array_equal(a, reference.relu(logits))
    else:
        assert_ulp_close(a, reference.sigmoid(logits))
    assert same_bits(b, kept)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_bias_act_forward_infinities(dtype, activation, path):
    a = np.array([[np.inf, -np.inf, 1.0, -1.0, 0.0, 5.0]], dtype)
    b = np.array([0.0, 0.0, np.inf, -np.inf, -0.0, 1e3], dtype)
    logits = a + b
    with vector_path(path):
        _core.bias_act_forward(a, b, activation == "relu")
    fn = reference.relu if activation == "relu" else reference.sigmoid
    assert_array_equal(a, fn(logits))


@pytest.mark.parametrize("activation", [
    pytest.param("sigmoid", id="sigmoid"),
    pytest.param("relu", id="relu"),
])
@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_bias_act_forward_nan_in_nan_out(dtype, activation, path):
    a = np.array([[np.nan, 1.0, -1.0], [2.0, 3.0, 4.0]], dtype)
    b = np.array([0.0, 0.0, np.nan], dtype)
    with np.errstate(invalid="ignore"):
        logits = a + b
    fn = reference.relu if activation == "relu" else reference.sigmoid
    with vector_path(path):
        _core.bias_act_forward(a, b, activation == "relu")
    assert_array_equal(np.isnan(a), np.isnan(fn(logits)))


# =========================================================================== act_backward_bias

@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(80), deadline=None)
def test_act_backward_bias_matches_reference_layers(dtype, activation, data):
    # values bounded so that a column's float64 sum cannot overflow (math.fsum would raise)
    max_abs = 2.0**100 if dtype == np.float32 else 2.0**1000
    a = data.draw(matrices(dtype, max_abs=max_abs))
    dz = data.draw(matrices(dtype, shape=a.shape, max_abs=max_abs))
    if data.draw(st.booleans()):  # NaN in the incoming gradient: propagated, or zeroed by relu
        dz[tuple(data.draw(st.integers(0, s - 1)) for s in dz.shape)] = np.nan
    # (no NaN in a: relu keeps it, and z would be NaN)
    layer = reference.layers.Relu() if activation == "relu" else reference.layers.Sigmoid()
    z = read_only(layer.forward(a))  # the forward's output, what the kernel takes
    with np.errstate(over="ignore", invalid="ignore"):
        expected = layer.backward(dz)
    got, db = dz.copy(), np.full(a.shape[1], np.nan, dtype)
    kept = z.copy()

    _core.act_backward_bias(got, z, activation == "relu", db)

    # bit-exact: both evaluate dz * (1 - z) * z (relu: dz, zero where z <= 0) left to right
    assert same_bits(got, expected)
    assert_column_sums(db, got)
    assert same_bits(z, kept)


def test_act_backward_bias_float32_sums_in_float64():
    # float32 running sum: 2**24 + 1 = 2**24, so it ends at 0; float64 sums to the ones' count
    dz = np.array([2.0**24] + [1.0] * 10 + [-2.0**24], np.float32).reshape(-1, 1)
    z = np.ones_like(dz)  # relu with z > 0 passes dz through unchanged
    db = np.empty(1, np.float32)
    _core.act_backward_bias(dz, z, True, db)
    assert db[0] == 10.0


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_bias_act_and_backward_thread_counts_agree(dtype, activation):
    # N * H >= PARALLEL_MIN: bias_act_forward splits rows over the threads
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((2100, 64)) * 3).astype(dtype)
    b = rng.standard_normal(64).astype(dtype)
    dz = rng.standard_normal(a.shape).astype(dtype)
    results = []
    for threads in (1, 2):
        with num_threads(threads):
            z = a.copy()
            _core.bias_act_forward(z, b, activation == "relu")
            d, db = dz.copy(), np.empty(64, dtype)
            _core.act_backward_bias(d, z, activation == "relu", db)
            results.append((z, d, db))
    for one, two in zip(*results):
        assert same_bits(one, two)
    z = results[1][0]
    if activation == "relu":
        assert_array_equal(z, reference.relu(a + b))
    else:
        assert_ulp_close(z, reference.sigmoid(a + b))
    assert_column_sums(results[1][2], results[1][1])


ACT_ERRORS = {
    "a-read-only": (lambda: _core.bias_act_forward(_ro((3, 2)), np.zeros(2), False),
                    ValueError, "read-only"),
    "b-wrong-size": (lambda: _core.bias_act_forward(np.zeros((3, 2)), np.zeros(3), False),
                     ValueError, "b: 3 elements, expected 2"),
    "b-float32": (lambda: _core.bias_act_forward(np.zeros((3, 2)), np.zeros(2, np.float32), True),
                  TypeError, "b: dtype float32"),
    "a-1d": (lambda: _core.bias_act_forward(np.zeros(2), np.zeros(2), False), ValueError, "2-D"),
    "a-empty": (lambda: _core.bias_act_forward(np.zeros((0, 2)), np.zeros(2), False),
                ValueError, "empty"),
    "z-wrong-size": (lambda: _core.act_backward_bias(np.zeros((3, 2)), np.zeros((2, 2)), False,
                                                     np.zeros(2)), ValueError, "z: 4 elements"),
    "db-read-only": (lambda: _core.act_backward_bias(np.zeros((3, 2)), np.zeros((3, 2)), True,
                                                     _ro(2)), ValueError, "read-only"),
    "db-float32": (lambda: _core.act_backward_bias(np.zeros((3, 2)), np.zeros((3, 2)), True,
                                                   np.zeros(2, np.float32)), TypeError, "db"),
    "dz-int": (lambda: _core.act_backward_bias(np.zeros((3, 2), int), np.zeros((3, 2)), True,
                                               np.zeros(2)), TypeError, "dz"),
}


@pytest.mark.parametrize("case", list(ACT_ERRORS))
def test_activation_kernel_errors_name_the_problem(case):
    call, error, message = ACT_ERRORS[case]
    with pytest.raises(error, match=message):
        call()


# ====================================================================== softmax_ce_forward + bias

SOFTMAX_RTOL = {np.float64: 1e-13, np.float32: 4e-6}  # tests/test_softmax_ce.py
LOSS_RTOL = {np.float64: 1e-13, np.float32: 1e-6}


@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(80), deadline=None)
def test_softmax_ce_forward_with_bias_is_reference_of_x_plus_bias(dtype, data):
    width = 8 * np.dtype(dtype).itemsize
    n, c = data.draw(st.integers(1, 6)), data.draw(st.sampled_from([1, 2, 3, 10, 17, 40]))
    x = read_only(data.draw(hnp.arrays(dtype, (n, c), elements=st.floats(-500, 500, width=width))))
    bias = read_only(data.draw(hnp.arrays(dtype, c, elements=st.floats(-500, 500, width=width))))
    t = read_only(np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)),
                           dtype=np.int64))
    kept = x.copy(), bias.copy(), t.copy()

    loss, y = _core.softmax_ce_forward(x, t, bias)
    ref_loss, ref_y = reference.softmax_cross_entropy(x + bias, t)

    assert y.dtype == dtype and y.shape == (n, c)
    tiny = 4 * float(np.finfo(dtype).smallest_subnormal)
    assert_allclose(y, ref_y, rtol=SOFTMAX_RTOL[dtype], atol=tiny)
    assert abs(loss - ref_loss) <= LOSS_RTOL[dtype] * (1 + abs(ref_loss)), (loss, ref_loss)
    for before, after in zip(kept, (x, bias, t)):
        assert same_bits(before, after)


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_ce_forward_nan_in_bias_gives_nan_rows(dtype):
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype)
    bias = np.array([0.0, np.nan, 0.0], dtype)
    t = np.array([0, 2])
    loss, y = _core.softmax_ce_forward(x, t, bias)
    with np.errstate(invalid="ignore"):
        ref_loss, ref_y = reference.softmax_cross_entropy(x + bias, t)
    assert np.isnan(loss) and np.isnan(ref_loss)
    assert_array_equal(np.isnan(y), np.isnan(ref_y))


BIAS_ERRORS = {
    "wrong-size": (np.zeros(4), ValueError, "bias: 4 elements, expected 3"),
    "float32": (np.zeros(3, np.float32), TypeError, "bias: dtype float32"),
    "not-contiguous": (np.zeros(6)[::2], ValueError, "bias: expected a C-contiguous"),
}


@pytest.mark.parametrize("case", list(BIAS_ERRORS))
def test_softmax_ce_forward_bad_bias_raises(case):
    bias, error, message = BIAS_ERRORS[case]
    with pytest.raises(error, match=message):
        _core.softmax_ce_forward(np.zeros((2, 3)), np.array([0, 1]), bias)


# =========================================================================== the compiled models

N, I, H, O = 60, 64, 13, 10  # H = 13: no multiple of a vector width


@pytest.mark.parametrize("labels", LABELS)
@pytest.mark.parametrize("kind", DATA)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("model_name", MODELS)
def test_loss_and_backprop_match_reference(model_name, dtype, activation, kind, labels):
    rng = np.random.default_rng(31)
    x, t = make_data(kind, rng, N, I, O, labels)
    fast, ref = model_pair(model_name, I, H, O, 0.5, activation=activation, dtype=dtype, seed=32)
    kept = x.copy(), t.copy()
    with counting_calls("sparse_matmul") as forward_calls, \
            counting_calls("sparse_t_matmul") as backward_calls:
        loss, grads = backprop(fast, x, t)
    assert (len(forward_calls), len(backward_calls)) == ((1, 1) if kind == "sparse" else (0, 0))
    ref_loss, ref_grads = backprop(ref, x, t)
    assert_loss_close(loss, ref_loss, dtype)
    assert_grads_close(grads, ref_grads, ref, x, t, dtype)
    assert same_bits(x, kept[0]) and same_bits(t, kept[1])


@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
@settings(max_examples=examples(40), deadline=None)
def test_backprop_matches_reference_any_shape_and_density(dtype, data):
    n, i = data.draw(st.integers(1, 40)), data.draw(SIZES)
    h, o = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 12))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = mnist_like(rng, n, i, data.draw(st.sampled_from([0.0, 0.05, 0.2, 0.3, 0.6, 1.0])))
    t = rng.integers(0, o, size=n)
    activation = data.draw(st.sampled_from(["sigmoid", "relu"]))
    model_name = data.draw(st.sampled_from(["TwoLayerNet", "TwoLayerNetwork"]))
    std = data.draw(st.sampled_from([0.01, 0.5, 2.0]))
    fast, ref = model_pair(model_name, i, h, o, std, activation=activation, dtype=dtype,
                           seed=int(rng.integers(1 << 30)))
    loss, grads = backprop(fast, x, t)
    ref_loss, ref_grads = backprop(ref, x, t)
    assert_loss_close(loss, ref_loss, dtype)
    assert_grads_close(grads, ref_grads, ref, x, t, dtype)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("model_name", MODELS)
def test_sgd_steps_with_changing_batch_sizes_match_reference(model_name, dtype, activation):
    # scratch buffers are keyed by batch size, SparseX by shape: change both, and sparse <-> dense
    rng = np.random.default_rng(41)
    fast, ref = model_pair(model_name, I, H, O, 0.3, activation=activation, dtype=dtype, seed=42)
    steps = [(60, "sparse"), (60, "sparse"), (7, "sparse"), (60, "dense"), (1, "dense"),
             (33, "sparse"), (60, "sparse")]
    paths = []
    for n, kind in steps:
        x, t = make_data(kind, rng, n, I, O)
        with counting_calls("sparse_matmul") as calls:
            loss, grads = backprop(fast, x, t)
        paths.append(len(calls))
        ref_loss, ref_grads = backprop(ref, x, t)
        assert_loss_close(loss, ref_loss, dtype, 10 * MODEL_RTOL[dtype], str((n, kind)))
        sgd_step(params_by_name(fast), grads, 0.5)
        sgd_step(params_by_name(ref), ref_grads, 0.5)
        for name in PARAM_NAMES:  # parameters are O(0.3): differences accumulate over steps
            assert_allclose(params_by_name(fast)[name], params_by_name(ref)[name],
                            rtol=10 * MODEL_RTOL[dtype], atol=10 * MODEL_RTOL[dtype],
                            err_msg=f"{name} after a batch of {n} {kind}")
    assert paths[:2] == [1, 1] and paths[-1] == 1 and 0 in paths  # sparse, dense, sparse again


@pytest.mark.parametrize("activation", [
    pytest.param("sigmoid", id="sigmoid"),
    pytest.param("relu", id="relu"),
])
@pytest.mark.parametrize("model_name", MODELS)
def test_nan_in_x_gives_nan_loss_as_reference(model_name, activation):
    rng = np.random.default_rng(43)
    x, t = make_data("sparse", rng, N, I, O)
    x[5, 7] = np.nan
    fast, ref = model_pair(model_name, I, H, O, 1.0, activation=activation, seed=44)
    with np.errstate(invalid="ignore"):
        ref_loss, ref_y = loss_of(ref, x, t), ref.predict(x)
    assert np.isnan(ref_loss)
    assert np.isnan(loss_of(fast, x, t))
    assert_array_equal(np.isnan(fast.predict(x)), np.isnan(ref_y))


@pytest.mark.parametrize("weight", [pytest.param(np.nan, id="nan"), pytest.param(np.inf, id="inf")])
@pytest.mark.parametrize("model_name", MODELS)
def test_non_finite_weight_on_sparse_data_as_reference(model_name, weight):
    rng = np.random.default_rng(31)  # the data of test_loss_and_backprop_match_reference
    x, t = make_data("sparse", rng, N, I, O)
    x[:, 0] = 0  # MNIST's border pixels are zero in every image
    fast, ref = model_pair(model_name, I, H, O, 0.5, seed=32)
    params_by_name(fast)["W1"][0, 3] = params_by_name(ref)["W1"][0, 3] = weight
    with np.errstate(invalid="ignore", over="ignore"):
        ref_loss, ref_grads = backprop(ref, x, t)
        with counting_calls("sparse_matmul") as calls:
            loss, grads = backprop(fast, x, t)
    assert len(calls) == 0  # non-finite W1: the dense path, whose 0 * inf is NaN
    assert np.isnan(ref_loss) and all(np.isnan(g).all() for g in ref_grads.values())
    assert np.isnan(loss)  # TwoLayerNetwork.loss() is dense: its gradient() is the sparse path
    for name in PARAM_NAMES:
        assert_array_equal(np.isnan(grads[name]), np.isnan(ref_grads[name]), err_msg=name)


@pytest.mark.parametrize("kind", [
    pytest.param("sparse", id="sparse"),
    pytest.param("dense", id="dense"),
])
@pytest.mark.parametrize("model_name", MODELS)
def test_nan_in_x_gives_nan_gradients_as_reference(model_name, kind):
    rng = np.random.default_rng(31)  # the data of test_loss_and_backprop_match_reference
    x, t = make_data(kind, rng, N, I, O)
    x[5, 7] = np.nan
    fast, ref = model_pair(model_name, I, H, O, 0.5, seed=32)  # sigmoid keeps NaN
    with np.errstate(invalid="ignore"):
        ref_loss, ref_grads = backprop(ref, x, t)
        with counting_calls("sparse_t_matmul") as calls:
            loss, grads = backprop(fast, x, t)
    assert len(calls) == 0  # a NaN in x: the dense path, also for sparse data
    assert np.isnan(loss) and np.isnan(ref_loss)
    for name in PARAM_NAMES:
        assert_array_equal(np.isnan(grads[name]), np.isnan(ref_grads[name]), err_msg=name)


@pytest.mark.parametrize("kind", DATA)
@pytest.mark.parametrize("model_name", MODELS)
def test_predict_and_gradient_return_fresh_arrays(model_name, kind):
    rng = np.random.default_rng(51)
    fast, ref = model_pair(model_name, I, H, O, 1.0, seed=52)
    x1, t1 = make_data(kind, rng, N, I, O)
    predicted = fast.predict(x1)
    gradient = fast.gradient(x1, t1)
    kept = predicted.copy(), {k: g.copy() for k, g in gradient.items()}
    for _ in range(2):  # the same batch size, so the same scratch buffers
        x2, t2 = make_data(kind, rng, N, I, O)
        backprop(fast, x2, t2)
        fast.gradient(x2, t2)
        fast.predict(x2)
        fast.numerical_gradient(x2[:3], t2[:3])
    assert same_bits(predicted, kept[0])
    for name in PARAM_NAMES:
        assert same_bits(gradient[name], kept[1][name])
    mags = magnitudes(ref, x1, t1)
    scale = mags["scores"] if model_name == "TwoLayerNet" else ref.predict(x1)  # probabilities
    assert_model_close(predicted, ref.predict(x1), scale, np.float64, "predict")
    assert_grads_close(gradient, ref.gradient(x1, t1), ref, x1, t1, np.float64)


@pytest.mark.parametrize("kind", DATA)
def test_evaluations_between_forward_and_backward_change_nothing(kind):
    # the model is a composition of layers whose scratch holds the training pass for backward:
    # predict, loss-free evaluations and the numerical gradient use scratch of their own
    rng = np.random.default_rng(57)
    x, t = make_data(kind, rng, N, I, O)
    a = fastnn.TwoLayerNet(I, H, O, 0.5, seed=58)
    b = pickle.loads(pickle.dumps(a))
    a.forward(x, t)
    a.backward()
    b.forward(x, t)
    x2, t2 = make_data(kind, rng, N, I, O)  # the same batch size: the same buffer shapes
    predicted = b.predict(x2)
    b.accuracy(x2, t2)
    b.numerical_gradient(x2[:3], t2[:3])
    b.backward()
    for name, ga, gb in zip(PARAM_NAMES, a.grads, b.grads):
        assert same_bits(ga, gb), name
    assert same_bits(predicted, a.predict(x2))


def test_layers_hold_the_models_arrays():
    # volume 2's layers and volume 1's attributes are the model's params and grads themselves,
    # also after a pickle and after a parameter is replaced
    rng = np.random.default_rng(59)
    x, t = make_data("sparse", rng, N, I, O)
    net = pickle.loads(pickle.dumps(fastnn.TwoLayerNet(I, H, O, 0.5, activation="relu", seed=60)))
    assert isinstance(net.layers[1], fastnn.layers.Relu)
    net.params[2] = net.params[2] * 2
    net.forward(x, t)
    net.backward()
    first, _, second = net.layers
    assert all(p is q for p, q in zip([first.W, first.b, second.W, second.b], net.params))
    assert all(g is q for g, q in zip([first.dW, first.db, second.dW, second.db], net.grads))
    ref = reference.TwoLayerNet(I, H, O, activation="relu", seed=60)
    for p, q in zip(ref.params, net.params):
        p[...] = q
    ref.forward(x, t)
    ref.backward()
    assert net.loss_layer.loss == pytest.approx(ref.loss_layer.loss, rel=1e-12)
    for name, g, r in zip(PARAM_NAMES, net.grads, ref.grads):
        assert_allclose(g, r, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("model_name", MODELS)
def test_pickle_of_a_trained_model(model_name, activation):
    rng = np.random.default_rng(61)
    fast, ref = model_pair(model_name, I, H, O, 0.3, activation=activation, seed=62)
    fresh = getattr(fastnn.models, model_name)(I, H, O, 0.3, activation=activation, seed=62)
    for _ in range(3):
        x, t = make_data("sparse", rng, 500, I, O)  # scratch of 2 * 500 * 13 doubles, x kept
        for model in (fast, ref):
            _, grads = backprop(model, x, t)
            sgd_step(params_by_name(model), grads, 0.5)
    blob = pickle.dumps(fast)
    # only the parameters (and grads) and the configuration: the same size as an untrained model
    assert abs(len(blob) - len(pickle.dumps(fresh))) < 64, (len(blob), len(pickle.dumps(fresh)))
    clone = pickle.loads(blob)

    x, t = make_data("sparse", rng, 40, I, O)
    assert same_bits(clone.predict(x), fast.predict(x))
    # the clone trains; it and the original take the same step to the same bits
    for model in (clone, fast, ref):
        _, grads = backprop(model, x, t)
        sgd_step(params_by_name(model), grads, 0.5)
    for name in PARAM_NAMES:
        assert same_bits(params_by_name(clone)[name], params_by_name(fast)[name])
        assert_allclose(params_by_name(clone)[name], params_by_name(ref)[name], rtol=1e-11,
                        atol=1e-11, err_msg=name)
    assert params_by_name(clone)["W1"] is not params_by_name(fast)["W1"]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_model_thread_counts_agree(activation, dtype):
    # N * H >= PARALLEL_MIN (bias_act) and nonzeros * H >= 16 * PARALLEL_MIN (sparse_combine)
    rng = np.random.default_rng(71)
    x, t = make_data("sparse", rng, 4096, 100, O)
    results = []
    # BLAS on one thread in both runs, so that only fastnn's thread count changes: with two, the
    # step holds BLAS to one thread anyway, and some OpenBLAS builds (NumPy 1.23's) round a
    # float32 product differently on one thread and on two
    with pytest.importorskip("threadpoolctl").threadpool_limits(1, user_api="blas"):
        for threads in (1, 2):
            with num_threads(threads), counting_calls("sparse_matmul") as calls:
                model = fastnn.TwoLayerNet(100, 64, O, 0.3, activation=activation, dtype=dtype,
                                           seed=72)
                results.append(backprop(model, x, t))
                assert len(calls) == 1
    (loss1, grads1), (loss2, grads2) = results
    assert_allclose(loss1, loss2, rtol=1e-14)  # a reduction may be split by thread
    for name in PARAM_NAMES:  # row-parallel kernels, serial bias sums: the same bits
        assert same_bits(grads1[name], grads2[name]), name
    assert fastnn.get_num_threads() == DEFAULT_THREADS
    ref = reference.TwoLayerNet(100, 64, O, 0.3, activation=activation, dtype=dtype, seed=72)
    ref_loss, ref_grads = backprop(ref, x, t)
    assert_loss_close(loss2, ref_loss, dtype)
    assert_grads_close(grads2, ref_grads, ref, x, t, dtype)


def blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [info["num_threads"] for info in threadpoolctl.threadpool_info()
            if info["user_api"] == "blas"]


@pytest.mark.parametrize("kind, rows, expected", [("sparse", 4096, 1), ("sparse", 100, 2),
                                                  ("dense", 4096, 2)])
def test_big_sparse_step_holds_blas_to_one_thread(kind, rows, expected):
    # BLAS's threads spin between calls and would take the cores from fastnn's OpenMP threads:
    # a sparse step big enough for those (N * H >= PARALLEL_MIN) runs BLAS on one thread, and
    # gives BLAS its threads back afterwards; a small or dense step leaves BLAS alone
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(73)
    x, t = make_data(kind, rng, rows, 100, O)
    original = _core.bias_act_forward  # called between the forward's products
    seen = []

    def spy(*args):
        seen.append(blas_threads())
        return original(*args)

    with threadpoolctl.threadpool_limits(2, user_api="blas"), num_threads(2):
        assert blas_threads() and set(blas_threads()) == {2}
        model = fastnn.TwoLayerNet(100, 64, O, 0.3, seed=74)
        _core.bias_act_forward = spy
        try:
            with counting_calls("sparse_matmul") as calls:
                model.forward(x, t)
        finally:
            _core.bias_act_forward = original
        model.backward()
        assert len(calls) == (kind == "sparse")
        assert set(blas_threads()) == {2}
    assert (rows * 64 >= _core.PARALLEL_MIN) == (rows == 4096)
    assert [set(s) for s in seen] == [{expected}]


# ====================================================================== twolayer_numerical_gradient

NG_TOL = 1e-8  # the requirement; measured ~2e-11 (the reference loop's own rounding)


def assert_gradients_within(actual, desired, tol=NG_TOL):
    for name in PARAM_NAMES:
        assert actual[name].shape == desired[name].shape, name
        diff = np.max(np.abs(actual[name].astype(np.float64) - desired[name]))
        assert diff <= tol, f"{name}: max |difference| {diff:.3g} > {tol:.3g}"


@pytest.mark.parametrize("std", [pytest.param(0.01, id="std0.01"), pytest.param(1.0, id="std1")])
@pytest.mark.parametrize("labels", LABELS)
@pytest.mark.parametrize("kind", DATA)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("model_name", MODELS)
def test_numerical_gradient_matches_reference(model_name, activation, kind, labels, std):
    # std 1.0 moves scores by more than 1e-3 per perturbation: the kernel's full exp, not Taylor's
    rng = np.random.default_rng(81)
    x, t = make_data(kind, rng, 20, 30, 5, labels)
    fast, ref = model_pair(model_name, 30, 8, 5, std, activation=activation, seed=82)
    kept = {name: p.copy() for name, p in params_by_name(fast).items()}
    grads = fast.numerical_gradient(x, t)
    assert_gradients_within(grads, ref.numerical_gradient(x, t))
    for name in PARAM_NAMES:
        assert grads[name].dtype == np.float64
        assert same_bits(params_by_name(fast)[name], kept[name])  # nothing perturbed in place


@given(data=st.data())
@settings(max_examples=examples(30), deadline=None)
def test_numerical_gradient_matches_reference_any_small_net(data):
    n, i = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 30))
    h, o = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = mnist_like(rng, n, i, data.draw(st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0])))
    t = rng.integers(0, o, size=n)
    std = data.draw(st.sampled_from([0.01, 0.1, 1.0, 3.0]))
    activation = data.draw(st.sampled_from(["sigmoid", "relu"]))
    fast, ref = model_pair("TwoLayerNetwork", i, h, o, std, activation=activation,
                           seed=int(rng.integers(1 << 30)))
    if data.draw(st.booleans()):  # nonzero biases too
        b1, b2 = rng.standard_normal(h) * std, rng.standard_normal(o) * std
        for model in (fast, ref):
            model.params["b1"][...], model.params["b2"][...] = b1, b2
    assert_gradients_within(fast.numerical_gradient(x, t), ref.numerical_gradient(x, t))


@pytest.mark.parametrize("kind", DATA)
def test_numerical_gradient_agrees_with_backprop_at_small_init(kind):
    # they differ by the 1e-7 that guards the log (numerics only): about |g| * 1e-7 / y ~ 3e-8
    rng = np.random.default_rng(91)
    x, t = make_data(kind, rng, 20, 30, 5)
    for activation in ("sigmoid", "relu"):
        model = fastnn.TwoLayerNetwork(30, 8, 5, 0.01, activation=activation, seed=92)
        if activation == "relu":  # hidden units far from relu's kink: on (+0.5) or off (-0.5)
            model.params["b1"][...] = np.where(np.arange(8) % 2, 0.5, -0.5)
        numerical, backprop_grads = model.numerical_gradient(x, t), model.gradient(x, t)
        for name in PARAM_NAMES:
            assert_allclose(numerical[name], backprop_grads[name], rtol=0, atol=1e-7,
                            err_msg=f"{activation} {name}")


@pytest.mark.parametrize("h", [pytest.param(1e-2, id="h1e-2"), pytest.param(1e-6, id="h1e-6")])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_numerical_gradient_step_h_as_the_books_loop(activation, h):
    rng = np.random.default_rng(93)
    x, t = make_data("sparse", rng, 20, 30, 5)
    fast, ref = model_pair("TwoLayerNetwork", 30, 8, 5, 1.0, activation=activation, seed=94)
    expected = {name: reference.numerical_gradient(lambda _: ref.loss(x, t), ref.params[name], h)
                for name in PARAM_NAMES}
    assert_gradients_within(fast.numerical_gradient(x, t, h=h), expected)


@pytest.mark.parametrize("h", [pytest.param(0.0, id="zero"), pytest.param(-1e-4, id="negative"),
                               pytest.param(np.nan, id="nan"), pytest.param(np.inf, id="inf")])
@pytest.mark.parametrize("model_name", MODELS)
def test_numerical_gradient_bad_step_raises(model_name, h):
    x, t = make_data("sparse", np.random.default_rng(95), 5, 30, 5)
    model = getattr(fastnn.models, model_name)(30, 8, 5, seed=96)
    with pytest.raises(ValueError, match="h must be"):
        model.numerical_gradient(x, t, h=h)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("model_name", MODELS)
def test_numerical_gradient_nan_in_x_as_reference(model_name, activation):
    rng = np.random.default_rng(97)
    x, t = make_data("sparse", rng, 20, 30, 5)
    x[4, 9] = np.nan
    fast, ref = model_pair(model_name, 30, 8, 5, 1.0, activation=activation, seed=98)
    with np.errstate(invalid="ignore"):
        expected = ref.numerical_gradient(x, t)
    assert all(np.isnan(g).all() for g in expected.values())  # the reference: NaN loss everywhere
    grads = fast.numerical_gradient(x, t)
    for name in PARAM_NAMES:
        assert np.isnan(grads[name]).all(), name


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_numerical_gradient_infinite_input_as_reference(activation):
    # An infinite pixel makes its row's pre-activations infinite whatever the weight: the book's
    # loop sees no change there. The kernel must not form a1 + x * d = -inf + inf = NaN
    # (csrc/numgrad_twolayer.c, hidden_unit_delta).
    rng = np.random.default_rng(99)
    x, t = make_data("sparse", rng, 20, 30, 5)
    x[3, 4] = np.inf
    fast, ref = model_pair("TwoLayerNetwork", 30, 8, 5, 1.0, activation=activation, seed=3)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = ref.numerical_gradient(x, t)
        grads = fast.numerical_gradient(x, t)
    if activation == "sigmoid":  # sigmoid(+-inf) is finite: so is the loss and every gradient
        assert all(np.isfinite(g).all() for g in expected.values())
    for name in PARAM_NAMES:  # relu: relu(inf) W2 gives NaN scores, so NaN everywhere
        assert_array_equal(np.isnan(grads[name]), np.isnan(expected[name]), err_msg=name)
        finite = ~np.isnan(expected[name])
        assert np.all(np.abs(grads[name][finite] - expected[name][finite]) <= NG_TOL), name


def float32_books_loop(model32, x, t, h=1e-4):
    """The book's loop on a float32 model, evaluated in float64: every parameter is stored as
    float32(p + h) and float32(p - h), as the float32 loop stores it, and the float64 reference
    loss of those exact float32 values is differenced over 2h. No float32 arithmetic, so no
    float32 noise: the independent float64 oracle for the kernel's f32 mode."""
    cfg = model32.config
    ref = reference.TwoLayerNetwork(cfg["input_size"], cfg["hidden_size"], cfg["output_size"],
                                    activation=cfg["activation"], seed=0)
    for name in PARAM_NAMES:
        ref.params[name][...] = model32.params[name]
    x64 = np.asarray(x, np.float32).astype(np.float64)  # the model sees x in its dtype
    grads = {}
    for name in PARAM_NAMES:
        p = ref.params[name]
        g = np.empty_like(p)
        for index in np.ndindex(p.shape):
            saved = p[index]
            p[index] = np.float32(saved + h)
            plus = ref.loss(x64, t)
            p[index] = np.float32(saved - h)
            minus = ref.loss(x64, t)
            p[index] = saved
            g[index] = (plus - minus) / (2 * h)
        grads[name] = g
    return ref, x64, grads


@pytest.mark.parametrize("std", [pytest.param(0.01, id="std0.01"), pytest.param(1.0, id="std1")])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_float32_numerical_gradient(activation, std):
    # The float32 reference loop is noise-dominated: its losses are float32 (~1e-7 relative), and
    # the difference over 2h = 2e-4 turns that into ~1e-3 absolute. The kernel works in float64
    # and only rounds the stored perturbation to float32, as the book's float32 loop does. So:
    # (1) against that loop evaluated in float64 (float32_books_loop): the same up to the final
    #     rounding to float32;
    # (2) against the plain float64 reference of the same float32-valued parameters (perturbed by
    #     exactly h): differs by the float32 rounding of p +- h, a relative error of the step of at
    #     most spacing32(|p| + h) / 2h, i.e. up to ~1e-3 relative for |p| ~ 3.
    rng = np.random.default_rng(101)
    x, t = make_data("sparse", rng, 20, 30, 5)
    model = fastnn.TwoLayerNetwork(30, 8, 5, std, activation=activation, dtype=np.float32, seed=102)
    grads = model.numerical_gradient(x, t)
    ref64, x64, books = float32_books_loop(model, x, t)
    plain = ref64.numerical_gradient(x64, t)
    for name in PARAM_NAMES:
        g = grads[name]
        assert g.dtype == np.float32
        # (1) both differ by their float64 rounding (~1e-11), then g by one float32 rounding
        assert_allclose(g, books[name], rtol=np.finfo(np.float32).eps, atol=1e-9, err_msg=name)
        # (2) the step's rounding bound, plus (1)'s tolerance
        p = np.abs(model.params[name]).astype(np.float64) + 1e-4
        step_error = np.spacing(p.astype(np.float32)).astype(np.float64) / 2e-4
        bound = np.abs(plain[name]) * step_error + np.spacing(np.abs(g)).astype(np.float64) + 1e-8
        assert np.all(np.abs(g - plain[name]) <= bound), name


def test_numerical_gradient_thread_counts_agree():
    # N * I * H = 64 * 256 * 8 = PARALLEL_MIN: the kernel's OpenMP loop over the parameters starts
    rng = np.random.default_rng(111)
    n, i, h, o = 64, 256, 8, 5
    assert n * i * h >= PARALLEL_MIN
    x, t = make_data("sparse", rng, n, i, o)
    fast, ref = model_pair("TwoLayerNetwork", i, h, o, 0.5, activation="sigmoid", seed=112)
    results = []
    for threads in (1, 2):
        with num_threads(threads):
            results.append(fast.numerical_gradient(x, t))
    for name in PARAM_NAMES:  # every parameter's difference is computed by one thread
        assert same_bits(results[0][name], results[1][name]), name
    assert_gradients_within(results[1], ref.numerical_gradient(x, t))
    assert fastnn.get_num_threads() == DEFAULT_THREADS
