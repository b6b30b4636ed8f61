"""_core.conv_gemm and conv_gemm_wgrad: a convolution's products over blocks of samples, a block
per thread, against the reference's im2col and NumPy's products.

Every block size from one sample to the whole batch, one to three threads (the forward gives the
same bits whatever the blocks and threads: each element is one gemm_narrow dot product), every
vector path of the products (the AVX-512 weight gradient reads col from padded planes instead
of forming it), both layouts, strides and pads, the bias and ReLU,
read-only inputs, a work buffer with room for
fewer threads than asked, and outputs that overlap an input or the work refused.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn import _core
from fastnn.reference.util import im2col
from helpers import FLOATS, VECTOR_PATHS, examples, num_threads, vector_path


@st.composite
def cases(draw):
    n, c = draw(st.integers(1, 7)), draw(st.integers(1, 3))
    fh, fw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s, p = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, fh - 2 * p), 9))
    w = draw(st.integers(max(1, fw - 2 * p), 9))
    return dict(n=n, c=c, h=h, w=w, fh=fh, fw=fw, s=s, p=p, fn=draw(st.integers(1, 70)),
                block=draw(st.integers(1, n)), cnhw=draw(st.booleans()),
                threads=draw(st.integers(1, 3)), seed=draw(st.integers(0, 2 ** 32 - 1)))


def _operands(case, dtype):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(dtype)
    W = rng.standard_normal((case["fn"], case["c"], case["fh"], case["fw"])).astype(dtype)
    b = rng.standard_normal(case["fn"]).astype(dtype)
    col = im2col(x.astype(np.float64), case["fh"], case["fw"], case["s"], case["p"])
    planes = np.ascontiguousarray(x.transpose(1, 0, 2, 3)) if case["cnhw"] else x
    for a in (planes, b):
        a.flags.writeable = False
    return planes, W, b, col


def _work(case, wgrad, dtype, threads):
    per = _core.conv_gemm_work_size(case["c"], case["h"], case["w"], case["fh"], case["fw"],
                                    case["s"], case["p"], case["block"], case["fn"], wgrad)
    return np.full(per * threads, np.nan, dtype)


def _forward(case, planes, W, b, relu, dtype, q, work_threads=None):
    fn, n = case["fn"], case["n"]
    W2 = W.reshape(fn, -1)
    W2.flags.writeable = False
    y = np.full((fn, n * q), np.nan, dtype)
    work = _work(case, False, dtype, work_threads or case["threads"])
    with num_threads(case["threads"]):
        _core.conv_gemm(planes, case["fh"], case["fw"], case["s"], case["p"], case["cnhw"], W2, b,
                        relu, case["block"], work, y)
    return y


def _tolerance(dtype, k, bound):
    return np.finfo(dtype).eps * (k + 2) * bound + np.finfo(dtype).tiny


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=examples(60), deadline=None)
@given(case=cases(), act=st.sampled_from(["none", "bias", "bias+relu"]))
def test_forward_matches_im2col_and_a_product(path, dtype, case, act):
    planes, W, b, col = _operands(case, dtype)
    fn, n, k = case["fn"], case["n"], col.shape[1]
    q = col.shape[0] // n
    with vector_path(path):
        y = _forward(case, planes, W, None if act == "none" else b, act == "bias+relu", dtype, q)
    W64 = W.reshape(fn, -1).astype(np.float64)
    # the book's (N * Q, FN) output as (FN, N * Q)
    expected = (col @ W64.T).T + (0 if act == "none" else b.astype(np.float64)[:, None])
    tol = _tolerance(dtype, k, np.abs(W64) @ np.abs(col).T + np.abs(b)[:, None])
    if act == "bias+relu":
        expected = np.maximum(expected, 0)
    assert np.all(np.abs(y - expected) <= tol)


@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=examples(40), deadline=None)
@given(case=cases())
def test_forward_bits_do_not_depend_on_blocks_or_threads(dtype, case):
    planes, W, b, col = _operands(case, dtype)
    q = col.shape[0] // case["n"]
    y = _forward(case, planes, W, b, True, dtype, q)
    whole = _forward(dict(case, block=case["n"], threads=1), planes, W, b, True, dtype, q)
    np.testing.assert_array_equal(y, whole)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=examples(60), deadline=None)
@given(case=cases())
def test_weight_gradient_matches_a_product_with_im2col(path, dtype, case):
    planes, W, b, col = _operands(case, dtype)
    fn, n, k = case["fn"], case["n"], col.shape[1]
    q = col.shape[0] // n
    dy = np.random.default_rng(case["seed"] + 1).standard_normal((fn, n * q)).astype(dtype)
    dy.flags.writeable = False
    dwt = np.full((k, fn), np.nan, dtype)
    work = _work(case, True, dtype, case["threads"])
    with num_threads(case["threads"]), vector_path(path):
        _core.conv_gemm_wgrad(planes, case["fh"], case["fw"], case["s"], case["p"], case["cnhw"],
                              dy, case["block"], work, dwt)
    # dy's columns are (n, oy, ox), col's rows (n, oy, ox): dW = dy . col
    dy64 = dy.astype(np.float64)
    expected = (dy64 @ col).T
    tol = _tolerance(dtype, n * q, (np.abs(dy64) @ np.abs(col)).T)
    assert np.all(np.abs(dwt - expected) <= tol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_a_work_buffer_for_one_thread_runs_on_one(dtype):
    """Work with one thread's share: two threads asked, the blocks run one after another on it."""
    case = dict(n=6, c=2, h=8, w=8, fh=3, fw=3, s=1, p=1, fn=5, block=1, cnhw=False, threads=2,
                seed=3)
    planes, W, b, col = _operands(case, dtype)
    y = _forward(case, planes, W, b, False, dtype, 64, work_threads=1)
    np.testing.assert_array_equal(y, _forward(dict(case, threads=1), planes, W, b, False, dtype,
                                              64))


def _valid_forward(dtype=np.float64):
    x = np.zeros((4, 2, 6, 6), dtype)
    W = np.zeros((3, 18), dtype)
    work = np.zeros(2 * _core.conv_gemm_work_size(2, 6, 6, 3, 3, 1, 1, 2, 3), dtype)
    return x, W, work, np.zeros((3, 4 * 36), dtype)


def test_forward_refuses_overlapping_outputs():
    x, W, work, y = _valid_forward()
    with pytest.raises(ValueError, match="work: overlaps y"):
        _core.conv_gemm(x, 3, 3, 1, 1, False, W, None, False, 2, work,
                        work[:y.size].reshape(y.shape))
    with pytest.raises(ValueError, match="y: overlaps W"):
        _core.conv_gemm(x, 3, 3, 1, 1, False, y.reshape(-1)[:54].reshape(3, 18), None, False, 2,
                        work, y)
    with pytest.raises(ValueError, match="work: overlaps x"):
        _core.conv_gemm(work[:x.size].reshape(x.shape), 3, 3, 1, 1, False, W, None, False, 2,
                        work, y)


@pytest.mark.parametrize("block", [0, 5, -1])
def test_forward_refuses_a_block_outside_the_batch(block):
    x, W, work, y = _valid_forward()
    with pytest.raises(ValueError, match="block"):
        _core.conv_gemm(x, 3, 3, 1, 1, False, W, None, False, block, work, y)


def test_forward_refuses_work_short_of_one_share():
    x, W, work, y = _valid_forward()
    per = _core.conv_gemm_work_size(2, 6, 6, 3, 3, 1, 1, 2, 3)
    with pytest.raises(ValueError, match="one thread's share"):
        _core.conv_gemm(x, 3, 3, 1, 1, False, W, None, False, 2, work[:per - 1], y)


def test_weight_gradient_refuses_overlapping_outputs():
    x = np.zeros((4, 2, 6, 6))
    dy = np.zeros((3, 4 * 36))
    work = np.zeros(_core.conv_gemm_work_size(2, 6, 6, 3, 3, 1, 1, 2, 3, True))
    with pytest.raises(ValueError, match="dwt: overlaps dy"):
        _core.conv_gemm_wgrad(x, 3, 3, 1, 1, False, dy, 2, work, dy.reshape(-1)[:54].reshape(18, 3))
    with pytest.raises(ValueError, match="work: overlaps dwt"):
        _core.conv_gemm_wgrad(x, 3, 3, 1, 1, False, dy, 2, work, work[:54].reshape(18, 3))


@pytest.mark.parametrize("sizes", [(0, 6, 6, 3, 3, 1, 1, 2, 3), (2, 6, 6, 3, 3, 0, 1, 2, 3),
                                   (2, 6, 6, 3, 3, 1, -1, 2, 3), (2, 6, 6, 9, 3, 1, 1, 2, 3),
                                   (2, 6, 6, 3, 3, 1, 1, 0, 3), (2, 6, 6, 3, 3, 1, 1, 2, 0)])
def test_work_size_refuses_sizes_no_convolution_has(sizes):
    with pytest.raises(ValueError):
        _core.conv_gemm_work_size(*sizes)


def test_work_size_refuses_a_block_too_large_to_count():
    with pytest.raises(ValueError, match="2\\*\\*60"):
        _core.conv_gemm_work_size(1 << 20, 1 << 10, 1 << 10, 1, 1, 1, 0, 1 << 20, 1)
