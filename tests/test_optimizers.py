"""fastnn.optimizers: two consecutive updates against the book's formulas worked out by hand.

Each optimizer gets the same two parameters and two steps' gradients, as a list (volume 2) and as
a dict (volume 1); the arrays passed in must be the ones updated.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastnn
from helpers import halves_of

pytestmark = pytest.mark.filterwarnings("error")

P0 = [np.array([1.0, -2.0, 0.5]), np.array([[0.3, -0.1], [0.0, 4.0]])]
G1 = [np.array([0.5, -1.0, 0.0]), np.array([[2.0, -0.3], [0.1, -4.0]])]
G2 = [np.array([-0.2, -1.5, 0.7]), np.array([[1.0, 0.3], [-0.2, 0.5]])]


def sgd(lr):
    p1 = [p - lr * g for p, g in zip(P0, G1)]
    p2 = [p - lr * g for p, g in zip(p1, G2)]
    return p1, p2


def momentum(lr, m):
    v1 = [-lr * g for g in G1]
    p1 = [p + v for p, v in zip(P0, v1)]
    v2 = [m * v - lr * g for v, g in zip(v1, G2)]
    p2 = [p + v for p, v in zip(p1, v2)]
    return p1, p2


def nesterov(lr, m):
    v1 = [-lr * g for g in G1]
    p1 = [p + m * m * v - (1 + m) * lr * g for p, v, g in zip(P0, v1, G1)]
    v2 = [m * v - lr * g for v, g in zip(v1, G2)]
    p2 = [p + m * m * v - (1 + m) * lr * g for p, v, g in zip(p1, v2, G2)]
    return p1, p2


def adagrad(lr):
    h1 = [g * g for g in G1]
    p1 = [p - lr * g / (np.sqrt(h) + 1e-7) for p, g, h in zip(P0, G1, h1)]
    h2 = [h + g * g for h, g in zip(h1, G2)]
    p2 = [p - lr * g / (np.sqrt(h) + 1e-7) for p, g, h in zip(p1, G2, h2)]
    return p1, p2


def rmsprop(lr, rho):
    h1 = [(1 - rho) * g * g for g in G1]
    p1 = [p - lr * g / (np.sqrt(h) + 1e-7) for p, g, h in zip(P0, G1, h1)]
    h2 = [rho * h + (1 - rho) * g * g for h, g in zip(h1, G2)]
    p2 = [p - lr * g / (np.sqrt(h) + 1e-7) for p, g, h in zip(p1, G2, h2)]
    return p1, p2


def adam(lr, b1, b2):
    # m and v are exponential averages started at zero; the bias correction is in lr_t
    m1 = [(1 - b1) * g for g in G1]
    v1 = [(1 - b2) * g ** 2 for g in G1]
    lr_t1 = lr * np.sqrt(1 - b2) / (1 - b1)
    p1 = [p - lr_t1 * m / (np.sqrt(v) + 1e-7) for p, m, v in zip(P0, m1, v1)]
    m2 = [b1 * m + (1 - b1) * g for m, g in zip(m1, G2)]
    v2 = [b2 * v + (1 - b2) * g ** 2 for v, g in zip(v1, G2)]
    lr_t2 = lr * np.sqrt(1 - b2 ** 2) / (1 - b1 ** 2)
    p2 = [p - lr_t2 * m / (np.sqrt(v) + 1e-7) for p, m, v in zip(p1, m2, v2)]
    return p1, p2


# name -> (optimizer constructor arguments, expected steps; None means the defaults)
CASES = {
    "SGD": [({"lr": 0.1}, sgd(0.1)), (None, sgd(0.01))],
    "Momentum": [({"lr": 0.1, "momentum": 0.8}, momentum(0.1, 0.8)), (None, momentum(0.01, 0.9))],
    "Nesterov": [({"lr": 0.1, "momentum": 0.8}, nesterov(0.1, 0.8)), (None, nesterov(0.01, 0.9))],
    "AdaGrad": [({"lr": 0.5}, adagrad(0.5)), (None, adagrad(0.01))],
    "RMSprop": [({"lr": 0.1, "decay_rate": 0.9}, rmsprop(0.1, 0.9)), (None, rmsprop(0.01, 0.99))],
    "Adam": [({"lr": 0.1, "beta1": 0.8, "beta2": 0.99}, adam(0.1, 0.8, 0.99)),
             (None, adam(0.001, 0.9, 0.999))],
}


def test_public_names(reference):
    missing = [name for name in reference.optimizers.__all__
               if not (hasattr(fastnn.optimizers, name) and hasattr(fastnn, name))]
    assert missing == []


# (half, optimizer) pairs: the stateful optimizers are the reference's, re-exported (SGD has its
# own kernel), so they run on the reference alone (helpers.halves_of)
HALVES_AND_NAMES = [pytest.param(half, name, id=f"{half}-{name}")
                    for name in CASES for half in halves_of("optimizers", name)]


def assert_steps(got, expected):
    for g, e in zip(got, expected):
        assert_allclose(g, e, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("container", ["list", "dict"])
@pytest.mark.parametrize("args", ["given", "default"])
@pytest.mark.parametrize("half, name", HALVES_AND_NAMES, indirect=["half"])
def test_two_updates_by_hand(half, name, args, container):
    kwargs, (expected1, expected2) = CASES[name][0 if args == "given" else 1]
    optimizer = getattr(half.optimizers, name)(**(kwargs or {}))

    arrays = [p.copy() for p in P0]
    grads1, grads2 = [g.copy() for g in G1], [g.copy() for g in G2]
    if container == "dict":
        params, grads1, grads2 = (dict(zip(["W", "b"], seq)) for seq in (arrays, grads1, grads2))
    else:
        params = list(arrays)

    # the arrays handed over are the ones updated, in place
    optimizer.update(params, grads1)
    assert_steps(arrays, expected1)
    optimizer.update(params, grads2)
    assert_steps(arrays, expected2)

    held = params.values() if container == "dict" else params
    assert all(p is array for p, array in zip(held, arrays))
    # gradients are only read
    assert_steps(grads1.values() if container == "dict" else grads1, G1)


@pytest.mark.parametrize("half, name", HALVES_AND_NAMES, indirect=["half"])
def test_float32_params_stay_float32(half, name):
    optimizer = getattr(half.optimizers, name)()
    params = [p.astype(np.float32) for p in P0]
    grads = [g.astype(np.float32) for g in G1]
    optimizer.update(params, grads)
    optimizer.update(params, grads)
    assert all(p.dtype == np.float32 for p in params)
