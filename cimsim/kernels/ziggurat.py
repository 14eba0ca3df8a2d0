"""Ziggurat normals over the caller's raw random words (the fast path in parallel, the rest in order).

Jitted kernels; their plain-numpy twins, same names and signatures, are in
:mod:`cimsim.kernels.ziggurat_ref`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._jit import serial_copy

__all__ = ['zig_fast', 'zig_slow', 'zig_fast_serial']


_MASK23 = np.uint64(0x7FFFFF)


_MASK52 = np.uint64(0xFFFFFFFFFFFFF)


_TWO_M53 = 1.1102230246251565e-16  # 2**-53


@njit(cache=True, inline="always")
def _zig_split(r, half):
    """(layer, sign, |mantissa|) of a unit: 8 bits layer, 1 bit sign, 23 (half) or 52 bits."""
    idx = np.int64(r & np.uint64(0xFF))
    if half:
        return idx, np.int64((r >> np.uint64(8)) & np.uint64(1)), (r >> np.uint64(9)) & _MASK23
    return idx, np.int64((r >> np.uint64(8)) & np.uint64(1)), (r >> np.uint64(9)) & _MASK52


@njit(cache=True, nogil=True)
def _zig_units(units, jmask, shift, mmask, ks, ws, out, fail_idx, fail_unit, b, k0):
    """Fast path over one block: ``units`` (uint32 halves or uint64 words; the masks, shift and
    ks in the units' dtype) and ``out`` are the block's slices, ``k0`` its first output index;
    returns the block's failure count."""
    # pass 1, branch-free (it vectorises): the sign is folded into the 512-entry tables (index =
    # the unit's low 9 bits) and a failure (~1.5 %) is marked NaN.  Whole slices, not a k0..k1
    # range of the full arrays, and ks in the units' dtype: both keep the loop vectorised
    for k in range(units.shape[0]):
        r = units[k]
        j = r & jmask
        m = (r >> shift) & mmask
        x = np.float64(m) * ws[j]
        out[k] = x if m < ks[j] else np.nan
    # pass 2: list the failures in order (kept apart from pass 1, whose loop would not vectorise
    # with the branch and the append in it; same bits)
    cap = fail_idx.shape[1]
    c = 0
    for k in range(units.shape[0]):
        if out[k] != out[k]:
            if c < cap:
                fail_idx[b, c] = k0 + k
                fail_unit[b, c] = units[k]
            c += 1
    return c


@njit(cache=True, nogil=True)
def _zig_block(words, half, ks, ws, out, fail_idx, fail_unit, fail_cnt, b, bs):
    """Fast path of one block of outputs (see :func:`zig_fast`)."""
    k0 = b * bs
    k1 = min(out.shape[0], (b + 1) * bs)
    if half:  # unit k = the k-th 32-bit half, low half first (a little-endian view)
        fail_cnt[b] = _zig_units(words.view(np.uint32)[k0:k1], np.uint32(0x1FF), np.uint32(9), np.uint32(0x7FFFFF),
                                 ks, ws, out[k0:k1], fail_idx, fail_unit, b, k0)
    else:
        fail_cnt[b] = _zig_units(words[k0:k1], np.uint64(0x1FF), np.uint64(9), _MASK52, ks, ws, out[k0:k1],
                                 fail_idx, fail_unit, b, k0)


@njit(cache=True, parallel=True)
def zig_fast(words, half, ks, ws, out, fail_idx, fail_unit, fail_cnt):
    """Ziggurat fast path (Marsaglia & Tsang 2000, 256 layers, as numpy's ``standard_normal``).

    Unit k of the caller's random bits (the k-th 32-bit half, low half first, when ``half``, else
    the k-th word) -> layer i (bits 0-7), sign s (bit 8), mantissa m (the bits above, 23 or 52);
    ks / ws are the signed tables of 512 entries, j = i + 256 s: ks[j] = ki[i], ws[j] =
    (-1)^s wi[i].  x = m ws[j]; if m < ks[j] (x inside the part of layer i that lies under the
    density, ~98.5 %) out[k] = x.  Otherwise out[k] = NaN and k is listed for :func:`zig_slow`
    (the wedge / tail test that needs more bits): block b = outputs [b B, (b+1) B), B =
    out.size / n_blocks rounded up, writes its failures in order to fail_idx[b, :] and
    their count to fail_cnt[b] (a count above the row length means the list overflowed; the
    caller then scans the block).
    """
    nb = fail_cnt.shape[0]
    bs = (out.shape[0] + nb - 1) // nb
    for b in prange(nb):
        _zig_block(words, half, ks, ws, out, fail_idx, fail_unit, fail_cnt, b, bs)


@njit(cache=True, nogil=True)
def zig_slow(units, half, ki, wi, fi, r_tail, out, fails, extra, state):
    """Finish the units :func:`zig_fast` could not, exactly as the ziggurat does, in list order.

    For unit k = fails[j] (its bits units[j]: layer i, mantissa m): layer 0 -> tail: repeat
    xx = -ln(1 - u1)/r, yy = -ln(1 - u2) until 2 yy > xx^2, z = r + xx; layer i > 0 -> wedge:
    accept x = m wi[i] if fi[i] + u (fi[i-1] - fi[i]) < exp(-x^2/2), else restart with a new
    unit (fast test, then wedge/tail again).  Uniforms u = (word >> 11) 2^-53 and new units come
    from ``extra`` in order.  Resumable: ``state`` = [j, phase, layer, sign, mantissa] (phase 0
    start unit j, 1 wedge, 2 tail, 3 restart); returns the number of ``extra`` words used and
    stops early, state saved, when ``extra`` runs out (the caller draws more and calls again).
    """
    j = state[0]
    phase = state[1]
    idx = state[2]
    s = state[3]
    m = np.uint64(state[4])
    pos = 0
    ne = extra.shape[0]
    nf = fails.shape[0]
    while j < nf:
        if phase == 0:
            idx, s, m = _zig_split(units[j], half)
            phase = 2 if idx == 0 else 1
            continue
        need = 2 if phase == 2 else 1
        if pos + need > ne:
            break
        if phase == 3:
            w = extra[pos]
            pos += 1
            idx, s, m = _zig_split(w & np.uint64(0xFFFFFFFF) if half else w, half)
            if m < ki[idx]:
                x = np.float64(m) * wi[idx]
                out[fails[j]] = -x if s else x
                j += 1
                phase = 0
            else:
                phase = 2 if idx == 0 else 1
        elif phase == 1:
            u = np.float64(extra[pos] >> np.uint64(11)) * _TWO_M53
            pos += 1
            x = np.float64(m) * wi[idx]
            if fi[idx] + u * (fi[idx - 1] - fi[idx]) < math.exp(-0.5 * x * x):
                out[fails[j]] = -x if s else x
                j += 1
                phase = 0
            else:
                phase = 3
        else:
            u1 = np.float64(extra[pos] >> np.uint64(11)) * _TWO_M53
            u2 = np.float64(extra[pos + 1] >> np.uint64(11)) * _TWO_M53
            pos += 2
            xx = -math.log1p(-u1) / r_tail
            yy = -math.log1p(-u2)
            if yy + yy > xx * xx:
                z = r_tail + xx
                out[fails[j]] = -z if s else z
                j += 1
                phase = 0
    state[0] = j
    state[1] = phase
    state[2] = idx
    state[3] = s
    state[4] = np.int64(m)
    return pos


# single-threaded copies (see :func:`cimsim.kernels._jit.serial_copy`)
zig_fast_serial = serial_copy(zig_fast)
