"""Helpers of the books' ``common/util.py``, fast face.

``smooth_curve``, ``shuffle_dataset`` and ``clip_grads`` are the reference's NumPy: each is one or
two whole-array NumPy calls (a convolution of a short curve, a gather, a sum of squares and a
scale) that a compiled kernel would not make faster enough to matter next to a training step.
"""
from .reference.util import clip_grads, shuffle_dataset, smooth_curve

__all__ = ["smooth_curve", "shuffle_dataset", "clip_grads"]
