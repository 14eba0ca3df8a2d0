"""Plain-numpy twins of :mod:`cimsim.kernels.ziggurat`: same names, same signatures, same outputs.

Philox runs on uint64 arrays (:mod:`cimsim.kernels.philox_ref`); the slow path advances all
pending failures one attempt at a time, its ``exp``/``log1p`` through :mod:`math` (the libm the
jitted kernel calls, so the accept/reject decisions and tail values match bit for bit).
"""

from __future__ import annotations

import math

import numpy as np

from .philox_ref import philox4x32, philox_key
from .ziggurat import BLOCK, ZIG, ZIGGURAT_R

__all__ = ["zig_normals", "zig_normals_serial", "normal32_at", "normal64_at", "BLOCK"]

_LO = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)
_SLOW = np.uint64(1 << 31)


def _mask(half):
    return np.uint64(0x7FFFFF) if half else np.uint64(0xFFFFFFFFFFFFF)


def _units(k0, k1, c2, c3, i, half):
    i = np.asarray(i, dtype=np.uint64)
    q = i >> np.uint64(8 if half else 7)  # the group of 64 counters
    j = (q << np.uint64(6)) | (i & np.uint64(63))
    lane = ((i >> np.uint64(6)) & np.uint64(3 if half else 1)).astype(np.int64)
    lanes = np.stack(philox4x32(j & _LO, j >> _32, c2, c3, k0, k1))
    if half:
        return np.take_along_axis(lanes, lane[None], 0)[0]
    return np.where(lane == 1, lanes[2] | (lanes[3] << _32), lanes[0] | (lanes[1] << _32))


def _split(r, half):
    return (r & np.uint64(0xFF)).astype(np.int64), ((r >> np.uint64(8)) & np.uint64(1)).astype(bool), \
        (r >> np.uint64(9)) & _mask(half)


def _normals(k0, k1, c2, c3, i, half):
    t = ZIG[half]
    r = _units(k0, k1, c2, c3, i, half)
    jj = (r & np.uint64(0x1FF)).astype(np.int64)
    m = (r >> np.uint64(9)) & _mask(half)
    ok = m < t.ks[jj].astype(np.uint64)
    z = np.where(ok, m.astype(np.float64) * t.ws[jj], np.nan)
    pend = np.flatnonzero(~ok)
    idx, s, m = _split(r[pend], half)
    ii = np.asarray(i, dtype=np.uint64)[pend]
    a = np.uint64(0)
    while pend.size:
        l0, l1, l2, l3 = philox4x32(ii & _LO, (ii >> _32) | _SLOW, c2 ^ a, c3, k0, k1)
        a += np.uint64(1)
        wa = l0 | (l1 << _32)
        wb = l2 | (l3 << _32)
        val = np.full(pend.size, np.nan)
        tail = idx == 0
        u1 = (wa >> np.uint64(11)).astype(np.float64) * 2.0**-53
        u2 = (wb >> np.uint64(11)).astype(np.float64) * 2.0**-53
        xx = np.array([-math.log1p(-u) for u in u1[tail]]) / ZIGGURAT_R
        yy = np.array([-math.log1p(-u) for u in u2[tail]])
        acc = yy + yy > xx * xx
        val[np.flatnonzero(tail)[acc]] = ZIGGURAT_R + xx[acc]
        w = np.flatnonzero(~tail)
        x = m[w].astype(np.float64) * t.wi[idx[w]]
        f = t.fi[idx[w]] + u1[w] * (t.fi[idx[w] - 1] - t.fi[idx[w]])
        acc = f < np.array([math.exp(-0.5 * v * v) for v in x])
        val[w[acc]] = x[acc]
        rej = w[~acc]  # wedge rejected: B is a new unit
        nr = wb[rej] & _LO if half else wb[rej]
        idx[rej], s[rej], m[rej] = _split(nr, half)
        fast = m[rej] < t.ki[idx[rej]]
        val[rej[fast]] = m[rej[fast]].astype(np.float64) * t.wi[idx[rej[fast]]]
        done = ~np.isnan(val)
        z[pend[done]] = np.where(s[done], -val[done], val[done])
        keep = ~done
        pend, ii, idx, s, m = pend[keep], ii[keep], idx[keep], s[keep], m[keep]
    return z


def normal32_at(k0, k1, c2, c3, i):
    return _normals(k0, k1, c2, c3, i, True).astype(np.float32)


def normal64_at(k0, k1, c2, c3, i):
    return _normals(k0, k1, c2, c3, i, False)


def zig_normals(words, half, out):
    k0, k1, c2, c3 = philox_key(words[0], words[1])
    out[:] = _normals(k0, k1, c2, c3, np.arange(out.shape[0], dtype=np.uint64), half)


zig_normals_serial = zig_normals
