"""Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror & Shaw (SC'11), for Numba.

Output = a pure function of a 128-bit counter (c0, c1, c2, c3) and a 64-bit key (k0, k1), so
any element of a random stream can be computed on its own, in any order, on any thread.  One
round (Salmon et al. 2011, section 4.2; M0 = 0xD2511F53, M1 = 0xCD9E8D57)::

    (hi0, lo0) = M0 c0,  (hi1, lo1) = M1 c2          (32 x 32 -> 64-bit products)
    (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)

ten rounds, the key bumped by the Weyl constants (W0, W1) = (0x9E3779B9, 0xBB67AE85) between
rounds.  Checked against Random123's known-answer vectors (``kat_vectors``, philox4x32 10).
Every value is a uint64 holding 32 bits, so the products are plain 64-bit multiplies.  The
plain-numpy twin is :mod:`cimsim.kernels.philox_ref`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["philox4x32", "philox_key", "M0", "M1", "W0", "W1"]

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint64(0x9E3779B9)
W1 = np.uint64(0xBB67AE85)
_LO = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)


@njit(cache=True, inline="always")
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1) (uint64s < 2^32 each):
    the four 32-bit output lanes, as uint64s."""
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = (p1 >> _32) ^ c1 ^ k0, p1 & _LO, (p0 >> _32) ^ c3 ^ k1, p0 & _LO
        k0 = (k0 + W0) & _LO
        k1 = (k1 + W1) & _LO
    return c0, c1, c2, c3


@njit(cache=True, inline="always")
def philox_key(w0, w1):
    """(k0, k1, c2, c3) from two 64-bit words: the key from ``w0``, the counter's upper half (the
    stream's offset) from ``w1``, low 32 bits first."""
    w0 = np.uint64(w0)
    w1 = np.uint64(w1)
    return w0 & _LO, w0 >> _32, w1 & _LO, w1 >> _32
