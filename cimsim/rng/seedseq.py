"""numpy's ``SeedSequence`` hash, compiled: the Generators cimsim derives per chip and row chunk
(several per layer and training step) without building a ``SeedSequence`` in Python, which is
most of what seeding a ``PCG64`` costs.

``numpy.random.SeedSequence(entropy, spawn_key)`` mixes the entropy's 32-bit words into a pool
of four words and hashes the pool into the state a ``PCG64`` is seeded with (the algorithm of
M. O'Neill's ``seed_seq_fe``, as numpy documents it).  :func:`seed_state` is that computation,
word for word; :func:`fast_generator` hands its result to ``PCG64`` through :class:`SeedWords`, so
the Generator is the one ``Generator(PCG64(SeedSequence(entropy, spawn_key=...)))`` gives, bit
for bit (its stream and its ``state``); tests compare the two over many entropies.  Its
``bit_generator.seed_seq`` is a :class:`SeedWords` whose ``spawn`` gives numpy's own children.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit
from numpy.random.bit_generator import ISpawnableSeedSequence

from ..errors import ParameterError

__all__ = ["POOL_SIZE", "SeedWords", "fast_generator", "seed_state", "uint32_words"]

#: numpy's default pool size (words), the only one cimsim uses
POOL_SIZE = 4
_M32 = np.uint64(0xFFFFFFFF)
_INIT_A = np.uint64(0x43B0D7E5)
_MULT_A = np.uint64(0x931E8875)
_INIT_B = np.uint64(0x8B51F9DD)
_MULT_B = np.uint64(0x58F38DED)
_MIX_L = np.uint64(0xCA01F9DD)
_MIX_R = np.uint64(0x4973F715)
_SHIFT = np.uint64(16)


@njit(cache=True, nogil=True)
def _hashmix(value, h):
    """(hashmix(value), next hash constant): value ^= h; h *= MULT_A; value *= h; value ^= value >> 16."""
    value = (value ^ h) & _M32
    h = (h * _MULT_A) & _M32
    value = (value * h) & _M32
    return value ^ (value >> _SHIFT), h


@njit(cache=True, nogil=True)
def _mix(x, y):
    r = (_MIX_L * x - _MIX_R * y) & _M32
    return r ^ (r >> _SHIFT)


@njit(cache=True, nogil=True)
def _state_words(entropy, n_words64):
    """``generate_state(n_words64, uint64)`` of the seed sequence whose assembled entropy (uint32
    words, as uint64) is ``entropy``: pairs of 32-bit words, the first one low."""
    pool = np.empty(POOL_SIZE, np.uint64)
    h = _INIT_A
    for i in range(POOL_SIZE):
        v = entropy[i] if i < entropy.shape[0] else np.uint64(0)
        pool[i], h = _hashmix(v, h)
    for i_src in range(POOL_SIZE):
        for i_dst in range(POOL_SIZE):
            if i_src != i_dst:
                v, h = _hashmix(pool[i_src], h)
                pool[i_dst] = _mix(pool[i_dst], v)
    for i_src in range(POOL_SIZE, entropy.shape[0]):
        for i_dst in range(POOL_SIZE):
            v, h = _hashmix(entropy[i_src], h)
            pool[i_dst] = _mix(pool[i_dst], v)
    out = np.zeros(n_words64, np.uint64)
    h = _INIT_B
    for i in range(2 * n_words64):
        v = (pool[i % POOL_SIZE] ^ h) & _M32
        h = (h * _MULT_B) & _M32
        v = (v * h) & _M32
        out[i // 2] |= (v ^ (v >> _SHIFT)) << np.uint64(32 * (i % 2))
    return out


def uint32_words(values: Sequence[int]) -> list[int]:
    """The 32-bit words numpy makes of non-negative ints (each little-end first; 0 is one word);
    a negative one raises ParameterError, as numpy refuses it too."""
    out: list[int] = []
    for v in values:
        v = int(v)
        if v < 0:
            raise ParameterError(f"seeds must be non-negative integers (got {v}); pass a seed in [0, 2^63 - 1]")
        out.append(v & 0xFFFFFFFF)  # 0 too is one word
        v >>= 32
        while v:
            out.append(v & 0xFFFFFFFF)
            v >>= 32
    return out


def seed_state(entropy: Sequence[int], spawn_key: Sequence[int] = (), n_words64: int = 4) -> np.ndarray:
    """``SeedSequence(entropy, spawn_key=spawn_key).generate_state(n_words64, np.uint64)``: the run
    entropy's words (padded with zeros to the pool size when there is a spawn key), then the
    spawn key's, mixed and hashed as numpy does."""
    words = uint32_words(entropy)
    if spawn_key:
        words += [0] * (POOL_SIZE - len(words)) + uint32_words(spawn_key)
    return _state_words(np.array(words, np.uint64), n_words64)


class SeedWords(ISpawnableSeedSequence):
    """A seed sequence whose state words are already computed (:func:`seed_state`): what
    ``PCG64`` reads from it is what numpy's ``SeedSequence`` of the same entropy and spawn key
    gives, and ``spawn`` returns numpy's own children of it."""

    __slots__ = ("entropy", "spawn_key", "n_children_spawned", "_words")

    def __init__(self, entropy: Sequence[int], spawn_key: Sequence[int] = ()):
        self.entropy = tuple(entropy)
        self.spawn_key = tuple(spawn_key)
        self.n_children_spawned = 0
        self._words = seed_state(self.entropy, self.spawn_key)

    @property
    def pool_size(self) -> int:
        return POOL_SIZE

    def generate_state(self, n_words: int, dtype=np.uint32) -> np.ndarray:
        dt = np.dtype(dtype)
        if dt == np.uint64 and n_words == 4:  # what PCG64 asks for
            return self._words.copy()
        return self._numpy().generate_state(n_words, dt)

    def spawn(self, n_children: int) -> list[np.random.SeedSequence]:
        kids = self._numpy().spawn(n_children)
        self.n_children_spawned += n_children
        return kids

    def _numpy(self) -> np.random.SeedSequence:
        return np.random.SeedSequence(list(self.entropy), spawn_key=self.spawn_key,
                                      n_children_spawned=self.n_children_spawned)


def fast_generator(entropy: Sequence[int], spawn_key: Sequence[int] = ()) -> np.random.Generator:
    """``Generator(PCG64(SeedSequence(entropy, spawn_key=spawn_key)))``, bit for bit."""
    # numpy takes any ISeedSequence here; its stubs name SeedSequence only
    return np.random.Generator(np.random.PCG64(SeedWords(entropy, spawn_key)))  # type: ignore[arg-type]
