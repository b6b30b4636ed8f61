"""Shared fixtures: every test written against ``half`` runs on both halves of fastnn."""

import importlib

import numpy as np
import pytest
from helpers import num_threads

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


@pytest.fixture(params=[pytest.param(1, id="threads1"), pytest.param(2, id="threads2")])
def threads(request):
    """The kernels' thread count for one test, set back to the default (0) afterwards."""
    with num_threads(request.param):
        yield request.param
