"""The kernel workloads: softmax-CE, sigmoid, the bias gradient and the numerical gradient,
against the book's code (fastnn.bench; `fastnn bench` prints the same table).

    python bench/kernels.py [--threads N] [--quick] [--json FILE] [-k TEXT]
"""
import sys

from fastnn.bench import main

sys.exit(main(["kernels", *sys.argv[1:]]))
