"""Tests for fastnn.reference.datasets: bundled digits, MNIST IDX loader, volume 2's spiral."""

import gzip
import hashlib
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

import fastnn.reference.datasets as datasets
from helpers import examples


# =========================================================================== digits

DIGITS_FILE = Path(datasets.__file__).resolve().parent.parent / "data" / "digits.npz"
# Class counts of the whole file and SHA-256 of the raw arrays (see fastnn/data/README.md).
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
DIGITS_IMAGES_SHA256 = "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
DIGITS_LABELS_SHA256 = "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0"


def test_digits_file_is_small_and_intact():
    assert DIGITS_FILE.is_file()
    assert DIGITS_FILE.stat().st_size < 100_000
    with np.load(DIGITS_FILE, allow_pickle=False) as d:
        assert sorted(d.files) == ["images", "labels"]
        images, labels = d["images"], d["labels"]
    assert images.shape == (1797, 64) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.uint8
    assert hashlib.sha256(images.tobytes()).hexdigest() == DIGITS_IMAGES_SHA256
    assert hashlib.sha256(labels.tobytes()).hexdigest() == DIGITS_LABELS_SHA256


def test_digits_normalized_shapes_dtypes_ranges():
    (x_train, t_train), (x_test, t_test) = datasets.load_digits()
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert t_train.shape == (1437,) and t_test.shape == (360,)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert t_train.dtype == np.uint8 and t_test.dtype == np.uint8
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        assert np.all(np.isfinite(x))


def test_digits_raw_values_and_normalization():
    (r_train, rt_train), (r_test, rt_test) = datasets.load_digits(normalize=False)
    (n_train, nt_train), (n_test, nt_test) = datasets.load_digits(normalize=True)
    assert r_train.dtype == np.uint8 and r_test.dtype == np.uint8
    assert r_train.min() == 0 and r_train.max() == 16 and r_test.max() == 16
    # Division by 16 is exact in float32.
    np.testing.assert_array_equal(n_train, r_train.astype(np.float32) / 16)
    np.testing.assert_array_equal(n_test, r_test.astype(np.float32) / 16)
    np.testing.assert_array_equal(rt_train, nt_train)
    np.testing.assert_array_equal(rt_test, nt_test)


def test_digits_class_counts():
    (_, t_train), (_, t_test) = datasets.load_digits()
    assert t_train.min() == 0 and t_train.max() == 9
    assert t_test.min() == 0 and t_test.max() == 9
    train_counts = np.bincount(t_train, minlength=10)
    test_counts = np.bincount(t_test, minlength=10)
    assert (train_counts + test_counts).tolist() == DIGITS_CLASS_COUNTS
    # Every class is represented in the test set (27..46 images each).
    assert test_counts.min() >= 25


def test_digits_split_is_fixed_and_disjoint():
    (a_x, a_t), (b_x, b_t) = datasets.load_digits(normalize=False)
    (c_x, c_t), (d_x, d_t) = datasets.load_digits(normalize=False)
    np.testing.assert_array_equal(a_x, c_x)
    np.testing.assert_array_equal(a_t, c_t)
    np.testing.assert_array_equal(b_x, d_x)
    np.testing.assert_array_equal(b_t, d_t)

    # A seeded permutation (legacy RandomState: its stream is frozen) picks 360 test images;
    # train and test are disjoint by index and together the whole file.
    with np.load(DIGITS_FILE, allow_pickle=False) as d:
        images, labels = d["images"], d["labels"]
    order = np.random.RandomState(0).permutation(1797)
    train_idx, test_idx = np.sort(order[360:]), np.sort(order[:360])
    assert np.intersect1d(train_idx, test_idx).size == 0
    assert np.union1d(train_idx, test_idx).size == images.shape[0]
    np.testing.assert_array_equal(a_x, images[train_idx])
    np.testing.assert_array_equal(a_t, labels[train_idx])
    np.testing.assert_array_equal(b_x, images[test_idx])
    np.testing.assert_array_equal(b_t, labels[test_idx])


def test_digits_calls_are_independent():
    (x1, t1), _ = datasets.load_digits()
    x1[:] = -1.0
    t1[:] = 0
    (x2, t2), _ = datasets.load_digits()
    assert x2.min() == 0.0 and t2.max() == 9


def test_digits_one_hot():
    (x_train, t_train), (x_test, t_test) = datasets.load_digits(one_hot_label=True)
    (_, i_train), (_, i_test) = datasets.load_digits(one_hot_label=False)
    assert t_train.shape == (1437, 10) and t_test.shape == (360, 10)
    for t, idx in ((t_train, i_train), (t_test, i_test)):
        assert set(np.unique(t).tolist()) == {0.0, 1.0}
        np.testing.assert_array_equal(t.sum(axis=1), 1)
        np.testing.assert_array_equal(t.argmax(axis=1), idx)
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)


# =========================================================================== MNIST (IDX)

IMG_MAGIC, LABEL_MAGIC = 2051, 2049
NAMES = {
    "train_img": "train-images-idx3-ubyte",
    "train_label": "train-labels-idx1-ubyte",
    "test_img": "t10k-images-idx3-ubyte",
    "test_label": "t10k-labels-idx1-ubyte",
}


def idx_images_bytes(images, magic=IMG_MAGIC, n=None, rows=None, cols=None):
    """Header + payload for uint8 images (n, rows, cols); header fields can be overridden."""
    hn, hr, hc = images.shape
    header = struct.pack(">IIII", magic, hn if n is None else n,
                         hr if rows is None else rows, hc if cols is None else cols)
    return header + images.astype(np.uint8).tobytes()


def idx_labels_bytes(labels, magic=LABEL_MAGIC, n=None):
    header = struct.pack(">II", magic, len(labels) if n is None else n)
    return header + labels.astype(np.uint8).tobytes()


def write(directory, name, data, gz):
    path = directory / (name + ".gz" if gz else name)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_mnist(directory, gz, n_train=5, n_test=3, rows=28, cols=28, seed=0):
    """Write the four IDX files with random pixels and labels; return the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_img": rng.integers(0, 256, size=(n_train, rows, cols), dtype=np.uint8),
        "train_label": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_img": rng.integers(0, 256, size=(n_test, rows, cols), dtype=np.uint8),
        "test_label": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    for key, arr in arrays.items():
        data = idx_images_bytes(arr) if key.endswith("img") else idx_labels_bytes(arr)
        write(directory, NAMES[key], data, gz)
    return arrays


@pytest.fixture(params=[False, True], ids=["raw", "gzip"])
def gz(request):
    return request.param


def test_mnist_default_shapes_dtypes(tmp_path, gz):
    a = make_mnist(tmp_path, gz)
    (x_train, t_train), (x_test, t_test) = datasets.load_mnist(tmp_path)
    assert x_train.shape == (5, 784) and x_test.shape == (3, 784)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert t_train.shape == (5,) and t_test.shape == (3,)
    assert t_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, a["train_img"].reshape(5, 784).astype(np.float32) / 255)
    np.testing.assert_array_equal(x_test, a["test_img"].reshape(3, 784).astype(np.float32) / 255)
    np.testing.assert_array_equal(t_train, a["train_label"])
    np.testing.assert_array_equal(t_test, a["test_label"])
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0


def test_mnist_raw_unflattened(tmp_path, gz):
    a = make_mnist(tmp_path, gz)
    (x_train, t_train), (x_test, t_test) = datasets.load_mnist(
        str(tmp_path), normalize=False, flatten=False)
    assert x_train.shape == (5, 1, 28, 28) and x_test.shape == (3, 1, 28, 28)
    assert x_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train[:, 0], a["train_img"])
    np.testing.assert_array_equal(x_test[:, 0], a["test_img"])
    x_train[0, 0, 0, 0] ^= 1  # writable


@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_mnist_flatten_normalize_matrix(tmp_path, flatten, normalize):
    a = make_mnist(tmp_path, gz=False)
    (x_train, _), (x_test, _) = datasets.load_mnist(tmp_path, normalize=normalize, flatten=flatten)
    expected_shape = (5, 784) if flatten else (5, 1, 28, 28)
    assert x_train.shape == expected_shape
    assert x_train.dtype == (np.float32 if normalize else np.uint8)
    scale = 255.0 if normalize else 1.0
    np.testing.assert_array_equal((x_train * np.float32(scale)).round().astype(np.uint8)
                                  .reshape(5, 28, 28), a["train_img"])


def test_mnist_one_hot(tmp_path, gz):
    a = make_mnist(tmp_path, gz)
    (_, t_train), (_, t_test) = datasets.load_mnist(tmp_path, one_hot_label=True)
    assert t_train.shape == (5, 10) and t_test.shape == (3, 10)
    for t, idx in ((t_train, a["train_label"]), (t_test, a["test_label"])):
        np.testing.assert_array_equal(t.sum(axis=1), 1)
        np.testing.assert_array_equal(t.argmax(axis=1), idx)
        assert set(np.unique(t).tolist()) <= {0.0, 1.0}


def test_mnist_uses_header_rows_cols(tmp_path):
    a = make_mnist(tmp_path, gz=False, rows=4, cols=7)
    (x_train, _), (x_test, _) = datasets.load_mnist(tmp_path, normalize=False, flatten=False)
    assert x_train.shape == (5, 1, 4, 7) and x_test.shape == (3, 1, 4, 7)
    np.testing.assert_array_equal(x_train[:, 0], a["train_img"])
    (x_flat, _), _ = datasets.load_mnist(tmp_path, normalize=False)
    assert x_flat.shape == (5, 28)


def test_mnist_mixed_gzip_and_raw_prefers_gz(tmp_path):
    a = make_mnist(tmp_path, gz=False, seed=1)
    b = make_mnist(tmp_path, gz=True, seed=2)  # .gz beside the raw files: .gz wins
    (x_train, t_train), _ = datasets.load_mnist(tmp_path, normalize=False, flatten=False)
    np.testing.assert_array_equal(x_train[:, 0], b["train_img"])
    np.testing.assert_array_equal(t_train, b["train_label"])
    # Test images only raw, test labels only gzipped: each is found.
    (tmp_path / (NAMES["test_img"] + ".gz")).unlink()
    (tmp_path / NAMES["test_label"]).unlink()
    _, (x_test, t_test) = datasets.load_mnist(tmp_path, normalize=False, flatten=False)
    np.testing.assert_array_equal(x_test[:, 0], a["test_img"])
    np.testing.assert_array_equal(t_test, b["test_label"])


@given(n_train=st.integers(0, 6), n_test=st.integers(0, 4),
       rows=st.integers(1, 9), cols=st.integers(1, 9), gzipped=st.booleans())
@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mnist_roundtrip_any_size(tmp_path, n_train, n_test, rows, cols, gzipped):
    d = tmp_path / f"{n_train}_{n_test}_{rows}_{cols}_{int(gzipped)}"
    d.mkdir(exist_ok=True)
    a = make_mnist(d, gzipped, n_train=n_train, n_test=n_test, rows=rows, cols=cols)
    (x_train, t_train), (x_test, t_test) = datasets.load_mnist(d, normalize=False, flatten=False)
    assert x_train.shape == (n_train, 1, rows, cols) and x_test.shape == (n_test, 1, rows, cols)
    np.testing.assert_array_equal(x_train.reshape(n_train, rows, cols), a["train_img"])
    np.testing.assert_array_equal(x_test.reshape(n_test, rows, cols), a["test_img"])
    np.testing.assert_array_equal(t_train, a["train_label"])
    np.testing.assert_array_equal(t_test, a["test_label"])


# --- errors -----------------------------------------------------------------------------------

def test_mnist_missing_directory(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        datasets.load_mnist(missing)


def test_mnist_path_is_a_file(tmp_path):
    f = tmp_path / "a_file"
    f.write_bytes(b"")
    with pytest.raises(NotADirectoryError, match=re.escape(str(f))):
        datasets.load_mnist(f)


@pytest.mark.parametrize("key", list(NAMES))
def test_mnist_missing_file(tmp_path, gz, key):
    make_mnist(tmp_path, gz)
    (tmp_path / (NAMES[key] + (".gz" if gz else ""))).unlink()
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_mnist(tmp_path)
    msg = str(info.value)
    assert NAMES[key] in msg and str(tmp_path) in msg


@pytest.mark.parametrize("key, bad_magic", [
    ("train_img", LABEL_MAGIC), ("test_img", 0x12345678),
    ("train_label", IMG_MAGIC), ("test_label", 0),
])
def test_mnist_wrong_magic(tmp_path, gz, key, bad_magic):
    a = make_mnist(tmp_path, gz)
    if key.endswith("img"):
        data = idx_images_bytes(a[key], magic=bad_magic)
    else:
        data = idx_labels_bytes(a[key], magic=bad_magic)
    write(tmp_path, NAMES[key], data, gz)
    with pytest.raises(ValueError, match="magic") as info:
        datasets.load_mnist(tmp_path)
    assert NAMES[key] in str(info.value) and str(bad_magic) in str(info.value)


@pytest.mark.parametrize("key", list(NAMES))
@pytest.mark.parametrize("cut", [1, 200, "header"])
def test_mnist_truncated(tmp_path, gz, key, cut):
    a = make_mnist(tmp_path, gz)
    data = idx_images_bytes(a[key]) if key.endswith("img") else idx_labels_bytes(a[key])
    if cut == "header":
        data = data[:6]
    else:
        data = data[:max(len(data) - cut, 9 if key.endswith("label") else 17)]
    write(tmp_path, NAMES[key], data, gz)
    with pytest.raises(ValueError, match="truncated") as info:
        datasets.load_mnist(tmp_path)
    assert NAMES[key] in str(info.value)


def test_mnist_extra_bytes(tmp_path, gz):
    a = make_mnist(tmp_path, gz)
    write(tmp_path, NAMES["train_img"], idx_images_bytes(a["train_img"]) + b"\0" * 10, gz)
    with pytest.raises(ValueError, match=re.escape(NAMES["train_img"])):
        datasets.load_mnist(tmp_path)


def test_mnist_header_count_disagrees_with_payload(tmp_path):
    a = make_mnist(tmp_path, gz=False)
    write(tmp_path, NAMES["test_img"], idx_images_bytes(a["test_img"], n=4), gz=False)
    with pytest.raises(ValueError, match=re.escape(NAMES["test_img"]) + ".*header declares"):
        datasets.load_mnist(tmp_path)


def test_mnist_corrupt_gzip_stream(tmp_path):
    make_mnist(tmp_path, gz=True)
    p = tmp_path / (NAMES["train_label"] + ".gz")
    p.write_bytes(p.read_bytes()[:-12])  # cut off the deflate end and the gzip trailer
    with pytest.raises(ValueError, match=re.escape(NAMES["train_label"]) + ".*gzip"):
        datasets.load_mnist(tmp_path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_image_label_count_mismatch(tmp_path, gz, split):
    a = make_mnist(tmp_path, gz)
    key = f"{split}_label"
    write(tmp_path, NAMES[key], idx_labels_bytes(np.append(a[key], 1)), gz)  # one extra label
    with pytest.raises(ValueError, match="must agree") as info:
        datasets.load_mnist(tmp_path)
    msg = str(info.value)
    assert NAMES[f"{split}_img"] in msg and NAMES[key] in msg


def test_mnist_label_out_of_range(tmp_path):
    a = make_mnist(tmp_path, gz=False)
    labels = a["train_label"].copy()
    labels[2] = 10
    write(tmp_path, NAMES["train_label"], idx_labels_bytes(labels), gz=False)
    with pytest.raises(ValueError, match=re.escape(NAMES["train_label"]) + ".*0..9"):
        datasets.load_mnist(tmp_path)


def test_mnist_train_test_image_size_mismatch(tmp_path):
    make_mnist(tmp_path, gz=False)
    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 256, size=(3, 14, 14), dtype=np.uint8)
    write(tmp_path, NAMES["test_img"], idx_images_bytes(imgs), gz=False)
    with pytest.raises(ValueError, match="image sizes differ"):
        datasets.load_mnist(tmp_path)


def test_mnist_zero_rows_in_header(tmp_path):
    make_mnist(tmp_path, gz=False)
    write(tmp_path, NAMES["train_img"], struct.pack(">IIII", IMG_MAGIC, 5, 0, 28), gz=False)
    with pytest.raises(ValueError, match=re.escape(NAMES["train_img"])):
        datasets.load_mnist(tmp_path)


# =========================================================================== spiral

def book_spiral(seed=1984):
    """Volume 2's dataset/spiral.py load_data, verbatim apart from np.int -> np.int64."""
    np.random.seed(seed)
    N = 100
    DIM = 2
    CLS_NUM = 3

    x = np.zeros((N*CLS_NUM, DIM))
    t = np.zeros((N*CLS_NUM, CLS_NUM), dtype=np.int64)

    for j in range(CLS_NUM):
        for i in range(N):
            rate = i / N
            radius = 1.0*rate
            theta = j*4.0 + 4.0*rate + np.random.randn()*0.2

            ix = N*j + i
            x[ix] = np.array([radius*np.sin(theta),
                              radius*np.cos(theta)]).flatten()
            t[ix, j] = 1

    return x, t


@pytest.fixture
def restore_global_rng():
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def test_spiral_shapes_and_one_hot():
    x, t = datasets.load_spiral()
    assert x.shape == (300, 2) and x.dtype == np.float64
    assert t.shape == (300, 3) and np.issubdtype(t.dtype, np.integer)
    np.testing.assert_array_equal(t.sum(axis=1), 1)
    np.testing.assert_array_equal(t.argmax(axis=1), np.repeat(np.arange(3), 100))
    # radius = i / N, so every point lies within the unit disc.
    assert np.all(np.hypot(x[:, 0], x[:, 1]) < 1.0)


@pytest.mark.parametrize("seed", [1984, 0, 42])
def test_spiral_equals_book(restore_global_rng, seed):
    x_book, t_book = book_spiral(seed)
    x, t = datasets.load_spiral(seed)
    np.testing.assert_array_equal(x, x_book)
    np.testing.assert_array_equal(t, t_book)


def test_spiral_default_seed_is_1984(restore_global_rng):
    x_default, _ = datasets.load_spiral()
    x_book, _ = book_spiral(1984)
    np.testing.assert_array_equal(x_default, x_book)
    assert not np.array_equal(datasets.load_spiral(1985)[0], x_default)


def test_spiral_leaves_global_rng_alone(restore_global_rng):
    np.random.seed(12345)
    expected = np.random.rand(5)
    np.random.seed(12345)
    before = np.random.get_state()
    datasets.load_spiral()
    after = np.random.get_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]
    np.testing.assert_array_equal(np.random.rand(5), expected)
