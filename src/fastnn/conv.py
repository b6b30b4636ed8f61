"""Volume 1's convolution and max-pooling layers (chapter 7), fast: the same classes and results
as `fastnn.reference.conv`.

Images are (N, C, H, W). A convolution is im2col into the transposed layout col (C*FH*FW,
M*OH*OW) of a block of M samples (csrc/conv.c) and a matrix product, W (FN, C*FH*FW) . col, into
the block's columns of y (FN, N*OH*OW), so that each block's col is still in the cache when the
product reads it and no im2col of the whole batch is kept; then a pass that adds the bias while
it swaps y's (FN, N, OH, OW) to (N, FN, OH, OW). With at most 128 filters the blocks run in C, a
block per thread, on gemm_narrow (csrc/conv_gemm.c); else block after block on NumPy's BLAS. Its
backward: dW = dy . col^T summed over the blocks (col packed again from the kept input), and dx
as a convolution of dy with the flipped filters (stride 1, square filters, pad < FH: im2col of
dy and one product per block) or else col2im of W^T . dy. Max pooling is one compiled pass each
way (csrc/pooling.c).

Both conventions: params / grads lists, backward writes grads in place; W, b, dW, db as
attributes over them (assigning rebinds the list element, as the book's load_params does).
forward and backward return new arrays; the buffers kept between calls (per input shape) are the
layer's own and never handed out. float16 is computed the reference's NumPy way.

The models (convnet.py) run the same layers through the _..._planes methods, which keep the
images in (C, N, H, W) from one layer to the next, fuse the bias and ReLU into the convolution's
output and skip the input gradient of the first layer.
"""
import numpy as np

from . import _core
from ._checks import as_buffer
from .reference.conv import Convolution as _ReferenceConvolution
from .reference.conv import Pooling as _ReferencePooling
from .reference.conv import bias_grad_as, bias_shape_ok, check_bias
from .reference.util import conv_output_size

__all__ = ["Convolution", "Pooling"]

# the bytes of im2col of one block of samples (conv.py's products): the block's im2col and
# product output stay in the L2 cache
_BLOCK_BYTES = 1 << 20

# products with at most this many filters (or input channels) run in gemm_narrow (conv_gemm:
# OpenBLAS's kernels for this CPU run these shapes at 40-50% of its rate, (16, 144) (144, 1568)
# float32 86 us, gemm_narrow 49 us; measured for the models' 16 to 64)
_FEW_ROWS = 128


class _Scratch:
    """Named buffers reused while their shape and dtype stay the same; never handed to a caller."""

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype):
        a = self._arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self._arrays[name] = np.empty(shape, dtype)
        return a

    def flat(self, name, size, dtype):
        """The first size elements of a 1-D buffer kept per name and dtype and grown to the
        largest size asked: one buffer that several layers (or one layer's several products)
        take in turn, each only for the length of one call."""
        key = (name, np.dtype(dtype))
        a = self._arrays.get(key)
        if a is None or a.size < size:
            a = self._arrays[key] = np.empty(size, dtype)
        return a[:size]


def _block_size(n, per_sample):
    """Samples per block of the n samples, each per_sample bytes of im2col: about _BLOCK_BYTES,
    and at least a block per thread."""
    size = max(1, min(n, _BLOCK_BYTES // max(per_sample, 1)))
    return min(size, -(-n // _core.get_num_threads()))


def _conv_gemm_work(workspace, x, x_cnhw, fh, fw, stride, pad, block, fn, wgrad):
    """The work buffer of conv_gemm (wgrad: conv_gemm_wgrad) of the planes x: a share per
    thread, from workspace."""
    c = x.shape[0] if x_cnhw else x.shape[1]
    per = _core.conv_gemm_work_size(c, x.shape[2], x.shape[3], fh, fw, stride, pad, block, fn,
                                    wgrad)
    return workspace.flat("conv_gemm work", per * _core.get_num_threads(), x.dtype)


def _images(x, name="x"):
    """x as an array, checked to be a non-empty (N, C, H, W) batch of real numbers."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch: shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real number array, got dtype {x.dtype}")
    return x


def _compute_dtype(*arrays):
    """The dtype NumPy's products of these arrays give: float32 and float64 run the kernels; None
    for float16 (the reference's NumPy computes it)."""
    dtype = np.result_type(*arrays)
    if dtype == np.float16:
        return None
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def _param(i):
    """params[i] as an attribute. Assigning rebinds params[i], as the book's ``layer.W = ...``
    does; grads[i] is reallocated when the new array's shape or dtype differ from it."""
    def set_param(self, value):
        value = np.asarray(value)
        if value.shape != self.grads[i].shape or value.dtype != self.grads[i].dtype:
            self.grads[i] = np.zeros_like(value)
        self.params[i] = value
    return property(lambda self: self.params[i], set_param)


def _grad(i):
    """grads[i] as an attribute; assigning rebinds grads[i]."""
    def set_grad(self, value):
        self.grads[i] = value
    return property(lambda self: self.grads[i], set_grad)


def _into(target, value):
    """target[...] = value (a gradient written in place)."""
    target[...] = value.reshape(target.shape)


class Convolution:
    """Convolution (cross-correlation, as the book) of FN filters W (FN, C, FH, FW) plus bias b
    ((FN,), or one number for all filters), with a stride and zero padding; params = [W, b],
    grads = [dW, db] (db of b's shape)."""

    def __init__(self, W, b, stride=1, pad=0):
        W = np.asarray(W)
        if W.ndim != 4:
            raise ValueError(f"W must be 4-D (FN, C, FH, FW), got shape {W.shape}")
        b = check_bias(W, b)
        conv_output_size(1, 1, stride, pad)  # stride >= 1 and pad >= 0, or raise
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.stride = stride
        self.pad = pad
        self.x = None  # the last forward's input, as the book keeps it
        self._scratch = _Scratch()
        self._last = None  # what backward needs: dtype, x's shape, (N, OH, OW), or the reference
        self._reference = None  # the reference layer that computed the last float16 forward
        self._planes = self._y = None  # the last input (planes, cnhw) and the models' output

    W, b = _param(0), _param(1)
    dW, db = _grad(0), _grad(1)

    @property
    def col_W(self):
        """W (FN, C, FH, FW) as the book's (C*FH*FW, FN) matrix (a view of W)."""
        return self.params[0].reshape(self.params[0].shape[0], -1).T

    @property
    def col(self):
        """The last forward's im2col, in the book's (N*OH*OW, C*FH*FW) layout (a new array)."""
        if self._reference is not None:
            return self._reference.col
        if self._planes is None:
            return None
        x, x_cnhw = self._planes
        FN, C, FH, FW = self.params[0].shape
        N = x.shape[1] if x_cnhw else x.shape[0]
        out_h = (x.shape[2] + 2 * self.pad - FH) // self.stride + 1
        out_w = (x.shape[3] + 2 * self.pad - FW) // self.stride + 1
        col = np.empty((N * out_h * out_w, C * FH * FW), x.dtype)
        _core.im2col(x, FH, FW, self.stride, self.pad, col, False, x_cnhw)
        return col

    def _check(self, x):
        """The sizes of a forward of x: (N, C, H, W) checked against W, stride and pad."""
        W, b = self.params
        if W.ndim != 4 or not bias_shape_ok(np.shape(b), W.shape[0]):
            raise ValueError(f"W must be 4-D (FN, C, FH, FW) and b (FN,) or one number, got "
                             f"shapes {W.shape}, {np.shape(b)}")
        FN, C, FH, FW = W.shape
        N, x_C, H, x_W = x.shape
        if x_C != C:
            raise ValueError(f"x has {x_C} channels (shape {x.shape}) but W has {C} "
                             f"(shape {W.shape})")
        out_h = conv_output_size(H, FH, self.stride, self.pad)
        out_w = conv_output_size(x_W, FW, self.stride, self.pad)
        return N, out_h, out_w

    # ------------------------------------------------------------------ the three products
    #
    # Each runs over blocks of a few samples: im2col of a block (about _BLOCK_BYTES) stays in the
    # cache for the product that reads it, and no im2col of the whole batch is kept (backward
    # packs each block again from the input planes, which the layer keeps).

    def _blocks(self, n, per_sample):
        """[(start, stop)] of blocks of the n samples for NumPy's BLAS, each sample per_sample
        bytes of im2col. With threads (fastnn's, and so BLAS's) one block: each product is a
        hand-off to BLAS's threads, which made a DeepConvNet step over blocks of a few samples
        10-30x slower on 2 threads of a busy machine."""
        if _core.get_num_threads() > 1:
            return [(0, n)]
        size = _block_size(n, per_sample)
        return [(i, min(n, i + size)) for i in range(0, n, size)]

    def _products(self, x, x_cnhw, relu, workspace):
        """y (FN, N, OH, OW) = W . im2col(x), then act(y + b) unless relu is None (act ReLU when
        relu, else the identity); a buffer of the layer. x a float buffer, (N, C, H, W) or
        (C, N, H, W) (x_cnhw), kept for backward; im2col's blocks go to workspace's "conv_gemm
        work" (or "col" for BLAS). One input channel and stride 1 (the models' first layer) is
        computed directly where the CPU has AVX-512 (csrc/conv.c)."""
        dtype = x.dtype
        W = as_buffer(self.params[0], dtype)
        FN, C, FH, FW = W.shape
        N = x.shape[1] if x_cnhw else x.shape[0]
        out_h = (x.shape[2] + 2 * self.pad - FH) // self.stride + 1
        out_w = (x.shape[3] + 2 * self.pad - FW) // self.stride + 1
        K, Q = C * FH * FW, out_h * out_w
        W2 = W.reshape(FN, K)
        b = None if relu is None else as_buffer(self.params[1], dtype)
        y = self._scratch.get("y", (FN, N * Q), dtype)
        self._planes = (x, x_cnhw)
        if C == 1 and self.stride == 1 and _core.conv_direct1(x, W, b, self.pad, bool(relu), y):
            return y.reshape(FN, N, out_h, out_w)
        if FN <= _FEW_ROWS:
            m = _block_size(N, K * Q * dtype.itemsize)
            work = _conv_gemm_work(workspace, x, x_cnhw, FH, FW, self.stride, self.pad, m, FN,
                                   False)
            _core.conv_gemm(x, FH, FW, self.stride, self.pad, x_cnhw, W2, b, bool(relu), m,
                            work, y)
            return y.reshape(FN, N, out_h, out_w)
        blocks = self._blocks(N, K * Q * dtype.itemsize)
        col = workspace.flat("col", K * (blocks[0][1] - blocks[0][0]) * Q, dtype)
        for start, stop in blocks:
            c = col[:K * (stop - start) * Q].reshape(K, (stop - start) * Q)
            _core.im2col(x, FH, FW, self.stride, self.pad, c, True, x_cnhw, start, stop)
            np.matmul(W2, c, out=y[:, start * Q:stop * Q])
            if b is not None:
                _core.conv_bias_act(y, b, relu, start * Q, stop * Q)
        return y.reshape(FN, N, out_h, out_w)

    def _weight_grads(self, dy, relu, dW, db, workspace):
        """dW (FN, C*FH*FW) <- dy . col^T and db (FN,) <- the row sums of dy, for dy (FN, N, OH,
        OW) a buffer of dtype that is first masked in place by the ReLU's output (relu: the
        forward ran _forward_planes with relu=True); col in workspace's "conv_gemm work" (or
        "col")."""
        x, x_cnhw = self._planes
        FN, C, FH, FW = self.params[0].shape
        N, Q, K = dy.shape[1], dy.shape[2] * dy.shape[3], C * FH * FW
        y = self._y if relu else None
        if C == 1 and self.stride == 1 and _core.conv_direct1_grads(x, dy, y, FH, FW, self.pad,
                                                                    dW, db):
            return
        dy = dy.reshape(FN, -1)
        _core.conv_act_backward_bias(dy, y, db)
        if FN <= _FEW_ROWS:  # dW^T (K, FN) = col . dy^T summed over the blocks, then transposed
            m = _block_size(N, K * Q * dy.dtype.itemsize)
            work = _conv_gemm_work(workspace, x, x_cnhw, FH, FW, self.stride, self.pad, m, FN,
                                   True)
            dWT = self._scratch.get("dW^T", (K, FN), dy.dtype)
            _core.conv_gemm_wgrad(x, FH, FW, self.stride, self.pad, x_cnhw, dy, m, work, dWT)
            np.copyto(dW, dWT.T)
            return
        blocks = self._blocks(N, K * Q * dy.dtype.itemsize)
        col = workspace.flat("col", K * (blocks[0][1] - blocks[0][0]) * Q, dy.dtype)
        part = self._scratch.get("dW part", dW.shape, dy.dtype) if len(blocks) > 1 else None
        for start, stop in blocks:
            c = col[:K * (stop - start) * Q].reshape(K, (stop - start) * Q)
            _core.im2col(x, FH, FW, self.stride, self.pad, c, True, x_cnhw, start, stop)
            np.matmul(dy[:, start * Q:stop * Q], c.T, out=dW if start == 0 else part)
            if start:
                dW += part

    def _input_grad(self, dy, dx, workspace):
        """dx (C, N, H, W) <- col2im(W^T . dy) for dy (FN, N, OH, OW). With stride 1, square
        filters and pad < FH that is the convolution of dy, padded by FH - 1 - pad, with the
        flipped filters W[f, c, ::-1, ::-1] summed over f: im2col of dy and one product with
        K = FN*FH*FW (no col2im, and no product with only FN terms per element), taken when 2 C >=
        FN (measured: (100,32,14,14) x (64,32,3,3) fwd+bwd 36 -> 31 ms; with fewer channels, as
        (100,1,28,28) x (30,1,5,5), W^T . dy and col2im are faster, 10 ms against 24). The
        products' other operand goes to workspace's "col" (im2col's buffer: the two are never in
        use at once)."""
        W = as_buffer(self.params[0], dy.dtype)
        FN, C, FH, FW = W.shape
        C_, N, H, W_ = dx.shape
        OH, OW = dy.shape[2:]
        dx2 = dx.reshape(C, -1)
        if self.stride == 1 and FH == FW and self.pad < FH and 2 * C >= FN:
            K, HW = FN * FH * FW, H * W_
            flipped = np.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(C, K)
            if C <= _FEW_ROWS:
                m = _block_size(N, K * HW * dy.dtype.itemsize)
                work = _conv_gemm_work(workspace, dy, True, FH, FW, 1, FH - 1 - self.pad, m, C,
                                       False)
                _core.conv_gemm(dy, FH, FW, 1, FH - 1 - self.pad, True, flipped, None, False, m,
                                work, dx2)
                return
            blocks = self._blocks(N, K * HW * dy.dtype.itemsize)
            dcol = workspace.flat("col", K * (blocks[0][1] - blocks[0][0]) * HW, dy.dtype)
            for start, stop in blocks:
                c = dcol[:K * (stop - start) * HW].reshape(K, (stop - start) * HW)
                _core.im2col(dy, FH, FW, 1, FH - 1 - self.pad, c, True, True, start, stop)
                np.matmul(flipped, c, out=dx2[:, start * HW:stop * HW])
            return
        K, Q = C * FH * FW, OH * OW
        W2t, dy2 = W.reshape(FN, K).T, dy.reshape(FN, -1)
        blocks = self._blocks(N, K * Q * dy.dtype.itemsize)
        dcol = workspace.flat("col", K * (blocks[0][1] - blocks[0][0]) * Q, dy.dtype)
        for start, stop in blocks:
            c = dcol[:K * (stop - start) * Q].reshape(K, (stop - start) * Q)
            np.matmul(W2t, dy2[:, start * Q:stop * Q], out=c)
            _core.col2im(c, dx, FH, FW, self.stride, self.pad, True, True, start, stop)

    # ------------------------------------------------------------------ the layer

    def forward(self, x):
        """x: (N, C, H, W) -> (N, FN, out_h, out_w), out_h = conv_output_size(H, FH, stride, pad),
        out_w likewise."""
        x = _images(x)
        N, out_h, out_w = self._check(x)
        W, b = self.params
        self._last = self._reference = self._planes = None
        dtype = _compute_dtype(x, W, b)
        if dtype is None:
            self._reference = _ReferenceConvolution(W, b, self.stride, self.pad)
            out = self._reference.forward(x)
        else:
            planes = self._scratch.get("x", x.shape, dtype)  # the layer's copy: backward reads it
            planes[...] = x
            out = np.empty((N, W.shape[0], out_h, out_w), dtype)
            bias = as_buffer(np.broadcast_to(b, W.shape[:1]), dtype)
            # one input channel, stride 1: computed directly into out, the bias added
            if x.shape[1] == 1 and self.stride == 1 and _core.conv_direct1(
                    planes, as_buffer(W, dtype), bias, self.pad, False, out, True):
                self._planes = (planes, False)
            else:
                _core.swap_outer(self._products(planes, False, None, self._scratch), out, bias)
            self._last = (dtype, x.shape, out.shape)
        self.x = x
        return out

    def backward(self, dout):
        """dout: (N, FN, out_h, out_w) -> dx (N, C, H, W); writes grads = [dW (FN, C, FH, FW),
        db (b's shape)]. Computed in the forward's dtype."""
        if self._reference is not None:
            dx = self._reference.backward(dout)
            _into(self.grads[0], self._reference.grads[0])
            _into(self.grads[1], self._reference.grads[1])
            return dx
        if self._last is None:
            raise RuntimeError("Convolution.backward called before forward")
        dtype, x_shape, out_shape = self._last
        dout = np.asarray(dout)
        if dout.shape != out_shape:
            raise ValueError(f"dout must have the shape of Convolution's last output {out_shape}, "
                             f"got {dout.shape}")
        if dout.dtype.kind not in "biuf":
            raise TypeError(f"dout must be a real number array, got dtype {dout.dtype}")
        N, FN = out_shape[:2]
        dy = self._scratch.get("dy", (FN, N) + out_shape[2:], dtype)
        _core.swap_outer(as_buffer(dout, dtype), dy)
        dW = np.empty((FN, self.params[0][0].size), dtype)
        db = np.empty(FN, dtype)
        self._weight_grads(dy, False, dW, db, self._scratch)
        dx_planes = self._scratch.get("dx", (x_shape[1], N) + x_shape[2:], dtype)
        self._input_grad(dy, dx_planes, self._scratch)
        dx = np.empty(x_shape, dtype)
        _core.swap_outer(dx_planes, dx)
        _into(self.grads[0], dW)
        _into(self.grads[1], bias_grad_as(db, self.grads[1].shape))
        return dx

    # ------------------------------------------------------------------ the models' path

    def _forward_planes(self, x, x_cnhw, relu, workspace):
        """The models' forward: x a float buffer (N, C, H, W), or (C, N, H, W) when x_cnhw, of the
        model's dtype, checked by the model -> act(W . im2col(x) + b) (FN, N, OH, OW), act ReLU
        (relu) or the identity, a buffer of the layer. workspace holds the buffers the model's
        layers share."""
        self._y = self._products(x, x_cnhw, relu, workspace)
        return self._y

    def _backward_planes(self, dy, relu, dW, db, dx_shape, workspace):
        """The models' backward: dy (FN, N, OH, OW), a buffer the layer may overwrite; writes dW
        (FN, C, FH, FW) and db (FN,), new arrays of the model; returns dx (C, N, H, W), a buffer
        of the layer, or None when dx_shape is None (a first layer needs no dx). workspace holds
        the buffers the model's layers share."""
        self._weight_grads(dy, relu, dW.reshape(dW.shape[0], -1), db, workspace)
        if dx_shape is None:
            return None
        dx = self._scratch.get("dx", dx_shape, dy.dtype)
        self._input_grad(dy, dx, workspace)
        return dx


class Pooling:
    """Max pooling over pool_h x pool_w windows, moved by ``stride``; no parameters.

    With pad > 0 the images are zero-padded first, as im2col pads. The first maximum of a window
    wins (as np.argmax) and alone gets the gradient; a NaN in a window is its maximum.
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        conv_output_size(pool_h, pool_h, stride, pad)  # sizes >= 1, stride >= 1, pad >= 0
        conv_output_size(pool_w, pool_w, stride, pad)
        self.params, self.grads = [], []
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None  # the last forward's input, as the book keeps it
        self._scratch = _Scratch()
        self._last = None  # dtype, x's shape, the output's shape, the layouts
        self._reference = None  # the reference layer that computed the last float16 forward
        self._arg = None  # the last forward's window indices (int32), in the output's layout

    @property
    def arg_max(self):
        """The book's arg_max: each window's index of its maximum, windows in (n, i, j, c) order
        (a new int64 array)."""
        if self._reference is not None:
            return self._reference.arg_max
        if self._last is None:
            return None
        arg = self._arg.transpose(1, 0, 2, 3) if self._last[4] else self._arg
        return arg.transpose(0, 2, 3, 1).reshape(-1).astype(np.int64)

    def _sizes(self, h, w):
        return (conv_output_size(h, self.pool_h, self.stride, self.pad),
                conv_output_size(w, self.pool_w, self.stride, self.pad))

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, out_h, out_w), out_h = conv_output_size(H, pool_h, stride,
        pad), out_w likewise."""
        x = _images(x)
        N, C, H, W = x.shape
        out_h, out_w = self._sizes(H, W)
        self._last, self._reference = None, None
        dtype = _compute_dtype(x)
        if dtype is None:
            self._reference = _ReferencePooling(self.pool_h, self.pool_w, self.stride, self.pad)
            out = self._reference.forward(x)
        else:
            out = np.empty((N, C, out_h, out_w), dtype)
            self._arg = self._scratch.get("arg", out.shape, np.int32)
            _core.maxpool_forward(as_buffer(x, dtype), self.pool_h, self.pool_w, self.stride,
                                  self.pad, out, self._arg)
            self._last = (dtype, x.shape, out.shape, False, False)
        self.x = x
        return out

    def backward(self, dout):
        """dout: (N, C, out_h, out_w) -> dx (N, C, H, W): each window's dout goes to its first
        maximum; pixels in several windows (stride < pool size) add their shares."""
        if self._reference is not None:
            return self._reference.backward(dout)
        if self._last is None:
            raise RuntimeError("Pooling.backward called before forward")
        dtype, x_shape, out_shape = self._last[:3]
        dout = np.asarray(dout)
        if dout.shape != out_shape:
            raise ValueError(f"dout must have the shape of Pooling's last output {out_shape}, "
                             f"got {dout.shape}")
        if dout.dtype.kind not in "biuf":
            raise TypeError(f"dout must be a real number array, got dtype {dout.dtype}")
        dtype = _compute_dtype(dout, dtype) or dtype
        dx = np.empty(x_shape, dtype)
        _core.maxpool_backward(as_buffer(dout, dtype), self._arg, dx, self.pool_h, self.pool_w,
                               self.stride, self.pad)
        return dx

    # ------------------------------------------------------------------ the models' path

    def _forward_planes(self, x, x_cnhw, out_cnhw):
        """The models' forward: x a float buffer (N, C, H, W) or (C, N, H, W) (x_cnhw), checked by
        the model -> the pooled planes in (N, C, OH, OW) or (C, N, OH, OW) (out_cnhw), a buffer
        of the layer."""
        a, b, H, W = x.shape
        shape = (a, b) + self._sizes(H, W)
        if x_cnhw != out_cnhw:
            shape = (b, a) + shape[2:]
        out = self._scratch.get("out", shape, x.dtype)
        self._arg = self._scratch.get("arg", shape, np.int32)
        _core.maxpool_forward(x, self.pool_h, self.pool_w, self.stride, self.pad, out, self._arg,
                              x_cnhw, out_cnhw)
        self._last = (x.dtype, x.shape, shape, x_cnhw, out_cnhw)
        return out

    def _backward_planes(self, dout):
        """The models' backward: dout (a float buffer shaped as _forward_planes' output) -> dx
        shaped as its x, a buffer of the layer."""
        dtype, x_shape, _, x_cnhw, out_cnhw = self._last
        dx = self._scratch.get("dx", x_shape, dtype)
        _core.maxpool_backward(dout, self._arg, dx, self.pool_h, self.pool_w, self.stride,
                               self.pad, x_cnhw, out_cnhw)
        return dx
