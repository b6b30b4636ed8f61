"""The _core boundary: every entry point, called directly, checks every array it hands to C.

The public face validates and converts its arguments before it calls _core, but _core does not rely
on that: each entry checks the dtype, size, dimensions, layout and writability of every buffer
before the kernel sees it, whoever the caller is. ENTRIES below describes every entry that takes
arrays: how to build a valid call, and what each array argument is. From it, every argument gets
every corruption that applies to it (another float dtype, int64, byte-swapped, one row or column
short, 1-D where 2-D is needed, strided, Fortran order, unaligned, read-only where it is written),
and each must raise TypeError or ValueError with every argument left as it was: nothing read out
of bounds (tools/sanitize.sh runs this file under ASan), nothing written. tests/test_fuzz.py's
_core section draws from the same table.

ENTRIES must list every public function of _core that takes arrays (test_every_entry_is_listed),
and _core.pyi must give every public name of _core a signature (test_stub_covers_core).
"""

import ast
import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import _core


@dataclass(frozen=True)
class Arg:
    """An array argument of an entry.

    kind: "float" (a float buffer), "labels" (int64 index labels), "strided" (numerical_gradient's
    x: any strides and alignment, native float) or "mask" (a bool array: byte order and alignment
    do not apply); two_d: its entry needs it 2-D (else only its size
    counts); written: the entry writes it; axis: the axis whose length another argument must match
    (None: no other argument constrains its size); typed: its float dtype must match the others'
    (or be float64), so float32 <-> float64 is an error.
    """
    kind: str = "float"
    two_d: bool = False
    written: bool = False
    axis: int | None = 0
    typed: bool = True


IN, OUT = Arg(), Arg(written=True)


def rows(axis):
    return Arg(two_d=True, axis=axis)


@dataclass(frozen=True)
class Entry:
    call: object  # (*args) -> result
    make: object  # (dtype, n, c, rng) -> list of arguments, a valid call
    args: dict    # position -> Arg, every array argument


def _floats(rng, dtype, *shape):
    return rng.standard_normal(shape).astype(dtype)


def _labels(rng, n, c):
    return rng.integers(0, c, size=n).astype(np.int64)


def _sparse(rng, dtype, n, inp):
    x = _floats(rng, dtype, n, inp)
    x[rng.random(x.shape) < 0.5] = 0
    sparse = _core.SparseX()
    sparse.fill(x)
    return sparse


def _twolayer_args(dtype, n, c, rng):
    hid, out = 3, 4
    return [_floats(rng, np.float64, n, c), _labels(rng, n, out),
            _floats(rng, np.float64, c, hid), _floats(rng, np.float64, hid),
            _floats(rng, np.float64, hid, out), _floats(rng, np.float64, out),
            _floats(rng, np.float64, n, hid), _floats(rng, np.float64, n, hid),
            _floats(rng, np.float64, n, out), False, dtype == np.float32, 1e-4]


ENTRIES = {
    "all_finite": Entry(
        _core.all_finite, lambda dt, n, c, rng: [_floats(rng, dt, n, c)],
        {0: Arg(axis=None, typed=False)}),
    "sigmoid_forward": Entry(
        _core.sigmoid_forward,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), np.empty((n, c), dt)],
        {0: IN, 1: OUT}),
    "sigmoid_backward": Entry(
        _core.sigmoid_backward,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), _floats(rng, dt, n, c), np.empty((n, c), dt)],
        {0: IN, 1: IN, 2: OUT}),
    "softmax_ce_forward": Entry(
        _core.softmax_ce_forward,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), _labels(rng, n, c), _floats(rng, dt, c)],
        {0: rows(0), 1: Arg("labels"), 2: IN}),
    "softmax_ce_backward": Entry(
        _core.softmax_ce_backward,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), _labels(rng, n, c), 0.5],
        {0: Arg(two_d=True, typed=False), 1: Arg("labels")}),
    "bias_grad": Entry(
        _core.bias_grad, lambda dt, n, c, rng: [_floats(rng, dt, n, c), np.empty(c, dt)],
        {0: rows(1), 1: OUT}),
    "sgd_update": Entry(
        _core.sgd_update, lambda dt, n, c, rng: [_floats(rng, dt, n, c), _floats(rng, dt, n, c), 0.1],
        {0: OUT, 1: IN}),
    "weight_decay_grad": Entry(
        _core.weight_decay_grad,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), _floats(rng, dt, n, c), 0.1,
                               np.empty((n, c), dt)],
        {0: IN, 1: IN, 3: OUT}),
    "adam_update": Entry(
        _core.adam_update,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), _floats(rng, dt, n, c), _floats(rng, dt, n, c),
                               np.abs(_floats(rng, dt, n, c)), 0.01, 0.1, 0.001, True],
        {0: OUT, 1: IN, 2: OUT, 3: OUT}),
    "bias_act_forward": Entry(
        _core.bias_act_forward, lambda dt, n, c, rng: [_floats(rng, dt, n, c), _floats(rng, dt, c), True],
        {0: Arg(two_d=True, written=True, axis=1), 1: IN}),
    "act_backward_bias": Entry(
        _core.act_backward_bias,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), _floats(rng, dt, n, c), False, np.empty(c, dt)],
        {0: Arg(two_d=True, written=True, axis=0), 1: IN, 3: OUT}),
    "SparseX.fill": Entry(
        lambda x: _core.SparseX().fill(x), lambda dt, n, c, rng: [_floats(rng, dt, n, c)],
        {0: Arg(two_d=True, axis=None, typed=False)}),
    "sparse_matmul": Entry(
        _core.sparse_matmul,
        lambda dt, n, c, rng: [_sparse(rng, dt, n, c), _floats(rng, dt, c, 5), np.empty((n, 5), dt)],
        {1: rows(0), 2: OUT}),
    "sparse_t_matmul": Entry(
        _core.sparse_t_matmul,
        lambda dt, n, c, rng: [_sparse(rng, dt, n, c), _floats(rng, dt, n, 5), np.empty((c, 5), dt)],
        {1: rows(0), 2: OUT}),
    "twolayer_numerical_gradient": Entry(
        _core.twolayer_numerical_gradient, _twolayer_args,
        {0: rows(0), 1: Arg("labels"), 2: rows(0), 3: IN, 4: rows(0), 5: IN, 6: IN, 7: IN,
         8: IN}),
    "numerical_gradient": Entry(
        _core.numerical_gradient,
        lambda dt, n, c, rng: [lambda _: 1.0, _floats(rng, dt, n, c), 1e-4, np.empty(n * c, dt)],
        {1: Arg("strided", written=True), 3: OUT}),
}

# the two-layer net's one-call training and accuracy (_core_train_steps.pxi); the batch indices
# (an int64 (steps, batch) array) are checked in tests/test_train_steps.py
WRITTEN_ROWS = Arg(two_d=True, written=True)


def _steps_args(dt, n, c, rng):
    hid, out = 3, 4
    return [_floats(rng, dt, n, c), _labels(rng, n, out), rng.integers(0, n, (2, 3)),
            _floats(rng, dt, c, hid), _floats(rng, dt, hid), _floats(rng, dt, hid, out),
            _floats(rng, dt, out), False, 0.1, np.empty((c, hid), dt), np.empty(hid, dt),
            np.empty((hid, out), dt), np.empty(out, dt), _core.TwoLayerWork()]


def _accuracy_args(dt, n, c, rng):
    hid, out = 3, 4
    return [_floats(rng, dt, n, c), _labels(rng, n, out), _floats(rng, dt, c, hid),
            _floats(rng, dt, hid), _floats(rng, dt, hid, out), _floats(rng, dt, out), True,
            _core.TwoLayerWork()]


ENTRIES.update({
    "twolayer_sgd_steps": Entry(
        _core.twolayer_sgd_steps, _steps_args,
        {0: rows(0), 1: Arg("labels"), 3: WRITTEN_ROWS, 4: OUT, 5: WRITTEN_ROWS, 6: OUT,
         9: WRITTEN_ROWS, 10: OUT, 11: WRITTEN_ROWS, 12: OUT}),
    "twolayer_accuracy": Entry(
        _core.twolayer_accuracy, _accuracy_args,
        {0: rows(0), 1: Arg("labels"), 2: rows(0), 3: IN, 4: rows(0), 5: IN}),
})

# chapter 6's layers (_core_layers.pxi): masks are bool, batch statistics float64 whatever dtype
MASK_IN, MASK_OUT = Arg("mask", typed=False), Arg("mask", written=True, typed=False)
STATS_IN, STATS_OUT = Arg(axis=0), Arg(written=True)


def _mask(rng, n, c):
    return rng.random((n, c)) < 0.5


def _bn_train_args(dt, n, c, rng):
    return [_floats(rng, dt, n, c), _floats(rng, dt, c), _floats(rng, dt, c), 1e-6, True,
            np.empty((n, c), dt), np.empty(c), np.empty(c), np.empty(c)]


def _bn_test_args(dt, n, c, rng):
    return [_floats(rng, dt, n, c), _floats(rng, dt, c), _floats(rng, dt, c),
            _floats(rng, np.float64, c), rng.random(c), 1e-6, False, np.empty((n, c), dt)]


def _bn_backward_args(dt, n, c, rng):
    return [_floats(rng, dt, n, c), _floats(rng, dt, n, c), _floats(rng, dt, n, c),
            _floats(rng, dt, c), _floats(rng, np.float64, c), rng.random(c) + 0.5,
            np.empty((n, c), dt), np.empty(c, dt), np.empty(c, dt)]


ENTRIES.update({
    "batchnorm_forward_train": Entry(
        _core.batchnorm_forward_train, _bn_train_args,
        {0: rows(1), 1: IN, 2: IN, 5: OUT, 6: STATS_OUT, 7: STATS_OUT, 8: STATS_OUT}),
    "batchnorm_forward_test": Entry(
        _core.batchnorm_forward_test, _bn_test_args,
        {0: rows(1), 1: IN, 2: IN, 3: STATS_IN, 4: STATS_IN, 7: OUT}),
    "batchnorm_backward": Entry(
        _core.batchnorm_backward, _bn_backward_args,
        {0: IN, 1: IN, 2: rows(1), 3: IN, 4: STATS_IN, 5: STATS_IN, 6: OUT, 7: OUT, 8: OUT}),
    "relu_forward": Entry(
        _core.relu_forward,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), np.empty((n, c), dt), np.empty((n, c), bool)],
        {0: IN, 1: OUT, 2: MASK_OUT}),
    "relu_backward": Entry(
        _core.relu_backward,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), _mask(rng, n, c), np.empty((n, c), dt)],
        {0: IN, 1: MASK_IN, 2: OUT}),
    "dropout_forward": Entry(
        _core.dropout_forward,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), rng.random((n, c)), 0.5,
                               np.empty((n, c), dt), np.empty((n, c), bool)],
        {0: IN, 1: STATS_IN, 3: OUT, 4: MASK_OUT}),
    "dropout_backward": Entry(
        _core.dropout_backward,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), _mask(rng, n, c), np.empty((n, c), dt)],
        {0: IN, 1: MASK_IN, 2: OUT}),
})

# chapters 7-8 (_core_conv.pxi): 4-D batches of planes, int32 window indices of the pooling
PLANES_IN, PLANES_OUT = Arg(two_d=True), Arg(two_d=True, written=True)
WINDOWS_IN, WINDOWS_OUT = Arg(typed=False), Arg(written=True, typed=False)


def _conv_gemm_share(c, n, wgrad):
    """One thread's share of conv_gemm's work: c planes of 5 x 5, a 3 x 3 window, pad 1, blocks of
    min(n, 2) samples, 5 filters."""
    return _core.conv_gemm_work_size(c, 5, 5, 3, 3, 1, 1, min(n, 2), 5, wgrad)


def _windows(rng, n, c):
    return rng.integers(0, 4, size=(n, c, 3, 3)).astype(np.int32)


ENTRIES.update({
    "im2col": Entry(
        _core.im2col,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c, 5, 5), 3, 3, 1, 1,
                               np.empty((n * 25, c * 9), dt), False, False],
        {0: PLANES_IN, 5: OUT}),
    "col2im": Entry(
        _core.col2im,
        lambda dt, n, c, rng: [_floats(rng, dt, n * 25, c * 9), np.empty((n, c, 5, 5), dt),
                               3, 3, 1, 1, False, False],
        {0: IN, 1: PLANES_OUT}),
    "swap_outer": Entry(
        _core.swap_outer,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c, 5), np.empty((c, n, 5), dt),
                               _floats(rng, dt, n)],
        {0: PLANES_IN, 1: OUT, 2: IN}),
    "conv_direct1": Entry(
        _core.conv_direct1,
        lambda dt, n, c, rng: [_floats(rng, dt, n, 1, 5, 5), _floats(rng, dt, c, 1, 3, 3),
                               _floats(rng, dt, c), 1, True, np.empty((c, n * 25), dt)],
        {0: PLANES_IN, 1: PLANES_IN, 2: IN, 5: OUT}),
    "conv_direct1_grads": Entry(
        _core.conv_direct1_grads,
        lambda dt, n, c, rng: [_floats(rng, dt, n, 1, 5, 5), _floats(rng, dt, c, n, 5, 5),
                               _floats(rng, dt, c, n, 5, 5), 3, 3, 1, np.empty((c, 9), dt),
                               np.empty(c, dt)],
        {0: PLANES_IN, 1: PLANES_OUT, 2: IN, 6: OUT, 7: OUT}),
    "conv_bias_act": Entry(
        _core.conv_bias_act,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c, 5), _floats(rng, dt, n), True],
        {0: PLANES_OUT, 1: IN}),
    "conv_act_backward_bias": Entry(
        _core.conv_act_backward_bias,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c, 5), _floats(rng, dt, n, c, 5),
                               np.empty(n, dt)],
        {0: PLANES_OUT, 1: IN, 2: OUT}),
    # blocks of 2 of the n samples (or 1); work holds exactly one thread's share
    "conv_gemm": Entry(
        _core.conv_gemm,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c, 5, 5), 3, 3, 1, 1, False,
                               _floats(rng, dt, 5, c * 9), _floats(rng, dt, 5), True, min(n, 2),
                               np.empty(_conv_gemm_share(c, n, False), dt),
                               np.empty((5, n * 25), dt)],
        {0: PLANES_IN, 6: rows(1), 7: IN, 10: OUT, 11: OUT}),
    "conv_gemm_wgrad": Entry(
        _core.conv_gemm_wgrad,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c, 5, 5), 3, 3, 1, 1, False,
                               _floats(rng, dt, 5, n * 25), min(n, 2),
                               np.empty(_conv_gemm_share(c, n, True), dt),
                               np.empty((c * 9, 5), dt)],
        {0: PLANES_IN, 6: rows(1), 8: OUT, 9: OUT}),
    "maxpool_forward": Entry(
        _core.maxpool_forward,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c, 6, 6), 2, 2, 2, 0,
                               np.empty((n, c, 3, 3), dt), np.empty((n, c, 3, 3), np.int32)],
        {0: PLANES_IN, 5: PLANES_OUT, 6: WINDOWS_OUT}),
    "maxpool_backward": Entry(
        _core.maxpool_backward,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c, 3, 3), _windows(rng, n, c),
                               np.empty((n, c, 6, 6), dt), 2, 2, 2, 0],
        {0: PLANES_IN, 1: WINDOWS_IN, 2: PLANES_OUT}),
    "gemm_narrow": Entry(
        _core.gemm_narrow,
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), _floats(rng, dt, c, 5), np.empty((n, 5), dt)],
        {0: rows(0), 1: rows(0), 2: Arg(two_d=True, written=True, axis=0)}),
    "gemm_narrow, a transposed": Entry(
        lambda a, b, c: _core.gemm_narrow(a, b, c, True),
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), _floats(rng, dt, n, 5), np.empty((c, 5), dt)],
        {0: rows(0), 1: rows(0), 2: Arg(two_d=True, written=True, axis=0)}),
    # wide has room to spare past the block: only tall's columns and wide's rows must agree
    "transpose": Entry(
        lambda tall, wide: _core.transpose(tall, wide, 1, True),
        lambda dt, n, c, rng: [_floats(rng, dt, n, c), np.empty((c, n + 3), dt)],
        {0: rows(1), 1: Arg(two_d=True, written=True, axis=0)}),
    "transpose, to tall": Entry(
        lambda tall, wide: _core.transpose(tall, wide, 1, False),
        lambda dt, n, c, rng: [np.empty((n, c), dt), _floats(rng, dt, c, n + 3)],
        {0: Arg(two_d=True, written=True, axis=1), 1: rows(0)}),
    "mt19937_random": Entry(
        _core.mt19937_random,
        lambda dt, n, c, rng: [np.random.MT19937(0), np.empty((n, c))],
        {1: Arg(written=True, axis=None)}),
})

# public names of _core that take no arrays
NO_ARRAYS = {"PARALLEL_MIN", "set_num_threads", "get_num_threads", "set_simd", "SIMD_PATHS",
             "is_float_buffer", "is_label_buffer", "SparseX", "TwoLayerWork",
             "conv_gemm_work_size"}

# entries that answer an array they cannot take with False, writing nothing, instead of raising:
# name -> (make a valid call, {position: Arg})
DECLINERS = {
    "sgd_update_ready": (lambda dt, n, c, rng: [_floats(rng, dt, n, c), _floats(rng, dt, n, c),
                                                0.1, True],
                         {0: Arg(two_d=True, written=True, axis=1), 1: Arg(two_d=True, axis=1)}),
}


# --------------------------------------------------------------------------- corruptions

def _unaligned(a):
    buf = bytearray(a.nbytes + 1)
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


def _strided(a):
    big = np.zeros((2 * a.shape[0],) + a.shape[1:], a.dtype)
    big[::2] = a
    return big[::2]


def _short(a, axis):
    return np.ascontiguousarray(np.delete(a, -1, axis=axis))


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _other_float(a):
    return a.astype(np.float32 if a.dtype == np.float64 else np.float64)


# name -> (applies to the argument, corrupt the array)
CORRUPTIONS = {
    "other float dtype": (lambda arg: arg.kind != "labels" and arg.typed, _other_float),
    "int64": (lambda arg: arg.kind != "labels", lambda a: a.astype(np.int64)),
    "int32 labels": (lambda arg: arg.kind == "labels", lambda a: a.astype(np.int32)),
    "float64 labels": (lambda arg: arg.kind == "labels", lambda a: a.astype(np.float64)),
    "byte-swapped": (lambda arg: arg.kind != "mask", lambda a: a.astype(a.dtype.newbyteorder())),
    "one short": (lambda arg: arg.axis is not None, None),  # along arg.axis, see corrupt()
    "1-D": (lambda arg: arg.two_d, lambda a: a.reshape(-1)),
    "2-D labels": (lambda arg: arg.kind == "labels", lambda a: a.reshape(-1, 1)),
    "strided": (lambda arg: arg.kind != "strided", _strided),
    "Fortran order": (lambda arg: arg.kind != "strided", np.asfortranarray),
    "unaligned": (lambda arg: arg.kind not in ("strided", "mask"), _unaligned),
    "read-only output": (lambda arg: arg.written, _read_only),
}


def applicable(arg, a):
    """The corruptions that must make an entry refuse the array a in the place of arg."""
    names = [name for name, (applies, _) in CORRUPTIONS.items() if applies(arg)]
    if a.ndim < 2 or min(a.shape) < 2:  # still C-contiguous
        names = [name for name in names if name != "Fortran order"]
    if a.ndim == 0 or a.shape[0] < 2:  # one row: contiguous whatever its stride
        names = [name for name in names if name != "strided"]
    return names


def corrupt(name, arg, a):
    if name == "one short":
        return _short(a, arg.axis)
    with np.errstate(all="ignore"):  # casts of random values to int64
        return CORRUPTIONS[name][1](a)


def snapshot(args):
    """What must not change: the bytes of every array argument (and of a SparseX's source)."""
    return [a.tobytes() if isinstance(a, np.ndarray) else None for a in args]


def call_refused(entry, args):
    """entry.call(*args) must raise TypeError or ValueError with a message, changing nothing."""
    before = snapshot(args)
    with pytest.raises((TypeError, ValueError)) as error:
        entry.call(*args)
    assert str(error.value)
    assert snapshot(args) == before, "an argument was written by a call that raised"
    return error.value


# --------------------------------------------------------------------------- the tests

CASES = [(name, position, corruption)
         for name, entry in ENTRIES.items()
         for position, a in enumerate(entry.make(np.float64, 3, 4, np.random.default_rng(0)))
         if position in entry.args
         for corruption in applicable(entry.args[position], a)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(ENTRIES))
def test_valid_call_with_read_only_inputs(name, dtype):
    entry = ENTRIES[name]
    args = entry.make(dtype, 3, 4, np.random.default_rng(0))
    for position, arg in entry.args.items():
        if not arg.written:
            args[position] = _read_only(args[position])
    inputs = {i: args[i].tobytes() for i, arg in entry.args.items() if not arg.written}
    entry.call(*args)
    assert {i: args[i].tobytes() for i in inputs} == inputs


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name,position,corruption", CASES,
                         ids=[f"{n}-arg{p}-{c}" for n, p, c in CASES])
def test_bad_argument_is_refused(name, position, corruption, dtype):
    entry = ENTRIES[name]
    args = entry.make(dtype, 3, 4, np.random.default_rng(1))
    arg = entry.args[position]
    args[position] = corrupt(corruption, arg, args[position])
    error = call_refused(entry, args)
    if corruption in ("other float dtype", "int64", "int32 labels", "float64 labels"):
        assert isinstance(error, TypeError), error


@pytest.mark.parametrize("name", ["softmax_ce_forward", "softmax_ce_backward",
                                  "twolayer_numerical_gradient", "twolayer_sgd_steps",
                                  "twolayer_accuracy"])
@pytest.mark.parametrize("label", [-1, 4, 2**62])
def test_label_out_of_range_is_refused(name, label):
    entry = ENTRIES[name]
    args = entry.make(np.float64, 3, 4, np.random.default_rng(2))
    args[1][2] = label
    error = call_refused(entry, args)
    assert f"t[2] = {label}" in str(error)


def test_twolayer_numerical_gradient_refuses_float32_x():
    # the face casts x to float64 first; a float32 x handed on would be read as doubles, past its end
    args = _twolayer_args(np.float64, 3, 4, np.random.default_rng(3))
    args[0] = args[0].astype(np.float32)
    assert "x: expected float64" in str(call_refused(ENTRIES["twolayer_numerical_gradient"], args))


@pytest.mark.parametrize("x", [np.arange(6), np.arange(6.0).astype(">f8"), np.arange(6, dtype=np.uint64)],
                         ids=["int64", "big-endian float64", "uint64"])
def test_numerical_gradient_compares_formats_not_item_sizes(x):
    # each of these is 8 bytes an element, like grad's float64: only the format tells them apart
    grad = np.full(6, -7.0)
    with pytest.raises(TypeError, match="buffer format"):
        _core.numerical_gradient(lambda _: 1.0, x, 1e-4, grad)
    assert np.all(grad == -7.0)


def test_numerical_gradient_takes_any_native_float_buffer():
    # a memoryview of a float64 array: format "d", perturbed through the buffer protocol
    x = np.array([1.0, -2.0, 3.0])
    grad = np.empty(3)
    _core.numerical_gradient(lambda _: float(np.sum(x ** 2)), memoryview(x), 1e-4, grad)
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(DECLINERS))
def test_decliners_take_a_valid_call(name, dtype):
    make, _ = DECLINERS[name]
    args = make(dtype, 3, 4, np.random.default_rng(4))
    assert getattr(_core, name)(*args) is True


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name,position,corruption", [
    (name, position, corruption) for name, (make, args) in DECLINERS.items()
    for position, a in enumerate(make(np.float64, 3, 4, np.random.default_rng(0)))
    if position in args for corruption in applicable(args[position], a)])
def test_decliners_decline_a_bad_argument(name, position, corruption, dtype):
    make, spec = DECLINERS[name]
    args = make(dtype, 3, 4, np.random.default_rng(5))
    args[position] = corrupt(corruption, spec[position], args[position])
    before = snapshot(args)
    assert getattr(_core, name)(*args) is False
    assert snapshot(args) == before


def test_every_entry_is_listed():
    public = {name for name in dir(_core) if not name.startswith("_")}
    listed = {name.split(".")[0] for name in ENTRIES} | NO_ARRAYS | set(DECLINERS)
    assert public - listed == set(), "add the new _core entries to ENTRIES (or NO_ARRAYS)"


def _stub():
    """name -> parameter names of the stub's functions (a class: its methods as Class.method)."""
    tree = ast.parse((Path(fastnn.__file__).parent / "_core.pyi").read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names[node.name] = [a.arg for a in node.args.args]
        elif isinstance(node, ast.ClassDef):
            names[node.name] = None
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    names[f"{node.name}.{item.name}"] = [a.arg for a in item.args.args]
        elif isinstance(node, ast.AnnAssign):
            names[node.target.id] = None
    return names


def test_stub_covers_core():
    stub = _stub()
    public = sorted(name for name in dir(_core) if not name.startswith("_"))
    missing = [name for name in public if name not in stub]
    assert missing == [], "add these to src/fastnn/_core.pyi"
    # the stub's parameters are the real ones
    for name in public + ["SparseX.fill"]:
        obj = _core
        for part in name.split("."):
            obj = getattr(obj, part)
        if callable(obj) and not isinstance(obj, type):
            assert stub[name] == list(inspect.signature(obj).parameters), name
