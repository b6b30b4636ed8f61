"""Helpers shared by the kernel test files (imported as ``from helpers import ...``)."""

import importlib
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

import fastnn

FLOATS = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]
PARALLEL_MIN = 131072  # csrc/real.h: FASTNN_PARALLEL_MIN, the size from which OpenMP threads start
MAX_ULPS = 4  # the kernels' sigmoid against the reference's (tests/test_sigmoid.py)
LAYOUTS = ["c", "fortran", "strided", "strided_last", "reversed", "readonly", "byteswapped"]
BASE_EXAMPLES = 100  # max_examples of the quick hypothesis profile (tests/conftest.py)


def examples(n):
    """A test's hypothesis budget: n examples under the quick profile (the default), scaled with
    the profile loaded (tests/conftest.py: ci twice, deep twenty times)."""
    return max(1, n * settings.default.max_examples // BASE_EXAMPLES)


def halves_of(module, *names):
    """The halves a test of fastnn.<module>.<names> runs on, as params for the ``half`` fixture
    (``@pytest.mark.parametrize("half", halves_of("layers", "Repeat"), indirect=True)``): both
    when the fast half has its own objects, else the reference alone. A name the fast half
    re-exports from the reference is the reference's object: running its test "on both halves"
    would run the reference's code twice and prove nothing more, so it runs once, and on both
    from the day the fast half gets its own."""
    fast = importlib.import_module(f"fastnn.{module}")
    ref = importlib.import_module(f"fastnn.reference.{module}")
    reexported = all(getattr(fast, name) is getattr(ref, name) for name in names)
    return ["reference"] if reexported else ["reference", "fast"]


@contextmanager
def num_threads(n):
    """The kernels' thread count set to n, back to the default (0) afterwards."""
    fastnn.set_num_threads(n)
    try:
        yield
    finally:
        fastnn.set_num_threads(0)


VECTOR_PATHS = ["avx512", "avx2", "portable"]


@contextmanager
def vector_path(path):
    """The kernels' explicit AVX-512 code ("avx512"), AVX2 code ("avx2"; kernels without any run
    their portable code) or portable code ("portable"), where the CPU has it (else the test is
    skipped); the widest again afterwards."""
    from fastnn import _core
    if not _core.set_simd(path):
        _core.set_simd("avx512")
        pytest.skip(f"no {path} on this CPU")
    try:
        yield
    finally:
        _core.set_simd("avx512")


def with_layout(x, layout):
    """An array equal to x in shape and values, laid out in memory as `layout` says; gaps of
    strided views hold NaN (floats) or -1 (integers), so a kernel reading them shows up."""
    x = np.asarray(x)
    poison = np.nan if x.dtype.kind == "f" else -1
    if layout == "c":
        return np.array(x, order="C")
    if layout == "fortran":
        return np.asfortranarray(x)
    if layout == "strided":  # every other element along the first axis
        big = np.full((2 * x.shape[0],) + x.shape[1:], poison, dtype=x.dtype)
        big[::2] = x
        return big[::2]
    if layout == "strided_last":  # every other element along the last axis
        big = np.full(x.shape[:-1] + (2 * x.shape[-1],), poison, dtype=x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    if layout == "reversed":  # negative strides on every axis
        index = (slice(None, None, -1),) * x.ndim
        return np.array(x[index], order="C")[index]
    if layout == "transposed":  # a C-contiguous array's transpose: Fortran order
        return np.array(x.T, order="C").T
    if layout == "readonly":
        y = np.array(x, order="C")
        y.flags.writeable = False
        return y
    if layout == "byteswapped":
        return x.astype(x.dtype.newbyteorder())
    raise ValueError(layout)


def conv_case(draw, max_filters=8):
    """A convolution's or pooling's shapes from a hypothesis `draw`: (N, C, H, W) with batch 1-3,
    1-3 channels and odd and even sizes 1-9, a window (FH, FW) that fits the padded input,
    stride 1-3, pad 0-2 and a filter count 1-max_filters."""
    stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 9)),
             draw(st.integers(1, 9)))
    fh = draw(st.integers(1, min(5, shape[2] + 2 * pad)))
    fw = draw(st.integers(1, min(5, shape[3] + 2 * pad)))
    return shape, (fh, fw), stride, pad, draw(st.integers(1, max_filters))
