"""fastnn.util's im2col / col2im (kernels im2col, im2col_t, col2im, col2im_t in csrc/conv.c)
against fastnn.reference.util: shapes, dtypes, layouts, thread counts, the adjoint identity, and
the transposed (C*FH*FW, N*OH*OW) layout and (C, N, H, W) planes the layers use internally."""

import numpy as np
import pytest
from helpers import FLOATS, LAYOUTS, PARALLEL_MIN, VECTOR_PATHS, conv_case, vector_path, with_layout
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import _core, reference

TOL = {np.float64: 1e-12, np.float32: 1e-5}


def test_fast_functions_are_not_the_reference():
    assert fastnn.util.im2col is not reference.util.im2col
    assert fastnn.util.col2im is not reference.util.col2im
    assert fastnn.im2col is fastnn.util.im2col and fastnn.col2im is fastnn.util.col2im


@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_im2col(dtype, data):
    shape, (fh, fw), stride, pad, _ = conv_case(data.draw)
    x = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).standard_normal(shape)
    x = x.astype(dtype)
    layout = data.draw(st.sampled_from(LAYOUTS))
    expected = reference.im2col(x, fh, fw, stride, pad)
    col = fastnn.im2col(with_layout(x, layout), fh, fw, stride, pad)
    assert col.dtype == expected.dtype == dtype
    assert_array_equal(col, expected)  # a copy: bit for bit


@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_col2im(dtype, data):
    shape, (fh, fw), stride, pad, _ = conv_case(data.draw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    col = reference.im2col(x, fh, fw, stride, pad)
    c = rng.standard_normal(col.shape).astype(dtype)
    layout = data.draw(st.sampled_from(LAYOUTS))
    expected = reference.col2im(c, shape, fh, fw, stride, pad)
    img = fastnn.col2im(with_layout(c, layout), shape, fh, fw, stride, pad)
    assert img.dtype == expected.dtype == dtype and img.shape == shape
    assert_allclose(img, expected, rtol=TOL[dtype], atol=TOL[dtype])
    # the adjoint: <im2col(x), c> = <x, col2im(c)>
    lhs = np.sum(fastnn.im2col(x, fh, fw, stride, pad).astype(np.float64) * c)
    assert_allclose(lhs, np.sum(x.astype(np.float64) * img), rtol=TOL[dtype] * 10,
                    atol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_im2col_t_and_col2im_t_in_both_plane_layouts(dtype, data):
    """The kernels' transposed layout, from and to (N, C, H, W) and (C, N, H, W) planes."""
    shape, (fh, fw), stride, pad, _ = conv_case(data.draw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    expected = reference.im2col(x, fh, fw, stride, pad).T
    c = rng.standard_normal(expected.shape).astype(dtype)
    expected_img = reference.col2im(np.ascontiguousarray(c.T), shape, fh, fw, stride, pad)
    for cnhw in (False, True):
        planes = np.ascontiguousarray(x.transpose(1, 0, 2, 3) if cnhw else x)
        col = np.full(expected.shape, np.nan, dtype)
        _core.im2col(planes, fh, fw, stride, pad, col, True, cnhw)
        assert_array_equal(col, expected)
        img = np.full(planes.shape, np.nan, dtype)
        _core.col2im(np.ascontiguousarray(c), img, fh, fw, stride, pad, True, cnhw)
        img = img.transpose(1, 0, 2, 3) if cnhw else img
        assert_allclose(img, expected_img, rtol=TOL[dtype], atol=TOL[dtype])
    # the book's layout from (C, N, H, W) planes
    col = np.full(expected.T.shape, np.nan, dtype)
    _core.im2col(np.ascontiguousarray(x.transpose(1, 0, 2, 3)), fh, fw, stride, pad, col, False,
                 True)
    assert_array_equal(col, expected.T)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_transposed_layout_for_a_block_of_samples(path, dtype, data):
    """im2col_t and col2im_t of the samples [start, stop) only (the models' blocks): im2col's
    columns of those samples; col2im writes their planes and leaves the others untouched. Both
    im2col_t paths of stride 1 (AVX-512 masked rows, portable copies), planes up to 40 wide."""
    with vector_path(path):
        block_case(dtype, data)


def block_case(dtype, data):
    shape, (fh, fw), stride, pad, _ = conv_case(data.draw)
    shape = shape[:3] + (data.draw(st.sampled_from([shape[3], 17, 40])),)
    n = data.draw(st.integers(2, 5))
    shape = (n,) + shape[1:]
    start = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(start + 1, n))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    full = reference.im2col(x, fh, fw, stride, pad).T
    q = full.shape[1] // n
    c = rng.standard_normal((full.shape[0], (stop - start) * q)).astype(dtype)
    spread = np.zeros_like(full)
    spread[:, start * q:stop * q] = c
    expected_img = reference.col2im(np.ascontiguousarray(spread.T), shape, fh, fw, stride, pad)
    for cnhw in (False, True):
        planes = np.ascontiguousarray(x.transpose(1, 0, 2, 3) if cnhw else x)
        planes.flags.writeable = False
        col = np.full(c.shape, np.nan, dtype)
        _core.im2col(planes, fh, fw, stride, pad, col, True, cnhw, start, stop)
        assert_array_equal(col, full[:, start * q:stop * q])
        img = np.full(planes.shape, np.nan, dtype)
        _core.col2im(c, img, fh, fw, stride, pad, True, cnhw, start, stop)
        img = img.transpose(1, 0, 2, 3) if cnhw else img
        assert_allclose(img[start:stop], expected_img[start:stop], rtol=TOL[dtype],
                        atol=TOL[dtype])
        assert np.isnan(img[:start]).all() and np.isnan(img[stop:]).all()


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("ow", [1, 3, 4, 5, 7, 8, 9, 11, 15, 16, 17], ids=lambda w: f"ow{w}")
def test_stride_1_rows_around_the_register_width(path, dtype, ow):
    """The AVX2 stride-1 rows (4 float64 / 8 float32 lanes): rows shorter than a register (one
    register per row running on into the next rows, the plane's last rows element by element),
    exactly one, and longer (the last block moved back to overlap the one before); every pad and
    filter size that gives this output width, planes of 1-4 rows (some shorter than a register
    in all), the whole batch and one sample of it, in a col pre-filled with NaN."""
    rng = np.random.default_rng(ow)
    with vector_path(path):
        for fh, fw, pad, oh in [(1, 1, 0, 1), (3, 3, 1, 2), (3, 2, 2, 4), (5, 5, 2, 3),
                                (2, 3, 0, 1)]:
            h, w = oh + fh - 1 - 2 * pad, ow + fw - 1 - 2 * pad
            if h < 1 or w < 1:
                continue
            x = rng.standard_normal((3, 2, h, w)).astype(dtype)
            x.flags.writeable = False
            full = reference.im2col(x, fh, fw, 1, pad).T
            q = oh * ow
            for start, stop in [(0, 3), (2, 3)]:
                col = np.full((full.shape[0], (stop - start) * q), np.nan, dtype)
                _core.im2col(x, fh, fw, 1, pad, col, True, False, start, stop)
                assert_array_equal(col, full[:, start * q:stop * q])


@pytest.mark.parametrize("start, stop", [(-1, 1), (0, 0), (2, 1), (0, 4)])
def test_a_block_outside_the_batch_is_refused(start, stop):
    x, col = np.zeros((3, 1, 4, 4)), np.zeros(9 * 4)
    with pytest.raises(ValueError, match=r"samples \[.*need 0 <= start < stop <= 3"):
        _core.im2col(x, 3, 3, 1, 0, col, True, False, start, stop)
    with pytest.raises(ValueError, match=r"samples \[.*need 0 <= start < stop <= 3"):
        _core.col2im(col, x.copy(), 3, 3, 1, 0, True, False, start, stop)


def test_a_block_only_in_the_transposed_layout():
    x = np.zeros((3, 1, 4, 4))
    with pytest.raises(ValueError, match="only taken in the transposed layout"):
        _core.im2col(x, 3, 3, 1, 0, np.zeros(4 * 9), False, False, 0, 1)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1), (3, 2)])
def test_threads(dtype, stride, pad, threads):
    """Sizes past the OpenMP threshold: the same results on 1 and 2 threads as the reference.
    The transposed layout's rows are (filter position, sample) pairs: with 45 positions and
    blocks of an odd number of samples, a thread's first row falls inside a sample's run."""
    rng = np.random.default_rng(stride)
    x = rng.standard_normal((40, 3, 31, 29)).astype(dtype)
    col = fastnn.im2col(x, 5, 3, stride, pad)
    assert col.size >= PARALLEL_MIN
    assert_array_equal(col, reference.im2col(x, 5, 3, stride, pad))
    c = rng.standard_normal(col.shape).astype(dtype)
    assert_allclose(fastnn.col2im(c, x.shape, 5, 3, stride, pad),
                    reference.col2im(c, x.shape, 5, 3, stride, pad), rtol=TOL[dtype],
                    atol=TOL[dtype])
    q = col.shape[0] // len(x)
    for cnhw in (False, True):
        planes = np.ascontiguousarray(x.transpose(1, 0, 2, 3)) if cnhw else x
        for start, stop in [(0, 40), (3, 38), (5, 6)]:
            colt = np.empty((col.shape[1], (stop - start) * q), dtype)
            _core.im2col(planes, 5, 3, stride, pad, colt, True, cnhw, start, stop)
            assert_array_equal(colt, col[start * q:stop * q].T)


def test_col2im_accumulates_overlaps():
    counts = fastnn.col2im(np.ones((4, 9)), (1, 1, 4, 4), 3, 3)
    assert_array_equal(counts[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])
    counts = fastnn.col2im(np.ones((4, 4)), (1, 1, 5, 5), 2, 2, stride=2)
    assert_array_equal(counts[0, 0, 4], 0)
    assert_array_equal(counts[0, 0, :, 4], 0)
    assert_array_equal(counts[0, 0, :4, :4], 1)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.uint8, np.bool_])
def test_other_dtypes_as_the_reference(dtype):
    x = (np.arange(2 * 3 * 5 * 4) % 7).reshape(2, 3, 5, 4).astype(dtype)
    col = fastnn.im2col(x, 3, 2, 1, 1)
    expected = reference.im2col(x, 3, 2, 1, 1)
    assert col.dtype == expected.dtype
    assert_array_equal(col, expected)
    img = fastnn.col2im(col, x.shape, 3, 2, 1, 1)
    expected = reference.col2im(col, x.shape, 3, 2, 1, 1)
    assert img.dtype == expected.dtype
    assert_array_equal(img, expected)


def test_nan_and_inf_are_copied_and_summed():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1], x[0, 0, 0, 0] = np.nan, np.inf
    col = fastnn.im2col(x, 2, 2)
    assert_array_equal(col, reference.im2col(x, 2, 2))
    assert_array_equal(fastnn.col2im(col, x.shape, 2, 2), reference.col2im(col, x.shape, 2, 2))


def test_results_are_new_arrays():
    x = np.random.default_rng(0).standard_normal((2, 1, 5, 5))
    a, b = fastnn.im2col(x, 3, 3), fastnn.im2col(x, 3, 3)
    assert not np.shares_memory(a, b) and not np.shares_memory(a, x)
    c, d = fastnn.col2im(a, x.shape, 3, 3), fastnn.col2im(a, x.shape, 3, 3)
    assert not np.shares_memory(c, d)


def test_conv_output_size_is_the_reference_arithmetic():
    assert fastnn.conv_output_size(28, 5) == 24 and fastnn.conv_output_size(7, 3, 2) == 3
    with pytest.raises(ValueError, match="filter size 5 is larger than the padded input"):
        fastnn.conv_output_size(4, 5)
