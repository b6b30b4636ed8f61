"""Benchmarks: fastnn against the book's code, measured side by side in one process.

The baseline of every row is the book's code for that workload (SPEC section 14): the formulas of
"Deep Learning from Scratch" (volume 1 common/, volume 2 common/) written out below in plain NumPy,
what a reader runs instead of fastnn. The ratio is book time / fastnn time; the timed callables of a
row alternate run by run and each time is the median of its runs. `fastnn.reference`, PyTorch and
JAX (when installed) are further columns, never the denominator. Where a bound is known it is
printed: the bytes the workload must move at the memory bandwidth measured in the same run, or the
FLOPs of its matrix products at the GEMM rate measured in the same run. A memory row (Peaks)
prints the peak bytes of a training step instead, each column measured in a fresh process, and
the ratio book bytes / fastnn bytes. Nothing here asserts a speed or a size.

    python -m fastnn.bench [kernels|models|ch6|conv ...] [--threads N] [--quick] [--json FILE]
                           [-k TEXT] [--no-torch] [--list]
    python -m fastnn.bench --markdown run1.json run2.json ...   (the README's table, with ranges)

One implementation serves `bench/*.py` and `fastnn bench`.
"""
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import fastnn
from fastnn import _core, reference

_MIB = 1 << 20
GROUPS = ("kernels", "models", "ch6", "conv")


# --------------------------------------------------------------------------- the book's code
# Compact NumPy versions of the book's layers, from its equations: the same operations in the
# same order (temporaries, copies and all), so their time is the book's. One departure: the book's
# im2col / col2im / Pooling.backward allocate with np.zeros' default float64, which turns a float32
# network's convolutions into float64 ones; here they allocate in the input's dtype (faster).

def book_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def book_softmax_v1(x):
    """Volume 1: exp computed twice."""
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def book_softmax_v2(x):
    """Volume 2 (2-D input): exp once, normalised in place."""
    x = x - x.max(axis=1, keepdims=True)
    x = np.exp(x)
    x /= x.sum(axis=1, keepdims=True)
    return x


def book_cross_entropy(y, t):
    n = y.shape[0]
    return -np.sum(np.log(y[np.arange(n), t] + 1e-7)) / n


def book_numerical_gradient(f, x, h=1e-4):
    """Volume 1's central differences, one element at a time through np.nditer."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        i = it.multi_index
        keep = x[i]
        x[i] = keep + h
        up = f(x)
        x[i] = keep - h
        down = f(x)
        grad[i] = (up - down) / (2 * h)
        x[i] = keep
        it.iternext()
    return grad


def book_im2col(x, fh, fw, stride=1, pad=0):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((n, c, fh, fw, oh, ow), x.dtype)
    for i in range(fh):
        for j in range(fw):
            col[:, :, i, j] = img[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def book_col2im(col, shape, fh, fw, stride=1, pad=0):
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1), col.dtype)
    for i in range(fh):
        for j in range(fw):
            img[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += col[:, :, i, j]
    return img[:, :, pad:h + pad, pad:w + pad]


class BookAffine:
    def __init__(self, W, b, keys=()):
        self.W, self.b, self.keys, self.flops = W, b, keys, 0

    def forward(self, x):
        self.shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        self.flops = 2 * self.x.shape[0] * self.W.size  # per product, for the GEMM bound
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        self.grads = (np.dot(self.x.T, dout), np.sum(dout, axis=0))
        return np.dot(dout, self.W.T).reshape(self.shape)


class BookSigmoid:
    def forward(self, x):
        self.out = book_sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class BookRelu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class BookDropout:
    def __init__(self, ratio):
        self.ratio = ratio

    def forward(self, x, train_flg=True):
        self.mask = np.random.rand(*x.shape) > self.ratio
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class BookBatchNorm:
    """Volume 1's BatchNormalization in training mode, on (N, D) (4-D input: flattened per
    sample)."""

    def __init__(self, gamma, beta, momentum=0.9, keys=()):
        self.gamma, self.beta, self.momentum, self.keys = gamma, beta, momentum, keys
        self.running_mean = self.running_var = None

    def forward(self, x, train_flg=True):
        self.shape = x.shape
        x = x.reshape(x.shape[0], -1)
        if self.running_mean is None:
            self.running_mean, self.running_var = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        mu = x.mean(axis=0)
        xc = x - mu
        var = np.mean(xc ** 2, axis=0)
        std = np.sqrt(var + 10e-7)
        self.xn = xc / std
        self.xc, self.std = xc, std
        self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
        self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        return (self.gamma * self.xn + self.beta).reshape(self.shape)

    def backward(self, dout):
        dout = dout.reshape(dout.shape[0], -1)
        n = dout.shape[0]
        dbeta = dout.sum(axis=0)
        dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / n) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        self.grads = (dgamma, dbeta)
        return (dxc - dmu / n).reshape(self.shape)


class BookConvolution:
    def __init__(self, W, b, stride=1, pad=0, keys=()):
        self.W, self.b, self.stride, self.pad, self.keys, self.flops = W, b, stride, pad, keys, 0

    def forward(self, x):
        fn, c, fh, fw = self.W.shape
        n, _, h, w = x.shape
        oh = (h + 2 * self.pad - fh) // self.stride + 1
        ow = (w + 2 * self.pad - fw) // self.stride + 1
        self.x, self.col = x, book_im2col(x, fh, fw, self.stride, self.pad)
        self.col_W = self.W.reshape(fn, -1).T
        self.flops = 2 * self.col.shape[0] * self.col_W.size
        out = np.dot(self.col, self.col_W) + self.b
        return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)

    def backward(self, dout):
        fn, c, fh, fw = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, fn)
        db = np.sum(dout, axis=0)
        dW = np.dot(self.col.T, dout).transpose(1, 0).reshape(fn, c, fh, fw)
        self.grads = (dW, db)
        dcol = np.dot(dout, self.col_W.T)
        return book_col2im(dcol, self.x.shape, fh, fw, self.stride, self.pad)


class BookPooling:
    def __init__(self, ph, pw, stride=2, pad=0):
        self.ph, self.pw, self.stride, self.pad = ph, pw, stride, pad

    def forward(self, x):
        n, c, h, w = x.shape
        oh, ow = (h - self.ph) // self.stride + 1, (w - self.pw) // self.stride + 1
        col = book_im2col(x, self.ph, self.pw, self.stride, self.pad).reshape(-1, self.ph * self.pw)
        self.x, self.arg_max = x, np.argmax(col, axis=1)
        return np.max(col, axis=1).reshape(n, oh, ow, c).transpose(0, 3, 1, 2)

    def backward(self, dout):
        dout = dout.transpose(0, 2, 3, 1)
        size = self.ph * self.pw
        dmax = np.zeros((dout.size, size), dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dcol = dmax.reshape(dout.shape + (size,)).reshape(-1, size * dout.shape[3])
        return book_col2im(dcol, self.x.shape, self.ph, self.pw, self.stride, self.pad)


class BookSoftmaxWithLoss:
    def __init__(self, softmax):
        self.softmax = softmax

    def forward(self, x, t):
        self.t, self.y = t, self.softmax(x)
        return book_cross_entropy(self.y, t)

    def backward(self, dout=1):
        n = self.t.shape[0]
        dx = self.y.copy()
        dx[np.arange(n), self.t] -= 1
        if self.softmax is book_softmax_v2:  # volume 2 scales by dout, volume 1 does not
            dx *= dout
        return dx / n


class BookNet:
    """The book's network pattern: layers, SoftmaxWithLoss, gradient() -> dict. weight_decay None:
    no decay term (the ConvNets); a number (MultiLayerNet*): the book's L2 term in the loss and
    dW + lambda W in the gradient, computed also when lambda is 0, as the book does. copy_grads:
    volume 2 copies each gradient into an array of its grads list."""

    def __init__(self, params, layers, softmax=book_softmax_v1, weight_decay=None,
                 copy_grads=False):
        self.params, self.layers = params, layers
        self.last = BookSoftmaxWithLoss(softmax)
        self.weight_decay = weight_decay
        self.grads = {k: np.zeros_like(p) for k, p in params.items()} if copy_grads else None

    def loss(self, x, t):
        for layer in self.layers:
            train = isinstance(layer, (BookDropout, BookBatchNorm))
            x = layer.forward(x, True) if train else layer.forward(x)
        decay = 0
        if self.weight_decay is not None:
            for k, W in self.params.items():
                if k.startswith("W"):
                    decay += 0.5 * self.weight_decay * np.sum(W ** 2)
        return self.last.forward(x, t) + decay

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last.backward(1)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        grads = {}
        for layer in self.layers:
            for k, g in zip(getattr(layer, "keys", ()), getattr(layer, "grads", ())):
                if self.weight_decay is not None and k.startswith("W"):
                    g = g + self.weight_decay * layer.W
                grads[k] = g
        if self.grads is not None:
            for k, g in grads.items():
                self.grads[k][...] = g
            return self.grads
        return grads

    def product_flops(self):
        """FLOPs of the matrix products of one training step: each layer's forward product, its
        dW product and its dx product, except dx of the first layer (no step needs it)."""
        f = [layer.flops for layer in self.layers if hasattr(layer, "flops")]
        return 3 * sum(f) - f[0]


def book_sgd(lr):
    def update(params, grads):
        for k in params:
            params[k] -= lr * grads[k]
    return update


def book_adam(lr=0.001, beta1=0.9, beta2=0.999):
    state = {"iter": 0, "m": None, "v": None}

    def update(params, grads):
        if state["m"] is None:
            state["m"] = {k: np.zeros_like(p) for k, p in params.items()}
            state["v"] = {k: np.zeros_like(p) for k, p in params.items()}
        state["iter"] += 1
        it, m, v = state["iter"], state["m"], state["v"]
        lr_t = lr * np.sqrt(1.0 - beta2 ** it) / (1.0 - beta1 ** it)
        for k in params:
            m[k] += (1 - beta1) * (grads[k] - m[k])
            v[k] += (1 - beta2) * (grads[k] ** 2 - v[k])
            params[k] -= lr_t * m[k] / (np.sqrt(v[k]) + 1e-7)
    return update


def _he(rng, shape, fan_in, dtype):
    return (np.sqrt(2.0 / fan_in) * rng.standard_normal(shape)).astype(dtype)


def book_two_layer_net(rng, sizes, dtype=np.float64, std=0.01):
    """Volume 2's TwoLayerNet: Affine, Sigmoid, Affine, SoftmaxWithLoss (volume 2's softmax)."""
    i, h, o = sizes
    params = {"W1": (std * rng.standard_normal((i, h))).astype(dtype), "b1": np.zeros(h, dtype),
              "W2": (std * rng.standard_normal((h, o))).astype(dtype), "b2": np.zeros(o, dtype)}
    layers = [BookAffine(params["W1"], params["b1"], ("W1", "b1")), BookSigmoid(),
              BookAffine(params["W2"], params["b2"], ("W2", "b2"))]
    return BookNet(params, layers, book_softmax_v2, copy_grads=True)


def book_multi_layer_net(rng, sizes, batchnorm=False, dropout=None, weight_decay=0):
    """Volume 1's MultiLayerNet / MultiLayerNetExtend, ReLU, He initialisation."""
    params, layers = {}, []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
        params[f"W{k}"], params[f"b{k}"] = _he(rng, (a, b), a, np.float64), np.zeros(b)
        layers.append(BookAffine(params[f"W{k}"], params[f"b{k}"], (f"W{k}", f"b{k}")))
        if k == len(sizes) - 1:
            break
        if batchnorm:
            params[f"gamma{k}"], params[f"beta{k}"] = np.ones(b), np.zeros(b)
            layers.append(BookBatchNorm(params[f"gamma{k}"], params[f"beta{k}"],
                                        keys=(f"gamma{k}", f"beta{k}")))
        layers.append(BookRelu())
        if dropout is not None:
            layers.append(BookDropout(dropout))
    return BookNet(params, layers, weight_decay=weight_decay)


def book_simple_convnet(rng, dtype=np.float64, std=0.01):
    """Volume 1's SimpleConvNet: conv 30x5x5 - relu - pool 2 - affine 100 - relu - affine 10."""
    p = {"W1": std * rng.standard_normal((30, 1, 5, 5)), "b1": np.zeros(30),
         "W2": std * rng.standard_normal((30 * 12 * 12, 100)), "b2": np.zeros(100),
         "W3": std * rng.standard_normal((100, 10)), "b3": np.zeros(10)}
    p = {k: v.astype(dtype) for k, v in p.items()}
    layers = [BookConvolution(p["W1"], p["b1"], 1, 0, ("W1", "b1")), BookRelu(),
              BookPooling(2, 2, 2),
              BookAffine(p["W2"], p["b2"], ("W2", "b2")), BookRelu(),
              BookAffine(p["W3"], p["b3"], ("W3", "b3"))]
    return BookNet(p, layers)


DEEP_CONVS = ((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1))  # (filters, pad), 3x3, stride 1


def book_deep_convnet(rng, dtype=np.float64):
    """Volume 1's DeepConvNet (chapter 8): 6 conv-relu (pool after 2, 4, 6), affine 50 - relu -
    dropout 0.5 - affine 10 - dropout 0.5."""
    p, layers, channels = {}, [], 1
    for k, (filters, pad) in enumerate(DEEP_CONVS, 1):
        p[f"W{k}"] = _he(rng, (filters, channels, 3, 3), channels * 9, dtype)
        p[f"b{k}"] = np.zeros(filters, dtype)
        layers += [BookConvolution(p[f"W{k}"], p[f"b{k}"], 1, pad, (f"W{k}", f"b{k}")), BookRelu()]
        if k % 2 == 0:
            layers.append(BookPooling(2, 2, 2))
        channels = filters
    p["W7"], p["b7"] = _he(rng, (64 * 4 * 4, 50), 64 * 4 * 4, dtype), np.zeros(50, dtype)
    p["W8"], p["b8"] = _he(rng, (50, 10), 50, dtype), np.zeros(10, dtype)
    layers += [BookAffine(p["W7"], p["b7"], ("W7", "b7")), BookRelu(), BookDropout(0.5),
               BookAffine(p["W8"], p["b8"], ("W8", "b8")), BookDropout(0.5)]
    return BookNet(p, layers)


# --------------------------------------------------------------------------- timing

def median_time(fn, min_seconds=0.02, repeat=7):
    """Median seconds per call of fn over `repeat` runs of enough calls to last min_seconds."""
    return interleaved({"fn": fn}, min_seconds, repeat)["fn"]


def interleaved(fns, min_seconds=0.02, repeat=7, settle=None):
    """{name: median seconds per call}: each fn warmed up once, then `repeat` rounds (at most 3 when
    a call takes over a second) in which every fn runs enough calls to last min_seconds, the fns
    taking turns (so a drift in the machine's speed reaches them alike). settle() runs before each
    timed run, then one untimed call: the steps of a training loop follow one another, and the
    first call after the pause pays for waking the idle cores (a 2-thread SimpleConvNet float32
    step timed in runs of 3 calls: 5.8 ms back to back, 9.9 right after a 0.15 s pause)."""
    number, slowest = {}, 0.0
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        number[name], slowest = max(1, int(min_seconds / max(once, 1e-9))), max(slowest, once)
    if slowest > 1:  # a call of seconds (the DeepConvNet step): 3 rounds are enough
        repeat = min(repeat, 3)
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            if settle:
                settle()
                fn()
            start = time.perf_counter()
            for _ in range(number[name]):
                fn()
            times[name].append((time.perf_counter() - start) / number[name])
    return {name: statistics.median(t) for name, t in times.items()}


def memory_bandwidth(nbytes=64 * _MIB, repeat=5):
    """Bytes per second (read + write) of a NumPy copy of nbytes, measured now."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    return 2 * nbytes / median_time(lambda: np.copyto(dst, src), repeat=repeat)


def read_bandwidth(nbytes=64 * _MIB, repeat=5):
    """Bytes per second read by BLAS's dot of an nbytes array with itself (one pass over it),
    measured now: a pure read stream, faster than a copy's."""
    a = np.ones(nbytes // 8)
    return nbytes / median_time(lambda: np.dot(a, a), repeat=repeat)


def gemm_rate(dtype, n=1024, repeat=5):
    """FLOPs per second of matrix products of dtype, measured now: the faster of NumPy's BLAS on
    (n, n) @ (n, n) and fastnn's gemm_narrow on (n / 4, n)^T @ (n / 4, 64) (the BLAS NumPy ships
    may not use this CPU's widest vectors: OpenBLAS's Haswell kernels on Zen 4 run at half
    gemm_narrow's AVX-512 rate, and a bound fastnn's own products beat would be no bound)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    out = np.empty_like(a)
    blas = 2 * n ** 3 / median_time(lambda: np.dot(a, a, out=out), repeat=repeat)
    k = n // 4
    a_t, b, narrow = a[:k].copy(), a[:k, :64].copy(), np.empty((n, 64), dtype)
    fast = 2 * k * n * 64 / median_time(lambda: _core.gemm_narrow(a_t, b, narrow, True),
                                        repeat=repeat)
    return max(blas, fast)


# --------------------------------------------------------------------------- workloads

@dataclass
class Timed:
    """What one row times. book and fast are required; reference is fastnn.reference's version;
    torch / jax take the imported module and return the callable (built only when installed).
    The bound is nbytes at the measured bandwidth (read bandwidth if reads_only), or flops (a
    number or a function called after the timings) at the measured GEMM rate of dtype, or the
    measured time of the floor callable. scale multiplies a column's time (a callable that runs a
    known share of the workload, e.g. the book's numerical gradient on 100 parameters)."""

    book: Callable
    fast: Callable
    reference: Optional[Callable] = None
    torch: Optional[Callable] = None
    jax: Optional[Callable] = None
    nbytes: Optional[int] = None
    reads_only: bool = False
    flops: object = None
    dtype: type = np.float64
    floor: Optional[Callable] = None
    scale: dict = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Workload:
    group: str
    name: str
    make: Callable[[], Timed]
    needs: tuple = ()  # names fastnn must export (rows of layers other helpers add)

    def available(self):
        return all(hasattr(fastnn, n) for n in self.needs)


def _rng():
    return np.random.default_rng(0)  # every row's data from the same seed: the same each build


def _dtype_name(dtype):
    return np.dtype(dtype).name


def _mnist_like(n, size, rng, dtype=np.float64, dense=False):
    """n rows of size pixels in [0, 1], about 80% of them zero as in MNIST (dense: none zero), and
    int64 labels 0..9."""
    x = rng.random((n, size))
    if not dense:
        x *= rng.random((n, size)) < 0.2
    return x.astype(dtype), rng.integers(0, 10, n)


def _softmax_ce(n, c):
    rng = _rng()
    x, t = rng.standard_normal((n, c)), rng.integers(0, c, n)
    book = BookSoftmaxWithLoss(book_softmax_v2)
    fast, ref = fastnn.SoftmaxWithLoss(), reference.SoftmaxWithLoss()

    def torch(torch):
        xt, tt = torch.tensor(x), torch.tensor(t)

        def fn():
            xg = xt.detach().requires_grad_()
            torch.nn.functional.cross_entropy(xg, tt).backward()
            return xg.grad
        return fn

    def jax(jax):
        f = jax.jit(jax.value_and_grad(lambda x, t: -jax.numpy.mean(
            jax.nn.log_softmax(x)[jax.numpy.arange(x.shape[0]), t])))
        xj, tj = jax.numpy.asarray(x), jax.numpy.asarray(t)
        return lambda: jax.block_until_ready(f(xj, tj))

    return Timed(lambda: (book.forward(x, t), book.backward()),
                 lambda: (fast.forward(x, t), fast.backward()),
                 lambda: (ref.forward(x, t), ref.backward()), torch, jax, nbytes=4 * x.nbytes,
                 note="the book: volume 2's softmax (one exp) and SoftmaxWithLoss")


def _sigmoid(shape):
    rng = _rng()
    x, dout = rng.standard_normal(shape), rng.standard_normal(shape)
    layers = BookSigmoid(), fastnn.Sigmoid(), reference.Sigmoid()

    def torch(torch):
        xt, dt = torch.tensor(x), torch.tensor(dout)

        def fn():
            xg = xt.detach().requires_grad_()
            torch.sigmoid(xg).backward(dt)
            return xg.grad
        return fn

    def jax(jax):
        f = jax.jit(lambda x, d: jax.vjp(jax.nn.sigmoid, x)[1](d))
        xj, dj = jax.numpy.asarray(x), jax.numpy.asarray(dout)
        return lambda: jax.block_until_ready(f(xj, dj))

    fb, ff, fr = ((lambda l=l: (l.forward(x), l.backward(dout))) for l in layers)
    return Timed(fb, ff, fr, torch, jax, nbytes=5 * x.nbytes)


def _bias_grad(n, d, dtype):
    dout = _rng().standard_normal((n, d)).astype(dtype)

    def torch(torch):
        dt = torch.tensor(dout)
        return lambda: dt.sum(0)

    def jax(jax):
        f, dj = jax.jit(lambda d: d.sum(0)), jax.numpy.asarray(dout)
        return lambda: jax.block_until_ready(f(dj))

    return Timed(lambda: np.sum(dout, axis=0), lambda: fastnn.bias_grad(dout),
                 lambda: reference.bias_grad(dout), torch, jax, nbytes=dout.nbytes, reads_only=True)


def _numerical_gradient(size):
    x = _rng().standard_normal(size)

    def f(w):
        return np.sum(w ** 2)

    def calls_only():
        for _ in range(2 * size):
            f(x)

    return Timed(lambda: book_numerical_gradient(f, x), lambda: fastnn.numerical_gradient(f, x),
                 lambda: reference.numerical_gradient(f, x), floor=calls_only,
                 note="bound = the 2n calls of f alone, timed")


def _model_numerical_gradient(subset_rows=2):
    """TwoLayerNetwork(784, 50, 10), batch 100: the whole fast numerical gradient against the book's
    (volume 1, chapter 4) and the reference's loops over W1[:subset_rows], extrapolated."""
    rng = _rng()
    x, t = _mnist_like(100, 784, rng)
    book = book_two_layer_net(_rng(), (784, 50, 10))
    p = book.params

    def book_loss(_):
        z = book_sigmoid(np.dot(x, p["W1"]) + p["b1"])
        return book_cross_entropy(book_softmax_v1(np.dot(z, p["W2"]) + p["b2"]), t)

    fast = fastnn.TwoLayerNetwork(784, 50, 10, seed=0)
    ref = reference.TwoLayerNetwork(784, 50, 10, seed=0)
    n_params = sum(v.size for v in p.values())
    ref_subset = ref.params["W1"][:subset_rows]  # views: the loops perturb the live W1
    book_subset = p["W1"][:subset_rows]
    scale = n_params / book_subset.size
    return Timed(lambda: book_numerical_gradient(book_loss, book_subset),
                 lambda: fast.numerical_gradient(x, t),
                 lambda: reference.numerical_gradient(lambda W: ref.loss(x, t), ref_subset),
                 scale={"book": scale, "reference": scale},
                 note=f"book and reference timed on W1[:{subset_rows}] ({book_subset.size} of "
                      f"{n_params} parameters) and extrapolated")


def _two_layer_torch(torch, params, lr=0.1):
    """A PyTorch TwoLayerNet step factory: step(x, t) on tensors."""
    W1, b1, W2, b2 = (torch.tensor(np.array(v)).requires_grad_() for v in params)

    def step(xt, tt):
        scores = torch.sigmoid(xt @ W1 + b1) @ W2 + b2
        torch.nn.functional.cross_entropy(scores, tt).backward()
        with torch.no_grad():
            for q in (W1, b1, W2, b2):
                q -= lr * q.grad
                q.grad = None
    return step


def _two_layer_step(hidden, batch, dtype, dense=False):
    """One step of volume 2's TwoLayerNet(784, hidden, 10) with SGD lr 0.1: forward, backward,
    update."""
    rng = _rng()
    x, t = _mnist_like(batch, 784, rng, dtype, dense)
    book = book_two_layer_net(_rng(), (784, hidden, 10), dtype)
    sgd = book_sgd(0.1)
    steps = []
    for half in (fastnn, reference):
        net, opt = half.TwoLayerNet(784, hidden, 10, dtype=dtype, seed=0), half.SGD(lr=0.1)
        steps.append(lambda net=net, opt=opt: (net.forward(x, t), net.backward(),
                                               opt.update(net.params, net.grads)))

    def torch(torch):
        step = _two_layer_torch(torch, book.params.values())
        xt, tt = torch.tensor(x), torch.tensor(t)
        return lambda: step(xt, tt)

    flops = 4 * batch * 784 * hidden + 6 * batch * hidden * 10
    return Timed(lambda: sgd(book.params, book.gradient(x, t)), *steps, torch, flops=flops,
                 dtype=dtype, note="" if dense else
                 "sparse input: the bound counts dense products; fastnn skips x's zeros")


def _main_job(steps, batch=100):
    """The main job: TwoLayerNet 64-50-10 on the bundled digits, SGD lr 0.1, `steps` mini-batches
    drawn with replacement (the same batches for every column): the book's volume-2 loop, fastnn's
    TwoLayerNet.train_steps an epoch of steps per call (as `fastnn train`), the reference's loop."""
    (x, t), _ = fastnn.load_digits()
    x, t = x.astype(np.float64), t.astype(np.int64)
    masks = _rng().integers(0, len(x), (steps, batch))
    book, sgd = book_two_layer_net(_rng(), (64, 50, 10)), book_sgd(0.1)

    def book_loop():
        for m in masks:
            sgd(book.params, book.gradient(x[m], t[m]))

    fast_net = fastnn.TwoLayerNet(64, 50, 10, seed=0)
    epoch = -(-len(x) // batch)  # fastnn train's chunk: an epoch of steps per compiled call

    def fast_loop():
        for start in range(0, steps, epoch):
            fast_net.train_steps(x, t, masks[start:start + epoch], 0.1)

    ref_net, ref_opt = reference.TwoLayerNet(64, 50, 10, seed=0), reference.SGD(lr=0.1)

    def ref_loop():
        for m in masks:
            ref_net.forward(x[m], t[m])
            ref_net.backward()
            ref_opt.update(ref_net.params, ref_net.grads)
    loops = [fast_loop, ref_loop]

    def torch(torch):
        step = _two_layer_torch(torch, book.params.values())
        xt, tt, mt = torch.tensor(x), torch.tensor(t), torch.tensor(masks)

        def loop():
            for m in mt:
                step(xt[m], tt[m])
        return loop

    flops = steps * (4 * batch * 64 * 50 + 6 * batch * 50 * 10)
    return Timed(book_loop, *loops, torch, flops=flops,
                 note=f"{steps} steps per call; fastnn: train_steps, {epoch} steps a call")


def _mlp_torch(torch, params, sizes, lr=0.01):
    Ws = [torch.tensor(np.array(params[f"{n}{k}"])).requires_grad_()
          for k in range(1, len(sizes)) for n in "Wb"]

    def step(xt, tt):
        h = xt
        for k in range(0, len(Ws), 2):
            h = h @ Ws[k] + Ws[k + 1]
            if k + 2 < len(Ws):
                h = torch.relu(h)
        torch.nn.functional.cross_entropy(h, tt).backward()
        with torch.no_grad():
            for q in Ws:
                q -= lr * q.grad
                q.grad = None
    return step


def _multi_layer_step(hidden_layers, batchnorm=False, dropout=None, weight_decay=0):
    """One SGD (lr 0.01) step of volume 1's MultiLayerNet(Extend) 784-[100]xL-10, ReLU, batch
    100."""
    rng = _rng()
    x, t = _mnist_like(100, 784, rng)
    sizes = [784] + [100] * hidden_layers + [10]
    book = book_multi_layer_net(_rng(), sizes, batchnorm, dropout, weight_decay)
    sgd = book_sgd(0.01)
    kwargs = {"weight_decay_lambda": weight_decay}
    if batchnorm or dropout is not None:
        kwargs.update(use_batchnorm=batchnorm, use_dropout=dropout is not None,
                      dropout_ration=dropout or 0.5)
    cls = "MultiLayerNetExtend" if len(kwargs) > 1 else "MultiLayerNet"
    steps = []
    for half in (fastnn, reference):
        if not hasattr(half, cls):
            steps.append(None)
            continue
        net, opt = getattr(half, cls)(784, sizes[1:-1], 10, **kwargs), half.SGD(lr=0.01)
        steps.append(lambda net=net, opt=opt: opt.update(net.params, net.gradient(x, t)))

    def torch(torch):  # the plain ReLU network only
        step, xt, tt = _mlp_torch(torch, book.params, sizes), torch.tensor(x), torch.tensor(t)
        return lambda: step(xt, tt)

    plain = not batchnorm and dropout is None and not weight_decay
    return Timed(lambda: sgd(book.params, book.gradient(x, t)), steps[0], steps[1],
                 torch if plain else None, flops=book.product_flops)


def _batchnorm(n, d):
    rng = _rng()
    x, dout = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    gamma, beta = 1 + 0.1 * rng.standard_normal(d), 0.1 * rng.standard_normal(d)
    layers = [BookBatchNorm(gamma.copy(), beta.copy())]
    for half in (fastnn, reference):
        cls = getattr(half, "BatchNormalization", None)
        layers.append(cls(gamma.copy(), beta.copy()) if cls else None)

    def torch(torch):
        xt, dt = torch.tensor(x), torch.tensor(dout)
        g, b = torch.tensor(gamma).requires_grad_(), torch.tensor(beta).requires_grad_()

        def fn():
            xg = xt.detach().requires_grad_()
            torch.nn.functional.batch_norm(xg, None, None, g, b, training=True,
                                           eps=10e-7).backward(dt)
            return xg.grad
        return fn

    fns = [(lambda l=l: (l.forward(x, True), l.backward(dout))) if l else None for l in layers]
    return Timed(*fns, torch, nbytes=5 * x.nbytes)


def _convolution(x_shape, w_shape, pad=0, dtype=np.float64):
    rng = _rng()
    x = rng.standard_normal(x_shape).astype(dtype)
    W = (0.1 * rng.standard_normal(w_shape)).astype(dtype)
    b = (0.1 * rng.standard_normal(w_shape[0])).astype(dtype)
    layers = [BookConvolution(W, b, 1, pad)]
    for half in (fastnn, reference):
        cls = getattr(half, "Convolution", None)
        layers.append(cls(W.copy(), b.copy(), 1, pad) if cls else None)
    dout = rng.standard_normal(layers[0].forward(x).shape).astype(dtype)

    def torch(torch):
        xt, Wt, bt, dt = (torch.tensor(a) for a in (x, W, b, dout))

        def fn():
            xg, Wg, bg = (a.detach().requires_grad_() for a in (xt, Wt, bt))
            torch.nn.functional.conv2d(xg, Wg, bg, padding=pad).backward(dt)
            return xg.grad
        return fn

    fns = [(lambda l=l: (l.forward(x), l.backward(dout))) if l else None for l in layers]
    return Timed(*fns, torch, flops=3 * layers[0].flops, dtype=dtype)


def _pooling(x_shape):
    rng = _rng()
    x = rng.standard_normal(x_shape)
    layers = [BookPooling(2, 2, 2)]
    for half in (fastnn, reference):
        cls = getattr(half, "Pooling", None)
        layers.append(cls(2, 2, 2) if cls else None)
    dout = rng.standard_normal(layers[0].forward(x).shape)

    def torch(torch):
        xt, dt = torch.tensor(x), torch.tensor(dout)

        def fn():
            xg = xt.detach().requires_grad_()
            torch.nn.functional.max_pool2d(xg, 2, 2).backward(dt)
            return xg.grad
        return fn

    fns = [(lambda l=l: (l.forward(x), l.backward(dout))) if l else None for l in layers]
    return Timed(*fns, torch, nbytes=x.nbytes * 5 // 2)


def _convnet_torch(torch, params, deep):
    """PyTorch's SimpleConvNet / DeepConvNet step with torch.optim.Adam(lr=0.001)."""
    F = torch.nn.functional
    p = {k: torch.tensor(np.array(v)).requires_grad_() for k, v in params.items()}
    opt = torch.optim.Adam(p.values(), lr=0.001)

    def step(xt, tt):
        if deep:
            h = xt
            for k, (_, pad) in enumerate(DEEP_CONVS, 1):
                h = F.relu(F.conv2d(h, p[f"W{k}"], p[f"b{k}"], padding=pad))
                if k % 2 == 0:
                    h = F.max_pool2d(h, 2, 2)
            h = F.dropout(F.relu(h.flatten(1) @ p["W7"] + p["b7"]), 0.5)
            h = F.dropout(h @ p["W8"] + p["b8"], 0.5)
        else:
            h = F.max_pool2d(F.relu(F.conv2d(xt, p["W1"], p["b1"])), 2, 2)
            h = F.relu(h.flatten(1) @ p["W2"] + p["b2"]) @ p["W3"] + p["b3"]
        opt.zero_grad()
        F.cross_entropy(h, tt).backward()
        opt.step()
    return step


def _convnet_data(dtype):
    """The convnet rows' batch: 100 MNIST-like (1, 28, 28) images of dtype and their labels."""
    x, t = _mnist_like(100, 784, _rng(), dtype)
    return x.reshape(100, 1, 28, 28), t


def _convnet_book_step(deep, dtype, x, t):
    """The book's SimpleConvNet / DeepConvNet and its step (gradient + Adam lr 0.001)."""
    book = (book_deep_convnet if deep else book_simple_convnet)(_rng(), dtype=dtype)
    adam = book_adam()
    return book, lambda: adam(book.params, book.gradient(x, t))


def _convnet_half_step(half, deep, dtype, x, t):
    """The step (gradient + Adam lr 0.001) of half's (fastnn's or the reference's) SimpleConvNet
    / DeepConvNet, or None when half has no such class."""
    cls = "DeepConvNet" if deep else "SimpleConvNet"
    if not hasattr(half, cls):
        return None
    net = getattr(half, cls)(**({} if dtype == np.float64 else {"dtype": dtype}))
    opt = half.Adam(lr=0.001)
    return lambda: opt.update(net.params, net.gradient(x, t))


def _convnet_step(deep, dtype):
    """One step (gradient + Adam lr 0.001, as the book's train_convnet.py / train_deepnet.py) of
    SimpleConvNet or DeepConvNet, batch 100 of MNIST-like (1, 28, 28) input."""
    x, t = _convnet_data(dtype)
    book, book_step = _convnet_book_step(deep, dtype, x, t)

    def torch(torch):
        step, xt, tt = _convnet_torch(torch, book.params, deep), torch.tensor(x), torch.tensor(t)
        return lambda: step(xt, tt)

    return Timed(book_step, _convnet_half_step(fastnn, deep, dtype, x, t),
                 _convnet_half_step(reference, deep, dtype, x, t), torch,
                 flops=book.product_flops, dtype=dtype)


# --------------------------------------------------------------------------- peak memory
#
# The RSS high-water mark only grows within a process, so each column is measured in a fresh
# Python process of its own (_peak_child, started by Peaks.measure). The mark read is VmHWM, the
# new process image's own: ru_maxrss keeps the mark of the image before the exec, so a child of a
# bench process grown to 400 MB reports at least 400 MB.

_PEAK_COLUMNS = (("book", "book", "float64"), ("fast", "fastnn", "float64"),
                 ("fast_float32", "fastnn", "float32"), ("reference", "reference", "float64"),
                 ("torch", "torch", "float64"))
_PEAK_FIGURES = (("tracemalloc", "tracemalloc peak"), ("rss", "RSS high-water mark"))


@dataclass
class Peaks:
    """What a memory row measures: the peak memory of one training step (gradient + Adam, batch
    100, as the timed rows) of the DeepConvNet (deep) or SimpleConvNet, after a warm-up step, for
    each column of _PEAK_COLUMNS in a fresh process: the book's code, fastnn in float64 and
    float32, the reference (not with --quick) and PyTorch (when installed and wanted)."""

    deep: bool = True
    note: str = ("float64 unless noted; one step after a warm-up step, each column in a fresh "
                 "process. tracemalloc: the peak of NumPy's and Python's allocations made since "
                 "the model was built (the warm-up's leftovers count: the layers' scratch and "
                 "kept arrays, Adam's moments), not BLAS's or PyTorch's own allocator's. RSS: the "
                 "process's high-water mark over the step minus its RSS before the warm-up, "
                 "every allocator's pages")

    def measure(self, threads, quick=False, with_torch=True):
        """{figure: {column: bytes or None}} for figure tracemalloc and rss."""
        import importlib.util
        import os
        import subprocess

        skip = {"reference"} if quick else set()
        if not (with_torch and importlib.util.find_spec("torch")):
            skip.add("torch")
        # the children import the fastnn this process runs, with this many BLAS / OpenMP threads
        package_dir = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
        path = os.pathsep.join(p for p in (package_dir, os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        children = {}
        for column, contender, dtype in _PEAK_COLUMNS:
            if column in skip:
                continue
            code = (f"from fastnn.bench import _peak_child; "
                    f"_peak_child({contender!r}, {dtype!r}, {self.deep!r}, {threads})")
            # all at once: each process's figures are its own, whatever runs beside it
            children[column] = subprocess.Popen([sys.executable, "-c", code], env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                text=True)
        figures = {figure: dict.fromkeys(c for c, _, _ in _PEAK_COLUMNS)
                   for figure, _ in _PEAK_FIGURES}
        try:
            for column, child in children.items():
                out, err = child.communicate()
                if child.returncode:
                    raise RuntimeError(f"the peak-memory process of column {column} failed: "
                                       f"{err.strip()}")
                for figure, value in json.loads(out).items():
                    figures[figure][column] = value
        finally:  # after a failure, the columns still running are not waited for
            for child in children.values():
                if child.poll() is None:
                    child.kill()
                    child.wait()
        return figures


def _status_bytes(field):
    """A size field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _peak_child(contender, dtype, deep, threads):
    """The body of a Peaks.measure process: builds the batch and contender's model (book, fastnn,
    reference or torch), runs a warm-up step and a measured step, and prints JSON {"tracemalloc":
    bytes (null for torch, whose tensors tracemalloc does not see), "rss": bytes}."""
    import tracemalloc

    dtype = np.dtype(dtype)
    fastnn.set_num_threads(threads)
    x, t = _convnet_data(dtype)
    if contender == "book":
        step = _convnet_book_step(deep, dtype, x, t)[1]
    elif contender == "torch":
        import torch
        torch.set_num_threads(threads)
        params = _convnet_book_step(deep, dtype, x, t)[0].params
        torch_step, xt, tt = _convnet_torch(torch, params, deep), torch.tensor(x), torch.tensor(t)
        del params

        def step():
            torch_step(xt, tt)
    else:
        step = _convnet_half_step(fastnn if contender == "fastnn" else reference, deep, dtype,
                                  x, t)
    before = _status_bytes("VmRSS")
    tracemalloc.start()
    step()
    try:  # "5": reset the high-water mark to the current RSS, so that it covers one step
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not allowed here: the mark covers the warm-up too
        pass
    tracemalloc.reset_peak()
    step()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"tracemalloc": None if contender == "torch" else traced,
                      "rss": _status_bytes("VmHWM") - before}))


def _row(group, name, make, *needs):
    return Workload(group, name, make, needs)


F64, F32 = np.float64, np.float32
WORKLOADS = [
    _row("kernels", "softmax-CE forward+backward (100, 10)", lambda: _softmax_ce(100, 10)),
    _row("kernels", "softmax-CE forward+backward (1000, 1000)", lambda: _softmax_ce(1000, 1000)),
    _row("kernels", "sigmoid forward+backward (1000, 1000)", lambda: _sigmoid((1000, 1000))),
    _row("kernels", "sigmoid forward+backward (1e7 elements)", lambda: _sigmoid((10 ** 7,))),
    _row("kernels", "bias gradient (10000, 1000) float64", lambda: _bias_grad(10000, 1000, F64)),
    _row("kernels", "bias gradient (10000, 1000) float32", lambda: _bias_grad(10000, 1000, F32)),
    _row("kernels", "numerical_gradient, f = sum(x**2), 1000 elements",
         lambda: _numerical_gradient(1000)),
    _row("models", "numerical gradient, TwoLayerNetwork 784-50-10, batch 100",
         _model_numerical_gradient),
    _row("models", "step 784-50-10 batch 100, sparse x, float64",
         lambda: _two_layer_step(50, 100, F64)),
    _row("models", "step 784-50-10 batch 100, sparse x, float32",
         lambda: _two_layer_step(50, 100, F32)),
    _row("models", "step 784-50-10 batch 100, dense x, float64",
         lambda: _two_layer_step(50, 100, F64, dense=True)),
    _row("models", "step 784-50-10 batch 100, dense x, float32",
         lambda: _two_layer_step(50, 100, F32, dense=True)),
    _row("models", "step 784-1000-10 batch 256, sparse x, float64",
         lambda: _two_layer_step(1000, 256, F64)),
    _row("models", "step 784-1000-10 batch 256, dense x, float64",
         lambda: _two_layer_step(1000, 256, F64, dense=True)),
    _row("models", "main job: 64-50-10 digits, SGD, batch 100, 2000 steps",
         lambda: _main_job(2000)),
    _row("ch6", "MultiLayerNet 784-[100]x4-10 ReLU, SGD step", lambda: _multi_layer_step(4),
         "MultiLayerNet"),
    _row("ch6", "MultiLayerNetExtend 784-[100]x5-10 batch norm, SGD step",
         lambda: _multi_layer_step(5, batchnorm=True), "MultiLayerNetExtend"),
    _row("ch6", "784-[100]x6-10 dropout 0.2 + weight decay 0.1, SGD step",
         lambda: _multi_layer_step(6, dropout=0.2, weight_decay=0.1), "MultiLayerNetExtend"),
    _row("ch6", "BatchNormalization forward+backward (100, 100)", lambda: _batchnorm(100, 100),
         "BatchNormalization"),
    _row("ch6", "BatchNormalization forward+backward (10000, 1000)",
         lambda: _batchnorm(10000, 1000), "BatchNormalization"),
    _row("conv", "Convolution fwd+bwd (100,1,28,28) x (30,1,5,5)",
         lambda: _convolution((100, 1, 28, 28), (30, 1, 5, 5)), "Convolution"),
    _row("conv", "Convolution fwd+bwd (100,32,14,14) x (64,32,3,3) pad 1",
         lambda: _convolution((100, 32, 14, 14), (64, 32, 3, 3), pad=1), "Convolution"),
    _row("conv", "Pooling fwd+bwd (100,30,24,24) 2x2 stride 2", lambda: _pooling((100, 30, 24, 24)),
         "Pooling"),
    _row("conv", "SimpleConvNet step (gradient + Adam), float64", lambda: _convnet_step(False, F64),
         "SimpleConvNet"),
    _row("conv", "SimpleConvNet step (gradient + Adam), float32", lambda: _convnet_step(False, F32),
         "SimpleConvNet"),
    _row("conv", "DeepConvNet step (gradient + Adam), float64", lambda: _convnet_step(True, F64),
         "DeepConvNet"),
    _row("conv", "DeepConvNet step (gradient + Adam), float32", lambda: _convnet_step(True, F32),
         "DeepConvNet"),
    _row("conv", "peak memory of a DeepConvNet training step (tracemalloc and RSS)", Peaks,
         "DeepConvNet"),
]


# --------------------------------------------------------------------------- running

def select(which=None, match=None):
    """The workloads of the groups in `which` (default all) whose name contains one of the strings
    in `match` (case-insensitive; default any name), among those this build of fastnn has."""
    which = list(which or GROUPS)
    unknown = set(which) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown workload groups {sorted(unknown)}; choose from {list(GROUPS)}")
    match = [match] if isinstance(match, str) else match
    return [w for w in WORKLOADS if w.group in which and w.available()
            and (not match or any(m.lower() in w.name.lower() for m in match))]


def _fmt_time(seconds):
    if seconds is None:
        return ""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def _versions(torch, jax):
    info = {"fastnn": fastnn.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "torch": getattr(torch, "__version__", None), "jax": getattr(jax, "__version__", None)}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in f
                                if line.startswith("model name")), None)
    except OSError:
        info["cpu"] = None
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: lib.get(k) for k in ("internal_api", "version", "architecture")}
                        for lib in threadpool_info() if lib.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = None
    return info


_COLUMNS = ("book", "fast", "reference")


def _result(w, timed, times, machine):
    """The row's figures: its times, the ratio book / fast and the bound (torch, jax come later)."""
    flops = timed.flops() if callable(timed.flops) else timed.flops
    if timed.nbytes:
        reads = timed.reads_only
        kind = "reads at the read bandwidth" if reads else "bytes at the copy bandwidth"
        bound = timed.nbytes / machine["read_bandwidth" if reads else "copy_bandwidth"]
    elif flops:
        kind = f"matrix-product FLOPs at the {_dtype_name(timed.dtype)} GEMM rate"
        bound = flops / machine["gemm_rate"][_dtype_name(timed.dtype)]
    elif timed.floor:
        kind, bound = "measured floor", times["floor"]
    else:
        kind = bound = None
    return dict(group=w.group, workload=w.name, book=times["book"], fast=times["fast"],
                reference=times.get("reference"), torch=None, jax=None,
                ratio=times["book"] / times["fast"], bound=bound, bound_kind=kind, flops=flops,
                bytes=timed.nbytes, note=timed.note)


def _peak_result(w, peaks, threads, quick, with_torch):
    """A memory row's figures: bytes by figure and column, the ratios book / fastnn float64."""
    figures = peaks.measure(threads, quick, with_torch)
    return dict(group=w.group, workload=w.name, unit="bytes", **figures,
                ratio={f: v["book"] / v["fast"] for f, v in figures.items()}, note=peaks.note)


def _fmt_bytes(n):
    return "" if n is None else f"{n / _MIB:.1f} MiB"


_PEAK_HEADS = (("book", "book"), ("fast", "fastnn"), ("fast_float32", "fastnn f32"),
               ("reference", "reference"), ("torch", "torch"))


def _print_peaks(r, print_fn):
    """A memory row: its name over a line per figure (the columns of _PEAK_HEADS, the ratio)."""
    def line(first, cells, ratio):
        cells = [f"{c:>11s}" for c in cells]
        return " ".join([first] + cells[:2] + [f"{ratio:>7s}"] + cells[2:]).rstrip()

    header = line(f"{r['workload']:66s}", [h for _, h in _PEAK_HEADS], "ratio")
    print_fn("")
    print_fn(header)
    print_fn("-" * len(header))
    for figure, label in _PEAK_FIGURES:
        print_fn(line(f"  {label:64s}", [_fmt_bytes(r[figure][c]) for c, _ in _PEAK_HEADS],
                      f"{r['ratio'][figure]:.1f}x"))
    print_fn(f"  ({r['note']})")


def run(which=None, threads=1, with_torch=True, repeat=7, print_fn=print, quick=False,
        json_path=None, match=None):
    """Time the workloads of the groups in `which` (default: all) whose name contains one of
    `match` (a string or a list), and measure the memory rows among them; print the tables, write
    every figure to json_path when given; returns the list of row dicts. quick: one timing run
    per column (and shorter runs), no reference column in the memory rows."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    workloads = select(which, match)
    if quick:
        repeat = 1
    min_seconds = 0.005 if quick else 0.02
    blas = threadpool_limits(limits=threads, user_api="blas") if threadpool_limits else None
    fastnn.set_num_threads(threads)
    # with threads, BLAS's worker threads spin for a while after their last call and take a core
    # from whatever runs next (a 784-1000-10 fastnn step right after the reference's: 11-15 ms
    # instead of 7): a pause before each timed run lets them idle
    settle = (lambda: time.sleep(0.15)) if threads > 1 else None
    try:
        probe = {"repeat": 2 if quick else 5}
        machine = {"threads": threads, "copy_bandwidth": memory_bandwidth(**probe),
                   "read_bandwidth": read_bandwidth(**probe),
                   "gemm_rate": {"float64": gemm_rate(np.float64, **probe),
                                 "float32": gemm_rate(np.float32, **probe)}}
        print_fn(f"fastnn {fastnn.__version__}, numpy {np.__version__}, {threads} thread(s), "
                 f"float64 unless noted; memory bandwidth "
                 f"{machine['copy_bandwidth'] / 1e9:.1f} GB/s (copy, read+write), "
                 f"{machine['read_bandwidth'] / 1e9:.1f} GB/s (read); GEMM "
                 f"{machine['gemm_rate']['float64'] / 1e9:.0f} GFLOP/s float64, "
                 f"{machine['gemm_rate']['float32'] / 1e9:.0f} float32"
                 + ("" if blas else "; threadpoolctl missing: BLAS threads not limited"))
        print_fn("ratio = the book's code / fastnn (SPEC 14); bound = bytes at the measured "
                 "bandwidth or matrix-product FLOPs at the measured GEMM rate")
        results, timed_rows = [], []
        for w in workloads:
            timed = w.make()
            if isinstance(timed, Peaks):
                results.append(_peak_result(w, timed, threads, quick, with_torch))
                continue
            fns = {c: getattr(timed, c) for c in _COLUMNS if getattr(timed, c)}
            if timed.floor:
                fns["floor"] = timed.floor
            times = interleaved(fns, min_seconds, repeat, settle)
            for c, s in timed.scale.items():
                times[c] *= s
            results.append(_result(w, timed, times, machine))
            timed_rows.append((w, results[-1]))
            del timed, fns  # a row's data is freed before the next row's is made

        # PyTorch and JAX after all the others, imported only then: their threads (and PyTorch's
        # own OpenMP runtime, once loaded) keep a core busy, which slowed fastnn rows with 2
        # threads up to 9x. Each row's data is made again for them.
        modules = {}
        for name in ("torch", "jax") if with_torch else ():
            module = _optional(name)
            if module is None:
                continue
            modules[name] = module
            if name == "torch":
                module.set_num_threads(threads)
            else:  # float64 arrays stay float64 (JAX's default is float32); XLA picks its threads
                module.config.update("jax_enable_x64", True)
                __import__("jax.numpy")
            for w, result in timed_rows:
                factory = getattr(w.make(), name)
                if factory:
                    result[name] = interleaved({name: factory(module)}, min_seconds, repeat,
                                               settle)[name]
        torch, jax = modules.get("torch"), modules.get("jax")

        header = (f"{'workload':58s} {'book':>10s} {'fastnn':>10s} {'ratio':>7s} {'bound':>10s} "
                  f"{'reference':>10s} {'torch':>10s}" + (f" {'jax':>10s}" if jax else ""))
        if timed_rows:
            print_fn(header)
            print_fn("-" * len(header))
        for _, r in timed_rows:
            print_fn(f"{r['workload']:58s} {_fmt_time(r['book']):>10s} {_fmt_time(r['fast']):>10s} "
                     f"{r['ratio']:6.1f}x {_fmt_time(r['bound']):>10s} "
                     f"{_fmt_time(r['reference']):>10s} {_fmt_time(r['torch']):>10s}"
                     + (f" {_fmt_time(r['jax']):>10s}" if jax else ""))
            if r["note"]:
                print_fn(f"  ({r['note']})")
        for r in results:
            if r.get("unit") == "bytes":
                _print_peaks(r, print_fn)
        if json_path:
            with open(json_path, "w") as f:
                json.dump({"machine": machine, "versions": _versions(torch, jax), "repeat": repeat,
                           "quick": quick, "rows": results}, f, indent=1)
        return results
    finally:
        fastnn.set_num_threads(0)
        if blas:
            blas.unregister()


def markdown(paths):
    """A markdown table of the --json files at paths (several runs of the same workloads): each
    time the median over the runs, the ratio as its range over them; the memory rows in a table
    of their own, likewise."""
    runs = [json.load(open(p)) for p in paths]
    rows = {}
    for run_ in runs:
        for row in run_["rows"]:
            rows.setdefault(row["workload"], []).append(row)
    threads = sorted({run_["machine"]["threads"] for run_ in runs})
    timed = {name: found for name, found in rows.items() if found[0].get("unit") != "bytes"}
    peaks = {name: found for name, found in rows.items() if found[0].get("unit") == "bytes"}
    lines = [f"{len(runs)} run(s), {'/'.join(map(str, threads))} thread(s); times: medians over "
             "the runs; ratio = the book's code / fastnn, lowest-highest over the runs"]
    if timed:
        lines += ["", "| workload | book | fastnn | ratio | bound | reference | torch |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
    for name, found in timed.items():
        def med(key):
            values = [r[key] for r in found if r[key] is not None]
            return _fmt_time(statistics.median(values)) if values else ""
        lines.append(f"| {name} | {med('book')} | {med('fast')} | "
                     f"{_ratio_range([r['ratio'] for r in found])} | {med('bound')} | "
                     f"{med('reference')} | {med('torch')} |")
    if peaks:
        lines += ["", "| peak memory | " + " | ".join(h for _, h in _PEAK_HEADS[:2]) + " | ratio | "
                  + " | ".join(h for _, h in _PEAK_HEADS[2:]) + " |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
    for name, found in peaks.items():
        for figure, label in _PEAK_FIGURES:
            def med(column):
                values = [r[figure][column] for r in found if r[figure][column] is not None]
                return _fmt_bytes(statistics.median(values)) if values else ""
            lines.append(f"| {name}: {label} | {med('book')} | {med('fast')} | "
                         f"{_ratio_range([r['ratio'][figure] for r in found])} | "
                         + " | ".join(med(c) for c, _ in _PEAK_HEADS[2:]) + " |")
    return "\n".join(lines)


def _ratio_range(ratios):
    """'5.1x', or the range '4.9-5.3x' of ratios differing at the printed digit."""
    lo, hi = min(ratios), max(ratios)
    return f"{lo:.1f}x" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}-{hi:.1f}x"


def main(argv=None, prog="python -m fastnn.bench"):
    """python -m fastnn.bench (and fastnn bench): the benchmark table, one thread by default. A bad
    argument is one line on stderr, exit status 2."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            self.exit(2, f"{self.prog}: error: {message}\n")

    parser = Parser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("which", nargs="*", help=f"groups among {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="fastnn's, BLAS's and PyTorch's")
    parser.add_argument("--quick", action="store_true", help="one timing run per column")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch and JAX")
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE as JSON")
    parser.add_argument("-k", metavar="TEXT", dest="match", action="append",
                        help="only workloads whose name contains TEXT (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the workloads, time nothing")
    parser.add_argument("--markdown", nargs="+", metavar="JSON",
                        help="print a markdown table of earlier --json files, time nothing")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(args.markdown))
        return 0
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    try:
        workloads = select(args.which, args.match)
    except ValueError as e:
        parser.error(str(e))
    if args.list:
        for w in workloads:
            print(f"{w.group:8s} {w.name}")
        return 0
    run(args.which, threads=args.threads, with_torch=not args.no_torch, quick=args.quick,
        json_path=args.json, match=args.match)
    return 0


if __name__ == "__main__":
    sys.exit(main())
