"""csrc/adam.c through fastnn.optimizers.Adam, against fastnn.reference.optimizers.Adam.

The kernel rounds every operation of the reference's three NumPy lines as NumPy does, in the
precision NumPy picks (float32's step in float64 under NumPy >= 2, whose float64 lr_t is not a weak
scalar; in float32 under NumPy 1.x), so every comparison here is of the bits: p, m, v after several
updates, and iter. Arrays the kernel cannot take (other layouts, dtypes, shapes, read-only or
overlapping) go through the reference's lines.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

import fastnn
from fastnn import reference
from helpers import FLOATS, PARALLEL_MIN, examples

pytestmark = pytest.mark.filterwarnings("error")


def bits(a):
    """The raw bytes of an array in its index order: -0.0 and 0.0 differ."""
    return np.ascontiguousarray(a).tobytes()


def assert_same_bits(actual, desired):
    assert actual.dtype == desired.dtype and actual.shape == desired.shape
    if bits(actual) != bits(desired):
        assert_array_equal(actual, desired)  # names the differing elements
        raise AssertionError("equal values, different bits (signed zeros or NaN payloads)")


def keyed(arrays, container):
    return dict(zip([f"W{i}" for i in range(len(arrays))], arrays)) if container == "dict" \
        else list(arrays)


def run_both(params, grad_steps, container="list", **kwargs):
    """The fast and the reference Adam, each on its own copies of params (a list of arrays), through
    the same gradients (a list of lists, one per update); checks that the arrays were updated in
    place and the gradients left alone. Returns (fast optimizer, fast params, reference's)."""
    out = []
    for half in (fastnn.optimizers, reference.optimizers):
        arrays = [p.copy(order="K") for p in params]
        held = keyed(arrays, container)
        optimizer = half.Adam(**kwargs)
        for grads in grad_steps:
            before = [bits(g) for g in grads]
            optimizer.update(held, keyed(grads, container))
            assert [bits(g) for g in grads] == before
        assert all(a is b for a, b in zip(held.values() if container == "dict" else held, arrays))
        out.append((optimizer, arrays))
    return out


def assert_same_state(fast, ref):
    (fast_opt, fast_params), (ref_opt, ref_params) = fast, ref
    assert fast_opt.iter == ref_opt.iter
    for a, b in zip(fast_params, ref_params):
        assert_same_bits(a, b)
    assert fast_opt.m.keys() == ref_opt.m.keys() and fast_opt.v.keys() == ref_opt.v.keys()
    for key in ref_opt.m:
        assert_same_bits(fast_opt.m[key], ref_opt.m[key])
        assert_same_bits(fast_opt.v[key], ref_opt.v[key])


def random_arrays(rng, shapes, dtype):
    """Values over many magnitudes, so the roundings of every operation matter."""
    return [(rng.standard_normal(s) * 10.0 ** rng.uniform(-6, 4, s)).astype(dtype) for s in shapes]


# --------------------------------------------------------------------------- the kernel path

shapes = st.lists(st.one_of(st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple),
                            st.sampled_from([(1,), (1500,), (30, 1, 5, 5), (3, 1001)])),
                  min_size=1, max_size=4)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("container", ["list", "dict"])
@given(shapes=shapes, seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 4),
       lr=st.one_of(st.floats(1e-6, 1.0), st.sampled_from([1e-3, 0.01, 1])),
       beta1=st.sampled_from([0.9, 0.5, 0.0]), beta2=st.sampled_from([0.999, 0.9, 0.25]))
@settings(max_examples=examples(40), deadline=None)
def test_matches_reference_bit_for_bit(dtype, container, shapes, seed, steps, lr, beta1, beta2):
    rng = np.random.default_rng(seed)
    params = random_arrays(rng, shapes, dtype)
    grad_steps = [random_arrays(rng, shapes, dtype) for _ in range(steps)]
    fast, ref = run_both(params, grad_steps, container, lr=lr, beta1=beta1, beta2=beta2)
    assert_same_state(fast, ref)


def test_the_kernel_is_used():
    # a failing kernel path would go unnoticed behind a fallback that matches by construction
    p, g, m, v = (np.ones(5) for _ in range(4))
    fastnn._core.adam_update(p, g, m, v, 0.5, 0.1, 0.01, False)
    assert_array_equal(m, np.ones(5))
    assert_array_equal(p, np.full(5, 1 - 0.5 / (1 + 1e-7)))
    assert fastnn.optimizers._adam_kernel_ready(p, g, m, v, np.float64(0.5), 0.1, 0.001)


@pytest.mark.parametrize("dtype", FLOATS)
def test_thread_counts_agree(dtype, threads):
    rng = np.random.default_rng(89)
    n = 5 * (3 * PARALLEL_MIN // 5 + 1)  # not a whole number of the kernel's 16384-element chunks
    shapes = [(n // 5, 5), (7,)]
    fast, ref = run_both(random_arrays(rng, shapes, dtype),
                         [random_arrays(rng, shapes, dtype) for _ in range(2)])
    assert_same_state(fast, ref)


# --------------------------------------------------------------------------- the fallback

def strided(a):
    """a view of a with gaps (NaN) between the elements along every axis."""
    base = np.full(tuple(2 * s for s in a.shape), np.nan, dtype=a.dtype)
    view = base[(slice(None, None, 2),) * a.ndim]
    view[...] = a
    return view


def unaligned(a):
    raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
    view = np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    view[...] = a
    return view


# case -> (make p, make g) from a float64 (4, 3) pair
CASES = {
    "fortran_p": (np.asfortranarray, None),
    "strided_g": (None, strided),
    "transposed_g": (None, lambda a: np.array(a.T, order="C").T),
    "byteswapped_p": (lambda a: a.astype(a.dtype.newbyteorder()), None),
    "float32_p_float64_g": (lambda a: a.astype(np.float32), None),
    "float64_p_float32_g": (None, lambda a: a.astype(np.float32)),
    "broadcast_g": (None, lambda a: a[0]),
    "int_g": (None, lambda a: np.rint(a).astype(np.int64)),
    "unaligned_g": (None, unaligned),
    "zero_d": (lambda a: np.array(a[0, 0]), lambda a: np.array(a[0, 0])),
    "zero_d_float32": (lambda a: np.array(a[0, 0], np.float32),
                       lambda a: np.array(a[0, 0], np.float32)),
}


@pytest.mark.parametrize("case", CASES)
def test_other_operands_match_reference(case):
    rng = np.random.default_rng(97)
    make_p, make_g = CASES[case]
    p0, g0 = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    p, g = (make_p or np.copy)(p0), (make_g or np.copy)(g0)
    # a second, kernel-ready parameter beside it
    fast, ref = run_both([p, rng.standard_normal(6)], [[g, rng.standard_normal(6)]] * 3, lr=0.1)
    assert fast[1][0].dtype == ref[1][0].dtype
    assert_same_state(fast, ref)


@pytest.mark.parametrize("lr, beta1, beta2", [
    pytest.param(np.float32(0.01), 0.9, 0.999, id="np_float32_lr"),
    pytest.param(0.01, np.float64(0.9), 0.999, id="np_float64_beta1"),
    pytest.param(0.01, 0.9, np.float32(0.999), id="np_float32_beta2"),
    pytest.param(np.array([0.01]), 0.9, 0.999, id="array_lr"),
    pytest.param(2, 0, 0, id="ints"),
])
@pytest.mark.parametrize("dtype", FLOATS)
def test_hyperparameter_types(dtype, lr, beta1, beta2):
    rng = np.random.default_rng(101)
    shapes = [(5, 4), (4,)]
    fast, ref = run_both(random_arrays(rng, shapes, dtype),
                         [random_arrays(rng, shapes, dtype) for _ in range(3)],
                         lr=lr, beta1=beta1, beta2=beta2)
    assert_same_state(fast, ref)


@pytest.mark.parametrize("dtype", FLOATS)
def test_shared_state_arrays_and_self_gradient(dtype):
    # a parameter that is its own gradient, and one listed twice: the kernel must not see aliases
    rng = np.random.default_rng(103)
    a, b = random_arrays(rng, [(6,), (3, 2)], dtype)
    results = []
    for half in (fastnn.optimizers, reference.optimizers):
        x, y = a.copy(), b.copy()
        optimizer = half.Adam(lr=0.1)
        for _ in range(3):
            optimizer.update([x, y, y], [x, y * 0.5, y])
        results.append((optimizer, [x, y]))
    assert_same_state(*results)


def test_read_only_parameter_raises_like_reference():
    p = np.ones(4)
    p.flags.writeable = False
    with pytest.raises(ValueError) as reference_error:
        reference.optimizers.Adam().update([p], [np.ones(4)])
    with pytest.raises(type(reference_error.value)):
        fastnn.optimizers.Adam().update([p], [np.ones(4)])
    assert_array_equal(p, np.ones(4))


def test_read_only_gradient_is_only_read():
    rng = np.random.default_rng(107)
    g = rng.standard_normal(8)
    g.flags.writeable = False
    fast, ref = run_both([rng.standard_normal(8)], [[g], [g]])
    assert_same_state(fast, ref)
