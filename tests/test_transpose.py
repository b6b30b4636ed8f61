"""_core.transpose: a tall (R, C) matrix to and from the columns [start, start + R) of a wide (C, L)
one (csrc/transpose.c), against NumPy's transposes: a copy, so bit for bit. Every vector path,
both dtypes, sizes around the register tiles (8 x 8 doubles, 16 x 16 floats), NaN and inf moved as
they are, read-only sources, and the checks on what it is handed."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn import _core
from helpers import FLOATS, VECTOR_PATHS, examples, vector_path


def _case(rng, dtype, r, c, extra, start):
    tall = rng.standard_normal((r, c)).astype(dtype)
    tall.flat[::7] = np.nan
    tall.flat[3::11] = -np.inf
    wide = rng.standard_normal((c, start + r + extra)).astype(dtype)
    return tall, wide


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=examples(40), deadline=None)
@given(r=st.integers(1, 40), c=st.integers(1, 40), extra=st.integers(0, 20),
       start=st.integers(0, 20), seed=st.integers(0, 2**16))
def test_both_directions_equal_numpy(path, dtype, r, c, extra, start, seed):
    rng = np.random.default_rng(seed)
    tall, wide = _case(rng, dtype, r, c, extra, start)
    expected = wide.copy()
    expected[:, start:start + r] = tall.T
    tall.flags.writeable = False
    with vector_path(path):
        _core.transpose(tall, wide, start, True)
    assert np.array_equal(wide, expected, equal_nan=True)
    wide.flags.writeable = False
    back = np.full((r, c), 7.0, dtype)
    with vector_path(path):
        _core.transpose(back, wide, start, False)
    assert np.array_equal(back, tall, equal_nan=True)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("r, c", [(1568, 16), (784, 32), (392, 64), (17, 33), (64, 8)])
def test_the_convolutions_shapes(dtype, r, c):
    rng = np.random.default_rng(r + c)
    tall, wide = _case(rng, dtype, r, c, 5, 3 * r)
    expected = wide.copy()
    expected[:, 3 * r:4 * r] = tall.T
    _core.transpose(tall, wide, 3 * r, True)
    assert np.array_equal(wide, expected, equal_nan=True)


def test_bad_operands_are_refused_and_nothing_written():
    tall, wide = np.ones((4, 3)), np.zeros((3, 10))
    cases = [
        (tall.astype(np.float32), wide, TypeError, "differ"),
        (tall, wide[:, ::2], ValueError, "C-contiguous"),
        (np.ones(12), wide, ValueError, "2-D"),
        (np.ones((4, 2)), wide, ValueError, "do not fit"),
        (tall, np.zeros((3, 3)), ValueError, "do not fit"),
        (tall.astype(np.int64), wide, TypeError, "float32 or float64"),
    ]
    for a, b, error, message in cases:
        before = b.copy()
        with pytest.raises(error, match=message):
            _core.transpose(a, b, 0, True)
        assert np.array_equal(b, before)
    for start in (-1, 7):
        with pytest.raises(ValueError, match=r"columns \[.*do not fit"):
            _core.transpose(tall, wide, start, True)
    with pytest.raises(ValueError, match="read-only"):
        frozen = wide.copy()
        frozen.flags.writeable = False
        _core.transpose(tall, frozen, 0, True)
    with pytest.raises(ValueError, match="read-only"):
        frozen = tall.copy()
        frozen.flags.writeable = False
        _core.transpose(frozen, wide, 0, False)
    store = np.zeros(40)
    with pytest.raises(ValueError, match="overlaps"):
        _core.transpose(store[:12].reshape(4, 3), store[6:36].reshape(3, 10), 0, True)
    assert not store.any()
