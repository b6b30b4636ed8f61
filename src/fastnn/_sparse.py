"""The first layer's sparse path, shared by the two-layer models (models.py) and the networks of
any depth (multilayer.py): whether x W1 and x^T dz skip x's zeros, and NumPy's BLAS held to one
thread around such a step."""
import contextlib

import numpy as np

from . import _core

# x W1 and x^T dz skip zeros when at most this share of x is nonzero: below it the sparse kernels
# beat NumPy's BLAS for a 784-50 first layer (measured: bench/, `fastnn bench`)
SPARSE_MAX_DENSITY = 0.3


_blas_controller = None  # threadpoolctl's view of NumPy's BLAS, made on first use


def _blas_one_thread(sparse, hidden_size):
    """A context that holds NumPy's BLAS to one thread around a sparse step (sparse: its SparseX;
    None for a dense step, whose big products are BLAS's) whose hidden layer (N * H elements,
    hidden_size) is big enough for fastnn's OpenMP threads: BLAS's own threads spin between
    calls and take the cores from fastnn's (784-1000-10, batch 256, 2 threads: 16 ms a step with
    both pools, 6.9 ms with BLAS on one). Needs threadpoolctl (optional); without it, a no-op."""
    global _blas_controller
    if sparse is None or hidden_size < _core.PARALLEL_MIN or _core.get_num_threads() < 2:
        return contextlib.nullcontext()
    if _blas_controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas_controller = False
        else:
            _blas_controller = ThreadpoolController().select(user_api="blas")
    if not _blas_controller:
        return contextlib.nullcontext()
    return _blas_controller.limit(limits=1)


def _one_blas_thread(sparse, hidden):
    """_blas_one_thread for the hidden layer `hidden` (N, H), an array."""
    return _blas_one_thread(sparse, hidden.size)


def sparse_x(x, W1, sparse):
    """sparse (a SparseX) filled with x when x is sparse enough for the first layer's products to
    skip its zeros, else None. Also None when x or W1 holds inf or NaN: skipping x's zeros would
    drop the NaN that 0 * inf gives in BLAS."""
    if not (_core.is_float_buffer(x, 2) and _core.is_float_buffer(W1, 2) and x.dtype == W1.dtype):
        return None
    sample = x.reshape(-1)[::61]  # a cheap look first: dense data skips the indexing
    if np.count_nonzero(sample) > SPARSE_MAX_DENSITY * sample.size:
        return None
    if sparse.fill(x) > SPARSE_MAX_DENSITY * x.size or not sparse.finite:
        return None
    return sparse if _core.all_finite(W1) else None
