"""cimsim.rng.seedseq: the compiled SeedSequence hash gives numpy's seed states and Generators bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from cimsim.errors import ParameterError
from cimsim.rng import child_generators, split_seed
from cimsim.rng.seedseq import SeedWords, fast_generator, seed_state, uint32_words


def _entropies(n: int, seed: int):
    """Entropy lists of 1-5 ints covering 0, one-word, two-word and three-word values, with spawn keys
    of 0-3 entries (the padding of a short run entropy to the pool size included)."""
    r = np.random.default_rng(seed)
    for t in range(n):
        ent = [int(v) for v in r.integers(0, 2**63, r.integers(1, 6))]
        if t % 3 == 0:
            ent[0] = int(r.integers(0, 2**32))
        if t % 7 == 0:
            ent[-1] = 0
        if t % 5 == 0:
            ent[0] = ent[0] * 4 + 3 + (1 << 64)  # three words
        key = tuple(int(v) for v in r.integers(0, 2**40, r.integers(0, 4)))
        yield ent, key


def test_words_are_numpys():
    assert uint32_words([0, 1, 2**32, 2**64 + 5]) == [0, 1, 0, 1, 5, 0, 1]


@pytest.mark.parametrize("n_words", [1, 4, 7])
def test_seed_state_is_numpys_generate_state(n_words):
    n = 0
    for ent, key in _entropies(3000, n_words):
        want = np.random.SeedSequence(ent, spawn_key=key).generate_state(n_words, np.uint64)
        got = seed_state(ent, key, n_words)
        assert got.dtype == np.uint64 and np.array_equal(got, want), (ent, key)
        n += 1
    assert n == 3000


def test_fast_generator_streams_and_state_are_numpys():
    for ent, key in _entropies(200, 11):
        a = np.random.Generator(np.random.PCG64(np.random.SeedSequence(ent, spawn_key=key)))
        b = fast_generator(ent, key)
        assert a.bit_generator.state == b.bit_generator.state
        assert np.array_equal(a.bit_generator.random_raw(5), b.bit_generator.random_raw(5))
        assert np.array_equal(a.random(7, dtype=np.float32), b.random(7, dtype=np.float32))
        assert np.array_equal(a.standard_normal(3), b.standard_normal(3))


def test_seed_words_spawn_and_other_states_are_numpys():
    sw = SeedWords((7,), (1,))
    ss = np.random.SeedSequence(7, spawn_key=(1,))
    assert np.array_equal(sw.generate_state(3), ss.generate_state(3))  # uint32, another length
    assert np.array_equal(sw.generate_state(2, np.uint64), ss.generate_state(2, np.uint64))
    for _ in range(2):  # two rounds: the second continues numpy's child numbering
        mine, theirs = sw.spawn(3), ss.spawn(3)
        assert [c.spawn_key for c in mine] == [c.spawn_key for c in theirs]
        assert all(np.array_equal(m.generate_state(4), t.generate_state(4)) for m, t in zip(mine, theirs))
    assert sw.n_children_spawned == 6 and sw.pool_size == 4
    g = fast_generator((7,), (1,))
    fresh = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(1,)))
    assert np.array_equal(g.spawn(1)[0].random(4), fresh.spawn(1)[0].random(4))
    h = pickle.loads(pickle.dumps(g))
    assert h.bit_generator.state == g.bit_generator.state


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**32, 2**63 - 1])
def test_split_seed_and_child_generators_are_numpys(seed):
    kids = np.random.SeedSequence(seed).spawn(2)
    for g, ss in zip(split_seed(seed), kids):
        assert g.bit_generator.state == np.random.Generator(np.random.PCG64(ss)).bit_generator.state
    parent_a, parent_b = np.random.default_rng(seed), np.random.default_rng(seed)
    mine = child_generators(parent_a, 3)
    w0, w1 = (int(v) for v in parent_b.bit_generator.random_raw(2))
    for c, g in enumerate(mine):
        want = np.random.Generator(np.random.PCG64(np.random.SeedSequence([w0, w1, c])))
        assert g.bit_generator.state == want.bit_generator.state
    assert parent_a.bit_generator.state == parent_b.bit_generator.state  # two words taken, as before


def test_a_negative_seed_is_a_named_error():
    with pytest.raises(ValueError):
        np.random.SeedSequence(-1)  # numpy refuses it ...
    with pytest.raises(ParameterError, match=r"non-negative.*got -1.*\[0, 2\^63 - 1\]"):
        split_seed(-1)  # ... and so does the compiled hash, with the value and the range
    with pytest.raises(ParameterError, match="got -5"):
        fast_generator((3, -5))
