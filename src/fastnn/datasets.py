"""Data sets: the bundled 8x8 digits, MNIST from IDX files, volume 2's spiral.

Plain NumPy; the same functions as `fastnn.reference.datasets`.
"""
from .reference.datasets import __all__, load_digits, load_mnist, load_spiral  # noqa: F401
