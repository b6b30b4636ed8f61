"""_core.gemm_narrow: c = a b and c = a^T b for a narrow b, against NumPy's matmul.

The kernel sums each element over k in order, one multiply-add at a time; BLAS sums in another
order, so float results agree to a tolerance scaled by |a| |b| and K. Every vector path, both
dtypes, sizes around every register block and panel edge (1 to past the callers' width limit),
one and two threads (the same bits), read-only inputs, inf and NaN as BLAS gives them.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn import _core, layers
from helpers import FLOATS, VECTOR_PATHS, examples, num_threads, vector_path


def _operands(rng, dtype, m, k, n, trans):
    a = rng.standard_normal((k, m) if trans else (m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    for x in (a, b):
        x.flags.writeable = False
    return a, b


def _narrow(a, b, trans):
    m = a.shape[1] if trans else a.shape[0]
    c = np.full((m, b.shape[1]), np.nan, a.dtype)  # every element must be written
    _core.gemm_narrow(a, b, c, trans)
    return c


def _check_close(c, a, b, trans):
    a64 = a.astype(np.float64).T if trans else a.astype(np.float64)
    b64 = b.astype(np.float64)
    expected = a64 @ b64
    bound = np.abs(a64) @ np.abs(b64)
    eps = np.finfo(c.dtype).eps
    tol = eps * (a64.shape[1] + 2) * bound + np.finfo(c.dtype).tiny
    assert c.shape == expected.shape
    assert np.all(np.abs(c - expected) <= tol)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=examples(60), deadline=None)
@given(m=st.integers(1, 150), k=st.integers(0, 40), n=st.integers(1, 2 * layers.GEMM_NARROW_COLS),
       trans=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_matches_matmul(path, dtype, m, k, n, trans, seed):
    a, b = _operands(np.random.default_rng(seed), dtype, m, k, n, trans)
    with vector_path(path):
        c = _narrow(a, b, trans)
    _check_close(c, a, b, trans)


@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=examples(40), deadline=None)
@given(m=st.integers(1, 200), k=st.integers(0, 30), n=st.integers(1, 40), trans=st.booleans(),
       seed=st.integers(0, 2 ** 32 - 1))
def test_avx512_and_avx2_give_the_same_bits(dtype, m, k, n, trans, seed):
    # both sum each element over k in order with one multiply-add a step: the AVX-512 code's
    # column tails (a register of rows per column for a^T b) too
    a, b = _operands(np.random.default_rng(seed), dtype, m, k, n, trans)
    with vector_path("avx512"):
        wide = _narrow(a, b, trans)
    with vector_path("avx2"):
        narrow = _narrow(a, b, trans)
    np.testing.assert_array_equal(wide, narrow)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("trans", [False, True], ids=["ab", "aTb"])
@pytest.mark.parametrize("shape", [(100, 784, 50), (257, 300, 33), (61, 500, 131), (784, 100, 50)])
def test_large_products_and_thread_counts(path, dtype, trans, shape, threads, rng):
    """Sizes past the kernel's threshold for threads: each thread count gives the one-thread
    bits."""
    a, b = _operands(rng, dtype, *shape, trans)
    with vector_path(path):
        with num_threads(1):
            one = _narrow(a, b, trans)
        with num_threads(threads):
            c = _narrow(a, b, trans)
    _check_close(c, a, b, trans)
    np.testing.assert_array_equal(c, one)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("trans", [False, True], ids=["ab", "aTb"])
def test_inf_and_nan_as_blas(path, dtype, trans, rng):
    """No term is skipped: 0 * inf is NaN, inf + finite is inf, NaN spreads along its row and
    column as in NumPy's matmul."""
    m, k, n = 13, 11, 37
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    a[2, 3], a[5, 0], a[7, 4] = np.inf, -np.inf, np.nan
    b[3, 5:20] = 0  # 0 * inf
    b[6, 30] = np.inf
    a[9, 6] = 0
    with np.errstate(invalid="ignore"):
        expected = np.matmul(a, b)
    operand = np.ascontiguousarray(a.T) if trans else a
    with vector_path(path):
        c = _narrow(operand, b, trans)
    np.testing.assert_array_equal(np.isnan(c), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(c), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(c), np.isneginf(expected))


@pytest.mark.parametrize("dtype", FLOATS)
def test_empty_k_gives_zeros(dtype):
    c = np.full((3, 4), np.nan, dtype)
    _core.gemm_narrow(np.empty((3, 0), dtype), np.empty((0, 4), dtype), c)
    np.testing.assert_array_equal(c, 0)


def test_refuses_overlapping_output():
    a = np.ones((4, 4))
    with pytest.raises(ValueError, match="overlaps"):
        _core.gemm_narrow(a, np.ones((4, 4)), a)
    b = np.ones((4, 4))
    with pytest.raises(ValueError, match="overlaps"):
        _core.gemm_narrow(np.ones((4, 4)), b, b)


def test_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        _core.gemm_narrow(np.ones((3, 4)), np.ones((5, 2)), np.empty((3, 2)))
    with pytest.raises(ValueError, match="do not match"):
        _core.gemm_narrow(np.ones((3, 4)), np.ones((3, 2)), np.empty((3, 2)), True)


@pytest.mark.parametrize("dtype", FLOATS)
def test_first_layer_products_take_it(dtype, rng):
    """Affine's scratch products of a 784-50 first layer (the sizes it is for) run the kernel
    and give NumPy's products to tolerance; a product below its size stays NumPy's."""
    x = rng.standard_normal((100, 784)).astype(dtype)
    W = rng.standard_normal((784, 50)).astype(dtype)
    da = rng.standard_normal((100, 50)).astype(dtype)
    assert layers._narrow(x, W) and layers._narrow(x, da)
    assert not layers._narrow(np.ones((100, 50), dtype), np.ones((50, 10), dtype))
    assert not layers._narrow(x, np.ones((784, layers.GEMM_NARROW_COLS + 1), dtype))
    affine = layers.Affine(W, np.zeros(50, dtype))
    a = affine._matmul_into(x)
    _check_close(a, x, W, False)
    dW, _ = affine._grads_from(x, da, np.zeros(50, dtype))
    _check_close(dW, x, da, True)
    affine._grads_into(x, da, np.zeros(50, dtype))
    np.testing.assert_array_equal(affine.grads[0], dW)


def test_which_products_go_to_gemm_narrow():
    """layers._narrow: from GEMM_NARROW_WORK multiply-adds on, at most GEMM_NARROW_COLS columns and
    GEMM_NARROW_BYTES of the right-hand side (else BLAS); any_size: the columns alone."""
    x, W = np.ones((100, 784)), np.ones((784, 50))
    assert layers._narrow(x, W)
    small_x, small_W = np.ones((100, 4)), np.ones((4, 50))  # 20000 multiply-adds: BLAS
    assert not layers._narrow(small_x, small_W)
    assert layers._narrow(small_x, small_W, any_size=True)
    assert not layers._narrow(x[:, :4], W[:4], any_size=True)  # not contiguous
    big = np.ones((layers.GEMM_NARROW_BYTES // 8 // 100 + 1, 100))  # just past the bytes
    assert not layers._narrow(np.ones((100, big.shape[0])), big)
    assert layers._narrow(np.ones((100, big.shape[0])), big, any_size=True)
    assert not layers._narrow(np.ones((100, 10)), np.ones((10, layers.GEMM_NARROW_COLS + 1)),
                              any_size=True)
    assert not layers._narrow(x, W.astype(np.float32))
