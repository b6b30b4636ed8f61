"""Shared fixtures: every test written against ``half`` runs on both halves of fastnn."""

import importlib

import numpy as np
import pytest

HALVES = {"reference": "fastnn.reference", "fast": "fastnn"}


@pytest.fixture(scope="session", params=list(HALVES))
def half(request):
    """The namespace under test: ``fastnn.reference`` (pure NumPy) or ``fastnn`` (compiled).

    Both have the modules functions, layers, optimizers, models and datasets, and the public
    names of the first four at top level.
    """
    return importlib.import_module(HALVES[request.param])


@pytest.fixture(scope="session")
def reference():
    """The pure-NumPy oracle, whichever half is under test."""
    return importlib.import_module("fastnn.reference")


@pytest.fixture
def rng():
    return np.random.default_rng(1984)
