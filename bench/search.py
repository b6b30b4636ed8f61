"""The book's hyperparameter search (volume 1, ch06/hyperparameter_optimization.py) against
`fastnn search`: MultiLayerNet 784-[100]x6-10, 50 epochs on 400 of the first 500 images,
validated on the other 100, learning rate 10^U(-6,-2) and weight decay 10^U(-8,-4) at random.

    python bench/search.py [--trials 100] [--images 1400] [--jobs 2]

The baseline is the book's search written out from its formulas (fastnn.bench's book networks,
the book's Trainer loop: np.random.choice mini-batches, gradient, SGD update, the mini-batch
loss, both accuracies at every epoch's start). fastnn runs `fastnn.search.search` on an SQLite
study in a temporary directory, with one worker and then with --jobs workers, on MNIST-format IDX
files (random images with ~80% zeros, as MNIST) that this script writes. One thread per worker.
Prints the times and the ratios, and the floor: the trials' matrix products at the GEMM rate
measured in the run (its ratio to the book's time is the most any implementation of the same
products can reach); asserts nothing.
"""
import argparse
import gzip
import os
import struct
import tempfile
import time

import numpy as np

from fastnn import bench, search


def write_idx(directory, images, labels, prefix):
    """The two IDX files (gzipped) of MNIST's format for uint8 images (N, 28, 28) and labels."""
    with gzip.open(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 2051, *images.shape) + images.tobytes())
    with gzip.open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.tobytes())


def mnist_like(directory, n_train, rng):
    """MNIST-format files with n_train training images (and 100 test images)."""
    for prefix, n in (("train", n_train), ("t10k", 100)):
        images = rng.integers(1, 256, (n, 28, 28)).astype(np.uint8)
        images[rng.random(images.shape) < 0.8] = 0
        write_idx(directory, images, rng.integers(0, 10, n).astype(np.uint8), prefix)


def book_accuracy(net, x, t):
    for layer in net.layers:
        x = layer.forward(x)
    return np.sum(np.argmax(x, axis=1) == t) / float(x.shape[0])


def book_search(x_train, t_train, trials, epochs=50, batch_size=100):
    """The book's script, its loop written out: returns the seconds it took."""
    start = time.perf_counter()
    n_val = int(500 * 0.2)
    x, t = x_train[:500], t_train[:500]
    perm = np.random.permutation(x.shape[0])
    x, t = x[perm], t[perm]
    x_val, t_val, x, t = x[:n_val], t[:n_val], x[n_val:], t[n_val:]
    rng = np.random.default_rng(0)
    for _ in range(trials):
        weight_decay = 10 ** np.random.uniform(-8, -4)
        lr = 10 ** np.random.uniform(-6, -2)
        net = bench.book_multi_layer_net(rng, [784] + [100] * 6 + [10], weight_decay=weight_decay)
        update = bench.book_sgd(lr)
        iter_per_epoch = max(x.shape[0] / batch_size, 1)
        for i in range(int(epochs * iter_per_epoch)):
            mask = np.random.choice(x.shape[0], batch_size)
            update(net.params, net.gradient(x[mask], t[mask]))
            net.loss(x[mask], t[mask])
            if i % iter_per_epoch == 0:
                book_accuracy(net, x, t), book_accuracy(net, x_val, t_val)
    return time.perf_counter() - start


def trial_flops(x_train, hidden=(100,) * 6, epochs=50, batch_size=100, train=400, val=100):
    """The matrix products' FLOPs of one trial, x's zeros skipped in the first layer: per step
    the forward's products, dW of every layer and dx of all but the first; per epoch the forward
    of the training and the validation images. At the GEMM rate, the time no implementation of
    these products can beat (the Python, the activations and the loss are left out)."""
    sizes = [x_train.shape[1], *hidden, 10]
    density = np.count_nonzero(x_train[:500]) / x_train[:500].size
    first, rest = sizes[0] * sizes[1] * density, sum(a * b for a, b in zip(sizes[1:], sizes[2:]))
    steps = int(epochs * max(train / batch_size, 1))
    per_step = 2 * batch_size * (2 * first + 3 * rest)
    return steps * per_step + epochs * 2 * (train + val) * (first + rest)


def fastnn_search(directory, trials, jobs):
    settings = search.Settings(data=f"mnist:{directory}", epochs=50)
    start = time.perf_counter()
    search.search(settings, trials, storage=f"sqlite:///{directory}/study-{jobs}.db", seed=0,
                  jobs=jobs)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--images", type=int, default=1400, help="training images in the files")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits
    with tempfile.TemporaryDirectory() as directory, threadpool_limits(1, user_api="blas"):
        mnist_like(directory, args.images, np.random.default_rng(0))
        import fastnn
        (x, t), _ = fastnn.load_mnist(directory)
        floor = args.trials * trial_flops(x) / bench.gemm_rate(np.float64)
        t_book = book_search(x, t, args.trials)
        t_one = fastnn_search(directory, args.trials, 1)
        t_jobs = fastnn_search(directory, args.trials, args.jobs)
    print(f"{args.trials} trials of the book's search on {args.images} MNIST-format images")
    print(f"  the book's code       {t_book:8.1f} s")
    print(f"  fastnn search         {t_one:8.1f} s   {t_book / t_one:5.2f}x the book")
    print(f"  fastnn search --jobs {args.jobs} {t_jobs:7.1f} s   {t_one / t_jobs:5.2f}x one worker, "
          f"{t_book / t_jobs:5.2f}x the book")
    print(f"  floor, one worker     {floor:8.1f} s   {t_book / floor:5.2f}x the book: the trials' "
          f"matrix products (x's zeros skipped) at the GEMM rate measured now")


if __name__ == "__main__":
    main()
