"""Data sets: the bundled 8x8 digits, MNIST from IDX files, and volume 2's spiral.

Plain NumPy; imports nothing from the rest of fastnn.

The loaders return what the book's ``dataset/mnist.py`` returns:
``(x_train, t_train), (x_test, t_test)`` with

- x: float32 in [0, 1] when ``normalize`` else uint8 (the raw pixel values);
- t: uint8 index labels of shape (N,), or, with ``one_hot_label``, float64 one-hot (N, 10)
  as the book's ``_change_one_hot_label`` makes them.
"""

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

# ((x_train, t_train), (x_test, t_test))
Split = tuple[tuple[NDArray[Any], NDArray[Any]], tuple[NDArray[Any], NDArray[Any]]]

__all__ = ["load_digits", "load_mnist", "load_spiral"]

_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
_DIGITS_FILE = _DATA_DIR / "digits.npz"

# load_digits' fixed split: 360 test images drawn once by a seeded permutation. RandomState's
# stream is frozen by NumPy's compatibility policy (NEP 19), so the split never changes. The file's
# own order is not used: its last rows come from other writers, and a test set of them alone caps a
# two-layer net near 91% while the same net reaches 99% on a shuffled split.
DIGITS_N_TEST = 360
DIGITS_SPLIT_SEED = 0


def digits_split(n_images):
    """(train_index, test_index) of load_digits: fixed, disjoint, each sorted."""
    order = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(n_images)
    return np.sort(order[DIGITS_N_TEST:]), np.sort(order[:DIGITS_N_TEST])


def _one_hot(labels, num_classes=10):
    """(N,) integer labels -> (N, num_classes) float64 one-hot (the book's dtype)."""
    t = np.zeros((labels.shape[0], num_classes))
    t[np.arange(labels.shape[0]), labels] = 1
    return t


# --------------------------------------------------------------------------- digits

def load_digits(normalize: bool = True, one_hot_label: bool = False) -> Split:
    """The 8x8 handwritten digits shipped with fastnn (UCI optdigits test set, 1,797 images).

    Fixed split: 360 test images chosen once by a seeded permutation (``digits_split``), the other
    1,437 train. Source, licence and split are described in ``fastnn/data/README.md``.

    Returns ``(x_train, t_train), (x_test, t_test)``:

    - x: (N, 64), row-major 8x8 pixels; float32 in [0, 1] (pixel / 16) if ``normalize``, else uint8
      in 0..16.
    - t: (N,) uint8 labels 0..9, or (N, 10) float64 one-hot if ``one_hot_label``.

    N is 1437 for train and 360 for test.
    """
    with np.load(_DIGITS_FILE, allow_pickle=False) as data:
        images = data["images"]
        labels = data["labels"]

    if normalize:
        x = images.astype(np.float32) / np.float32(16.0)
    else:
        x = images
    t = _one_hot(labels) if one_hot_label else labels

    train, test = digits_split(images.shape[0])
    return (x[train], t[train]), (x[test], t[test])


# --------------------------------------------------------------------------- MNIST (IDX)

_MNIST_FILES = {
    "train_img": "train-images-idx3-ubyte",
    "train_label": "train-labels-idx1-ubyte",
    "test_img": "t10k-images-idx3-ubyte",
    "test_label": "t10k-labels-idx1-ubyte",
}
_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
_GZIP_MAGIC = b"\x1f\x8b"


def _find_idx_file(directory, name):
    """``name.gz`` if present, else ``name``; FileNotFoundError naming both and the directory."""
    for candidate in (name + ".gz", name):
        p = directory / candidate
        if p.is_file():
            return p
    raise FileNotFoundError(
        f"MNIST file {name!r} (or {name + '.gz'!r}) not found in directory '{directory}'")


def _read_idx_bytes(path):
    """The file's bytes, gunzipped if they start with the gzip magic (whatever the file name)."""
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return data


def _read_idx(path, magic):
    """Parse one IDX file; returns uint8 (n, rows, cols) images or (n,) labels (writable copy)."""
    data = _read_idx_bytes(path)
    is_images = magic == _IDX_IMAGES_MAGIC
    kind = "images" if is_images else "labels"
    header_len = 16 if is_images else 8

    if len(data) < header_len:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than the {header_len}-byte IDX "
                         f"{kind} header (truncated or not an IDX file)")
    found = int.from_bytes(data[0:4], "big")
    if found != magic:
        hint = ""
        if found in (_IDX_IMAGES_MAGIC, _IDX_LABELS_MAGIC):
            other = "images" if found == _IDX_IMAGES_MAGIC else "labels"
            hint = f" (that is the magic of an IDX {other} file)"
        raise ValueError(f"{path}: bad magic number {found} (0x{found:08x}); expected {magic} "
                         f"(0x{magic:08x}) for an IDX {kind} file{hint}")

    dims = [int.from_bytes(data[i:i + 4], "big") for i in range(4, header_len, 4)]
    if is_images and (dims[1] == 0 or dims[2] == 0):
        raise ValueError(f"{path}: header declares images of {dims[1]}x{dims[2]} pixels")
    n_bytes = math.prod(dims)
    if len(data) - header_len != n_bytes:
        shape = "x".join(str(d) for d in dims)
        raise ValueError(f"{path}: header declares {kind} {shape} = {n_bytes} data bytes, but the "
                         f"{len(data) - header_len} follow the header (truncated or corrupt)")

    arr = np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims).copy()
    if not is_images and arr.size and arr.max() > 9:
        raise ValueError(f"{path}: label values must be 0..9, found {int(arr.max())}")
    return arr


def _load_idx_pair(directory, img_name, label_name):
    img_path = _find_idx_file(directory, img_name)
    label_path = _find_idx_file(directory, label_name)
    images = _read_idx(img_path, _IDX_IMAGES_MAGIC)
    labels = _read_idx(label_path, _IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{img_path} holds {images.shape[0]} images but {label_path} holds "
                         f"{labels.shape[0]} labels; the counts must agree")
    return img_path, images, labels


def load_mnist(path: str | os.PathLike[str], normalize: bool = True, flatten: bool = True,
               one_hot_label: bool = False) -> Split:
    """MNIST (or any data set in the same format) from the four standard IDX files in ``path``.

    ``path`` is a directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each gzipped (``.gz``, preferred
    if both exist) or raw. Magic numbers (2051 images, 2049 labels), header sizes against the
    byte count, image/label counts and label range 0..9 are checked.

    Returns ``(x_train, t_train), (x_test, t_test)``:

    - x: (N, rows*cols) if ``flatten`` else (N, 1, rows, cols) (784 and 28x28 for MNIST);
      float32 in [0, 1] (pixel / 255) if ``normalize``, else uint8 0..255.
    - t: (N,) uint8 labels, or (N, 10) float64 one-hot if ``one_hot_label``.

    Raises FileNotFoundError (directory or file missing, naming it), NotADirectoryError (``path``
    is a file) and ValueError (a corrupt file, naming the file and the fault).
    """
    directory = Path(os.fspath(path))
    if not directory.exists():
        raise FileNotFoundError(f"MNIST directory not found: '{directory}'")
    if not directory.is_dir():
        raise NotADirectoryError(f"MNIST path is not a directory: '{directory}'")

    train_path, x_train, t_train = _load_idx_pair(
        directory, _MNIST_FILES["train_img"], _MNIST_FILES["train_label"])
    test_path, x_test, t_test = _load_idx_pair(
        directory, _MNIST_FILES["test_img"], _MNIST_FILES["test_label"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"image sizes differ: {train_path} has {x_train.shape[1]}x"
                         f"{x_train.shape[2]}, {test_path} has {x_test.shape[1]}x{x_test.shape[2]}")

    def prepare(x, t):
        if normalize:
            x = x.astype(np.float32)
            x /= 255.0
        n, rows, cols = x.shape
        x = x.reshape(n, rows * cols) if flatten else x.reshape(n, 1, rows, cols)
        if one_hot_label:
            t = _one_hot(t)
        return x, t

    return prepare(x_train, t_train), prepare(x_test, t_test)


# --------------------------------------------------------------------------- spiral

def load_spiral(seed: int | None = 1984) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Volume 2's three-class spiral (``dataset/spiral.py``, ``load_data``).

    Returns ``(x, t)``: x (300, 2) float64 points, t (300, 3) int64 one-hot; rows 100*j ..
    100*j+99 belong to class j. Draws from ``np.random.RandomState(seed)``, which gives the same
    numbers as the book's ``np.random.seed(seed)`` followed by ``np.random.randn()`` but leaves
    NumPy's global random state untouched.
    """
    rng = np.random.RandomState(seed)
    N = 100  # samples per class
    DIM = 2  # features per sample
    CLS_NUM = 3  # classes

    x = np.zeros((N * CLS_NUM, DIM))
    t = np.zeros((N * CLS_NUM, CLS_NUM), dtype=np.int64)

    for j in range(CLS_NUM):
        for i in range(N):
            rate = i / N
            radius = 1.0 * rate
            theta = j * 4.0 + 4.0 * rate + rng.randn() * 0.2

            ix = N * j + i
            x[ix] = np.array([radius * np.sin(theta), radius * np.cos(theta)])
            t[ix, j] = 1

    return x, t
