"""Volume 1, chapters 7-8: Convolution, Pooling, SimpleConvNet and DeepConvNet steps and the peak
memory of a DeepConvNet step, against the book's code (fastnn.bench; `fastnn bench` prints the
same table).

    python bench/conv.py [--threads N] [--quick] [--json FILE] [-k TEXT]
"""
import sys

from fastnn.bench import main

sys.exit(main(["conv", *sys.argv[1:]]))
