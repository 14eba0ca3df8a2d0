"""Ziggurat normals over Philox4x32-10: normal i is a pure function of (key, stream, i).

Jitted kernels; their plain-numpy twins, same names and signatures, are in
:mod:`cimsim.kernels.ziggurat_ref`.

The ziggurat of Marsaglia & Tsang (2000) with 256 layers (the algorithm of numpy's own
``standard_normal``).  Key (k0, k1) and stream (c2, c3) come from two 64-bit words
(:func:`~cimsim.kernels.philox.philox_key`).  Units, the ziggurat's random integers:

* float32: unit i = lane l of Philox((j_lo, j_hi, c2, c3)), l = floor(i / 64) mod 4,
  j = 64 floor(i / 256) + i mod 64 (groups of 64 counters give 256 units, lane by lane, so
  the generator's loop stores contiguously and vectorises): 8 bits layer, 1 bit sign, 23 bits
  mantissa (numpy's float32 ziggurat);
* float64: unit i = lanes 2l + (2l + 1) << 32 of that counter, l = floor(i / 64) mod 2,
  j = 64 floor(i / 128) + i mod 64: 8 bits layer, 1 bit sign, 52 bits mantissa.

About 98.5 % of units pass the fast test.  A failed unit i finishes the exact wedge/tail tests
with further words of its own: attempt a = 0, 1, ... takes two 64-bit words (A, B) = (lanes
0 + 1 << 32, lanes 2 + 3 << 32) of Philox((i_lo, i_hi | 2^31, c2 ^ a, c3)), a counter space
apart from the units' (their c1 = j_hi < 2^31, as j <= i / 2); :func:`_finish` is the
definition (the bulk kernel takes the first attempt of a block's failures together,
:func:`_slow_path`, with the same values).  So every output depends on its index alone: the
bulk kernel and the per-index helpers (:func:`normal32_at`, :func:`normal64_at`) give the same
bits, whatever the block size, thread count or draw length.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import trailing_zeros

from ._jit import serial_copy
from .philox import philox4x32, philox_key

__all__ = ["ZIGGURAT_R", "ZIG", "zig_normals", "zig_normals_serial", "normal32_at", "normal64_at", "BLOCK"]

#: Right edge of the base layer of the 256-layer ziggurat (as numpy's ``ziggurat_nor_r``).
ZIGGURAT_R = 3.6541528853610088
_LAYERS = 256
#: outputs per parallel block (a multiple of 256, whole counter groups; the bits never depend on it)
BLOCK = 8192
_G = 64  # counters per group


class _Tables(NamedTuple):
    ki: np.ndarray  # uint64: mantissa bound of the fast path per layer
    wi: np.ndarray  # float64: layer width / 2^bits
    fi: np.ndarray  # float64: density exp(-x_i^2/2) at the layer edge (fi[0] = 1)
    ks: np.ndarray  # [512]: ki twice (fast-path table indexed by layer + 256 sign): int32 (23 bits), int64 (52)
    ws: np.ndarray  # float64 [512]: wi, then -wi (the sign folded in)


def _tables(bits: int) -> _Tables:
    """Ziggurat tables for ``bits``-bit mantissas (Marsaglia & Tsang 2000, section 3).

    Layers of equal area v = r f(r) + int_r^inf f, f(x) = exp(-x^2/2): x_255 = r,
    x_{i-1} = sqrt(-2 ln(v / x_i + f(x_i))); the base layer 0 has virtual width q = v / f(r)
    (its part beyond r stands for the tail).  ki[i] = floor(x_{i-1}/x_i 2^bits) (ki[0] from r/q,
    ki[1] = 0), wi[i] = x_i / 2^bits, fi[i] = f(x_i), fi[0] = 1.
    """
    r = ZIGGURAT_R
    f = lambda x: math.exp(-0.5 * x * x)  # noqa: E731
    v = r * f(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    x = [0.0] * _LAYERS
    x[_LAYERS - 1] = r
    for i in range(_LAYERS - 1, 1, -1):
        x[i - 1] = math.sqrt(-2.0 * math.log(v / x[i] + f(x[i])))
    assert abs(v / x[1] + f(x[1]) - 1.0) < 1e-9, "ziggurat layers do not close at the top"
    q = v / f(r)
    m = float(2**bits)
    ki = np.zeros(_LAYERS, np.uint64)
    wi = np.zeros(_LAYERS)
    fi = np.zeros(_LAYERS)
    ki[0] = int(r / q * m)
    wi[0] = q / m
    fi[0] = 1.0
    for i in range(1, _LAYERS):
        ki[i] = 0 if i == 1 else int(x[i - 1] / x[i] * m)
        wi[i] = x[i] / m
        fi[i] = f(x[i])
    # the fast path compares mantissas with the table in integers of the units' width, signed
    # (AVX2 compares signed integers only; every value is below 2^52)
    ks = np.concatenate([ki, ki]).astype(np.int32 if bits <= 23 else np.int64)
    return _Tables(ki, wi, fi, ks, np.concatenate([wi, -wi]))


#: tables for float32 (True: 23-bit mantissas) and float64 (False: 52 bits)
ZIG = {True: _tables(23), False: _tables(52)}
# module globals: Numba freezes them into the compiled code as constants
_KS32, _WS32, _KI32, _WI32 = ZIG[True].ks, ZIG[True].ws, ZIG[True].ki, ZIG[True].wi
_KS64, _WS64, _KI64, _WI64 = ZIG[False].ks, ZIG[False].ws, ZIG[False].ki, ZIG[False].wi
_FI = ZIG[True].fi

_LO = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)
_MASK23 = np.uint64(0x7FFFFF)
_MASK52 = np.uint64(0xFFFFFFFFFFFFF)
_SLOW = np.uint64(1 << 31)  # c1 bit of the slow path's counter space
_TWO_M53 = 1.1102230246251565e-16  # 2**-53
_EXP52 = np.uint64(0x4330000000000000)  # the bits of 2^52
_TWO52 = 4503599627370496.0
_SIGN = np.array([1.0, -1.0])  # by the sign bit


@njit(cache=True, inline="always")
def _exact_float64(m):
    """float64(m) for a uint64 m < 2^52, exactly: 2^52 + m is the double with bits m | bits(2^52).

    The same value as ``np.float64(m)``, in integer and float operations that vectorise on AVX2,
    which has no 64-bit integer to double conversion."""
    return np.uint64(m | _EXP52).view(np.float64) - _TWO52


@njit(cache=True, inline="always")
def _slow_words(k0, k1, c2, c3, i, a):
    """(A, B): the two 64-bit words of attempt ``a`` of the slow path of normal ``i``."""
    l0, l1, l2, l3 = philox4x32(i & _LO, (i >> _32) | _SLOW, c2 ^ a, c3, k0, k1)
    return l0 | (l1 << _32), l2 | (l3 << _32)


@njit(cache=True, nogil=True)
def _finish(k0, k1, c2, c3, i, unit, half):
    """Normal i whose unit failed the fast test: the wedge / tail tests (Marsaglia & Tsang 2000).

    Unit (layer idx, sign s, mantissa m); attempt a = 0, 1, ... draws (A, B) =
    :func:`_slow_words`; u = (A >> 11) 2^-53, u2 likewise from B.  Layer 0
    (tail): xx = -ln(1 - u)/r, yy = -ln(1 - u2); accept z = r + xx if 2 yy > xx^2, else the next
    attempt.  Layer idx > 0 (wedge): accept x = m wi[idx] if fi[idx] + u (fi[idx-1] - fi[idx]) <
    exp(-x^2/2), else B (its low 32 bits for float32) is a new unit: accepted if it passes the
    fast test, else its wedge / tail tests take the next attempt.  Returns the signed float64.
    """
    idx = np.int64(unit & np.uint64(0xFF))
    s = (unit >> np.uint64(8)) & np.uint64(1)
    m = (unit >> np.uint64(9)) & (_MASK23 if half else _MASK52)
    a = np.uint64(0)
    while True:
        wa, wb = _slow_words(k0, k1, c2, c3, i, a)
        a += np.uint64(1)
        if idx == 0:
            u1 = np.float64(wa >> np.uint64(11)) * _TWO_M53
            u2 = np.float64(wb >> np.uint64(11)) * _TWO_M53
            xx = -math.log1p(-u1) / ZIGGURAT_R
            yy = -math.log1p(-u2)
            if yy + yy > xx * xx:
                z = ZIGGURAT_R + xx
                return -z if s else z
        else:
            u = np.float64(wa >> np.uint64(11)) * _TWO_M53
            x = np.float64(m) * (_WI32[idx] if half else _WI64[idx])
            if _FI[idx] + u * (_FI[idx - 1] - _FI[idx]) < math.exp(-0.5 * x * x):
                return -x if s else x
            r = wb & _LO if half else wb
            idx = np.int64(r & np.uint64(0xFF))
            s = (r >> np.uint64(8)) & np.uint64(1)
            m = (r >> np.uint64(9)) & (_MASK23 if half else _MASK52)
            if m < (_KI32[idx] if half else _KI64[idx]):
                x = np.float64(m) * (_WI32[idx] if half else _WI64[idx])
                return -x if s else x


@njit(cache=True, inline="always")
def _counter(i, half):
    """(j, l): the Philox counter (low 64 bits) and lane (float32) or lane pair (float64) of unit i."""
    if half:
        return ((i >> np.uint64(8)) << np.uint64(6)) | (i & np.uint64(63)), (i >> np.uint64(6)) & np.uint64(3)
    return ((i >> np.uint64(7)) << np.uint64(6)) | (i & np.uint64(63)), (i >> np.uint64(6)) & np.uint64(1)


@njit(cache=True, inline="always")
def normal32_at(k0, k1, c2, c3, i):
    """float32 standard normal number ``i`` of the stream (k0, k1, c2, c3) (the same bits as
    element i of :func:`zig_normals`); for kernels that draw their normals inline."""
    i = np.uint64(i)
    j, lane = _counter(i, True)
    l0, l1, l2, l3 = philox4x32(j & _LO, j >> _32, c2, c3, k0, k1)
    r = l0 if lane == 0 else (l1 if lane == 1 else (l2 if lane == 2 else l3))
    jj = r & np.uint64(0x1FF)
    m = np.int64(r >> np.uint64(9))
    if m < _KS32[jj]:
        return np.float32(np.float64(m) * _WS32[jj])
    return np.float32(_finish(k0, k1, c2, c3, i, r, True))


@njit(cache=True, inline="always")
def normal64_at(k0, k1, c2, c3, i):
    """float64 twin of :func:`normal32_at`."""
    i = np.uint64(i)
    j, pair = _counter(i, False)
    l0, l1, l2, l3 = philox4x32(j & _LO, j >> _32, c2, c3, k0, k1)
    r = (l0 | (l1 << _32)) if pair == 0 else (l2 | (l3 << _32))
    jj = r & np.uint64(0x1FF)
    m = np.int64((r >> np.uint64(9)) & _MASK52)
    if m < _KS64[jj]:
        return np.float64(m) * _WS64[jj]
    return _finish(k0, k1, c2, c3, i, r, False)


@njit(cache=True, nogil=True)
def _slow_path(k0, k1, c2, c3, out, i0, units, fail, half):
    """out[k] = normal i0 + k for every k with fail[k] set (its unit, units[k], failed the fast
    test): the values of :func:`_finish`, most of them without its branches.

    The failures' offsets are read off eight flags (one uint64 of ``fail``) at a time, most
    words being zero, each set flag's offset from its bit.  The words (A, B) of their first
    attempt are drawn in one loop over independent counters (it vectorises as the units' loop
    does).  Most failures then end in that attempt in one of two ways, both computed for every
    failure and selected without a branch: the wedge accepts x, or it rejects and B's unit
    passes the fast test.  The rest (the tail layer, or a second rejection; a few percent of
    failures) take :func:`_finish`.
    """
    words = fail.view(np.uint64)
    ks = np.empty(fail.shape[0], np.int64)
    c = 0
    for w in range(words.shape[0]):
        f = words[w]
        while f:  # each set flag is one bit, the lowest of its byte
            ks[c] = 8 * w + np.int64(trailing_zeros(f) >> np.uint64(3))  # type: ignore[call-arg]
            c += 1
            f &= f - np.uint64(1)
    wa = np.empty(c, np.uint64)
    wb = np.empty(c, np.uint64)
    for t in range(c):
        wa[t], wb[t] = _slow_words(k0, k1, c2, c3, np.uint64(i0 + ks[t]), np.uint64(0))
    mask = _MASK23 if half else _MASK52
    pair = np.empty(2)
    # _finish (a call, or its while loop if inlined) keeps this loop from vectorising, so that
    # exp is libm's scalar exp, as in _finish and the twin (a vector library's exp has other bits).
    for t in range(c):
        k = ks[t]
        unit = np.uint64(units[k])
        idx = np.int64(unit & np.uint64(0xFF))  # idx = 0 (tail): fi[-1] is fi[255], and unused
        x = np.float64((unit >> np.uint64(9)) & mask) * (_WI32[idx] if half else _WI64[idx])
        u = np.float64(wa[t] >> np.uint64(11)) * _TWO_M53
        wedge = _FI[idx] + u * (_FI[idx - 1] - _FI[idx]) < math.exp(-0.5 * x * x)
        r = wb[t] & _LO if half else wb[t]
        idx2 = np.int64(r & np.uint64(0xFF))
        m2 = (r >> np.uint64(9)) & mask
        x2 = np.float64(m2) * (_WI32[idx2] if half else _WI64[idx2])
        fast2 = m2 < (_KI32[idx2] if half else _KI64[idx2])
        # selected through memory: x86 has no branch-free scalar select of doubles, and a branch
        # on the wedge test or the sign would mispredict half the time (a product with -1.0
        # negates exactly)
        pair[0] = x2
        pair[1] = x
        z = pair[np.int64(wedge)] * _SIGN[((unit if wedge else r) >> np.uint64(8)) & np.uint64(1)]
        if idx == 0 or not (wedge | fast2):
            z = _finish(k0, k1, c2, c3, np.uint64(i0 + k), unit, half)
        out[k] = z


@njit(cache=True, nogil=True)
def _block32(k0, k1, c2, c3, out, i0):
    """float32 normals i0 .. i0 + out.size - 1 (i0 a multiple of 256) into ``out``."""
    n = out.shape[0]
    units = np.empty(-(-n // (4 * _G)) * 4 * _G, np.uint32)
    for q in range(units.shape[0] // (4 * _G)):  # whole groups: _G counters, their lanes apart
        b = q * 4 * _G
        j0 = np.uint64((i0 + b) >> 2)
        for g in range(_G):
            j = j0 + np.uint64(g)
            l0, l1, l2, l3 = philox4x32(j & _LO, j >> _32, c2, c3, k0, k1)
            units[b + g] = l0
            units[b + _G + g] = l1
            units[b + 2 * _G + g] = l2
            units[b + 3 * _G + g] = l3
    # the fast test, branch-free in int32 (it vectorises); failures flagged for the slow path
    fail = np.empty(units.shape[0], np.uint8)
    for k in range(n):
        r = units[k]
        jj = r & np.uint32(0x1FF)
        m = np.int32(r >> np.uint32(9))
        out[k] = np.float64(m) * _WS32[jj]
        fail[k] = m >= _KS32[jj]
    fail[n:] = 0
    _slow_path(k0, k1, c2, c3, out, i0, units, fail, True)


@njit(cache=True, nogil=True)
def _block64(k0, k1, c2, c3, out, i0):
    """float64 normals i0 .. i0 + out.size - 1 (i0 a multiple of 128) into ``out``."""
    n = out.shape[0]
    units = np.empty(-(-n // (2 * _G)) * 2 * _G, np.uint64)
    for q in range(units.shape[0] // (2 * _G)):
        b = q * 2 * _G
        j0 = np.uint64((i0 + b) >> 1)
        for g in range(_G):
            j = j0 + np.uint64(g)
            l0, l1, l2, l3 = philox4x32(j & _LO, j >> _32, c2, c3, k0, k1)
            units[b + g] = l0 | (l1 << _32)
            units[b + _G + g] = l2 | (l3 << _32)
    fail = np.empty(units.shape[0], np.uint8)
    for k in range(n):
        r = units[k]
        jj = r & np.uint64(0x1FF)
        m = (r >> np.uint64(9)) & _MASK52
        out[k] = _exact_float64(m) * _WS64[jj]
        fail[k] = np.int64(m) >= _KS64[jj]
    fail[n:] = 0
    _slow_path(k0, k1, c2, c3, out, i0, units, fail, False)


@njit(cache=True, parallel=True)
def zig_normals(words, half, out):
    """Standard normals out[i] = normal i of the stream keyed by ``words`` (two uint64s, see
    :func:`~cimsim.kernels.philox.philox_key`): float32 units when ``half``, float64 otherwise
    (the module docstring has the map).  Blocks of :data:`BLOCK` outputs run in parallel; each
    output depends on its index alone."""
    k0, k1, c2, c3 = philox_key(words[0], words[1])
    n = out.shape[0]
    nb = (n + BLOCK - 1) // BLOCK
    for b in prange(nb):
        i0 = b * BLOCK
        i1 = min(n, i0 + BLOCK)
        if half:
            _block32(k0, k1, c2, c3, out[i0:i1], i0)
        else:
            _block64(k0, k1, c2, c3, out[i0:i1], i0)


# single-threaded copy (see :func:`cimsim.kernels._jit.serial_copy`)
zig_normals_serial = serial_copy(zig_normals)
