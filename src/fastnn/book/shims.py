"""The few book names that are not a fastnn name: the data loaders and volume 2's GPU switches.

``configure`` (called by the runner) says which half answers (``fastnn`` or ``fastnn.reference``)
and where the MNIST files are.
"""
import importlib

import numpy as np

GPU = False  # volume 2's common.config.GPU: fastnn runs on the CPU

_root = "fastnn"
_mnist_dir = None


class SetupError(Exception):
    """Something the runner's caller must fix (no MNIST directory, a bad IDX file): one line."""


def configure(root, mnist_dir):
    """root: "fastnn" or "fastnn.reference"; mnist_dir: the directory of --mnist or $FASTNN_MNIST,
    or None."""
    global _root, _mnist_dir
    _root, _mnist_dir = root, mnist_dir


def load_mnist(normalize=True, flatten=True, one_hot_label=False):
    """The book's ``dataset.mnist.load_mnist``, from the configured directory, never downloaded.

    Returns ``(x_train, t_train), (x_test, t_test)`` as ``fastnn.load_mnist`` does (float32 in
    [0, 1] when normalize, uint8 labels or float64 one-hot), which is what the book's loader
    returns.
    """
    if _mnist_dir is None:
        raise SetupError("this script loads MNIST: give the directory of its four IDX files with "
                         "--mnist DIR or set FASTNN_MNIST=DIR (fastnn never downloads)")
    root = importlib.import_module(_root)
    try:
        return root.load_mnist(_mnist_dir, normalize=normalize, flatten=flatten,
                               one_hot_label=one_hot_label)
    except (OSError, ValueError) as e:
        raise SetupError(f"MNIST from {_mnist_dir}: {e}") from None


def load_data(seed=1984):
    """Volume 2's ``dataset.spiral.load_data``: ``(x, t)``, x (300, 2), t (300, 3) int32 one-hot.

    As the book's, it seeds NumPy's global random state with ``seed`` and draws one ``randn()`` per
    point from it, so the script's later draws (initial weights, ``np.random.permutation``) are the
    book's; the points themselves come from ``load_spiral(seed)``, which draws the same numbers.
    """
    x, t = importlib.import_module(_root).load_spiral(seed)
    np.random.seed(seed)
    for _ in range(x.shape[0]):
        np.random.randn()
    return x, t.astype(np.int32)


def to_cpu(x):
    """Volume 2's ``common.util.to_cpu``: with GPU = False every array is already a NumPy array."""
    return np.asarray(x)


def to_gpu(x):
    """Volume 2's ``common.util.to_gpu`` needs CuPy and a GPU; fastnn runs on the CPU."""
    raise ImportError("fastnn.book runs volume 2 with GPU = False: common.util.to_gpu (CuPy) is "
                      "not available")


__all__ = ["GPU", "SetupError", "configure", "load_mnist", "load_data", "to_cpu", "to_gpu"]
