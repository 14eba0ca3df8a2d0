"""Calibrated converter ranges from reference inputs (``ProgrammedState.calibrate``).

DAC (``dac.range.kind: calibrated``): bound = percentile_p of |x_ref| over all entries (1 if 0).
ADC (``adc.range.kind: calibrated``): per tile column (k, o), bound = percentile_p over the
reference rows of |partial sum|, the noise-free column sums of the DAC's output (or of each of
its bit planes, bit-serial DAC) through the programmed conductances at t = 0 of every
conversion stream: ``|x_norm[:, k] @ W_k^T (+ I-V terms)|`` (1 where the percentile is not > 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..peripherals import dac_plan
from ..profiles.schema import RangeCalibrated
from .dac_stage import dac_stage, input_planes
from .drift import drift_state
from .inputs import check_x
from .snapshot import DriftedState

if TYPE_CHECKING:  # annotations only: state.py imports this module
    from .state import ProgrammedState

__all__ = ["calibrate_state"]


def _column_sums(ds: DriftedState, xk: np.ndarray, k: int, arrs) -> np.ndarray:
    """Noise-free partial sums of input tile k, ``xk [B, rk]``, through one stream's blocks
    ``(W1, W2, W3)`` (W2, W3 None for ohmic devices; else the I-V terms, see ``DriftRun._iv_blocks``)."""
    w1, w2, w3 = arrs

    def mm(a: np.ndarray, w: np.ndarray) -> np.ndarray:
        # torch's GEMM, as the MVM's: numpy's float32 matmul (OpenBLAS sgemm) rounds differently
        # with its thread count, which would make a calibrated chip depend on the machine's threads
        # (np.array: writable copies; the state's arrays are read-only, which torch warns about)
        return (torch.from_numpy(np.array(a, order="C")) @ torch.from_numpy(np.array(w, order="C")).T).numpy()

    y = mm(xk, ds.block(w1, k))
    if w2 is not None:
        y = y + mm(xk * np.abs(xk), ds.block(w2, k))
    if w3 is not None:
        y = y + mm(xk * xk * xk, ds.block(w3, k))
    return y


def calibrate_state(state: ProgrammedState, x_ref, K) -> ProgrammedState:
    """A copy of ``state`` with calibrated DAC/ADC ranges set from ``x_ref [n, in]`` (see the module docstring)."""
    p = state.profile
    x2, _ = check_x(x_ref, state.shape[1], state.shape)
    xc = np.ascontiguousarray(x2, dtype=state.dtype)
    dac = dac_plan(p.dac)
    kw = {}
    if isinstance(p.dac.range, RangeCalibrated):
        b = float(np.percentile(np.abs(xc), p.dac.range.percentile))
        kw["dac_bound"] = b if b > 0 else 1.0
    st = state.replace(**kw)
    adc_range = p.adc.range
    if isinstance(adc_range, RangeCalibrated):
        ds = drift_state(st, 0.0, np.random.default_rng(0), K, noiseless=True)
        out = dac_stage(st, dac.without_noise(), xc, None, K, False)
        xs = [xp for xp, _ in input_planes(dac, out)]
        grid = st.grid
        bounds = np.empty((grid.n_in_tiles, grid.n_out))
        for k in range(grid.n_in_tiles):
            k0, k1 = grid.in_slice(k)
            parts = [np.abs(_column_sums(ds, xi[:, k0:k1], k, arrs)) for arrs in ((ds.w, ds.w2, ds.w3), (ds.wn, ds.w2n, ds.w3n))
                     if arrs[0] is not None for xi in xs]
            bounds[k] = np.percentile(np.concatenate(parts, axis=0), adc_range.percentile, axis=0)
        bounds[~(bounds > 0)] = 1.0
        st = st.replace(adc_bound=bounds)
    return st
