"""csrc/sgd.c through fastnn.optimizers.SGD, against fastnn.reference.optimizers.SGD.

The kernel computes p -= lr * g with lr * g rounded before the subtraction (the build turns FMA
contraction off), in p's precision: the same operations NumPy performs for the reference's
`params[key] -= self.lr * grads[key]`. So every comparison here is of the bits. Arrays the kernel
cannot take (other layouts, dtypes or shapes) go through the reference's NumPy expression.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_array_equal

import fastnn
from fastnn import reference
from helpers import FLOATS, PARALLEL_MIN, examples

pytestmark = pytest.mark.filterwarnings("error")


# --------------------------------------------------------------------------- helpers

def bits(a):
    """The raw bytes of an array in its index order: -0.0 and 0.0 differ."""
    return np.ascontiguousarray(a).tobytes()


def assert_same_bits(actual, desired):
    assert actual.dtype == desired.dtype and actual.shape == desired.shape
    if bits(actual) != bits(desired):
        a, d = np.ascontiguousarray(actual).reshape(-1), np.ascontiguousarray(desired).reshape(-1)
        unsigned = f"u{a.dtype.itemsize}"
        differ = np.flatnonzero(a.view(unsigned) != d.view(unsigned))
        raise AssertionError(f"{differ.size} elements differ, e.g. at {differ[:5]}: "
                             f"{a[differ[:5]]} != {d[differ[:5]]}")


def copy_like(a):
    """A copy of a in the same memory order (C or Fortran)."""
    return a.copy(order="K")


@st.composite
def param_and_grad(draw, dtype):
    """A parameter and its gradient of one dtype and shape: 0-d to 3-d, or 1000+ elements."""
    shape = draw(st.one_of(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5),
                           st.sampled_from([(1,), (1, 1), (1500,), (3, 1001), (16400,)])))
    if np.prod(shape) <= 64:
        width = 8 * np.dtype(dtype).itemsize
        elements = st.floats(-1e6, 1e6, width=width)
        return draw(hnp.arrays(dtype, shape, elements=elements)), \
            draw(hnp.arrays(dtype, shape, elements=elements))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = rng.standard_normal(shape) * 10.0 ** rng.uniform(-6, 6, shape)
    g = rng.standard_normal(shape) * 10.0 ** rng.uniform(-6, 6, shape)
    return p.astype(dtype), g.astype(dtype)


learning_rates = st.one_of(st.floats(1e-8, 10.0), st.floats(-1.0, -1e-8), st.integers(0, 3),
                           st.sampled_from([0.01, 0.1, 1e-3]))


def update_both(params, grads, lr):
    """Runs the fast and the reference SGD on copies of params; returns both updated copies, after
    checking that every array was updated in place and the grads left alone."""
    keys = list(params.keys()) if isinstance(params, dict) else list(range(len(params)))
    fast = {k: copy_like(params[k]) for k in keys}
    ref = {k: copy_like(params[k]) for k in keys}
    grads_before = {k: bits(grads[k]) for k in keys}
    fast_params = dict(fast) if isinstance(params, dict) else [fast[k] for k in keys]
    ref_params = dict(ref) if isinstance(params, dict) else [ref[k] for k in keys]
    fastnn.optimizers.SGD(lr=lr).update(fast_params, grads)
    reference.optimizers.SGD(lr=lr).update(ref_params, grads)
    for k in keys:
        assert fast_params[k] is fast[k]  # in place: the container holds the same arrays
        assert bits(grads[k]) == grads_before[k]
    return fast, ref


# --------------------------------------------------------------------------- the kernel path

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("container", ["list", "dict"])
@given(data=st.data(), lr=learning_rates)
@settings(max_examples=examples(100), deadline=None)
def test_matches_reference_bit_for_bit(dtype, container, data, lr):
    pairs = data.draw(st.lists(param_and_grad(dtype), min_size=1, max_size=3))
    if container == "list":
        params, grads = [p for p, _ in pairs], [g for _, g in pairs]
    else:
        params = {f"W{i}": p for i, (p, _) in enumerate(pairs)}
        grads = {f"W{i}": g for i, (_, g) in enumerate(pairs)}
    fast, ref = update_both(params, grads, lr)
    for k in fast:
        assert_same_bits(fast[k], ref[k])


@pytest.mark.parametrize("dtype", FLOATS)
def test_updates_the_callers_arrays_in_place(dtype):
    # the arrays a model holds (and views of them, as a model's concatenated params) see the step
    rng = np.random.default_rng(67)
    W, b = rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal(3).astype(dtype)
    gW, gb = rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal(3).astype(dtype)
    W_view, expected_W, expected_b = W[1:], W - dtype(0.5) * gW, b - dtype(0.5) * gb
    fastnn.optimizers.SGD(lr=0.5).update([W, b], [gW, gb])
    assert_same_bits(W, expected_W)
    assert_same_bits(b, expected_b)
    assert_same_bits(W_view, expected_W[1:])


@pytest.mark.parametrize("dtype", FLOATS)
def test_parameter_that_is_its_own_gradient(dtype):
    p = np.linspace(-3, 3, 7, dtype=dtype)
    fast, ref = p.copy(), p.copy()
    fastnn.optimizers.SGD(lr=0.25).update([fast], [fast])
    reference.optimizers.SGD(lr=0.25).update([ref], [ref])
    assert_same_bits(fast, ref)


@pytest.mark.parametrize("dtype, lr", [
    pytest.param(dtype, lr, id=f"{np.dtype(dtype).name}-{lr_id}")
    for dtype in (np.float64, np.float32)
    for lr_id, lr in [("float", 0.1), ("int", 1), ("np_float32", np.float32(0.1)),
                      ("np_float64", np.float64(0.1))]
])
def test_learning_rate_types(dtype, lr):
    rng = np.random.default_rng(71)
    p, g = rng.standard_normal(1000).astype(dtype), rng.standard_normal(1000).astype(dtype)
    fast, ref = update_both([p], [g], lr)
    assert_same_bits(fast[0], ref[0])


@pytest.mark.parametrize("dtype", FLOATS)
def test_thread_counts_agree(dtype, threads):
    rng = np.random.default_rng(73)
    n = 5 * (3 * PARALLEL_MIN // 5 + 1)  # not a whole number of the kernel's 16384-element chunks
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    fast, ref = update_both([p.reshape(-1, 5)], [g.reshape(-1, 5)], 0.01)
    assert_same_bits(fast[0], ref[0])


@pytest.mark.parametrize("dtype, lr, kernel", [
    (np.float64, 0.25, True), (np.float32, 0.25, True), (np.float64, np.float64(0.25), True),
    (np.float32, np.float64(0.25), False), (np.float64, np.array(0.25), False)])
def test_the_kernel_runs_where_it_gives_numpys_bits(dtype, lr, kernel, monkeypatch):
    calls = []
    real = fastnn.optimizers._core.sgd_update_ready
    monkeypatch.setattr(fastnn.optimizers._core, "sgd_update_ready",
                        lambda *args: calls.append(real(*args)) or calls[-1])
    p, g = np.ones(5, dtype), np.full(5, 2.0, dtype)
    fast, ref = update_both([p], [g], lr)
    assert_same_bits(fast[0], ref[0])
    assert any(calls) == kernel


# --------------------------------------------------------------------------- the fallback

def strided(a):
    """a view of a with gaps (NaN) between the elements along every axis."""
    base = np.full(tuple(2 * s for s in a.shape), np.nan, dtype=a.dtype)
    view = base[(slice(None, None, 2),) * a.ndim]
    view[...] = a
    return view


LAYOUTS = {
    "fortran": np.asfortranarray,
    "strided": strided,
    "reversed": lambda a: np.array(a[::-1, ::-1], order="C")[::-1, ::-1],
    "transposed": lambda a: np.array(a.T, order="C").T,
    "byteswapped": lambda a: a.astype(a.dtype.newbyteorder()),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p_layout, g_layout", [
    pytest.param(p_layout, g_layout, id=f"p_{p_layout}-g_{g_layout}")
    for p_layout in list(LAYOUTS) + ["c"] for g_layout in list(LAYOUTS) + ["c"]
    if (p_layout, g_layout) != ("c", "c")  # the kernel path, tested above
])
def test_any_layout_matches_reference(dtype, p_layout, g_layout):
    rng = np.random.default_rng(79)
    p0 = rng.standard_normal((5, 6)).astype(dtype)
    g0 = rng.standard_normal((5, 6)).astype(dtype)
    make_p = LAYOUTS.get(p_layout, np.ascontiguousarray)
    make_g = LAYOUTS.get(g_layout, np.ascontiguousarray)
    fast_p, ref_p, g = make_p(p0), make_p(p0), make_g(g0)
    fast_base = fast_p.base if fast_p.base is not None else fast_p
    ref_base = ref_p.base if ref_p.base is not None else ref_p
    g_before = bits(g)
    fastnn.optimizers.SGD(lr=0.3).update([fast_p], [g])
    reference.optimizers.SGD(lr=0.3).update([ref_p], [g])
    assert_same_bits(np.asarray(fast_p, dtype=dtype), np.asarray(ref_p, dtype=dtype))
    assert fast_p.dtype == ref_p.dtype
    assert bits(fast_base) == bits(ref_base)  # nothing outside the view was touched either
    assert bits(g) == g_before


@pytest.mark.parametrize("case", ["float32_p_float64_g", "float64_p_float32_g", "broadcast_g",
                                  "int_g", "unaligned_p"])
def test_mixed_operands_match_reference(case):
    rng = np.random.default_rng(83)
    p = rng.standard_normal((4, 3))
    g = rng.standard_normal((4, 3))
    if case == "float32_p_float64_g":
        p = p.astype(np.float32)
    elif case == "float64_p_float32_g":
        g = g.astype(np.float32)
    elif case == "broadcast_g":
        g = g[0]
    elif case == "int_g":
        g = rng.integers(-3, 3, (4, 3))
    elif case == "unaligned_p":
        raw = np.zeros(p.nbytes + 1, dtype=np.uint8)
        unaligned = np.frombuffer(raw.data, dtype=np.float64, count=p.size, offset=1).reshape(4, 3)
        unaligned[...] = p
        p = unaligned
        assert not p.flags.aligned
    fast_p, ref_p = p.copy(), p.copy()
    if case == "unaligned_p":
        fast_p = p
    fastnn.optimizers.SGD(lr=0.05).update([fast_p], [g])
    reference.optimizers.SGD(lr=0.05).update([ref_p], [g])
    assert_same_bits(np.ascontiguousarray(fast_p), np.ascontiguousarray(ref_p))


def test_read_only_parameter_raises_like_reference():
    p = np.ones(4)
    p.flags.writeable = False
    with pytest.raises(ValueError) as reference_error:
        reference.optimizers.SGD(lr=0.1).update([p], [np.ones(4)])
    with pytest.raises(type(reference_error.value)):
        fastnn.optimizers.SGD(lr=0.1).update([p], [np.ones(4)])
    assert_array_equal(p, np.ones(4))


@pytest.mark.parametrize("offset", [
    pytest.param(1, id="g_1_behind_p"),
    pytest.param(16, id="g_16_behind_p"),
    pytest.param(-1, id="g_1_ahead_of_p"),
])
def test_overlapping_parameter_and_gradient(offset):
    fast_buffer = np.arange(80.0)
    ref_buffer = fast_buffer.copy()
    k = abs(offset)

    def views(buffer):
        return (buffer[k:], buffer[:-k]) if offset > 0 else (buffer[:-k], buffer[k:])

    fast_p, fast_g = views(fast_buffer)
    ref_p, ref_g = views(ref_buffer)
    fastnn.optimizers.SGD(lr=0.5).update([fast_p], [fast_g])
    reference.optimizers.SGD(lr=0.5).update([ref_p], [ref_g])
    assert_same_bits(fast_buffer, ref_buffer)
