"""Plain-numpy twin of :mod:`cimsim.kernels.philox`: same names, same outputs (on arrays)."""

from __future__ import annotations

import numpy as np

from .philox import M0, M1, W0, W1

__all__ = ["philox4x32", "philox_key"]

_LO = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)


def philox4x32(c0, c1, c2, c3, k0, k1):
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in np.broadcast_arrays(c0, c1, c2, c3))
    k0, k1 = np.uint64(k0), np.uint64(k1)
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = (p1 >> _32) ^ c1 ^ k0, p1 & _LO, (p0 >> _32) ^ c3 ^ k1, p0 & _LO
        k0 = (k0 + W0) & _LO
        k1 = (k1 + W1) & _LO
    return c0, c1, c2, c3


def philox_key(w0, w1):
    w0, w1 = np.uint64(w0), np.uint64(w1)
    return w0 & _LO, w0 >> _32, w1 & _LO, w1 >> _32
