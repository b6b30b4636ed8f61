"""fastnn.Convolution (csrc/conv.c: im2col_t, col2im_t, swap_outer, conv_bias_act,
conv_act_backward_bias; the products in NumPy's BLAS) against fastnn.reference.Convolution:
shapes, dtypes, layouts, read-only inputs, thread counts; backward against numerical gradients;
the volume-1 attributes; the planes path the models run."""

import functools

import numpy as np
import pytest
from helpers import (FLOATS, LAYOUTS, PARALLEL_MIN, VECTOR_PATHS, conv_case, num_threads,
                     vector_path, with_layout)
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import fastnn
from fastnn import reference

TOL = {np.float64: 1e-11, np.float32: 2e-5}


def case(data, dtype):
    shape, (fh, fw), stride, pad, fn = conv_case(data.draw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    W = rng.standard_normal((fn, shape[1], fh, fw)).astype(dtype)
    b = rng.standard_normal(fn).astype(dtype)
    return x, W, b, stride, pad, rng


def over_blocks(test):
    """Runs a hypothesis test (its `data` argument) with the products over blocks of samples of
    about conv._BLOCK_BYTES of im2col drawn: the whole batch in one, a sample each, or a few (a
    shorter last block)."""
    @functools.wraps(test)
    def run(*args, data, **kwargs):
        saved = fastnn.conv._BLOCK_BYTES
        fastnn.conv._BLOCK_BYTES = data.draw(st.sampled_from([saved, 1, 2000]))
        try:
            return test(*args, data=data, **kwargs)
        finally:
            fastnn.conv._BLOCK_BYTES = saved
    return run


def test_fast_layer_is_not_the_reference():
    assert fastnn.Convolution is not reference.Convolution
    assert fastnn.layers.Convolution is fastnn.conv.Convolution
    assert not issubclass(fastnn.Convolution, reference.Convolution)


@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
@over_blocks
def test_forward_backward(dtype, data):
    x, W, b, stride, pad, rng = case(data, dtype)
    fast, ref = fastnn.Convolution(W, b, stride, pad), reference.Convolution(W, b, stride, pad)
    x_layout, d_layout = data.draw(st.sampled_from(LAYOUTS)), data.draw(st.sampled_from(LAYOUTS))
    out, expected = fast.forward(with_layout(x, x_layout)), ref.forward(x)
    assert out.dtype == expected.dtype == dtype and out.shape == expected.shape
    assert_allclose(out, expected, rtol=TOL[dtype], atol=TOL[dtype])
    dout = rng.standard_normal(out.shape).astype(dtype)
    dout_given = with_layout(dout, d_layout)
    before = dout_given.copy()
    dx, expected_dx = fast.backward(dout_given), ref.backward(dout)
    assert_array_equal(dout_given, before)  # the caller's dout is never modified
    assert dx.dtype == dtype and dx.shape == x.shape
    assert_allclose(dx, expected_dx, rtol=TOL[dtype], atol=TOL[dtype])
    for g, eg in zip(fast.grads, ref.grads):
        assert g.dtype == dtype
        assert_allclose(g, eg, rtol=TOL[dtype], atol=TOL[dtype] * 10)
    assert fast.dW is fast.grads[0] and fast.db is fast.grads[1]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("channels, filters", [(130, 130), (1, 129), (70, 130), (130, 20)])
@pytest.mark.parametrize("block_bytes", [1 << 20, 1], ids=["one block", "a sample a block"])
def test_products_on_both_sides_of_the_few_rows_limit(dtype, channels, filters, block_bytes):
    # products with at most conv._FEW_ROWS (128) filters or channels run in gemm_narrow, wider
    # ones in BLAS: the forward (filters), the weight gradient (filters) and the flipped-filter
    # input gradient (channels; 2 C >= FN), against the reference on both sides
    assert fastnn.conv._FEW_ROWS == 128
    rng = np.random.default_rng(channels + filters)
    x = rng.standard_normal((3, channels, 5, 4)).astype(dtype)
    W = (0.1 * rng.standard_normal((filters, channels, 3, 3))).astype(dtype)
    b = rng.standard_normal(filters).astype(dtype)
    saved = fastnn.conv._BLOCK_BYTES
    fastnn.conv._BLOCK_BYTES = block_bytes
    try:
        fast, ref = fastnn.Convolution(W, b, 1, 1), reference.Convolution(W, b, 1, 1)
        out = fast.forward(x)
        assert_allclose(out, ref.forward(x), rtol=TOL[dtype], atol=TOL[dtype] * 10)
        dout = rng.standard_normal(out.shape).astype(dtype)
        assert_allclose(fast.backward(dout), ref.backward(dout), rtol=TOL[dtype],
                        atol=TOL[dtype] * 10)
    finally:
        fastnn.conv._BLOCK_BYTES = saved
    for g, eg in zip(fast.grads, ref.grads):
        assert_allclose(g, eg, rtol=TOL[dtype], atol=TOL[dtype] * 100)


@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
@over_blocks
def test_stride_1_square_filters(dtype, data):
    """Stride 1, FH = FW, pad < FH and C >= FN (some of the models' convolutions): dx is the
    convolution of dy with the flipped filters (conv.py's _input_grad), not col2im; pad >= FH or
    C < FN takes col2im. Both layers'
    paths, inputs read-only and in other layouts, batch up to 6 over blocks of samples."""
    f = data.draw(st.integers(1, 5))
    pad = data.draw(st.integers(0, f))
    n, c = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 4))
    fn = data.draw(st.sampled_from([1, c, 2 * c + 1]))  # dx by col2im when C < FN
    h, w = (data.draw(st.integers(max(1, f - 2 * pad), 9)) for _ in range(2))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    W = rng.standard_normal((fn, c, f, f)).astype(dtype)
    b = rng.standard_normal(fn).astype(dtype)
    fast, ref = fastnn.Convolution(W, b, 1, pad), reference.Convolution(W, b, 1, pad)
    x_given = with_layout(x, data.draw(st.sampled_from(LAYOUTS)))
    out, expected = fast.forward(x_given), ref.forward(x)
    assert_allclose(out, expected, rtol=TOL[dtype], atol=TOL[dtype])
    dout = rng.standard_normal(out.shape).astype(dtype)
    dout_given = with_layout(dout, data.draw(st.sampled_from(LAYOUTS)))
    assert_allclose(fast.backward(dout_given), ref.backward(dout), rtol=TOL[dtype],
                    atol=TOL[dtype])
    for g, eg in zip(fast.grads, ref.grads):
        assert_allclose(g, eg, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
    # the models' path, (C, N, H, W) planes, read-only
    planes = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
    planes.flags.writeable = False
    workspace = fastnn.conv._Scratch()
    y = fast._forward_planes(planes, True, True, workspace)
    assert_allclose(y.transpose(1, 0, 2, 3), np.maximum(expected, 0), rtol=TOL[dtype],
                    atol=TOL[dtype])
    dW, db = np.empty_like(W), np.empty_like(b)
    dy = np.ascontiguousarray(dout.transpose(1, 0, 2, 3))
    dx = fast._backward_planes(dy, True, dW, db, planes.shape, workspace)
    expected_dx = ref.backward(dout * (expected > 0))
    assert_allclose(dx.transpose(1, 0, 2, 3), expected_dx, rtol=TOL[dtype], atol=TOL[dtype])
    assert_allclose(dW, ref.dW, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
    assert_allclose(db, ref.db, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_one_channel_stride_1(path, dtype, data):
    """One input channel, stride 1 (the models' first convolution): the forward computed directly
    with AVX-512 (8 filters and 2 registers of outputs at a time, masked last block) or AVX2 (4
    filters and 3 registers, whole-register stores running on into the next rows, the plane's
    last registers through a buffer; also on AVX-512 where it covers a row with fewer lanes),
    else by im2col (the layer's forward straight into the book's (N, FN, OH, OW), the bias
    added); the weight gradient directly as well (tiles of 4 or 2 filters x 5 filter positions,
    masked row ends).
    Widths across the register blocks, filter counts off the multiples of 4 and 8, NaN, both
    layers' paths, inputs read-only and in other layouts."""
    with vector_path(path):
        fh, fw, pad = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)), data.draw(
            st.integers(0, 2))
        n, fn = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 20))
        h = data.draw(st.integers(max(1, fh - 2 * pad), 9))
        w = data.draw(st.integers(max(1, fw - 2 * pad), 40))
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        x = rng.standard_normal((n, 1, h, w)).astype(dtype)
        if data.draw(st.booleans()):
            x[rng.random(x.shape) < 0.05] = np.nan
        W = rng.standard_normal((fn, 1, fh, fw)).astype(dtype)
        b = rng.standard_normal(fn).astype(dtype)
        fast, ref = fastnn.Convolution(W, b, 1, pad), reference.Convolution(W, b, 1, pad)
        expected = ref.forward(x)
        out = fast.forward(with_layout(x, data.draw(st.sampled_from(LAYOUTS))))
        assert_allclose(out, expected, rtol=TOL[dtype], atol=TOL[dtype])
        dout = rng.standard_normal(expected.shape).astype(dtype)
        assert_allclose(fast.backward(dout), ref.backward(dout), rtol=TOL[dtype],
                        atol=TOL[dtype])
        for g, eg in zip(fast.grads, ref.grads):
            assert_allclose(g, eg, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
        planes = x.copy()
        planes.flags.writeable = False
        relu, cnhw = data.draw(st.booleans()), data.draw(st.booleans())
        workspace = fastnn.conv._Scratch()
        y = fast._forward_planes(planes.reshape(1, n, h, w) if cnhw else planes, cnhw, relu,
                                 workspace)
        a = np.where(expected <= 0, 0, expected) if relu else expected  # ReLU keeps NaN
        assert_allclose(y.transpose(1, 0, 2, 3), a, rtol=TOL[dtype], atol=TOL[dtype])
        dW, db = np.empty_like(W), np.empty_like(b)
        fast._backward_planes(np.ascontiguousarray(dout.transpose(1, 0, 2, 3)), relu, dW, db,
                              None, workspace)
        ref.backward(np.where(expected <= 0, 0, dout) if relu else dout)
        assert_allclose(dW, ref.dW, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
        assert_allclose(db, ref.db, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)


def test_one_channel_direct_refuses_an_output_overlapping_its_input():
    x = np.zeros((2, 1, 6, 6))
    W, b = np.zeros((3, 1, 3, 3)), np.zeros(3)
    y = np.zeros(3 * 2 * 16 + x.size)
    with pytest.raises(ValueError, match="y: overlaps x"):
        fastnn._core.conv_direct1(y[:x.size].reshape(x.shape), W, b, 0, False,
                                  y[x.size - 1:x.size - 1 + 96], True)


@pytest.mark.parametrize("stride, pad", [(1, 0), (1, 2), (2, 1), (3, 0)])
def test_backward_against_numerical_gradients(stride, pad):
    rng = np.random.default_rng(stride * 3 + pad)
    x = rng.standard_normal((2, 2, 7, 6))
    W, b = rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    layer = fastnn.Convolution(W, b, stride, pad)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)

    def loss():
        return float(np.sum(layer.forward(x) * dout))

    for analytic, value in ((dx, x), (layer.dW.copy(), W), (layer.db.copy(), b)):
        numeric = reference.functions.numerical_gradient(lambda _: loss(), value)
        assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", FLOATS)
def test_threads(dtype, threads):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((50, 3, 20, 20)).astype(dtype)
    W, b = rng.standard_normal((8, 3, 3, 3)).astype(dtype), rng.standard_normal(8).astype(dtype)
    fast, ref = fastnn.Convolution(W, b, 1, 1), reference.Convolution(W, b, 1, 1)
    out = fast.forward(x)
    assert out.size >= PARALLEL_MIN
    assert_allclose(out, ref.forward(x), rtol=TOL[dtype], atol=TOL[dtype])
    dout = rng.standard_normal(out.shape).astype(dtype)
    assert_allclose(fast.backward(dout), ref.backward(dout), rtol=TOL[dtype], atol=TOL[dtype])
    for g, eg in zip(fast.grads, ref.grads):
        assert_allclose(g, eg, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 100)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_one_channel_grads_threads(path, dtype):
    """The one-channel weight gradient (csrc/conv.c conv_direct1_grads) on threads: blocks of
    filters (30: a last block short of the 4 or 2 of a tile), the same sums on any thread count,
    equal to the reference's; the ReLU mask written into dy."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, 1, 28, 28)).astype(dtype)
    W, b = rng.standard_normal((30, 1, 5, 5)).astype(dtype), np.zeros(30, dtype)
    ref = reference.Convolution(W, b)
    z = ref.forward(x)
    dout = rng.standard_normal(z.shape).astype(dtype)
    ref.backward(np.where(z <= 0, 0, dout))
    results = []
    with vector_path(path):
        for n in (1, 2):
            with num_threads(n):
                fast = fastnn.Convolution(W, b)
                workspace = fastnn.conv._Scratch()
                fast._forward_planes(x, False, True, workspace)
                dy = np.ascontiguousarray(dout.transpose(1, 0, 2, 3))
                dW, db = np.empty_like(W), np.empty_like(b)
                assert fast._backward_planes(dy, True, dW, db, None, workspace) is None
                assert_array_equal(dy, np.where(z <= 0, 0, dout).transpose(1, 0, 2, 3))
                results.append((dW, db))
    if path != "portable":  # the portable path's product is BLAS's, on BLAS's threads
        assert_array_equal(results[0][0], results[1][0])
        assert_array_equal(results[0][1], results[1][1])
    assert_allclose(results[0][0], ref.dW, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 100)
    assert_allclose(results[0][1], ref.db, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 100)


def test_outputs_are_new_arrays_and_grads_written_in_place():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1, 6, 6))
    layer = fastnn.Convolution(rng.standard_normal((2, 1, 3, 3)), np.zeros(2))
    dW, db = layer.grads
    out1 = layer.forward(x)
    kept = out1.copy()
    dx1 = layer.backward(np.ones_like(out1))
    kept_dx = dx1.copy()
    out2 = layer.forward(2 * x)
    layer.backward(np.full_like(out2, 3.0))
    assert_array_equal(out1, kept)
    assert_array_equal(dx1, kept_dx)
    assert layer.grads[0] is dW and layer.grads[1] is db  # written in place


def test_volume1_attributes():
    rng = np.random.default_rng(2)
    W, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    fast, ref = fastnn.Convolution(W, b, 2, 1), reference.Convolution(W, b, 2, 1)
    assert fast.W is W and fast.b is b and fast.stride == 2 and fast.pad == 1
    x = rng.standard_normal((2, 2, 5, 5))
    fast.forward(x), ref.forward(x)
    assert fast.x is x
    assert_array_equal(fast.col, ref.col)
    assert_array_equal(fast.col_W, ref.col_W)
    W2 = rng.standard_normal((4, 2, 2, 2))
    fast.W, fast.b = W2, np.ones(4)  # the book's load_params assigns layer.W
    assert fast.params[0] is W2 and fast.grads[0].shape == W2.shape
    assert_allclose(fast.forward(x), reference.Convolution(W2, np.ones(4), 2, 1).forward(x),
                    rtol=1e-12)
    fast.dW = np.zeros((4, 2, 2, 2))
    assert fast.grads[0] is fast.dW


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("b", [0, 0.5, np.array(-1.5), np.array([2.0])], ids=repr)
def test_one_bias_for_all_filters(dtype, b):
    # ch07/apply_filter.py passes b = 0: added to every output, as the book's out + self.b; db is
    # b's own gradient (its shape), the total of the per-filter sums
    b = b.astype(dtype) if isinstance(b, np.ndarray) else b
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 5, 6)).astype(dtype)
    W = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
    b_vector = np.full(3, b, dtype)
    for half in (fastnn, reference):
        layer, vector = half.Convolution(W, b), reference.Convolution(W, b_vector)
        out = layer.forward(x)
        assert out.dtype == dtype  # a Python number does not promote float32 (NumPy's out + 0)
        assert_allclose(out, vector.forward(x), rtol=TOL[dtype], atol=TOL[dtype])
        dout = rng.standard_normal(out.shape).astype(dtype)
        assert_allclose(layer.backward(dout), vector.backward(dout), rtol=TOL[dtype],
                        atol=TOL[dtype])
        assert layer.db.shape == np.shape(b)
        assert_allclose(layer.db, vector.db.sum(), rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)


def test_float16_as_the_reference():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float16)
    W, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    # float16 images, float64 filters (ch08/half_float_network.py): float64, as NumPy computes
    # it; float16 throughout: the reference's NumPy itself
    for W_, b_, tol in ((W, b, 1e-12), (W.astype(np.float16), b.astype(np.float16), 0)):
        fast, ref = fastnn.Convolution(W_, b_), reference.Convolution(W_, b_)
        out, expected = fast.forward(x), ref.forward(x)
        assert out.dtype == expected.dtype
        assert_allclose(out, expected, rtol=tol, atol=tol)
        dout = np.ones_like(out)
        assert_allclose(fast.backward(dout), ref.backward(dout), rtol=tol, atol=tol)
        assert_allclose(fast.dW, ref.dW, rtol=tol, atol=tol)


def test_nan_propagates():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    layer = fastnn.Convolution(np.ones((1, 1, 2, 2)), np.zeros(1))
    out = layer.forward(x)
    assert_array_equal(np.isnan(out), np.isnan(reference.Convolution(np.ones((1, 1, 2, 2)),
                                                                     np.zeros(1)).forward(x)))
    assert np.isnan(out).sum() == 4


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
@over_blocks
def test_planes_path(dtype, relu, data):
    """The models' path: (C, N, H, W) or (N, C, H, W) planes in, act(conv + b) in (FN, N, OH, OW)
    out; backward with the ReLU mask and the bias gradient fused, dx in (C, N, H, W)."""
    x, W, b, stride, pad, rng = case(data, dtype)
    x_cnhw = data.draw(st.booleans())
    fast, ref = fastnn.Convolution(W, b, stride, pad), reference.Convolution(W, b, stride, pad)
    planes = np.ascontiguousarray(x.transpose(1, 0, 2, 3)) if x_cnhw else x
    workspace = fastnn.conv._Scratch()  # one for both passes, as a model's layers share theirs
    y = fast._forward_planes(planes, x_cnhw, relu, workspace)
    z = ref.forward(x)
    a = np.maximum(z, 0) if relu else z
    assert_allclose(y.transpose(1, 0, 2, 3), a, rtol=TOL[dtype], atol=TOL[dtype])
    dout = rng.standard_normal(z.shape).astype(dtype)
    dz = dout * (z > 0) if relu else dout
    expected_dx = ref.backward(dz)
    dW, db = np.empty_like(W), np.empty_like(b)
    dy = np.ascontiguousarray(dout.transpose(1, 0, 2, 3))
    dx = fast._backward_planes(dy, relu, dW, db, (x.shape[1], x.shape[0]) + x.shape[2:],
                               workspace)
    assert_allclose(dx.transpose(1, 0, 2, 3), expected_dx, rtol=TOL[dtype], atol=TOL[dtype])
    assert_allclose(dW, ref.dW, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
    assert_allclose(db, ref.db, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
    assert fast._backward_planes(dy, relu, dW, db, None, workspace) is None


def test_relu_keeps_nan():
    y = np.array([[np.nan, -1.0, 2.0, 0.0]])
    fastnn._core.conv_bias_act(y, np.zeros(1), True)
    assert_array_equal(y, [[np.nan, 0.0, 2.0, 0.0]])
    dy, db = np.ones((1, 4)), np.empty(1)
    fastnn._core.conv_act_backward_bias(dy, y, db)
    assert_array_equal(dy, [[1.0, 0.0, 1.0, 0.0]]) and db[0] == 2.0


def test_workspace_flat_buffer_is_one_per_dtype_grown_to_the_largest_size():
    """The buffer a model's convolutions take in turn (im2col's rows, col2im's input): a prefix
    view of one array per dtype, replaced only by a larger one."""
    workspace = fastnn.conv._Scratch()
    a = workspace.flat("col", 10, np.float64)
    assert a.shape == (10,) and a.dtype == np.float64
    b = workspace.flat("col", 4, np.float64)
    assert b.base is a.base and b.shape == (4,)
    c = workspace.flat("col", 4, np.float32)
    assert c.dtype == np.float32 and c.base is not a.base
    d = workspace.flat("col", 11, np.float64)
    assert d.shape == (11,) and d.base is not a.base
    assert workspace.flat("col", 10, np.float64).base is d.base


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_deep_convnet_convolutions_share_one_buffer(threads):
    """Every convolution of a model packs its blocks' im2col and transposed products into the
    model's one "conv_gemm work" buffer (per dtype), sized for the largest layer's blocks and
    a share per thread; no layer keeps one of its own."""
    net = fastnn.DeepConvNet(seed=0)
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28))
    net.gradient(x, np.arange(4))
    flat = [k for k in net._workspace._arrays if isinstance(k, tuple)]
    shared = ["conv_gemm work"]
    assert flat == [("conv_gemm work", np.dtype(np.float64))]
    for layer, _ in net._stages:
        if isinstance(layer, fastnn.Convolution):
            assert not any(name in str(k) for k in layer._scratch._arrays for name in shared)
