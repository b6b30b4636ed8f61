"""The two-layer network workloads (issue 4): numerical gradient and training steps, fast against
fastnn.reference and against the matrix products a step cannot avoid.

    python bench/models.py [--threads N]
"""
import sys

from fastnn.bench import main

main(["models", *sys.argv[1:]])
