"""DriftedState (a programmed chip at one time, in per-input-tile blocks) and MvmMasks.

Below ``state.py``: drift, calibration and the MVM stages build and read snapshots without
loading the module that holds ProgrammedState (whose ``drift`` and ``calibrate`` call them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ParameterError
from ..profiles.schema import DeviceProfile
from ..times import check_time
from .tiling import TileGrid

if TYPE_CHECKING:  # annotations only: state.py imports this module
    from .state import ProgrammedState

__all__ = ["DriftedState", "MvmMasks", "ManagedMvmMasks"]


@dataclass(frozen=True)
class MvmMasks:
    """What the backward pass needs from one ``tile_mvm`` call.

    x_q ``[batch, in]``: the DAC output in input units (what the array saw); dac_clip bool
    ``[batch, in]``: the input was clipped by the DAC; adc_sat bool ``[batch, n_in_tiles, out]``:
    that input tile's partial sum was beyond an ADC rail.  For a 1-D ``x`` the batch axis is dropped.
    """

    x_q: np.ndarray
    dac_clip: np.ndarray
    adc_sat: np.ndarray


@dataclass(frozen=True)
class ManagedMvmMasks(MvmMasks):
    """The masks of a read with iterative bound management (``adc.bound_management``): those of
    each row's kept pass, and adc_passes int64 ``[batch]``, the reads of each row (1 to
    ``max_passes``).  A subclass rather than a field of :class:`MvmMasks`, so reads without
    bound management return exactly the masks they did."""

    adc_passes: np.ndarray


@dataclass(frozen=True, eq=False)
class DriftedState:
    """A ProgrammedState at one time, in per-input-tile blocks ready for the GEMMs.

    w: flat array; tile k's C-ordered ``[out, rk]`` block (normalised weights, G+ - G- over dg,
    or G+ alone with digital subtraction) starts at ``grid.block_offset(k)``.  wn: the G- blocks
    (digital subtraction only).  v / vn: per-read variance blocks (None without per-read noise).
    vref: ``[n_out_tiles, in]`` per-read variance of the reference columns (single_reference with
    per-read noise only; their noise is common to a tile's outputs, so v / vn leave it out).
    w2, w3 (and w2n, w3n with digital subtraction): the blocks of a nonlinear I-V (``iv.kind:
    polynomial``; None otherwise), read with ``x |x|`` and ``x^3`` (see ``DriftRun._iv_blocks``).
    """

    state: ProgrammedState
    t_s: float
    w: np.ndarray
    wn: np.ndarray | None
    v: np.ndarray | None
    vn: np.ndarray | None
    vref: np.ndarray | None = None
    w2: np.ndarray | None = None
    w3: np.ndarray | None = None
    w2n: np.ndarray | None = None
    w3n: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.state.shape

    @property
    def profile(self) -> DeviceProfile:
        return self.state.profile

    def block(self, arr: np.ndarray, k: int) -> np.ndarray:
        return self.block_of(self.state.grid, arr, k)

    @staticmethod
    def block_of(g: TileGrid, arr: np.ndarray, k: int) -> np.ndarray:
        """Input tile k's ``[out, rk]`` block of the flat array ``arr`` (a view)."""
        k0, k1 = g.in_slice(k)
        off = g.block_offset(k)
        return arr[off : off + g.n_out * (k1 - k0)].reshape(g.n_out, k1 - k0)

    def effective_weights(self, t_s: float | None = None, rng=None) -> np.ndarray:
        """Weights ``[out, in]`` of this snapshot (``t_s``, if given, must equal the snapshot's);
        with a nonlinear I-V, the low-field (linear) part ``s (G+(t) - G-(t)) / dg``."""
        if t_s is not None and check_time(t_s) != self.t_s:
            raise ParameterError(f"this DriftedState is at t_s={self.t_s}; got t_s={t_s}")
        g = self.state.grid
        out = np.empty(self.shape, dtype=np.float64)
        for k in range(g.n_in_tiles):
            k0, k1 = g.in_slice(k)
            b = self.block(self.w, k).astype(np.float64)
            if self.wn is not None:
                b = b - self.block(self.wn, k)
            out[:, k0:k1] = b * self.state.scales[k][:, None]
        n_slices = self.profile.mapping.weight_slices
        if n_slices > 1:  # the digital sum of each weight's slice columns
            out = out.reshape(-1, n_slices, out.shape[1]).sum(axis=1)
        return out.astype(self.state.dtype)
