"""Faults survived: leaks, reference counts, threads.

- Every entry point, error paths included, is called 10^4 times: Python's traced memory
  (tracemalloc, which also sees NumPy's array data), the process's resident memory (which sees the
  kernels' own malloc) and the reference counts of the inputs and of the dtypes must stay steady.
- Eight threads call the kernels on shared inputs and must get the results of a serial call, bit
  for bit; the kernels' OpenMP thread counts 1 and 2 must agree (fastnn.set_num_threads, reset to
  0 after).

A fixed seed throughout; the whole file takes a few seconds.
"""

import gc
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastnn
from fastnn import _core

CALLS = 10_000
PARALLEL_MIN = 131072  # csrc/real.h: FASTNN_PARALLEL_MIN, where the kernels start threads
TRACED_SLACK = 64 * 1024  # bytes of traced memory a steady loop may still gain (caches, free lists)
RSS_SLACK = 4 * 1024 * 1024  # a leak of 400 bytes per call shows; the leaks sought are larger
PAGE = os.sysconf("SC_PAGE_SIZE")
# under tools/sanitize.sh ASan holds freed memory in quarantine (256 MiB), so the resident size
# grows with any allocation there: only traced memory and reference counts are checked then
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")

rng = np.random.default_rng(2024)
X = rng.standard_normal((4, 256))  # 2 KiB rows: a per-call leak of a row-sized buffer is 20 MB
X32 = X.astype(np.float32)
T = rng.integers(0, 256, 4)
BAD_T = np.array([0, 256, 1, 2])  # the kernels find it (after the face's checks)
FLOAT_T = T.astype(np.float64)  # _checks finds it
XS = rng.standard_normal((5, 8))  # a small model's batch
TS = rng.integers(0, 4, 5)
BAD_TS = np.array([0, 1, 4, 2, 3])
W = rng.standard_normal((256, 16))
DOUT = rng.standard_normal((4, 16))
G = rng.standard_normal((4, 256))


def F(_):
    return 1.0


INPUTS = [X, X32, T, BAD_T, FLOAT_T, XS, TS, BAD_TS, W, DOUT, G, F]


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def raises(fn, *args, error=(TypeError, ValueError)):
    """A call that must raise error: the error path, counted like any other call."""
    def call():
        try:
            fn(*args)
        except error:
            return
        raise AssertionError(f"{fn} did not raise")
    return call


def layer_round_trip():
    layer = fastnn.SoftmaxWithLoss()
    layer.forward(X, T)
    return layer.backward()


def layer_bad_backward():
    layer = fastnn.SoftmaxWithLoss()
    layer.forward(X, T)
    layer.t = BAD_T
    layer.backward()


def sigmoid_round_trip():
    layer = fastnn.Sigmoid()
    return layer.backward(layer.forward(X))


AFFINE = fastnn.Affine(W, np.zeros(16))


def affine_round_trip():
    AFFINE.forward(X)
    return AFFINE.backward(DOUT)


P = np.zeros((4, 256))
SGD = fastnn.SGD(lr=1e-9)
NET = fastnn.TwoLayerNet(8, 6, 4, seed=0)
NETWORK = fastnn.TwoLayerNetwork(8, 6, 4, seed=0, activation="relu")


def net_step():
    NET.forward(XS, TS)
    NET.backward()


def bad_f(_):
    raise KeyError("f fails")


X_PERTURBED = np.ones(6)  # numerical_gradient's x: restored after every call

ENTRIES = {
    # entry: a call with shared inputs (error paths end in "!")
    "sigmoid": lambda: fastnn.sigmoid(X),
    "sigmoid float32": lambda: fastnn.sigmoid(X32),
    "sigmoid_grad": lambda: fastnn.sigmoid_grad(X),
    "sigmoid of complex!": raises(fastnn.sigmoid, X.astype(complex)),
    "Sigmoid forward+backward": sigmoid_round_trip,
    "softmax_cross_entropy": lambda: fastnn.softmax_cross_entropy(X, T),
    "softmax_cross_entropy float32": lambda: fastnn.softmax_cross_entropy(X32, T),
    "softmax_cross_entropy label out of range!": raises(fastnn.softmax_cross_entropy, X, BAD_T),
    "softmax_cross_entropy float labels!": raises(fastnn.softmax_cross_entropy, X, FLOAT_T),
    "softmax_cross_entropy empty!": raises(fastnn.softmax_cross_entropy, X[:0], T[:0]),
    "SoftmaxWithLoss forward+backward": layer_round_trip,
    "SoftmaxWithLoss backward, label out of range!": raises(layer_bad_backward),
    "bias_grad": lambda: fastnn.bias_grad(X),
    "bias_grad 0-d!": raises(fastnn.bias_grad, np.float64(1.0)),
    "Affine forward+backward": affine_round_trip,
    "numerical_gradient": lambda: fastnn.numerical_gradient(F, X_PERTURBED),
    "numerical_gradient f raises!": raises(fastnn.numerical_gradient, bad_f, X_PERTURBED,
                                           error=KeyError),
    "numerical_gradient f not scalar!": raises(fastnn.numerical_gradient, lambda x: x,
                                               X_PERTURBED),
    "numerical_gradient h = 0!": raises(fastnn.numerical_gradient, F, X_PERTURBED, 0.0),
    "numerical_gradient integer x!": raises(fastnn.numerical_gradient, F, T),
    "SGD.update": lambda: SGD.update([P], [G]),
    "TwoLayerNet forward+backward": net_step,
    "TwoLayerNet predict": lambda: NET.predict(XS),
    "TwoLayerNet accuracy": lambda: NET.accuracy(XS, TS),
    "TwoLayerNet forward, label out of range!": raises(NET.forward, XS, BAD_TS),
    "TwoLayerNet forward, wrong features!": raises(NET.forward, X, T),
    "TwoLayerNetwork loss": lambda: NETWORK.loss(XS, TS),
    "TwoLayerNetwork gradient": lambda: NETWORK.gradient(XS, TS),
    "TwoLayerNetwork numerical_gradient": lambda: NETWORK.numerical_gradient(XS, TS),
    "TwoLayerNetwork numerical_gradient, label out of range!": raises(
        NETWORK.numerical_gradient, XS, BAD_TS),
    "set_num_threads": lambda: (fastnn.set_num_threads(0), fastnn.get_num_threads()),
    "set_num_threads(-1)!": raises(fastnn.set_num_threads, -1),
    # _core's own checks, which the face never trips: each raises before the kernel
    "_core.sigmoid_forward read-only out!": raises(_core.sigmoid_forward, X,
                                                   np.broadcast_to(X, X.shape)),
    "_core.softmax_ce_forward bias of float32!": raises(_core.softmax_ce_forward, X, T,
                                                        np.zeros(256, np.float32)),
    "_core.softmax_ce_backward int32 labels!": raises(_core.softmax_ce_backward, X,
                                                      T.astype(np.int32), 1.0),
    "_core.bias_grad short db!": raises(_core.bias_grad, X, np.empty(3)),
    "_core.sgd_update mixed dtypes!": raises(_core.sgd_update, np.zeros(4), np.zeros(4, np.float32),
                                             0.1),
}


@pytest.fixture(scope="module", autouse=True)
def reset_threads():
    yield
    fastnn.set_num_threads(0)


@pytest.mark.slow
@pytest.mark.parametrize("entry", list(ENTRIES))
def test_no_growth_over_10k_calls(entry):
    call = ENTRIES[entry]
    for _ in range(200):  # warm up: caches, the models' scratch, free lists
        call()
    refcounts = [sys.getrefcount(a) for a in INPUTS]
    dtypes = [sys.getrefcount(np.dtype(d)) for d in (np.float64, np.float32, np.int64)]
    gc.collect()
    rss_before = rss()
    tracemalloc.start()
    try:
        traced_before = tracemalloc.get_traced_memory()[0]
        for _ in range(CALLS):
            call()
        gc.collect()
        traced_growth = tracemalloc.get_traced_memory()[0] - traced_before
    finally:
        tracemalloc.stop()
    rss_growth = rss() - rss_before
    assert traced_growth < TRACED_SLACK, f"traced memory grew by {traced_growth} bytes"
    assert SANITIZED or rss_growth < RSS_SLACK, f"resident memory grew by {rss_growth} bytes"
    assert [sys.getrefcount(a) for a in INPUTS] == refcounts, "an input's reference count changed"
    now = [sys.getrefcount(np.dtype(d)) for d in (np.float64, np.float32, np.int64)]
    assert all(abs(a - b) < 50 for a, b in zip(now, dtypes)), (dtypes, now)
    assert np.array_equal(X_PERTURBED, np.ones(6))


# --------------------------------------------------------------------------- threads

@contextmanager
def kernel_threads(n):
    fastnn.set_num_threads(n)
    try:
        yield
    finally:
        fastnn.set_num_threads(0)


BIG = rng.standard_normal((PARALLEL_MIN // 500 + 3, 1000)) * 4  # 265 k elements: OpenMP starts
BIG_T = rng.integers(0, 1000, BIG.shape[0])
BIG32 = BIG.astype(np.float32)
MODEL_X = rng.standard_normal((1200, 64))  # bias_act_forward on (1200, 128): over PARALLEL_MIN
MODEL_T = rng.integers(0, 10, MODEL_X.shape[0])
SHARED_MODEL = fastnn.TwoLayerNetwork(64, 128, 10, weight_init_std=0.3, seed=5)
SMALL_NET_X = rng.standard_normal((7, 12))
SMALL_NET_T = rng.integers(0, 3, 7)
SHARED_SMALL = fastnn.TwoLayerNetwork(12, 6, 3, weight_init_std=0.5, seed=6)


def fresh_layer(x, t):
    layer = fastnn.SoftmaxWithLoss()
    loss = layer.forward(x, t)
    return loss, layer.y, layer.backward(0.5)


def sgd_on_copy(p, g):
    p = p.copy()
    fastnn.SGD(lr=0.01).update({"p": p}, {"p": g})
    return p


def numerical_on_copy(x):
    x = x.copy()
    return fastnn.numerical_gradient(lambda _: float(np.sum(np.sin(x))), x)


def model_step(x, t):
    model = fastnn.TwoLayerNet(64, 128, 10, weight_init_std=0.3, seed=5)
    loss = model.forward(x, t)
    model.backward()
    return loss, model.grads


KERNELS = {
    # name: a pure function of shared inputs (fresh layers and copies inside)
    "sigmoid": lambda: fastnn.sigmoid(BIG),
    "sigmoid float32": lambda: fastnn.sigmoid(BIG32),
    "sigmoid small": lambda: fastnn.sigmoid(X),
    "Sigmoid backward": lambda: fastnn.sigmoid_grad(BIG),
    "softmax_cross_entropy": lambda: fastnn.softmax_cross_entropy(BIG, BIG_T),
    "softmax_cross_entropy float32": lambda: fastnn.softmax_cross_entropy(BIG32, BIG_T),
    "softmax_cross_entropy small": lambda: fastnn.softmax_cross_entropy(X, T),
    "SoftmaxWithLoss": lambda: fresh_layer(BIG, BIG_T),
    "bias_grad": lambda: fastnn.bias_grad(BIG),
    "bias_grad float32": lambda: fastnn.bias_grad(BIG32),
    "SGD": lambda: sgd_on_copy(BIG, BIG32.astype(np.float64)),
    "numerical_gradient": lambda: numerical_on_copy(XS),
    "TwoLayerNet step": lambda: model_step(MODEL_X, MODEL_T),
    "TwoLayerNetwork loss (shared model)": lambda: SHARED_MODEL.loss(MODEL_X, MODEL_T),
    "TwoLayerNetwork predict (shared model)": lambda: SHARED_MODEL.predict(MODEL_X),
    "TwoLayerNetwork numerical_gradient (shared model)": lambda: SHARED_SMALL.numerical_gradient(
        SMALL_NET_X, SMALL_NET_T),
}


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            assert_same(u, v)
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.tobytes() != b.tobytes():  # not an assert of ==: pytest would diff megabytes
            raise AssertionError(f"results differ in {np.sum(a != b)} of {a.size} elements")


def run_in_threads(fn, threads=8, repeats=3):
    barrier = threading.Barrier(threads)

    def work(_):
        barrier.wait()  # all start together
        return [fn() for _ in range(repeats)]
    with ThreadPoolExecutor(threads) as pool:
        return [r for rs in pool.map(work, range(threads)) for r in rs]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KERNELS))
def test_eight_threads_on_shared_inputs_agree_with_a_serial_call(name):
    fn = KERNELS[name]
    expected = fn()
    for result in run_in_threads(fn):
        assert_same(result, expected)


def test_eight_threads_share_one_model_for_gradient():
    # gradient() keeps scratch buffers in the model: before c1a5961 concurrent calls overwrote
    # each other's activations, which showed within the first few dozen calls
    batches = [(rng.standard_normal((100, 64)), rng.integers(0, 10, 100)) for _ in range(8)]
    expected = [SHARED_MODEL.gradient(x, t) for x, t in batches]
    deadline = time.monotonic() + 1.0
    failed = threading.Event()

    def work(i):
        for _ in range(25):  # or 1 s, or until a race shows
            if time.monotonic() > deadline or failed.is_set():
                return
            try:
                assert_same(SHARED_MODEL.gradient(*batches[i]), expected[i])
            except AssertionError:
                failed.set()
                raise
    with ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(work, i) for i in range(8)]:
            f.result()


@pytest.mark.parametrize("name", list(KERNELS))
def test_one_and_two_openmp_threads_agree(name):
    fn = KERNELS[name]
    with kernel_threads(1):
        serial = fn()
    with kernel_threads(2):
        parallel = fn()
    assert fastnn.get_num_threads() >= 1
    # elementwise results are the same bits; a reduction split across threads may round
    # differently: losses within 1e-14
    flat_s, flat_p = flatten(serial), flatten(parallel)
    for s, p in zip(flat_s, flat_p):
        if np.ndim(s) == 0:
            assert_allclose(p, s, rtol=1e-14)
        else:
            assert_same(p, s)


def flatten(result):
    if isinstance(result, dict):
        return [v for k in sorted(result) for v in flatten(result[k])]
    if isinstance(result, (list, tuple)):
        return [v for r in result for v in flatten(r)]
    return [result]


@pytest.mark.parametrize("env, expected", [(None, 1), ("2", 2), ("3", 3)])
def test_default_thread_count_follows_omp_num_threads_else_one(env, expected):
    # a fresh interpreter: the kernels read OMP_NUM_THREADS once; without it they run on one
    # thread (BLAS's spinning threads would share the cores), set_num_threads(n) wins over both
    with kernel_threads(2):
        if fastnn.get_num_threads() != 2:
            pytest.skip("built without OpenMP: always one thread")
    environment = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if env is not None:
        environment["OMP_NUM_THREADS"] = env
    code = ("import fastnn; a = fastnn.get_num_threads(); fastnn.set_num_threads(4); "
            "b = fastnn.get_num_threads(); fastnn.set_num_threads(0); "
            "print(a, b, fastnn.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [str(expected), "4", str(expected)]


def test_set_num_threads_is_reset_and_checked():
    with kernel_threads(2):
        assert fastnn.get_num_threads() == 2
    assert fastnn.get_num_threads() >= 1
    with pytest.raises(ValueError, match="-1"):
        fastnn.set_num_threads(-1)
