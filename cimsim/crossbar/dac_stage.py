"""The DAC stage of tile_mvm: inputs -> the normalised row drive, per row bound, masks; bit planes.

Row bound: the fixed or calibrated range of the state, or (dynamic range) max_j |x[b, j]|, 1
for a zero row.  Conversion per element: see :class:`cimsim.peripherals.DacPlan`.

Bit-serial input (:func:`bit_planes`): code = rint(x_norm L) in [-L, L] (x_norm = code / L
exactly); plane p = sign(code) bit_p(|code|) in {-1, 0, 1} drives the rows; the periphery weighs
the plane's converted column sums by 2^p / L, so sum_p 2^p plane_p / L = x_norm, and each
plane's conversion error is scaled down by its weight: rowscale_p = row_bound 2^p / L.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..kernels.sampling import normals
from ..peripherals import RANGE_DYNAMIC, DacPlan

if TYPE_CHECKING:  # annotations only: state.py imports this module
    from .state import ProgrammedState

__all__ = ["DacOutput", "dac_stage", "bit_planes", "input_planes"]


class DacOutput(NamedTuple):
    """x_norm ``[B, in]`` (normalised drive), row_bound ``[B]`` float64, and the masks (empty
    ``[0, 0]`` arrays unless asked): x_q (DAC output in input units), clip (input was clipped)."""

    x_norm: np.ndarray
    row_bound: np.ndarray
    x_q: np.ndarray
    clip: np.ndarray


def _row_bounds(state: ProgrammedState, dac: DacPlan, xc: np.ndarray, rowmax) -> np.ndarray:
    batch, n_in = xc.shape
    if dac.range_kind != RANGE_DYNAMIC:
        return np.full(batch, state.dac_fixed_bound())
    if rowmax is not None:
        bound = rowmax.astype(np.float64)
    else:
        bound = np.abs(xc).max(axis=1).astype(np.float64) if n_in else np.ones(batch)
    bound[bound == 0] = 1.0
    return bound


def dac_stage(state: ProgrammedState, dac: DacPlan, xc: np.ndarray, rng, K, want_masks: bool, *,
              rowmax: np.ndarray | None = None, bound_scale: float = 1.0) -> DacOutput:
    """Convert ``xc [B, in]`` (the chip's dtype); draws the DAC noise ``[B, in]`` from ``rng``
    when the plan has noise (pass ``dac.without_noise()`` and ``rng=None`` for a noise-free
    read).  ``rowmax``: max |xc| per row where the caller already has it (dynamic range).
    ``bound_scale``: the row bounds times this (iterative bound management's 2^(p-1))."""
    bound = _row_bounds(state, dac, xc, rowmax)
    if bound_scale != 1.0:
        bound = bound * bound_scale
    noisy = dac.noisy
    z = normals(rng, xc.shape, xc.dtype, K) if noisy else np.zeros((0, 0), xc.dtype)
    x_norm = np.empty_like(xc)
    if want_masks:
        x_q = np.empty_like(xc)
        clip = np.empty(xc.shape, dtype=np.bool_)
    else:
        x_q = np.zeros((0, 0), xc.dtype)
        clip = np.zeros((0, 0), np.bool_)
    K.dac_convert.sized(xc.size)(xc, bound, dac, z, x_norm, x_q, clip, want_masks)
    return DacOutput(x_norm, bound, x_q, clip)


def bit_planes(x_norm: np.ndarray, row_bound: np.ndarray, levels: int):
    """(plane, rowscale) for every bit p = 0 .. bits-2 of the DAC code (see the module docstring)."""
    code = np.rint(x_norm * levels).astype(np.int64)
    sgn = np.sign(code).astype(x_norm.dtype)
    mag = np.abs(code)
    for p in range(int(levels).bit_length()):
        yield ((mag >> p) & 1).astype(x_norm.dtype) * sgn, row_bound * (2.0**p / levels)


def input_planes(dac: DacPlan, out: DacOutput):
    """What drives the rows, pass by pass: the bit planes (bit-serial DAC) or x_norm once."""
    if dac.bit_serial:
        return bit_planes(out.x_norm, out.row_bound, dac.levels)
    return [(out.x_norm, out.row_bound)]
