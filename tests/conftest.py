"""Shared fixtures (every test written against ``half`` runs on both halves of fastnn) and the
hypothesis profiles.

Profiles, chosen by the environment variable FASTNN_HYPOTHESIS_PROFILE:
- ``quick`` (the default, the README's command): each test's own budget, ``examples(n)`` = n;
- ``ci`` (CI's sanitizer pass): twice that;
- ``deep`` (by hand, e.g. before a release): twenty times that.
With the environment variable CI set, every profile draws the same examples on every run.
A test states its budget for the quick profile as ``@settings(max_examples=examples(n))``
(tests/helpers.py), which scales it with the profile loaded here.
"""

import importlib
import os

import numpy as np
import pytest
from hypothesis import settings

import fastnn
from helpers import BASE_EXAMPLES, num_threads

PROFILES = {"quick": 1, "ci": 2, "deep": 20}  # name -> factor on each test's own budget
# Under CI (the environment variable CI set, as .ci/run sets it) every test draws the same examples
# on every run, so that a red CI is one anybody can reproduce and a green one stays green; run by
# hand, each run draws new examples and so explores further.
DERANDOMIZE = bool(os.environ.get("CI"))
for _name, _factor in PROFILES.items():
    settings.register_profile(_name, max_examples=BASE_EXAMPLES * _factor, deadline=None,
                              print_blob=True, derandomize=DERANDOMIZE)
PROFILE = os.environ.get("FASTNN_HYPOTHESIS_PROFILE", "quick")
settings.load_profile(PROFILE)


def pytest_report_header(config):
    return (f"fastnn {fastnn.__version__} from {os.path.dirname(fastnn.__file__)}; "
            f"hypothesis profile {PROFILE}")

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
