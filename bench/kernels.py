"""The kernel workloads (issue 3): fast against fastnn.reference, with the memory bound and
PyTorch when it is installed. One implementation, fastnn.bench, serves this and `fastnn bench`.

    python bench/kernels.py [--threads N]
"""
import sys

from fastnn.bench import main

main(["kernels", *sys.argv[1:]])
