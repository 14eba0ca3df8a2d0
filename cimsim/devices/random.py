"""Random draws for the crossbar path, all from the caller's ``numpy.random.Generator``.

Normals come from the Generator's raw 64-bit output turned into two standard normals per word by
the inverse CDF (:func:`cimsim.kernels._numba.std_normal_from_bits`, Wichura's AS 241): about
4x faster than ``Generator.standard_normal`` here, and the result depends on the seed only.
Tails are truncated at |z| = 6.3 (probability 3e-10).
"""

from __future__ import annotations

import numpy as np

__all__ = ["normals", "uniforms"]

_SERIAL_MAX = 1 << 20  # smaller draws (per-call MVM noise) stay on the calling thread; same bits either way


def normals(rng: np.random.Generator, shape, dtype=np.float32, kernels=None) -> np.ndarray:
    """Standard normal array of ``shape`` (float32 by default) from ``rng``'s bit stream."""
    if kernels is None:
        from ..kernels import _numba as kernels
    n = int(np.prod(shape, dtype=np.int64))
    out = np.empty(n, dtype=dtype)
    if n:
        bits = rng.bit_generator.random_raw((n + 1) // 2)
        if n <= _SERIAL_MAX:
            kernels.std_normal_from_bits_serial(bits, out)
        else:
            kernels.std_normal_from_bits(bits, out)
    return out.reshape(shape)


def uniforms(rng: np.random.Generator, shape, dtype=np.float32) -> np.ndarray:
    """Uniform [0, 1) array of ``shape`` from ``rng``."""
    return rng.random(shape, dtype=dtype)
