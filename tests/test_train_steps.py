"""csrc/train_steps.c through TwoLayerNet / TwoLayerNetwork.train_steps and .accuracy, and
NetworkTrainer.run_steps.

The oracle is the per-step path: forward, backward and SGD's update one mini-batch at a time, on
the fast half and on fastnn.reference. After a few steps the parameters agree to rounding (the
products sum in another order): 1e-10 (float64) and 1e-4 (float32) relative to the parameters'
scale. Sizes cross the register edges of the AVX-512 code (8 doubles, 16 floats), the AVX2
code's column blocks (a row of more than 8 registers of hidden units, 32 doubles or 64 floats, is
summed in two blocks) and their limits (more than 512 bytes of hidden units or 128 of outputs take
the portable code), on the AVX-512, AVX2 and portable paths; inputs that are not a whole number of
the AVX2 compaction's 4 lanes; batches that do not divide the data; index and one-hot labels.
Bad input raises before anything is written.
"""
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import reference
from helpers import FLOATS, VECTOR_PATHS, vector_path

pytestmark = pytest.mark.filterwarnings("error")

ACTIVATIONS = ["sigmoid", "relu"]
TOL = {np.float64: 1e-10, np.float32: 1e-4}
HIDDEN = st.one_of(st.integers(1, 70), st.sampled_from([7, 8, 9, 15, 16, 17, 32, 33, 50, 64, 65, 128, 129]))
OUTPUTS = st.one_of(st.integers(1, 20), st.sampled_from([2, 8, 9, 10, 16, 17, 32, 33]))


def data(rng, n, inputs, outputs, dtype, density=0.5):
    x = rng.standard_normal((n, inputs)) * (rng.random((n, inputs)) < density)
    return x.astype(dtype), rng.integers(0, outputs, n)


def one_hot(t, outputs):
    return np.eye(outputs)[t]


def per_step(model, x, t, batches, lr, half):
    """The per-step loop of the half's model: returns the losses."""
    opt, losses = half.SGD(lr=lr), []
    for b in batches:
        if hasattr(model, "forward"):
            losses.append(model.forward(x[b], t[b]))
            model.backward()
            opt.update(model.params, model.grads)
        else:
            losses.append(model.loss(x[b], t[b]))
            opt.update(model.params, model.gradient(x[b], t[b]))
    return np.array(losses)


def params_of(model):
    p = model.params
    return [p[k] for k in ("W1", "b1", "W2", "b2")] if isinstance(p, dict) else list(p)


def assert_close(a, b, dtype, what):
    scale = max(1.0, float(np.max(np.abs(b))) if np.size(b) else 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * scale, err_msg=what)


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=15, deadline=None)
@given(inputs=st.integers(1, 40), hidden=HIDDEN, outputs=OUTPUTS, n=st.integers(1, 60),
       batch=st.integers(1, 33), steps=st.integers(0, 6), density=st.sampled_from([0.0, 0.3, 1.0]),
       seed=st.integers(0, 2**31), labels=st.sampled_from(["index", "one_hot"]),
       model_name=st.sampled_from(["TwoLayerNet", "TwoLayerNetwork"]))
def test_train_steps_matches_per_step(path, activation, dtype, inputs, hidden, outputs, n, batch,
                                      steps, density, seed, labels, model_name):
    rng = np.random.default_rng(seed)
    x, t = data(rng, n, inputs, outputs, dtype, density)
    tl = one_hot(t, outputs) if labels == "one_hot" else t
    batches = rng.integers(0, n, (steps, batch))
    kw = dict(activation=activation, dtype=dtype, seed=seed % 1000)
    fast = getattr(fastnn, model_name)(inputs, hidden, outputs, 0.5, **kw)
    oracle = getattr(fastnn, model_name)(inputs, hidden, outputs, 0.5, **kw)
    ref = getattr(reference, model_name)(inputs, hidden, outputs, 0.5, **kw)
    with vector_path(path):
        losses = fast.train_steps(x, tl, batches, 0.5)
    expected = per_step(oracle, x, tl, batches, 0.5, fastnn)
    ref_losses = per_step(ref, x, tl, batches, 0.5, reference)
    assert losses.dtype == np.float64 and losses.shape == (steps,)
    assert_close(losses, expected, dtype, "losses")
    assert_close(losses, ref_losses, dtype, "losses vs reference")
    for name, p, q, r in zip("W1 b1 W2 b2".split(), params_of(fast), params_of(oracle),
                             params_of(ref)):
        assert p.dtype == dtype
        assert_close(p, q, dtype, name)
        assert_close(p, r, dtype, name + " vs reference")
    if model_name == "TwoLayerNet" and steps:  # the last step's gradients, as backward leaves them
        for g, h in zip(fast.grads, oracle.grads):
            assert_close(g, h, dtype, "grads")


# (inputs, hidden, outputs) at the edges of the vector code: one or two column blocks of the
# AVX2 code, the largest sizes in registers and one past them, compaction tails of 1-3 elements
EDGES = [(4, 32, 8), (5, 33, 9), (6, 50, 10), (7, 64, 16), (9, 65, 17), (13, 128, 32),
         (3, 129, 33), (1, 1, 1)]


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("inputs, hidden, outputs", EDGES)
def test_train_steps_at_register_edges(path, activation, dtype, inputs, hidden, outputs):
    rng = np.random.default_rng(hidden * 100 + outputs)
    x, t = data(rng, 23, inputs, outputs, dtype)
    batches = rng.integers(0, 23, (4, 11))
    fast, oracle = (fastnn.TwoLayerNet(inputs, hidden, outputs, 0.5, activation=activation,
                                       dtype=dtype, seed=2) for _ in range(2))
    with vector_path(path):
        losses = fast.train_steps(x, t, batches, 0.5)
        correct = fast.accuracy(x, t)
    assert_close(losses, per_step(oracle, x, t, batches, 0.5, fastnn), dtype, "losses")
    for name, p, q in zip("W1 b1 W2 b2".split(), fast.params, oracle.params):
        assert_close(p, q, dtype, name)
    for g, h in zip(fast.grads, oracle.grads):
        assert_close(g, h, dtype, "grads")
    assert correct == np.mean(np.argmax(fast.predict(x), axis=1) == t)


@pytest.mark.parametrize("dtype", FLOATS)
def test_digits_main_job_slice(dtype):
    """The main job's network on the digits, 300 steps: the per-step path's numbers."""
    (x, t), _ = fastnn.load_digits()
    x = x.astype(dtype)
    batches = np.random.default_rng(1).integers(0, len(x), (300, 100))
    fast, oracle = (fastnn.TwoLayerNet(64, 50, 10, dtype=dtype, seed=0) for _ in range(2))
    losses = fast.train_steps(x, t, batches, 0.1)
    assert_close(losses, per_step(oracle, x, t, batches, 0.1, fastnn), dtype, "losses")
    for p, q in zip(fast.params, oracle.params):
        assert_close(p, q, dtype, "params")
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("special", [np.inf, -np.inf, np.nan])
def test_nonfinite_weights_and_pixels(path, special):
    """A non-finite W1 entry meets x's zeros: the steps compute 0 * inf = NaN as the per-step
    path's dense product does (skipping zeros would not); a non-finite pixel likewise."""
    rng = np.random.default_rng(3)
    x, t = data(rng, 20, 12, 4, np.float64)
    batches = rng.integers(0, 20, (3, 7))
    for where in ("W1", "x"):
        fast, oracle = (fastnn.TwoLayerNet(12, 9, 4, 0.5, seed=1) for _ in range(2))
        xs = x.copy()
        if where == "W1":
            for m in (fast, oracle):
                m.params[0][2, 3] = special
        else:
            xs[batches[1, 0], 5] = special
        with vector_path(path):
            losses = fast.train_steps(xs, t, batches, 0.1)
        with np.errstate(all="ignore"):  # the per-step path's NumPy warns of the NaN
            expected = per_step(oracle, xs, t, batches, 0.1, fastnn)
        np.testing.assert_array_equal(np.isnan(losses), np.isnan(expected))
        for p, q in zip(fast.params, oracle.params):
            np.testing.assert_array_equal(np.isnan(p), np.isnan(q))
            np.testing.assert_allclose(np.nan_to_num(p), np.nan_to_num(q), atol=1e-10)


def test_train_steps_accepts_layouts_and_index_dtypes():
    rng = np.random.default_rng(4)
    x, t = data(rng, 30, 10, 3, np.float64)
    batches = rng.integers(0, 30, (4, 8))
    a, b = (fastnn.TwoLayerNet(10, 6, 3, 0.3, seed=2) for _ in range(2))
    la = a.train_steps(x, t, batches, 0.2)
    xf = np.asfortranarray(x)
    xf.flags.writeable = False
    lb = b.train_steps(xf, t.astype(np.uint8), batches.astype(np.int32)[:, ::1], 0.2)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(x, xf)


def _bad_cases(x, t, batches):
    n = len(x)
    return [
        (dict(batch_indices=np.array([[0, n]])), IndexError, "out of range"),
        (dict(batch_indices=np.array([[0, -1]])), IndexError, "out of range"),
        (dict(batch_indices=np.array([[2**63]], dtype=np.uint64)), IndexError, "out of range"),
        (dict(batch_indices=batches.astype(float)), TypeError, "integers"),
        (dict(batch_indices=batches[0]), ValueError, "2-D"),
        (dict(batch_indices=np.zeros((2, 0), np.int64)), ValueError, "batch size"),
        (dict(lr=np.nan), ValueError, "finite"),
        (dict(lr=np.inf), ValueError, "finite"),
        (dict(lr="0.1"), TypeError, "real number"),
        (dict(lr=True), TypeError, "real number"),
        (dict(t=np.where(np.arange(n) == 3, 7, t)), ValueError, "label out of range"),
        (dict(t=t[:-1]), ValueError, "mismatch"),
        (dict(t=t.astype(float)), TypeError, "labels"),
        (dict(x=x[:, :-1]), ValueError, "shape"),
        (dict(x=x.astype(complex)), TypeError, "complex"),
    ]


@pytest.mark.parametrize("case", range(15))
def test_bad_input_raises_and_writes_nothing(case):
    rng = np.random.default_rng(5)
    x, t = data(rng, 25, 6, 4, np.float64)
    batches = rng.integers(0, 25, (3, 5))
    model = fastnn.TwoLayerNet(6, 5, 4, 0.3, seed=0)
    model.train_steps(x, t, batches, 0.1)  # grads now hold something to keep
    before = [a.copy() for a in model.params + model.grads]
    kwargs, error, message = _bad_cases(x, t, batches)[case]
    args = dict(x=x, t=t, batch_indices=batches, lr=0.1) | kwargs
    with pytest.raises(error, match=message):
        model.train_steps(**args)
    for a, b in zip(model.params + model.grads, before):
        np.testing.assert_array_equal(a, b)


def test_backward_after_train_steps_raises():
    model = fastnn.TwoLayerNet(4, 3, 2, seed=0)
    x, t = np.ones((5, 4)), np.array([0, 1, 0, 1, 1])
    model.forward(x, t)
    model.train_steps(x, t, np.zeros((1, 2), np.int64), 0.1)
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward()


@pytest.mark.parametrize("path", VECTOR_PATHS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=15, deadline=None)
@given(inputs=st.integers(1, 40), hidden=HIDDEN, outputs=OUTPUTS, n=st.integers(1, 300),
       seed=st.integers(0, 2**31), density=st.sampled_from([0.0, 0.3, 1.0]))
def test_accuracy_matches_reference(path, activation, dtype, inputs, hidden, outputs, n, seed,
                                    density):
    rng = np.random.default_rng(seed)
    x, t = data(rng, n, inputs, outputs, dtype, density)
    kw = dict(activation=activation, dtype=dtype, seed=seed % 1000)
    fast = fastnn.TwoLayerNet(inputs, hidden, outputs, 1.0, **kw)
    ref = reference.TwoLayerNet(inputs, hidden, outputs, 1.0, **kw)
    with vector_path(path):
        got = fast.accuracy(x, t), fast.accuracy(x, one_hot(t, outputs))
    expected = ref.accuracy(x, t)
    # a near-tie of two scores may fall either way with another summation order: none here
    scores = ref.predict(x)
    top2 = np.sort(scores, axis=1)[:, -2:] if outputs > 1 else None
    if top2 is None or np.all(top2[:, 1] - top2[:, 0] > 1e-3 * (1 + np.abs(top2[:, 1]))):
        assert got == (expected, expected)
    assert isinstance(got[0], float)


def test_accuracy_nan_as_argmax():
    """NaN scores count as the highest, first one winning, as np.argmax."""
    fast, ref = fastnn.TwoLayerNet(3, 4, 5, seed=0), reference.TwoLayerNet(3, 4, 5, seed=0)
    for m in (fast, ref):
        m.params[2][1, 2] = np.nan
    x = np.array([[1.0, 0, 0], [0, 0, 0], [0.5, 0.5, 1]])
    for t in ([2, 0, 2], [0, 1, 2]):
        assert fast.accuracy(x, np.array(t)) == ref.accuracy(x, np.array(t))


def test_accuracy_bad_labels():
    model = fastnn.TwoLayerNet(3, 4, 5, seed=0)
    with pytest.raises(ValueError, match="label out of range"):
        model.accuracy(np.ones((2, 3)), np.array([0, 5]))


def test_pickled_model_trains_on():
    x, t = data(np.random.default_rng(6), 40, 8, 3, np.float32)
    batches = np.random.default_rng(7).integers(0, 40, (6, 9))
    a = fastnn.TwoLayerNet(8, 5, 3, 0.3, dtype=np.float32, seed=0)
    b = pickle.loads(pickle.dumps(a))
    la = np.concatenate([a.train_steps(x, t, batches[:3], 0.1), a.train_steps(x, t, batches[3:], 0.1)])
    lb = b.train_steps(x, t, batches, 0.1)
    np.testing.assert_array_equal(la, lb)
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.accuracy(x, t), a.accuracy(x, t))


# --------------------------------------------------------------------------- the trainer

@pytest.mark.parametrize("rng", [None, 11])
@pytest.mark.parametrize("dtype", FLOATS)
def test_run_steps_matches_steps(rng, dtype):
    """NetworkTrainer.run_steps (one compiled call) against steps (a step at a time) and the
    reference trainer: the same batches (global state or rng) and numbers; 45 = 3 epochs of 15."""
    (x, t), (xt, tt) = fastnn.load_digits()
    x, xt = x.astype(dtype), xt.astype(dtype)
    runs = []
    for trainer_class, half, how in ((fastnn.NetworkTrainer, fastnn, "run_steps"),
                                     (fastnn.NetworkTrainer, fastnn, "steps"),
                                     (reference.NetworkTrainer, reference, "run_steps")):
        model = half.TwoLayerNet(64, 50, 10, dtype=dtype, seed=0)
        trainer = trainer_class(model, x, t, xt, tt, mini_batch_size=100, optimizer="sgd",
                                optimizer_param={"lr": 0.1}, verbose=False, rng=rng,
                                gradient="backward")
        np.random.seed(0)
        losses = []
        for _ in range(3):
            chunk = getattr(trainer, how)(15)
            losses += list(chunk)
        assert trainer.train_loss_list == losses and trainer.current_iter == 45
        runs.append((np.array(losses), params_of(model)))
    for losses, params in runs[1:]:
        assert_close(runs[0][0], losses, dtype, "losses")
        for p, q in zip(runs[0][1], params):
            assert_close(p, q, dtype, "params")


def test_run_steps_uses_the_compiled_path_only_for_sgd_backward(monkeypatch):
    calls = []
    original = fastnn.TwoLayerNet.train_steps
    monkeypatch.setattr(fastnn.TwoLayerNet, "train_steps",
                        lambda self, *a: calls.append(1) or original(self, *a))
    (x, t), (xt, tt) = fastnn.load_digits()
    for optimizer, expected in (("sgd", 1), ("momentum", 0)):
        calls.clear()
        trainer = fastnn.NetworkTrainer(fastnn.TwoLayerNet(64, 20, 10, seed=0), x, t, xt, tt,
                                        optimizer=optimizer, optimizer_param={"lr": 0.1},
                                        verbose=False, rng=0, gradient="backward")
        assert len(trainer.run_steps(4)) == 4 and len(calls) == expected
    assert fastnn.NetworkTrainer(fastnn.TwoLayerNet(64, 20, 10, seed=0), x, t, xt, tt,
                                 verbose=False, rng=0, gradient="backward").run_steps(0) == []


@pytest.mark.parametrize("rows", [1437, 7, 2**31 + 1, 2**40])
@pytest.mark.parametrize("batch", [100, 2, 3])
def test_batch_masks_are_the_per_step_draws(rows, batch):
    """run_steps' block draw gives what the steps' draws give, also when draws are rejected
    (rows = 2**31 + 1: about half of them) and for generators it does not take in one block."""
    for bit_generator in (np.random.PCG64, np.random.Philox):
        for seed in range(5):
            x, t = np.zeros((rows if rows < 10**4 else 5, 1)), np.zeros(rows if rows < 10**4 else 5)
            block = fastnn.NetworkTrainer(fastnn.TwoLayerNet(1, 2, 2), x, t, x, t, verbose=False,
                                          mini_batch_size=batch, gradient="backward",
                                          rng=np.random.Generator(bit_generator(seed)))
            block.train_size = rows
            one = np.random.Generator(bit_generator(seed))
            for k in (1, 15, 4):
                expected = np.array([one.integers(0, rows, batch) for _ in range(k)])
                np.testing.assert_array_equal(block._batch_masks(k), expected)
            np.testing.assert_equal(block._rng.bit_generator.state, one.bit_generator.state)
