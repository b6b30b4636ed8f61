"""Benchmarks: the fast half against `fastnn.reference`, measured side by side in one process.

One implementation serves `bench/` and `fastnn bench`. Every row prints the fast and the reference
time (median of repeated runs), their ratio, and, for memory-bound workloads, the physical bound:
the bytes the workload must move divided by the memory bandwidth measured in the same run.
PyTorch is timed too when it is installed. Nothing here asserts a speed.
"""
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

import fastnn
from fastnn import reference

_MIB = 1 << 20


@dataclass
class Case:
    """One workload: the fast and reference callables and what bounds them."""

    name: str
    fast: Callable[[], object]
    ref: Callable[[], object]
    bytes_moved: Optional[int] = None  # reads + writes the workload cannot avoid
    torch: Optional[Callable[[], object]] = None
    note: str = ""
    ratio_of: Optional[Callable[[float, float], float]] = None  # default: ref / fast
    ratio_unit: str = "x"  # "%" for shares, "x of products" for the matmul-bound case
    extrapolated: bool = False  # ref returns an extrapolated time instead of being timed
    reads_only: bool = False  # bytes_moved are all reads: bound by the read bandwidth


def median_time(fn, min_seconds=0.02, repeat=7):
    """Median seconds per call of fn over `repeat` runs of enough calls to last min_seconds
    (at most 3 runs of one call when a call takes over a second)."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    if once > 1:
        repeat = min(repeat, 3)
    else:
        fn()
    number = max(1, int(min_seconds / max(once, 1e-9)))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def memory_bandwidth(nbytes=64 * _MIB):
    """Bytes per second (read + write) of a NumPy copy of nbytes, measured now."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    return 2 * nbytes / median_time(lambda: np.copyto(dst, src), repeat=5)


def read_bandwidth(nbytes=64 * _MIB):
    """Bytes per second read by BLAS's dot of an nbytes array with itself (one pass over it),
    measured now: a pure read stream, faster than a copy's."""
    a = np.ones(nbytes // 8)
    return nbytes / median_time(lambda: np.dot(a, a), repeat=5)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def _softmax_ce_case(n, c, rng, torch):
    x = rng.standard_normal((n, c))
    t = rng.integers(0, c, n)
    fast_layer, ref_layer = fastnn.SoftmaxWithLoss(), reference.SoftmaxWithLoss()

    def fast():
        fast_layer.forward(x, t)
        return fast_layer.backward()

    def ref():
        ref_layer.forward(x, t)
        return ref_layer.backward()

    torch_fn = None
    if torch is not None:
        xt, tt = torch.tensor(x), torch.tensor(t)

        def torch_fn():
            xg = xt.detach().requires_grad_()
            torch.nn.functional.cross_entropy(xg, tt).backward()
            return xg.grad

    return Case(f"softmax-CE forward+backward ({n}, {c})", fast, ref, 4 * x.nbytes, torch_fn)


def _sigmoid_case(shape, rng, torch):
    x = rng.standard_normal(shape)
    dout = rng.standard_normal(shape)
    fast_layer, ref_layer = fastnn.Sigmoid(), reference.Sigmoid()

    def fast():
        fast_layer.forward(x)
        return fast_layer.backward(dout)

    def ref():
        ref_layer.forward(x)
        return ref_layer.backward(dout)

    torch_fn = None
    if torch is not None:
        xt, dt = torch.tensor(x), torch.tensor(dout)

        def torch_fn():
            xg = xt.detach().requires_grad_()
            torch.sigmoid(xg).backward(dt)
            return xg.grad

    label = "x".join(map(str, shape)) if len(shape) > 1 else f"{shape[0]:.0e} elements"
    return Case(f"sigmoid forward+backward ({label})", fast, ref, 5 * x.nbytes, torch_fn)


def _bias_grad_case(n, d, rng, torch):
    dout = rng.standard_normal((n, d))
    torch_fn = None
    if torch is not None:
        dt = torch.tensor(dout)

        def torch_fn():
            return dt.sum(0)

    return Case(f"bias gradient ({n}, {d})", lambda: fastnn.bias_grad(dout),
                lambda: reference.bias_grad(dout), dout.nbytes, torch_fn, reads_only=True)


def _numerical_gradient_case(size, rng, torch=None):
    """Ratio column: the loop's overhead as a share of the time spent in f."""
    x = rng.standard_normal(size)

    def f(w):
        return np.sum(w ** 2)

    def calls_only():
        for _ in range(2 * size):
            f(x)

    def overhead_share(t_fast, t_calls):
        return (t_fast - t_calls) / t_calls

    return Case(f"numerical_gradient, f = sum(x**2), {size} elements",
                lambda: fastnn.numerical_gradient(f, x), calls_only,
                note="ratio column = loop overhead / time in the 2n calls of f (reference column)",
                ratio_of=overhead_share, ratio_unit="%")


def kernel_cases(rng, torch=None):
    """The kernel workloads of SPEC section 7."""
    return [
        _softmax_ce_case(100, 10, rng, torch),
        _softmax_ce_case(1000, 1000, rng, torch),
        _sigmoid_case((1000, 1000), rng, torch),
        _sigmoid_case((10 ** 7,), rng, torch),
        _bias_grad_case(10000, 1000, rng, torch),
        _numerical_gradient_case(1000, rng),
    ]


def _mnist_like(n, size, rng):
    """n rows of size pixels in [0, 1], about 80% of them zero (as MNIST), and labels 0..9."""
    x = rng.random((n, size)) * (rng.random((n, size)) < 0.2)
    return x, rng.integers(0, 10, n)


def _model_numerical_gradient_case(rng, torch=None, subset_rows=2):
    """TwoLayerNetwork(784, 50, 10), batch 100: the whole fast numerical gradient against the
    reference's loop over the first subset_rows rows of W1, extrapolated to every parameter."""
    x, t = _mnist_like(100, 784, rng)
    fast_net = fastnn.TwoLayerNetwork(784, 50, 10, seed=0)
    ref_net = reference.TwoLayerNetwork(784, 50, 10, seed=0)
    n_params = sum(p.size for p in ref_net.params.values())
    subset = ref_net.params["W1"][:subset_rows]  # a view: the loop perturbs the live W1
    scale = n_params / subset.size

    def ref_extrapolated():
        start = time.perf_counter()
        reference.numerical_gradient(lambda W: ref_net.loss(x, t), subset)
        return (time.perf_counter() - start) * scale

    return Case("numerical_gradient, TwoLayerNetwork(784, 50, 10), batch 100",
                lambda: fast_net.numerical_gradient(x, t), ref_extrapolated,
                note=f"reference timed on {subset.size} of {n_params} parameters (W1[:{subset_rows}]) "
                     "and extrapolated", extrapolated=True)


def _train_step_case(hidden, batch, dtype, rng, torch):
    """One seed-000 step: forward, backward, SGD update, on TwoLayerNet(784, hidden, 10)."""
    x, t = _mnist_like(batch, 784, rng)
    x = x.astype(dtype)
    nets = [half.TwoLayerNet(784, hidden, 10, 0.01, dtype=dtype, seed=0) for half in (fastnn, reference)]
    steps = []
    for half, net in zip((fastnn, reference), nets):
        optimizer = half.SGD(lr=0.1)

        def step(net=net, optimizer=optimizer):
            net.forward(x, t)
            net.backward()
            optimizer.update(net.params, net.grads)

        steps.append(step)
    torch_fn = None
    if torch is not None:
        tdtype = torch.float32 if dtype == np.float32 else torch.float64
        xt, tt = torch.tensor(x), torch.tensor(t)
        params = [torch.tensor(np.asarray(p), dtype=tdtype).requires_grad_() for p in nets[1].params]

        def torch_fn():
            W1, b1, W2, b2 = params
            scores = torch.sigmoid(xt @ W1 + b1) @ W2 + b2
            torch.nn.functional.cross_entropy(scores, tt).backward()
            with torch.no_grad():
                for p in params:
                    p -= 0.1 * p.grad
                    p.grad = None

    return Case(f"training step, 784-{hidden}-10, batch {batch}, {np.dtype(dtype).name}",
                steps[0], steps[1], torch=torch_fn)


def _matmul_bound_case(hidden, batch, rng):
    """The training step against the five matrix products it cannot avoid, in NumPy."""
    x, t = _mnist_like(batch, 784, rng)
    net = fastnn.TwoLayerNet(784, hidden, 10, seed=0)
    optimizer = fastnn.SGD(lr=0.1)
    W1, _, W2, _ = net.params
    z, dz = np.empty((batch, hidden)), np.empty((batch, hidden))
    s, dW1, dW2 = np.empty((batch, 10)), np.empty_like(W1), np.empty_like(W2)

    def step():
        net.forward(x, t)
        net.backward()
        optimizer.update(net.params, net.grads)

    def products():
        np.dot(x, W1, out=z)
        np.dot(z, W2, out=s)
        np.dot(z.T, s, out=dW2)
        np.dot(s, W2.T, out=dz)
        np.dot(x.T, dz, out=dW1)

    return Case(f"training step, 784-{hidden}-10, batch {batch} vs its matrix products", step,
                products, note="reference column = the 5 products alone (NumPy BLAS); "
                               "ratio = step time / products time", ratio_of=lambda f, r: f / r,
                ratio_unit="x of products")


def model_cases(rng, torch=None):
    """The two-layer network workloads: numerical gradient and training steps."""
    return [
        _model_numerical_gradient_case(rng),
        _train_step_case(50, 100, np.float64, rng, torch),
        _train_step_case(50, 100, np.float32, rng, torch),
        _train_step_case(1000, 256, np.float64, rng, torch),
        _matmul_bound_case(1000, 256, rng),
    ]


def _fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds:8.2f} s "


WORKLOADS = {"kernels": kernel_cases, "models": model_cases}


def run(which=tuple(WORKLOADS), threads=1, with_torch=True, repeat=7, print_fn=print):
    """Time the workloads of `which` (names in WORKLOADS) and print the table; returns a list of
    result dicts."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    def make_cases(torch=None):  # the same data each time: one generator from the same seed
        rng = np.random.default_rng(0)
        return [case for name in which for case in WORKLOADS[name](rng, torch)]

    cases = make_cases()
    blas = threadpool_limits(limits=threads, user_api="blas") if threadpool_limits else None
    fastnn.set_num_threads(threads)
    try:
        bandwidth, reading = memory_bandwidth(), read_bandwidth()
        print_fn(f"fastnn {fastnn.__version__}, {threads} thread(s), float64 unless noted; "
                 f"memory bandwidth {bandwidth / 1e9:.1f} GB/s (copy, read+write), "
                 f"{reading / 1e9:.1f} GB/s (read)"
                 + ("" if blas else "; threadpoolctl missing: BLAS threads not limited"))
        header = (f"{'workload':62s} {'fast':>11s} {'reference':>11s} {'ratio':>7s} {'bound':>11s} "
                  f"{'torch':>11s}")
        print_fn(header)
        print_fn("-" * len(header))
        # with threads, BLAS's worker threads spin for a while after their last call and take a
        # core from whatever runs next (a 784-1000-10 fastnn step right after the reference's:
        # 11-15 ms instead of 7): a pause before each timing lets them idle
        settle = (lambda: time.sleep(0.25)) if threads > 1 else (lambda: None)
        timed = []
        for case in cases:
            settle()
            t_fast = median_time(case.fast, repeat=repeat)
            settle()
            if case.extrapolated:
                t_ref = statistics.median(case.ref() for _ in range(min(repeat, 3)))
            else:
                t_ref = median_time(case.ref, repeat=repeat)
            timed.append((t_fast, t_ref))
        # PyTorch after all the others, and imported only then: its threads (and its own OpenMP
        # runtime, once loaded) keep a core busy, which slowed fastnn rows with 2 threads up to 9x
        torch = _torch() if with_torch else None
        torch_times = []
        for case in make_cases(torch) if torch else cases:
            settle()
            torch_times.append(median_time(case.torch, repeat=repeat) if case.torch else None)
        results = []
        for case, (t_fast, t_ref), t_torch in zip(cases, timed, torch_times):
            ratio = case.ratio_of(t_fast, t_ref) if case.ratio_of else t_ref / t_fast
            bound = (case.bytes_moved / (reading if case.reads_only else bandwidth)
                     if case.bytes_moved else None)
            ratio_text = (f"{ratio * 100:6.1f}%" if case.ratio_unit == "%"
                          else f"{ratio:6.2f}x" if case.ratio_of else f"{ratio:6.1f}x")
            print_fn(f"{case.name:62s} {_fmt_time(t_fast)} {_fmt_time(t_ref)} {ratio_text} "
                     f"{_fmt_time(bound) if bound else '':>11s} "
                     f"{_fmt_time(t_torch) if t_torch else '':>11s}")
            if case.note:
                print_fn(f"  ({case.note})")
            results.append(dict(name=case.name, fast=t_fast, reference=t_ref, ratio=ratio,
                                bound=bound, torch=t_torch))
        return results
    finally:
        fastnn.set_num_threads(0)
        if blas:
            blas.unregister()


def main(argv=None):
    """python -m fastnn.bench [kernels|models ...] [--threads N]: the tables, one thread by default."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m fastnn.bench", description=main.__doc__)
    parser.add_argument("which", nargs="*", help=f"any of {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    unknown = set(args.which) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {list(WORKLOADS)}")
    run(which=args.which or list(WORKLOADS), threads=args.threads)


if __name__ == "__main__":
    main()
