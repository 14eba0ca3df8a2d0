"""Generators: a seed or Generator in, a Generator out.

Every random draw in cimsim comes from a ``numpy.random.Generator`` (or a ``torch.Generator``)
handed in by the caller; nothing uses global random state.  Normal arrays are keyed by two raw
words of that Generator: the Numba kernels then compute the counter-based Philox4x32-10 stream
of that key (:mod:`cimsim.kernels.sampling`), a pure function of the key and the index, so no
kernel holds a generator state of its own and the bits never depend on the thread count.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from ..errors import ParameterError
from .seedseq import fast_generator

__all__ = ["SeedLike", "as_generator", "child_generators", "torch_generator"]

SeedLike = int | np.random.Generator | np.random.SeedSequence


def as_generator(rng: SeedLike) -> np.random.Generator:
    """Return a Generator: an int or SeedSequence seeds a new PCG64, a Generator is used as is."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.SeedSequence):
        return np.random.Generator(np.random.PCG64(rng))
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if int(rng) < 0:
            raise ParameterError(f"seed must be a non-negative integer (got {rng})")
        return np.random.Generator(np.random.PCG64(int(rng)))
    raise ParameterError(
        f"rng must be a non-negative int seed or a numpy.random.Generator (got {type(rng).__name__}: {rng!r})"
    )


def child_generators(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` independent generators for the fixed pieces of one large draw (row chunks).

    Takes two raw words from ``rng`` (its only draw) and seeds child c with the SeedSequence of
    (word0, word1, c) (:func:`~.seedseq.fast_generator`: numpy's ``SeedSequence`` hash, compiled):
    the pieces can then be drawn in any order, on any number of threads.
    """
    w0, w1 = (int(v) for v in rng.bit_generator.random_raw(2))
    return [fast_generator((w0, w1, c)) for c in range(int(n))]


def torch_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g
