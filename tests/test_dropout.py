"""csrc/masks.c's dropout through fastnn.Dropout, against fastnn.reference.

The same draws give the same mask: with np.random.seed(s) (the book's np.random.rand(*x.shape)
from the global state) or with an rng of the same seed; forward x * mask and backward dout * mask
bit-exact (NaN and signs kept, as NumPy's product with a bool mask); test time x * (1 - ratio);
ratios 0 and near 1; shapes, dtypes, layouts, read-only inputs, 1 or 2 threads; backward against a
numerical gradient with the mask fixed.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import reference
from helpers import FLOATS, LAYOUTS, PARALLEL_MIN, num_threads, with_layout

pytestmark = pytest.mark.filterwarnings("error")

RATIOS = st.sampled_from([0.0, 0.2, 0.5, 0.999, 1 - 2**-53]) | st.floats(0, 1, exclude_max=True)


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert_array_equal(a, b)
    assert np.array_equal(np.signbit(a), np.signbit(b))


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float64, np.float32]), ratio=RATIOS,
       layout=st.sampled_from(LAYOUTS), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31),
       global_state=st.booleans())
def test_dropout_against_reference(data, dtype, ratio, layout, threads, seed, global_state):
    x = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=4, max_side=8),
                             elements=st.floats(-100, 100, width=32) | st.sampled_from([np.nan, -0.0])))
    dout = data.draw(hnp.arrays(dtype, x.shape, elements=st.floats(-100, 100, width=32)))
    if global_state:
        fast, ref = fastnn.Dropout(ratio), reference.Dropout(ratio)
    else:
        fast, ref = fastnn.Dropout(ratio, rng=seed), reference.Dropout(ratio, rng=seed)
    with num_threads(threads):
        np.random.seed(seed % 2**32)
        out = fast.forward(with_layout(x, layout))
        after_fast = np.random.get_state()[1].copy()
        np.random.seed(seed % 2**32)
        expected = ref.forward(x)
        assert np.array_equal(np.random.get_state()[1], after_fast)  # the same draws, no others
        same(fast.mask, ref.mask)
        same(out, expected)
        same(fast.backward(with_layout(dout, layout)), ref.backward(dout))
        same(fast.forward(with_layout(x, layout), train_flg=False), ref.forward(x, train_flg=False))


@pytest.mark.parametrize("dtype", FLOATS)
def test_ratio_zero_keeps_all_and_near_one_drops_all(dtype):
    x = np.arange(1, 13, dtype=dtype).reshape(3, 4)
    same(fastnn.Dropout(0.0, rng=1).forward(x), x)
    dropped = fastnn.Dropout(1 - 2**-40, rng=1).forward(x)
    same(dropped, np.zeros_like(x))


@pytest.mark.parametrize("threads", [1, 2])
def test_dropout_in_chunks(threads):
    x = np.random.default_rng(0).standard_normal(2 * PARALLEL_MIN + 3)
    fast, ref = fastnn.Dropout(0.3, rng=5), reference.Dropout(0.3, rng=5)
    with num_threads(threads):
        same(fast.forward(x), ref.forward(x))
        same(fast.backward(x), ref.backward(x))


def test_dropout_backward_against_numerical_gradient():
    rng = np.random.default_rng(2)
    x, dout = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    layer = fastnn.Dropout(0.4, rng=3)
    layer.forward(x)
    mask = layer.mask.copy()
    numerical = reference.numerical_gradient(lambda _: float(np.sum(x * mask * dout)), x)
    assert_allclose(layer.backward(dout), numerical, rtol=1e-7, atol=1e-9)


def test_dropout_backward_before_forward():
    with pytest.raises(RuntimeError, match="before"):
        fastnn.Dropout().backward(np.ones(3))
