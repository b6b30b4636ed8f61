"""csrc/mt19937.c through _core.mt19937_random and fastnn.layers.uniform_draws, against NumPy.

The compiled draws are NumPy's own: from any state of an MT19937 (any seed, any position within
its 624 words, odd positions included), the doubles equal Generator(MT19937).random's, bit for
bit, and the state afterwards is the one NumPy's draws leave, so the two interleave. The book's
global state (np.random.rand) takes the compiled path on this machine; other bit generators and
bad states are refused or drawn by NumPy.
"""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from fastnn import _core
from fastnn.layers import _mt19937_compiled, uniform_draws
from helpers import examples


def _twins(seed, words):
    """Two MT19937 of one seed, each advanced by `words` 32-bit outputs."""
    pair = [np.random.MT19937(seed), np.random.MT19937(seed)]
    for bit_generator in pair:
        bit_generator.random_raw(words)  # one 32-bit output per raw draw for MT19937
    return pair


def _same_state(a, b):
    sa, sb = a.state["state"], b.state["state"]
    assert sa["pos"] == sb["pos"]
    assert_array_equal(sa["key"], sb["key"])


@settings(max_examples=examples(60))
@given(seed=st.integers(0, 2**32 - 1), words=st.integers(0, 2000), n=st.integers(0, 3000))
def test_draws_and_state_are_numpys(seed, words, n):
    ours, numpys = _twins(seed, words)
    draws = np.empty(n)
    _core.mt19937_random(ours, draws)
    assert_array_equal(draws, np.random.Generator(numpys).random(n))
    _same_state(ours, numpys)


@pytest.mark.parametrize("words", [0, 1, 622, 623, 624, 625, 1247])
@pytest.mark.parametrize("n", [1, 2, 311, 312, 313, 624, 625])
def test_draws_across_regenerations(words, n):
    # pos 623 puts a double's two words on both sides of a regeneration
    ours, numpys = _twins(5, words)
    draws = np.empty(n)
    _core.mt19937_random(ours, draws)
    assert_array_equal(draws, np.random.Generator(numpys).random(n))
    _same_state(ours, numpys)


def test_draws_interleave_with_numpys():
    ours, numpys = _twins(11, 0)
    mine, theirs = np.random.Generator(ours), np.random.Generator(numpys)
    parts = []
    for k in (3, 700, 1, 50):
        parts.append(np.empty(k))
        _core.mt19937_random(ours, parts[-1])
        parts.append(mine.random(k + 1))
    assert_array_equal(np.concatenate(parts), theirs.random(sum(p.size for p in parts)))


def test_the_layout_check_passes_here():
    # else uniform_draws silently leaves every draw to NumPy
    assert _mt19937_compiled()


@pytest.mark.parametrize("shape", [(1,), (7, 9), (100, 100), (2, 3, 4)])
def test_uniform_draws_from_the_global_state_are_np_random_rands(shape):
    np.random.seed(1234)
    ours = uniform_draws(None, shape)
    after = np.random.rand(5)
    np.random.seed(1234)
    assert_array_equal(ours, np.random.rand(*shape))
    assert_array_equal(after, np.random.rand(5))


def test_uniform_draws_into_out_and_from_generators():
    out = np.full((4, 5), -1.0)
    rng, twin = (np.random.Generator(np.random.MT19937(3)) for _ in range(2))
    assert uniform_draws(rng, (4, 5), out) is out
    assert_array_equal(out, twin.random((4, 5)))
    pcg, pcg_twin = np.random.default_rng(3), np.random.default_rng(3)  # PCG64: NumPy draws
    assert_array_equal(uniform_draws(pcg, (4, 5)), pcg_twin.random((4, 5)))


def test_threads_share_a_generator_under_its_lock():
    bit_generator = np.random.MT19937(9)
    chunks = [np.empty(5000) for _ in range(8)]
    workers = [threading.Thread(target=_core.mt19937_random, args=(bit_generator, c))
               for c in chunks]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    expected = np.random.Generator(np.random.MT19937(9)).random(8 * 5000)
    # each call takes a whole run of the stream: the chunks are its runs, in some order
    runs = sorted(expected.reshape(8, 5000).tolist())
    assert sorted(c.tolist() for c in chunks) == runs


def test_other_bit_generators_are_refused():
    with pytest.raises(TypeError, match="MT19937"):
        _core.mt19937_random(np.random.PCG64(0), np.empty(3))
    with pytest.raises(TypeError, match="MT19937"):
        _core.mt19937_random(np.random.default_rng(0), np.empty(3))


def test_an_empty_out_draws_nothing_and_must_be_float64():
    bit_generator = np.random.MT19937(1)
    before = bit_generator.state["state"]["pos"]
    _core.mt19937_random(bit_generator, np.empty(0))
    assert bit_generator.state["state"]["pos"] == before
    with pytest.raises(TypeError):
        _core.mt19937_random(bit_generator, np.empty(0, np.float32))


def test_a_state_position_out_of_range_is_refused():
    bit_generator = np.random.MT19937(0)
    state = bit_generator.state
    state["state"]["pos"] = 625
    bit_generator.state = state
    out = np.full(4, 7.0)
    with pytest.raises(ValueError, match="position"):
        _core.mt19937_random(bit_generator, out)
    assert np.all(out == 7.0)
    assert bit_generator.state["state"]["pos"] == 625
