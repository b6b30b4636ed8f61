"""fastnn: the layers of "Deep Learning from Scratch" on compiled kernels.

Same names and results as the pure-NumPy `fastnn.reference`, which is the oracle for every test.
"""
from ._core import get_num_threads, set_num_threads
