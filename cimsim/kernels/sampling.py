"""Random draws for the crossbar path, all keyed by the caller's ``numpy.random.Generator``.

Normals: each call of :func:`normals` takes exactly two raw 64-bit words from the Generator
(its only draw: the Generator's stream advances by two words whatever the size) and keys a
Philox4x32-10 stream with them (Salmon et al., SC'11: :mod:`cimsim.kernels.philox`); normal i
is then the 256-layer ziggurat of Marsaglia & Tsang (2000) over Philox's output at counters
tied to i alone (:mod:`cimsim.kernels.ziggurat` has the map): float32 normals take one 32-bit
lane each (8 bits layer, 1 sign, 23 mantissa), float64 normals two lanes (52-bit mantissa),
and the ~1.5 % of units that fail the fast test finish the exact wedge / tail tests on words of
their own index's counter space.  Exact in distribution, and a pure function of (the two words,
i): independent of the thread count and block size, and a shorter draw with the same words is a
prefix of a longer one.  Kernels can draw normal i of such a stream inline with
:func:`~cimsim.kernels.ziggurat.normal32_at` / ``normal64_at`` (same bits).
"""

from __future__ import annotations

import numpy as np

from .._threads import n_elements
from ..errors import ParameterError
from . import NUMBA, Engine
from .ziggurat import ZIGGURAT_R

__all__ = ["normals", "uniforms", "stream_words", "ZIGGURAT_R"]


def stream_words(rng: np.random.Generator) -> np.ndarray:
    """The two raw 64-bit words (uint64) that key one Philox stream: ``rng``'s next two."""
    return rng.bit_generator.random_raw(2)


def normals(rng: np.random.Generator, shape, dtype=np.float32, kernels: Engine = NUMBA,
            out: np.ndarray | None = None) -> np.ndarray:
    """Standard normal array of ``shape`` (float32 by default), keyed by two words of ``rng``.

    ``out`` (C-contiguous, ``shape``, float32 or float64 as ``dtype``) receives the result
    instead of a new array.
    """
    n = n_elements(shape)
    half = np.dtype(dtype) != np.float64
    odt = np.float32 if half else np.float64
    if out is None:
        res = np.empty(shape, dtype=odt)
    else:
        if out.dtype != odt or out.shape != tuple(np.atleast_1d(shape)) or not out.flags.c_contiguous:
            raise ParameterError(
                f"out must be a C-contiguous {np.dtype(odt)} array of shape {tuple(np.atleast_1d(shape))} "
                f"(got {out.dtype} {out.shape}, C-contiguous: {out.flags.c_contiguous})"
            )
        res = out
    words = stream_words(rng)
    if n:
        kernels.zig_normals.sized(n)(words, half, res.reshape(-1))
    return res if res.dtype == np.dtype(dtype) else res.astype(dtype)


def uniforms(rng: np.random.Generator, shape, dtype=np.float32) -> np.ndarray:
    """Uniform [0, 1) array of ``shape`` from ``rng``."""
    return rng.random(shape, dtype=dtype)
