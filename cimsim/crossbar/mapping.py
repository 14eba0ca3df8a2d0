"""Weight scales: w_norm = W / s per scaling group, with max-abs or percentile clipping.

Groups (profile ``mapping.scaling``): ``per_layer`` one s; ``per_tile`` one s per (output tile,
input tile); ``per_column`` one s per physical tile column (input tile k, output o).  The scale
is returned as an array ``[n_in_tiles, out]`` (one entry per tile column) in every case.
s = max |W| of the group, or its ``clip_percentile`` (weights beyond are clipped to +-1 in
normalised units); an all-zero group gets s = 1.  The conductance map itself (differential or
single-device-with-reference, exact inverse) is :func:`cimsim.kernels.programming.map_targets`.
"""

from __future__ import annotations

import numpy as np

from ..kernels import NUMBA
from ..profiles.schema import Mapping
from .inputs import FLOAT_BITS
from .tiling import TileGrid

__all__ = ["weight_scales"]


def _stat(a: np.ndarray, pct: float | None, axis) -> np.ndarray:
    a = np.abs(a)
    if pct is None:
        return np.max(a, axis=axis)
    return np.percentile(a, pct, axis=axis)


def weight_scales(W: np.ndarray, mapping: Mapping, grid: TileGrid) -> np.ndarray:
    """Scale s of every tile column, float64 ``[n_in_tiles, out]``."""
    pct = mapping.clip_percentile
    s = np.empty((grid.n_in_tiles, grid.n_out), dtype=np.float64)
    if mapping.scaling == "per_layer":
        s[...] = _stat(W, pct, None) if W.size else 1.0
    elif mapping.scaling == "per_column" and pct is None and W.dtype in FLOAT_BITS and W.size:
        # max |W| of every tile column in one integer pass over W's bits (exact, see
        # inputs.FLOAT_BITS; NaN/Inf stay NaN/Inf as with np.max)
        ut, mask, _ = FLOAT_BITS[W.dtype]
        Wc = np.ascontiguousarray(W)
        mb = np.empty((grid.n_out, grid.n_in_tiles), ut)
        NUMBA.row_absmax_bits.sized(W.size)(Wc.view(ut), mask, grid.rows, mb)
        s[...] = mb.view(W.dtype).T
    else:
        for k in range(grid.n_in_tiles):
            k0, k1 = grid.in_slice(k)
            blk = W[:, k0:k1]
            if mapping.scaling == "per_column":
                s[k] = _stat(blk, pct, 1)
            else:
                for a in range(grid.n_out_tiles):
                    o0, o1 = a * grid.cols, min((a + 1) * grid.cols, grid.n_out)
                    s[k, o0:o1] = _stat(blk[o0:o1], pct, None)
    s[~(s > 0)] = 1.0
    return s
