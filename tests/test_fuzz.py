"""Fuzzing every kernel entry: arbitrary shapes, dtypes, values and memory layouts.

What must hold for every input hypothesis finds:
- nothing crashes (a crash ends the run; the sanitizer build, tools/sanitize.sh, also catches any
  read or write out of bounds);
- an exception is a TypeError or ValueError with a message;
- inputs are unchanged (x of numerical_gradient restored bit for bit), and a result has the shape
  and range it must have.

The budget is FASTNN_FUZZ_EXAMPLES examples per test: by default 30 times the hypothesis profile's
factor (tests/conftest.py), so the normal run stays fast (and derandomized, so it is the same run
every time, as every run is under CI); a real fuzz run is e.g.
    FASTNN_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py
Both the public face and the _core entry points it calls are fuzzed: _core re-checks every buffer
it hands to C, and those checks are what keeps a kernel inside its arrays.

Failures it found (an array learning rate for SGD; biases that are not 1-D in the model's
numerical gradient, a heap overflow) are fixed and pinned in tests/test_errors.py.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn
from fastnn import _core
from helpers import examples

DEFAULT_EXAMPLES = examples(30)  # 30 under the quick hypothesis profile (tests/conftest.py)
EXAMPLES = int(os.environ.get("FASTNN_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize=EXAMPLES <= DEFAULT_EXAMPLES or settings.default.derandomize,
                suppress_health_check=list(HealthCheck), print_blob=True)
pytestmark = pytest.mark.filterwarnings("ignore")  # values, not warnings, are checked here

ALLOWED = (TypeError, ValueError)

# --------------------------------------------------------------------------- strategies

DTYPES = [np.float64, np.float32, np.float16, np.longdouble, np.int8, np.uint8, np.int16, np.int32,
          np.int64, np.uint64, np.bool_, np.complex64, np.complex128, object, "<U3", "S3",
          "M8[s]", "m8[s]", ">f8", ">f4", ">i8"]
FLOAT_DTYPES = [np.float64, np.float32, ">f8", np.float16, np.int64, np.bool_]
OBJECTS = st.one_of(st.floats(), st.integers(-2**70, 2**70), st.none(), st.text(max_size=2),
                    st.complex_numbers(max_magnitude=10))
LAYOUTS = ["c", "c", "fortran", "strided", "reversed", "broadcast", "unaligned", "readonly",
           "byteswapped"]


def in_layout(a, layout):
    """a's values in the named memory layout (when that layout exists for a)."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "strided" and a.ndim:
        big = np.zeros((2 * a.shape[0],) + a.shape[1:], dtype=a.dtype)
        big[::2] = a
        return big[::2]
    if layout == "reversed" and a.ndim:
        return a[::-1].copy()[::-1]
    if layout == "broadcast" and a.ndim and a.shape[0]:
        return np.broadcast_to(a[:1], a.shape)
    if layout == "unaligned" and not a.dtype.hasobject and a.dtype.itemsize > 1:
        buf = bytearray(a.nbytes + 1)
        out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        out[...] = a
        return out
    if layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    if layout == "byteswapped" and a.dtype.kind in "biufc":
        return a.astype(a.dtype.newbyteorder())
    return a


@st.composite
def arrays(draw, dtypes=DTYPES, shape=None, min_dims=0, max_dims=4):
    """Any array: dtype, shape (sides 0..6, or one long side now and then), values (NaN, inf,
    extremes, subnormals included), memory layout."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    if shape is None:
        shape = draw(st.one_of(
            hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=6),
            st.sampled_from([(1, 1031), (17, 9), (3, 1000), (2049,)])))
    if np.prod(shape) > 256 and dtype.kind not in "fiu":
        shape = (3, 2)  # hypothesis draws small arrays only: element by element
    if np.prod(shape) > 256:  # large ones from a seeded generator
        seed = draw(st.integers(0, 2**32 - 1))
        scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 1e4, 1e300]))
        values = np.random.default_rng(seed).standard_normal(shape) * scale
        with np.errstate(all="ignore"):
            a = values.astype(dtype)
    else:
        elements = OBJECTS if dtype.hasobject else None
        a = draw(hnp.arrays(dtype, shape, elements=elements))
    return in_layout(a, draw(st.sampled_from(LAYOUTS)))


def anything(max_int=2**65):
    """Whatever a caller might pass where an array is expected."""
    return st.one_of(arrays(), arrays(), st.none(), st.floats(), st.integers(-max_int, max_int),
                     st.text(max_size=3), st.lists(st.floats(), max_size=4),
                     st.lists(st.lists(st.integers(-3, 3), min_size=2, max_size=2), max_size=3))


@st.composite
def labels_for(draw, n, c):
    """Labels for n rows of c classes: valid ones of any integer dtype, out of range ones, one-hot,
    or anything."""
    kind = draw(st.sampled_from(["valid", "valid", "range", "one_hot", "anything"]))
    dtype = draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int8, np.uint64, ">i8"]))
    if kind == "valid" and c >= 1:
        top = min(c - 1, int(np.iinfo(np.dtype(dtype)).max))
        t = np.array(draw(st.lists(st.integers(0, top), min_size=n, max_size=n)), dtype=dtype)
        return in_layout(t, draw(st.sampled_from(LAYOUTS)))
    if kind == "range":
        info = np.iinfo(np.dtype(dtype))
        values = st.integers(int(info.min), int(info.max))
        t = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=dtype)
        return in_layout(t, draw(st.sampled_from(LAYOUTS)))
    if kind == "one_hot" and c >= 1:
        width = draw(st.sampled_from([c, c, c + 1, max(c - 1, 0)]))
        hot = np.array(draw(st.lists(st.integers(0, max(width - 1, 0)), min_size=n, max_size=n)),
                       dtype=np.int64)
        t = np.eye(max(width, 1), dtype=draw(st.sampled_from([np.float64, np.uint8, bool])))
        return t[hot] if width else np.zeros((n, 0))
    return draw(anything())


SCALARS = st.one_of(st.floats(), st.integers(-2**65, 2**65), st.sampled_from([1, 0.5, -2.0]),
                    st.none(), st.text(max_size=2), st.complex_numbers(max_magnitude=3),
                    arrays(max_dims=1))


# --------------------------------------------------------------------------- checks

def freeze(a):
    if isinstance(a, np.ndarray):
        if a.dtype.hasobject:
            return ("O", a.shape, repr(a.tolist()))
        return (a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())
    if isinstance(a, list):
        return repr(a)
    return ("other", id(a))


def attempt(fn, *args, outputs=()):
    """fn(*args), or None when it raised TypeError / ValueError with a message; the arguments
    unchanged, except those at the indices in outputs (and not even those when fn raised)."""
    before = [freeze(a) for a in args]
    try:
        result = fn(*args)
    except ALLOWED as error:
        assert str(error), f"{type(error).__name__} without a message"
        result, outputs = None, ()
    after = [freeze(a) for a in args]
    changed = [i for i in range(len(args)) if after[i] != before[i] and i not in outputs]
    assert not changed, f"arguments {changed} were changed"
    return result


def probabilities(y, shape):
    assert y.shape == shape and y.dtype in (np.float32, np.float64)
    finite = np.isfinite(y).all(axis=1)
    assert np.all((y[finite] >= 0) & (y[finite] <= 1))
    np.testing.assert_allclose(y[finite].sum(axis=1), 1, rtol=1e-4)


# --------------------------------------------------------------------------- the public face

@FUZZ
@given(x=anything(), dout=st.one_of(anything(), st.just("same")))
def test_fuzz_sigmoid(x, dout):
    for fn in (fastnn.sigmoid, fastnn.sigmoid_grad):
        y = attempt(fn, x)
        if y is not None:
            assert y.shape == np.shape(x) and y.dtype in (np.float32, np.float64)
            assert np.all(np.isnan(y) | ((y >= 0) & (y <= 1)))
    layer = fastnn.Sigmoid()
    if attempt(layer.forward, x) is not None:
        attempt(layer.backward, np.ones_like(layer.out) if isinstance(dout, str) and dout == "same"
                else dout)


@FUZZ
@given(data=st.data(), x=arrays(FLOAT_DTYPES, max_dims=3), dout=SCALARS)
def test_fuzz_softmax_cross_entropy(data, x, dout):
    n = x.shape[0] if x.ndim == 2 else 1
    c = x.shape[-1] if x.ndim else 0
    t = data.draw(labels_for(n, c))
    result = attempt(fastnn.softmax_cross_entropy, x, t)
    if result is not None:
        loss, y = result
        assert isinstance(loss, float)
        probabilities(y, (n, c))
    layer = fastnn.SoftmaxWithLoss()
    if attempt(layer.forward, x, t) is not None:
        dx = attempt(layer.backward, dout)
        if dx is not None:
            assert dx.shape == (n, c)
        layer.t = data.draw(labels_for(n, c))  # backward checks its own labels
        attempt(layer.backward, 1.0)


@FUZZ
@given(dout=anything(), affine_dout=arrays(FLOAT_DTYPES, max_dims=3))
def test_fuzz_bias_grad(dout, affine_dout):
    db = attempt(fastnn.bias_grad, dout)
    if db is not None:
        assert db.shape == np.shape(dout)[-1:]
    rows = max(affine_dout.shape[0], 1) if affine_dout.ndim else 1
    layer = fastnn.Affine(np.ones((3, affine_dout.shape[-1] if affine_dout.ndim else 1)),
                          np.zeros(affine_dout.shape[-1] if affine_dout.ndim else 1))
    layer.forward(np.ones((rows, 3)))
    attempt(layer.backward, affine_dout)


RESULTS = {
    "float": lambda x: float(np.sum(np.asarray(x, dtype=np.float64) ** 2)),
    "nan": lambda x: float("nan"),
    "numpy float32": lambda x: np.float32(1.5),
    "array": lambda x: np.ones(2),
    "none": lambda x: None,
    "complex": lambda x: 1j,
}


@FUZZ
@given(x=anything(), h=SCALARS, result=st.sampled_from(sorted(RESULTS)),
       fail_at=st.integers(0, 12))
def test_fuzz_numerical_gradient(x, h, result, fail_at):
    calls = []

    def f(arg):
        calls.append(1)
        if len(calls) == fail_at:
            raise ValueError("f fails on purpose")
        return RESULTS[result](arg)
    grad = attempt(fastnn.numerical_gradient, f, x, h)  # attempt checks x is restored
    if grad is not None:
        assert grad.shape == x.shape and grad.dtype == x.dtype


# small integers only, in lr and in g: lr * g is list or string repetition when one of them is a
# list or a string, and a factor of 2**40 would ask for terabytes, in both halves alike
LEARNING_RATES = st.one_of(st.floats(), st.integers(-10, 10), st.none(), st.text(max_size=2),
                           st.complex_numbers(max_magnitude=3), arrays(max_dims=1))


@FUZZ
@given(p=arrays(FLOAT_DTYPES, max_dims=3), g=anything(max_int=10), lr=LEARNING_RATES)
def test_fuzz_sgd(p, g, lr):
    # SGD falls back to NumPy's p -= lr * g for what the kernel cannot take, so the oracle is the
    # reference: the same exception type, or the same bits
    before = freeze(g)
    expected, ref_error = p.copy(), None
    expected.flags.writeable = p.flags.writeable
    try:
        fastnn.reference.SGD(lr=lr).update([expected], [g])
    except Exception as error:  # noqa: BLE001 -- whatever NumPy raises
        ref_error = next(kind for kind in (TypeError, ValueError, ArithmeticError, Exception)
                         if isinstance(error, kind))
    try:
        fastnn.SGD(lr=lr).update([p], [g])
    except Exception as error:  # noqa: BLE001
        assert ref_error is not None and isinstance(error, ref_error), (error, ref_error)
    else:
        assert ref_error is None
        if freeze(p) != freeze(expected):  # not an assert of ==: pytest would diff the bytes
            raise AssertionError("SGD's update differs from the reference's")
    if freeze(g) != before:
        raise AssertionError("the gradient was changed")


@FUZZ
@given(p=arrays(FLOAT_DTYPES, max_dims=3), g=st.one_of(anything(max_int=10), st.just("like")),
       lr=LEARNING_RATES, beta1=st.one_of(st.floats(0, 1), SCALARS),
       beta2=st.one_of(st.floats(0, 1), SCALARS))
def test_fuzz_adam(p, g, lr, beta1, beta2):
    # Adam, as SGD, takes the reference's NumPy lines for what its kernel cannot take: the same
    # exception type as the reference's, or the same bits of p, m and v after two updates. "like":
    # a gradient of p's dtype and shape (p's values reversed, in memory of its own: a reversed
    # one-element array is already contiguous, and ascontiguousarray would hand back p itself)
    if isinstance(g, str) and g == "like":
        g = np.flip(p).copy()
    before = freeze(g)
    expected, ref_error = p.copy(), None
    expected.flags.writeable = p.flags.writeable
    ref = fastnn.reference.Adam(lr=lr, beta1=beta1, beta2=beta2)
    try:
        for _ in range(2):
            ref.update([expected], [g])
    except Exception as error:  # noqa: BLE001 -- whatever NumPy raises
        ref_error = next(kind for kind in (TypeError, ValueError, ArithmeticError, Exception)
                         if isinstance(error, kind))
    fast = fastnn.Adam(lr=lr, beta1=beta1, beta2=beta2)
    try:
        for _ in range(2):
            fast.update([p], [g])
    except Exception as error:  # noqa: BLE001
        assert ref_error is not None and isinstance(error, ref_error), (error, ref_error)
    else:
        assert ref_error is None
        for mine, theirs in ((p, expected), (fast.m[0], ref.m[0]), (fast.v[0], ref.v[0])):
            if freeze(mine) != freeze(theirs):
                raise AssertionError("Adam's update differs from the reference's")
    if freeze(g) != before:
        raise AssertionError("the gradient was changed")


@st.composite
def models(draw):
    inputs, hidden, outputs = (draw(st.integers(1, 6)) for _ in range(3))
    kind = draw(st.sampled_from(["TwoLayerNet", "TwoLayerNetwork"]))
    model = getattr(fastnn, kind)(inputs, hidden, outputs, weight_init_std=draw(
        st.sampled_from([0.01, 1.0, 1e3])), activation=draw(st.sampled_from(["sigmoid", "relu"])),
        dtype=draw(st.sampled_from([np.float64, np.float32])), seed=draw(st.integers(0, 9)))
    return model, inputs, outputs


@FUZZ
@given(data=st.data(), spec=models())
def test_fuzz_models(data, spec):
    model, inputs, outputs = spec
    n = data.draw(st.integers(0, 5))
    x = data.draw(st.one_of(arrays(FLOAT_DTYPES, shape=(n, inputs)), anything()))
    t = data.draw(labels_for(n, outputs))
    if isinstance(model, fastnn.TwoLayerNet):
        if attempt(model.forward, x, t) is not None:
            model.backward()
        attempt(model.predict, x)
    else:
        attempt(model.loss, x, t)
        attempt(model.gradient, x, t)
        grads = attempt(model.numerical_gradient, x, t)
        if grads is not None:
            assert {k: v.shape for k, v in grads.items()} == {
                k: v.shape for k, v in model.params.items()}
    attempt(model.accuracy, x, t)


# --------------------------------------------------------------------------- _core directly

CORE_ARRAYS = arrays([np.float64, np.float32, np.int64, np.int32, ">f8"], max_dims=3)


@FUZZ
@given(data=st.data(), entry=st.sampled_from([
    "sigmoid_forward", "sigmoid_backward", "softmax_ce_forward", "softmax_ce_backward", "bias_grad",
    "sgd_update", "bias_act_forward", "act_backward_bias", "numerical_gradient",
    "twolayer_numerical_gradient", "sparse"]))
def test_fuzz_core_entries(data, entry):
    a = data.draw(CORE_ARRAYS)

    def more(k):  # arrays related to a (same size, dtype or shape) or not at all
        out = []
        for _ in range(k):
            out.append(data.draw(st.one_of(
                CORE_ARRAYS,
                st.builds(lambda d: np.zeros(a.shape, d),
                          st.sampled_from([np.float64, np.float32])),
                st.builds(lambda d: np.zeros(a.shape[-1:] if a.ndim else (), d),
                          st.sampled_from([np.float64, np.float32, np.int64])),
                st.builds(lambda: np.zeros_like(a)))))
        return out
    flag = data.draw(st.booleans())
    scalar = data.draw(st.floats())
    if entry == "sigmoid_forward":
        attempt(_core.sigmoid_forward, a, *more(1), outputs=(1,))
    elif entry == "sigmoid_backward":
        attempt(_core.sigmoid_backward, a, *more(2), outputs=(2,))
    elif entry == "softmax_ce_forward":
        t = data.draw(labels_for(a.shape[0] if a.ndim else 1, a.shape[-1] if a.ndim else 0))
        bias = data.draw(st.one_of(st.none(), *[st.just(b) for b in more(1)]))
        attempt(_core.softmax_ce_forward, a, t, bias)
    elif entry == "softmax_ce_backward":
        t = data.draw(labels_for(a.shape[0] if a.ndim else 1, a.shape[-1] if a.ndim else 0))
        attempt(_core.softmax_ce_backward, a, t, scalar)
    elif entry == "bias_grad":
        attempt(_core.bias_grad, a, *more(1), outputs=(1,))
    elif entry == "sgd_update":
        attempt(_core.sgd_update, a, *more(1), scalar, outputs=(0,))
    elif entry == "bias_act_forward":
        attempt(_core.bias_act_forward, a, *more(1), flag, outputs=(0,))
    elif entry == "act_backward_bias":
        z, db = more(2)
        attempt(_core.act_backward_bias, a, z, flag, db, outputs=(0, 3))
    elif entry == "numerical_gradient":
        attempt(_core.numerical_gradient, lambda _: 1.0, a, 1e-4, *more(1), outputs=(3,))
    elif entry == "sparse":
        sparse = _core.SparseX()
        attempt(_core.sparse_matmul, sparse, a, *more(1), outputs=(2,))  # not filled yet
        if attempt(sparse.fill, a) is not None:
            attempt(_core.sparse_matmul, sparse, *more(2), outputs=(2,))
            attempt(_core.sparse_t_matmul, sparse, *more(2), outputs=(2,))
    else:
        args = [a, data.draw(labels_for(a.shape[0] if a.ndim else 1, 3))] + more(7)
        attempt(_core.twolayer_numerical_gradient, *args, flag, data.draw(st.booleans()), 1e-4)


# --------------------------------------------------------------------------- convolutions
# Volume 1, chapters 7-8: im2col / col2im, Convolution, Pooling, SimpleConvNet; their _core
# entries with any arrays, sizes, strides, pads and layout flags.

SIZES = st.one_of(st.integers(-2, 7), st.sampled_from([0, 1, 2, 3]))
CORE_SIZES = st.one_of(st.integers(-2, 7), st.integers(-2**62, 2**62))
IMAGES = arrays([np.float64, np.float32, np.float16, np.int32, ">f8", np.bool_, np.complex128],
                min_dims=3, max_dims=5)


@FUZZ
@given(x=st.one_of(IMAGES, anything()), fh=SIZES, fw=SIZES, stride=SIZES, pad=SIZES)
def test_fuzz_im2col_col2im(x, fh, fw, stride, pad):
    col = attempt(fastnn.im2col, x, fh, fw, stride, pad)
    if col is not None:
        assert col.ndim == 2 and col.shape[1] == np.shape(x)[1] * fh * fw
        img = attempt(fastnn.col2im, col, np.shape(x), fh, fw, stride, pad)
        assert img is not None and img.shape == np.shape(x)
    attempt(fastnn.col2im, x, (2, 1, 3, 3), fh, fw, stride, pad)


@FUZZ
@given(data=st.data(), x=st.one_of(IMAGES, anything()), stride=SIZES, pad=SIZES)
def test_fuzz_conv_layers(data, x, stride, pad):
    W = data.draw(st.one_of(arrays(FLOAT_DTYPES, min_dims=4, max_dims=4), anything()))
    b = data.draw(st.one_of(st.builds(lambda: np.zeros(np.shape(W)[:1])), anything()))
    layer = attempt(fastnn.Convolution, W, b, stride, pad)
    if layer is not None:
        out = attempt(layer.forward, x)
        if out is not None:
            dout = data.draw(st.one_of(st.builds(lambda: np.ones(out.shape)), anything()))
            dx = attempt(layer.backward, dout)
            assert dx is None or dx.shape == np.shape(x)
    pool = attempt(fastnn.Pooling, data.draw(SIZES), data.draw(SIZES), stride, pad)
    if pool is not None:
        out = attempt(pool.forward, x)
        if out is not None:
            dx = attempt(pool.backward, data.draw(st.one_of(
                st.builds(lambda: np.ones(out.shape)), anything())))
            assert dx is None or dx.shape == np.shape(x)


@FUZZ
@given(data=st.data(), n=st.integers(0, 4))
def test_fuzz_simple_convnet(data, n):
    net = fastnn.SimpleConvNet(input_dim=(1, 6, 6), conv_param={'filter_num': 2,
                               'filter_size': 3, 'pad': 1, 'stride': 1}, hidden_size=3,
                               output_size=3, seed=0)
    x = data.draw(st.one_of(arrays(FLOAT_DTYPES, shape=(n, 1, 6, 6)), IMAGES, anything()))
    t = data.draw(labels_for(n, 3))
    attempt(net.predict, x)
    attempt(net.loss, x, t)
    grads = attempt(net.gradient, x, t)
    if grads is not None:
        assert {k: v.shape for k, v in grads.items()} == {k: v.shape for k, v in net.params.items()}
    attempt(net.accuracy, x, t)


CONV_CORE_ARRAYS = arrays([np.float64, np.float32, np.int32, ">f8"], min_dims=1, max_dims=4)


# --------------------------------------------------------------------------- chapter 6
# The fast Relu, Dropout and BatchNormalization, the multilayer networks (sizes, init names,
# ratios and inputs of any kind) and their _core entries.

@FUZZ
@given(data=st.data(), x=anything(), ratio=st.one_of(SCALARS, st.floats(0, 1)),
       train=st.booleans())
def test_fuzz_chapter6_layers(data, x, ratio, train):
    dout = data.draw(st.one_of(anything(), st.builds(lambda: np.ones(np.shape(x)))))
    relu = fastnn.Relu()
    out = attempt(relu.forward, x)
    if out is not None:
        assert out.shape == np.shape(x) and relu.mask.shape == np.shape(x)
        attempt(relu.backward, dout)
    dropout = attempt(fastnn.Dropout, ratio)
    if dropout is not None:
        assert 0 <= dropout.dropout_ratio < 1
        if attempt(dropout.forward, x, train) is not None and train:
            attempt(dropout.backward, dout)
    d = int(np.prod(np.shape(x)[1:])) if np.ndim(x) >= 2 else 3
    gamma = data.draw(st.one_of(st.just(np.ones(d)), arrays(FLOAT_DTYPES, max_dims=2)))
    stats = data.draw(st.one_of(st.none(), st.just(np.zeros(d)), arrays(FLOAT_DTYPES, max_dims=1)))
    bn = attempt(fastnn.BatchNormalization, gamma, np.zeros(np.shape(gamma)), 0.9, stats, stats)
    if bn is not None and attempt(bn.forward, x, train) is not None:
        attempt(bn.backward, dout)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["MultiLayerNet", "MultiLayerNetExtend"]),
       hidden=st.lists(st.integers(-1, 5), max_size=3),
       init=st.sampled_from([0.01, 1.0, "relu", "He", "xavier", "sigmoid", "bad", None]),
       activation=st.sampled_from(["relu", "sigmoid", "tanh"]),
       ratio=st.sampled_from([0.0, 0.5, 1.0, -0.1, "0.5"]), flags=st.tuples(st.booleans(), st.booleans()))
def test_fuzz_multilayer(data, kind, hidden, init, activation, ratio, flags):
    inputs, outputs = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    extra = {} if kind == "MultiLayerNet" else dict(use_dropout=flags[0], dropout_ration=ratio,
                                                    use_batchnorm=flags[1])
    net = attempt(lambda *args: getattr(fastnn, kind)(*args, **extra), inputs, hidden, outputs,
                  activation, init, 0.1)
    if net is None:
        return
    assert all(h > 0 for h in hidden) and activation != "tanh"
    n = data.draw(st.integers(0, 4))
    x = data.draw(st.one_of(arrays(FLOAT_DTYPES, shape=(n, inputs)), anything()))
    t = data.draw(labels_for(n, outputs))
    params = {k: freeze(v) for k, v in net.params.items()}
    grads = attempt(net.gradient, x, t)
    if grads is not None:
        assert {k: v.shape for k, v in grads.items()} == {k: v.shape for k, v in net.params.items()}
    assert {k: freeze(v) for k, v in net.params.items()} == params
    attempt(net.loss, x, t)
    attempt(net.accuracy, x, t)
    scores = attempt(net.predict, x)
    if scores is not None:
        assert scores.shape == (np.shape(x)[0], outputs)


@FUZZ
@given(data=st.data(), entry=st.sampled_from([
    "im2col", "col2im", "swap_outer", "conv_bias_act", "conv_act_backward_bias",
    "maxpool_forward", "maxpool_backward"]))
def test_fuzz_conv_core_entries(data, entry):
    x = data.draw(CONV_CORE_ARRAYS)

    def other():  # an array of x's shape or size, or anything
        return data.draw(st.one_of(
            CONV_CORE_ARRAYS,
            st.builds(lambda d: np.zeros(x.shape, d), st.sampled_from([np.float64, np.float32])),
            st.builds(lambda d: np.zeros(x.shape[:1], d), st.sampled_from([np.float64, np.int32])),
            st.builds(lambda d, k: np.zeros(x.size * k, d),
                      st.sampled_from([np.float64, np.float32]), st.integers(0, 9))))
    sizes = [data.draw(CORE_SIZES) for _ in range(4)]
    flags = [data.draw(st.booleans()) for _ in range(2)]
    if entry == "im2col":
        attempt(_core.im2col, x, *sizes, other(), *flags, outputs=(5,))
    elif entry == "col2im":
        attempt(_core.col2im, other(), x, *sizes, *flags, outputs=(1,))
    elif entry == "swap_outer":
        attempt(_core.swap_outer, x, other(), data.draw(st.one_of(st.none(), st.just(other()))),
                outputs=(1,))
    elif entry == "conv_bias_act":
        attempt(_core.conv_bias_act, x, other(), flags[0], outputs=(0,))
    elif entry == "conv_act_backward_bias":
        attempt(_core.conv_act_backward_bias, x, data.draw(st.one_of(st.none(), st.just(other()))),
                other(), outputs=(0, 2))
    else:
        arg = data.draw(st.one_of(
            st.builds(lambda d: np.zeros(x.shape, d), st.sampled_from([np.int32, np.int64])),
            st.builds(lambda v: np.full(x.shape, v, np.int32), st.integers(-2**31, 2**31 - 1)),
            CONV_CORE_ARRAYS))
        if entry == "maxpool_forward":
            attempt(_core.maxpool_forward, x, *sizes, other(), arg, *flags, outputs=(5, 6))
        else:
            attempt(_core.maxpool_backward, other(), arg, x, *sizes, *flags, outputs=(2,))


@FUZZ
@given(data=st.data(), entry=st.sampled_from([
    "batchnorm_forward_train", "batchnorm_forward_test", "batchnorm_backward", "relu_forward",
    "relu_backward", "dropout_forward", "dropout_backward"]))
def test_fuzz_core_layer_entries(data, entry):
    a = data.draw(CORE_ARRAYS)
    masks = st.one_of(CORE_ARRAYS, st.builds(lambda: np.zeros(a.shape, bool)),
                      st.builds(lambda: np.zeros(a.size + 1, bool)))
    related = st.one_of(CORE_ARRAYS, st.builds(lambda: np.zeros_like(a)),
                        st.builds(lambda d: np.zeros(a.shape[-1:] if a.ndim else (), d),
                                  st.sampled_from([np.float64, np.float32])))

    def more(k):
        return [data.draw(related) for _ in range(k)]
    flag = data.draw(st.booleans())
    if entry == "batchnorm_forward_train":
        attempt(_core.batchnorm_forward_train, a, *more(2), 1e-6, flag, *more(4),
                outputs=(5, 6, 7, 8))
    elif entry == "batchnorm_forward_test":
        attempt(_core.batchnorm_forward_test, a, *more(4), 1e-6, flag, *more(1), outputs=(7,))
    elif entry == "batchnorm_backward":
        attempt(_core.batchnorm_backward, *more(1), data.draw(st.one_of(st.none(), related)), a,
                *more(6), outputs=(6, 7, 8))
    elif entry == "relu_forward":
        attempt(_core.relu_forward, a, *more(1), data.draw(masks), outputs=(1, 2))
    elif entry == "relu_backward":
        attempt(_core.relu_backward, a, data.draw(masks), *more(1), outputs=(2,))
    elif entry == "dropout_forward":
        attempt(_core.dropout_forward, a, *more(1), 0.5, *more(1), data.draw(masks),
                outputs=(3, 4))
    else:
        attempt(_core.dropout_backward, a, data.draw(masks), *more(1), outputs=(2,))


# --------------------------------------------------------------------------- _core's checks, one
# argument wrong at a time (the table of tests/test_core_boundary.py): a valid call of any size and
# dtype, values with NaN and inf, and at most one array argument corrupted in one of the ways that
# entry must refuse. Refused: TypeError / ValueError and nothing written; accepted: inputs unchanged.

from test_core_boundary import ENTRIES, applicable, call_refused, corrupt  # noqa: E402


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(ENTRIES)),
       dtype=st.sampled_from([np.float64, np.float32]), n=st.integers(1, 40),
       c=st.sampled_from([1, 2, 3, 7, 8, 9, 16, 17, 33, 64, 65, 130]), seed=st.integers(0, 2**32 - 1),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf, 0.0, 1e300]))
def test_fuzz_core_one_bad_argument(data, name, dtype, n, c, seed, special):
    entry = ENTRIES[name]
    rng = np.random.default_rng(seed)
    args = entry.make(dtype, n, c, rng)
    if special is not None:
        with np.errstate(all="ignore"):
            for position, arg in entry.args.items():
                a = args[position]
                # NaN and inf only where the entry takes floats (not labels, not index arrays
                # such as maxpool_backward's window positions)
                if a.dtype.kind == "f" and not arg.written and a.size:
                    a.reshape(-1)[rng.integers(0, a.size)] = special
    choices = [(position, corruption) for position, arg in entry.args.items()
               for corruption in applicable(arg, args[position])]
    choice = data.draw(st.one_of(st.none(), st.sampled_from(choices)))
    if choice is None:
        inputs = {i: args[i].tobytes() for i, arg in entry.args.items() if not arg.written}
        entry.call(*args)
        assert {i: args[i].tobytes() for i in inputs} == inputs
        return
    position, corruption = choice
    if corruption == "one short" and args[position].shape[entry.args[position].axis] == 1:
        return  # an empty array along that axis may be a valid call (bias_grad of 0 rows)
    args[position] = corrupt(corruption, entry.args[position], args[position])
    call_refused(entry, args)
