"""The ADC stage of tile_mvm: per conversion stream, its column constants; per group of input
tiles, the draws in order and one fused conversion kernel.

A conversion stream is G+ - G- (analog subtraction) or G+ then G- (digital subtraction, sign
-1).  Its ADC coefficients per tile column (L levels, full scale ``bound``, static gain error
``gain``, offset ``offset`` LSB, weight scale ``colscale``), as :func:`cimsim.kernels.converters.adc_tiles`
reads them: ``coef = [(1 + gain) L / bound, offset, bound colscale / L, 1 / bound, 1 + gain,
bound colscale]`` (the L-terms 0 for an ideal ADC); conversion equations in
:class:`cimsim.peripherals.AdcPlan`.

Draws per input tile, in tile order: per-read noise ``[B, O]``; the reference columns' per-read
noise ``[B, n_out_tiles]`` (single_reference, in the stream that holds the reference); ADC
conversion noise ``[B, O]`` (``[B, n_out_tiles]`` for the reference stream of single_reference +
digital subtraction: one reference converter per output tile, its draw shared by the tile's columns).

Reference columns' per-read noise (:func:`add_reference_noise`): one column per output tile,
read once per input vector, so one draw ``sqrt(x_norm[:, k]^2 @ vref_k^T) z`` is common to all
outputs of that tile (the sign of the subtraction does not change a centred Gaussian).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .._threads import scratch
from ..kernels.sampling import normals
from ..peripherals import AdcPlan

if TYPE_CHECKING:  # annotations only: state.py imports this module
    from .state import ProgrammedState

__all__ = ["Stream", "adc_coefficients", "convert_group", "add_reference_noise"]


class Stream(NamedTuple):
    """One conversion stream's GEMM operands and ADC constants: w / v the weight / per-read
    variance operands (v None without per-read noise), coef ``[6, T, O]``, sign +1 / -1, iv the
    nonlinear I-V's (term, operand) pairs (term 0 read with x |x|, 1 with x^3; empty when ohmic),
    ref: the reference columns' variance operands live in this stream, shared_conv: its
    conversion noise is one draw per output tile."""

    w: object
    v: object
    coef: np.ndarray
    sign: float
    iv: list
    ref: bool
    shared_conv: bool


def adc_coefficients(state: ProgrammedState, adc: AdcPlan, c: int) -> np.ndarray:
    """``coef [6, T, O]`` float64 of conversion stream c (see the module docstring)."""
    bounds = np.asarray(state.adc_bounds(), dtype=np.float64)
    L = float(adc.levels)
    coef = np.empty((6,) + bounds.shape)
    gain1, sc = coef[4], coef[5]
    np.add(1.0, state.adc_gain[c], out=gain1, dtype=np.float64)
    np.multiply(bounds, state.scales, out=sc, dtype=np.float64)
    if adc.ideal:
        coef[0] = coef[2] = 0.0
    else:
        np.divide(np.multiply(gain1, L, out=coef[0]), bounds, out=coef[0])
        np.divide(sc, L, out=coef[2])
    coef[1] = state.adc_offset_lsb[c]
    np.divide(1.0, bounds, out=coef[3])
    return coef


def add_reference_noise(part: np.ndarray, x_norm: np.ndarray, k: int, ref_ops, gemm, cols: int, rng, K) -> None:
    """Add input tile k's reference-column read noise to its partial sums ``part [B, O]``."""
    i0 = k * ref_ops[0].shape[1]  # tile k's first input (every tile but the last is full)
    xk = x_norm[:, i0 : i0 + ref_ops[k].shape[1]]
    var = gemm.ref_variance(xk * xk, ref_ops[k])
    z = normals(rng, var.shape, part.dtype, K)
    s = np.sqrt(np.maximum(var, 0.0)) * z
    part += np.repeat(s, cols, axis=1)[:, : part.shape[1]]


def convert_group(adc_kernel, adc: AdcPlan, stream: Stream, pg: np.ndarray, var, var16, k0: int, finish: bool,
                  xin: np.ndarray, rowscale: np.ndarray, ref_ops, gemm, cols: int, n_out_tiles: int,
                  acc: np.ndarray, y: np.ndarray, sat: np.ndarray, want_masks: bool, rng, K) -> None:
    """Draw the group's noise tile by tile (so the grouping never changes a bit), then convert
    the group's partial sums ``pg [n, B, O]`` into ``acc`` (and ``y`` when ``finish``)."""
    n, batch, n_out = pg.shape
    dt = pg.dtype
    has_var = var.shape[0] > 0 or var16.shape[0] > 0
    e3 = np.zeros((0, 0, 0), dt)
    zr = scratch("z_read", (n, batch, n_out), dt) if has_var else e3
    zc = scratch("z_conv", (n, batch, n_out), dt) if adc.noisy else e3
    for k in range(n):
        if has_var:
            normals(rng, (batch, n_out), dt, K, out=zr[k])
        if stream.ref:
            add_reference_noise(pg[k], xin, k0 + k, ref_ops, gemm, cols, rng, K)
        if adc.noisy and stream.shared_conv:
            zt = normals(rng, (batch, n_out_tiles), dt, K)
            zc[k] = np.repeat(zt, cols, axis=1)[:, :n_out]
        elif adc.noisy:
            normals(rng, (batch, n_out), dt, K, out=zc[k])
    adc_kernel(pg, var, var16, zr, zc, stream.coef, k0, rowscale, stream.sign, adc, acc, y, sat, want_masks, finish)
