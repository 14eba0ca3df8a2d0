"""Every seed derivation of cimsim, in one place.

A study seed gives chip seeds (:func:`chip_seeds`); a chip seed gives one seed per analog layer
(:func:`layer_seed`); a layer seed gives one per convolution group or weight matrix
(:func:`group_seed`); a programmed seed splits into its programming and read generators
(:func:`split_seed`); a chip's reads at time t and its drift-compensation calibration get
generators of their own (:func:`read_generator`, :func:`compensation_generator`).  Each
derivation goes through ``numpy.random.SeedSequence`` with a domain tag, so no two streams of
one seed overlap, and none depends on the order of evaluation, the process or the thread count.
"""

from __future__ import annotations

import numbers
import struct

import numpy as np

from ..errors import ParameterError
from .seedseq import fast_generator

__all__ = [
    "SEED_HIGH",
    "check_seed",
    "split_seed",
    "spawn_seeds",
    "chip_seeds",
    "layer_seed",
    "group_seed",
    "read_generator",
    "compensation_generator",
]

#: Largest seed a layer or chip takes (seeds are non-negative int64).
SEED_HIGH = (1 << 63) - 1
_LAYER_TAG = 0x1A7E5
_READ_TAG = 0x2EAD
_COMP_TAG = 0xC0E5


def check_seed(seed, what: str = "seed", example: str = "seed=0") -> int:
    """``seed`` as an int in [0, 2^63 - 1], else ParameterError naming ``what`` and the fix."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= SEED_HIGH:
        raise ParameterError(f"{what} must be an int in [0, 2^63 - 1] (got {seed!r}), e.g. {example}")
    return int(seed)


def _seed63(words: np.ndarray) -> int:
    return int((int(words[0]) << 31) ^ int(words[1])) & SEED_HIGH


def split_seed(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The (programming, read) generator pair used for one programmed chip with seed ``seed``.

    Training-mode forwards and deployed chips both derive their draws through this function, so
    a training forward with seed s equals the chip programmed with seed s, bit for bit.
    """
    # the generators of SeedSequence(seed).spawn(2)'s two children, built without numpy's Python-level hash
    return fast_generator((int(seed),), (0,)), fast_generator((int(seed),), (1,))


def spawn_seeds(seed: int, n: int) -> list[np.random.SeedSequence]:
    """``n`` independent child seed sequences of ``seed`` (for Monte-Carlo repeats)."""
    if n < 1:
        raise ParameterError(f"n must be >= 1 (got {n})")
    return np.random.SeedSequence(int(seed)).spawn(int(n))


def chip_seeds(seed: int, repeats: int) -> list[int]:
    """The integer chip seed of each repeat of a study: from the r-th child of ``SeedSequence(seed)``.

    Child r does not depend on ``repeats``, so a longer study starts with the same chips.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer (got {seed!r})")
    return [int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for ss in spawn_seeds(int(seed), repeats)]


def layer_seed(chip_seed: int, index: int) -> int:
    """The seed analog layer ``index`` of the chip with seed ``chip_seed`` is programmed with."""
    return _seed63(np.random.SeedSequence([int(chip_seed), _LAYER_TAG, int(index)]).generate_state(2, np.uint32))


def group_seed(seed: int, group: int) -> int:
    """Seed of convolution group (or weight matrix) ``group`` of a layer programmed with ``seed``."""
    return _seed63(np.random.SeedSequence([int(seed), int(group)]).generate_state(2, np.uint32))


def _time_key(t_s: float) -> list[int]:
    bits = struct.unpack("<Q", struct.pack("<d", float(t_s)))[0]
    return [bits & 0xFFFFFFFF, bits >> 32]


def read_generator(layer_seed: int, group: int, t_s: float) -> np.random.Generator:
    """The read generator of group ``group`` of a deployed layer at ``t_s``: keyed by (layer seed,
    group, t) only, so one time gives the same 1/f realisation and per-read noise in any
    process, in any order."""
    return np.random.default_rng(np.random.SeedSequence([int(layer_seed), _READ_TAG, int(group), *_time_key(t_s)]))


def compensation_generator(chip_seed: int, layer_index: int) -> np.random.Generator:
    """The generator that calibrates the drift compensation of layer ``layer_index`` of a chip."""
    return np.random.default_rng(np.random.SeedSequence([int(chip_seed), _COMP_TAG, int(layer_index)]))
