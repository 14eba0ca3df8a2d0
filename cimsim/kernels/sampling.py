"""Random draws for the crossbar path, all from the caller's ``numpy.random.Generator``.

Normals: the ziggurat of Marsaglia & Tsang (2000) with 256 layers (the algorithm of numpy's own
``standard_normal``), run over the Generator's raw 64-bit output.  float32 normals take one
32-bit half each (8 bits layer, 1 sign, 23 mantissa: numpy's float32 ziggurat), float64 normals
one 64-bit word (52-bit mantissa).  About 99 % of units are accepted by the parallel fast path
(:func:`cimsim.kernels.ziggurat.zig_fast`); the rest finish the exact wedge/tail tests on further
words from the same Generator (:func:`~cimsim.kernels.ziggurat.zig_slow`).  Exact in
distribution, and the bits depend on the seed alone: the raw words are the Generator's own
stream (cut into pieces with ``PCG64.advance`` so two threads can draw it, identical to one
``random_raw`` call), and every later word is used in a fixed order.
"""

from __future__ import annotations

import math
import sys
from typing import NamedTuple

import numpy as np

from .._threads import map_pieces, n_elements, scratch
from ..errors import ParameterError
from . import NUMBA, Engine

__all__ = ["normals", "uniforms", "raw_words", "ZIGGURAT_R"]

#: Right edge of the base layer of the 256-layer ziggurat (as numpy's ``ziggurat_nor_r``).
ZIGGURAT_R = 3.6541528853610088
_LAYERS = 256
_BLOCK = 8192  # outputs per fast-path block (fixed: the bits never depend on the thread count)
_CAP = 256  # failures listed per block (~120 expected, sd ~11; more: the block is scanned)
_PAR_WORDS = 1 << 17  # raw words per piece when drawing the stream on several threads


class _Tables(NamedTuple):
    ki: np.ndarray  # uint64: mantissa bound of the fast path per layer
    wi: np.ndarray  # float64: layer width / 2^bits
    fi: np.ndarray  # float64: density exp(-x_i^2/2) at the layer edge (fi[0] = 1)
    ks: np.ndarray  # [512]: ki twice (fast-path table indexed by layer + 256 sign), in the units' dtype
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
    # the fast path compares the table with units of the same width (uint32 halves for 23 bits)
    ks = np.concatenate([ki, ki]).astype(np.uint32 if bits <= 23 else np.uint64)
    return _Tables(ki, wi, fi, ks, np.concatenate([wi, -wi]))


_ZIG = {True: _tables(23), False: _tables(52)}

# the float32 fast path reads the words as 32-bit units, low half first (a little-endian view)
if sys.byteorder != "little":  # pragma: no cover - every platform Numba supports is little-endian
    raise ImportError("cimsim's random draws read 64-bit words as 32-bit halves and need a little-endian machine")


def raw_words(rng: np.random.Generator, n: int, out: np.ndarray | None = None) -> np.ndarray:
    """The next ``n`` raw 64-bit words of ``rng``: equal to ``rng.bit_generator.random_raw(n)``.

    For PCG64/PCG64DXSM and large ``n`` the stream is cut into fixed pieces, each drawn on a pool
    thread from a copy of the state advanced to its start (``PCG64.advance``); the parent then
    continues after the last word.  Same words, same final state, whatever the thread count.
    ``out`` (n uint64) may receive the words on that path (otherwise a new array is returned).
    """
    bg = rng.bit_generator
    n = int(n)
    if n < 2 * _PAR_WORDS or not isinstance(bg, (np.random.PCG64, np.random.PCG64DXSM)):
        return bg.random_raw(n) if n else np.zeros(0, np.uint64)
    start = bg.state
    if out is None:
        out = np.empty(n, np.uint64)
    pieces = range(0, n, _PAR_WORDS)

    def piece(k0: int):
        b = type(bg)()
        b.state = start
        b.advance(k0)
        out[k0 : k0 + _PAR_WORDS] = b.random_raw(min(_PAR_WORDS, n - k0))
        return b

    last = map_pieces(piece, pieces)[-1]
    st = bg.state
    st["state"] = last.state["state"]
    bg.state = st
    return out


def normals(rng: np.random.Generator, shape, dtype=np.float32, kernels: Engine = NUMBA,
            out: np.ndarray | None = None) -> np.ndarray:
    """Standard normal array of ``shape`` (float32 by default) from ``rng``'s bit stream.

    Draw order: ceil(n/2) words (float32) or n words (float64) for the units, then, while units
    remain unfinished, batches of further words for the slow path.  ``out`` (C-contiguous,
    ``shape``, float32 or float64 as ``dtype``) receives the result instead of a new array.
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
    out = res.reshape(-1)
    if n:
        t = _ZIG[half]
        n_words = (n + 1) // 2 if half else n
        nb = -(-n // _BLOCK)
        cap = min(_CAP, n)
        # per-thread reused buffers pay off for large draws (no fresh pages); small ones (one
        # block, a training-sized layer) take plain np.empty, cheaper than the buffer lookup
        buf = scratch if nb > 1 else _empty
        words = raw_words(rng, n_words, out=buf("zig_words", n_words, np.uint64))
        fail_idx = buf("zig_fail_idx", (nb, cap), np.int64)
        fail_unit = buf("zig_fail_unit", (nb, cap), np.uint64)
        fail_cnt = buf("zig_fail_cnt", nb, np.int64)
        kernels.zig_fast.sized(n)(words, half, t.ks, t.ws, out, fail_idx, fail_unit, fail_cnt)
        fails, units = _fail_list(out, words, half, fail_idx, fail_unit, fail_cnt)
        state = np.zeros(5, np.int64)
        while state[0] < fails.shape[0]:
            extra = raw_words(rng, 2 * (fails.shape[0] - int(state[0])) + 16)
            kernels.zig_slow(units, half, t.ki, t.wi, t.fi, ZIGGURAT_R, out, fails, extra, state)
    return res if res.dtype == np.dtype(dtype) else res.astype(dtype)


def _empty(name: str, shape, dtype) -> np.ndarray:
    """``np.empty`` with :func:`~cimsim._threads.scratch`'s signature."""
    return np.empty(shape, dtype)


def _fail_list(out, words, half, fail_idx, fail_unit, fail_cnt) -> tuple[np.ndarray, np.ndarray]:
    """All fast-path failures in index order and their units (a block whose list overflowed is
    scanned for NaN and its units re-read from the words)."""
    cap = fail_idx.shape[1]
    if fail_cnt.shape[0] == 1 and fail_cnt[0] <= cap:  # one block: its list as is
        c = int(fail_cnt[0])
        return fail_idx[0, :c], fail_unit[0, :c]
    if (fail_cnt <= cap).all():
        keep = np.arange(cap)[None, :] < fail_cnt[:, None]
        return fail_idx[keep], fail_unit[keep]
    bs = -(-out.shape[0] // fail_cnt.shape[0])
    parts = [fail_idx[b, : fail_cnt[b]] if fail_cnt[b] <= cap else np.flatnonzero(np.isnan(out[b * bs : (b + 1) * bs])) + b * bs
             for b in range(fail_cnt.shape[0])]
    fails = np.concatenate(parts)
    if half:
        w = words[fails >> 1]
        units = np.where(fails & 1, w >> np.uint64(32), w & np.uint64(0xFFFFFFFF))
    else:
        units = words[fails]
    return fails, units.astype(np.uint64)


def uniforms(rng: np.random.Generator, shape, dtype=np.float32) -> np.ndarray:
    """Uniform [0, 1) array of ``shape`` from ``rng``."""
    return rng.random(shape, dtype=dtype)
