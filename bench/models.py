"""The two-layer network workloads: its numerical gradient, training steps on sparse and dense
MNIST-shaped input, and the main job (64-50-10 on the digits),
against the book's code (fastnn.bench; `fastnn bench` prints the same table).

    python bench/models.py [--threads N] [--quick] [--json FILE] [-k TEXT]
"""
import sys

from fastnn.bench import main

sys.exit(main(["models", *sys.argv[1:]]))
