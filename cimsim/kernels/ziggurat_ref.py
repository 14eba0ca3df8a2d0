"""Plain-numpy twins of :mod:`cimsim.kernels.ziggurat`: same names, same signatures, same outputs."""

from __future__ import annotations

import math

import numpy as np

__all__ = ['zig_fast', 'zig_slow', 'zig_fast_serial']


def _units(words, n, half):
    if half:
        u = np.empty(2 * words.shape[0], np.uint64)
        u[0::2] = words & np.uint64(0xFFFFFFFF)
        u[1::2] = words >> np.uint64(32)
        return u[:n]
    return words[:n]


def _split(r, half):
    r = np.asarray(r, dtype=np.uint64)
    idx = (r & np.uint64(0xFF)).astype(np.int64)
    s = ((r >> np.uint64(8)) & np.uint64(1)).astype(bool)
    m = (r >> np.uint64(9)) & (np.uint64(0x7FFFFF) if half else np.uint64(0xFFFFFFFFFFFFF))
    return idx, s, m


def zig_fast(words, half, ks, ws, out, fail_idx, fail_unit, fail_cnt):
    n = out.shape[0]
    nb = fail_cnt.shape[0]
    cap = fail_idx.shape[1]
    bs = -(-n // nb) if nb else 0
    units = _units(words, n, half)
    j = (units & np.uint64(0x1FF)).astype(np.int64)
    m = (units >> np.uint64(9)) & (np.uint64(0x7FFFFF) if half else np.uint64(0xFFFFFFFFFFFFF))
    ok = m < ks[j]
    out[:] = np.where(ok, m.astype(np.float64) * ws[j], np.nan)
    for b in range(nb):
        f = np.flatnonzero(~ok[b * bs : (b + 1) * bs]) + b * bs
        fail_cnt[b] = f.size
        fail_idx[b, : min(cap, f.size)] = f[:cap]
        fail_unit[b, : min(cap, f.size)] = units[f[:cap]]


def zig_slow(units, half, ki, wi, fi, r_tail, out, fails, extra, state):
    j, phase, idx, s, m = (int(v) for v in state)
    pos = 0
    ne, nf = extra.shape[0], fails.shape[0]

    def split(r):
        return r & 0xFF, (r >> 8) & 1, (r >> 9) & (0x7FFFFF if half else 0xFFFFFFFFFFFFF)

    def uni(w):
        return float(int(w) >> 11) * 2.0**-53

    while j < nf:
        if phase == 0:
            idx, s, m = split(int(units[j]))
            phase = 2 if idx == 0 else 1
            continue
        need = 2 if phase == 2 else 1
        if pos + need > ne:
            break
        if phase == 3:
            w = int(extra[pos])
            pos += 1
            idx, s, m = split(w & 0xFFFFFFFF if half else w)
            if m < int(ki[idx]):
                x = float(m) * wi[idx]
                out[fails[j]] = -x if s else x
                j, phase = j + 1, 0
            else:
                phase = 2 if idx == 0 else 1
        elif phase == 1:
            u = uni(extra[pos])
            pos += 1
            x = float(m) * wi[idx]
            if fi[idx] + u * (fi[idx - 1] - fi[idx]) < math.exp(-0.5 * x * x):
                out[fails[j]] = -x if s else x
                j, phase = j + 1, 0
            else:
                phase = 3
        else:
            u1, u2 = uni(extra[pos]), uni(extra[pos + 1])
            pos += 2
            xx = -math.log1p(-u1) / r_tail
            yy = -math.log1p(-u2)
            if yy + yy > xx * xx:
                z = r_tail + xx
                out[fails[j]] = -z if s else z
                j, phase = j + 1, 0
    state[:] = [j, phase, idx, s, m]
    return pos


zig_fast_serial = zig_fast
