"""Volume 1, chapter 6: MultiLayerNet(Extend) steps (batch norm, dropout, weight decay) and
BatchNormalization,
against the book's code (fastnn.bench; `fastnn bench` prints the same table).

    python bench/ch6.py [--threads N] [--quick] [--json FILE] [-k TEXT]
"""
import sys

from fastnn.bench import main

sys.exit(main(["ch6", *sys.argv[1:]]))
