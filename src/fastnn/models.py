"""The two-layer networks of the seeds (and the book).

TwoLayerNet (volume 2: layer lists, forward/backward) and TwoLayerNetwork (volume 1: params dict,
loss/gradient/numerical_gradient), built on the fast layers.
"""
from .reference.models import TwoLayerNet, TwoLayerNetwork, gradient_check  # noqa: F401

__all__ = ["TwoLayerNet", "TwoLayerNetwork", "gradient_check"]
