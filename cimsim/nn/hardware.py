"""The hardware forward of the torch bridge: the chip's matrix-vector product, outside autograd.

A hardware-mode forward runs in two steps:

1. :func:`hardware_mvm` (outside autograd, on detached numpy arrays) programs the chip from the
   current float weights and runs :func:`cimsim.crossbar.tile_mvm` with ``return_masks=True``:
   the noisy, quantised output ``y_hw`` plus what the backward needs (``x_q``, the DAC-clip mask
   and the per-tile ADC-saturation mask).  Seed ``s`` means exactly what a deployed chip with seed
   ``s`` means: ``prog, read = split_seed(s)``; ``program_matrix(W, profile, rng=prog)``;
   ``tile_mvm(x, state, t_s=t, rng=read)``.  So the training forward *is* the chip's forward.
2. :class:`~cimsim.nn.ste.AnalogMatmulSTE` adds the bias digitally and defines the backward.  It
   saves only ``x_q`` (or ``x``), the boolean masks, and the backward weight (the float ``W``
   itself, a Parameter that is alive anyway, or the programmed effective weights when asked):
   nothing of the noise model.

:func:`analog_matmul` chains the two.  With a learnable DAC input range ``alpha`` (fixed-range DAC
of bound ``B``) the input is scaled by ``k = B / alpha`` before the DAC and the output by
``1 / k`` after the ADC: ``y = F_hw(W, k x) / k + b``, so the DAC clips at ``|x| = alpha``.
:class:`MatrixReader` reads one programmed crossbar several times in one forward (recurrent time
steps, attention projections); :class:`FloatReader` is its float stand-in.
"""

from __future__ import annotations

import dataclasses

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..crossbar import DriftedState, program_drifted, program_matrix, tile_mvm
from ..errors import ParameterError, ShapeError
from ..rng import SeedLike, as_generator, split_seed
from .config import check_backward_weights
from ._tensors import _dac_is_ideal, _to_numpy, _to_torch, check_dense
from .ste import AnalogMatmulSTE, expected_adc_slope

__all__ = ["HardwareResult", "hardware_mvm", "analog_matmul", "MatrixReader", "FloatReader", "with_calibration",
           "adc_input_lsb"]

#: one matrix's calibrated converter ranges: (DAC bound or None, ADC bounds [n_in_tiles, out] or None)
Calibration = tuple[float | None, np.ndarray | None]


def with_calibration(state, calibration: Calibration | None):
    """``state`` (a ``ProgrammedState`` or ``DriftedState``) with calibrated DAC/ADC ranges set (as
    ``state.calibrate(x_ref)`` would set them); ``state`` itself when ``calibration`` is None."""
    if calibration is None:
        return state
    dac, adc = calibration
    if isinstance(state, DriftedState):
        return dataclasses.replace(state, state=state.state.replace(dac_bound=dac, adc_bound=adc))
    return state.replace(dac_bound=dac, adc_bound=adc)


@dataclass(frozen=True)
class HardwareResult:
    """What one hardware MVM hands to the STE (torch tensors on the input's device).

    ``x_q`` is ``None`` when the DAC is ideal (then the array saw ``x`` itself); ``dac_clip`` is
    ``None`` when no input was clipped and ``adc_sat`` ``None`` when no tile output saturated, so
    the common case saves and computes nothing for them. ``w_programmed`` is only set when the
    programmed effective weights were asked for.
    """

    y: torch.Tensor
    x_q: torch.Tensor | None
    dac_clip: torch.Tensor | None
    adc_sat: torch.Tensor | None
    w_programmed: torch.Tensor | None
    tile_rows: int
    adc_slope: torch.Tensor | None = None


def adc_input_lsb(state: DriftedState, x: np.ndarray, x_q: np.ndarray | None) -> np.ndarray:
    """The noise-free converter input ``u [B, T, out]`` in LSB of every input tile and column of
    ``state`` for the chip input ``x [B, in]`` (``x_q`` its DAC output; ``None``: an ideal DAC):
    ``u = (1 + gain) L / bound * (x_q / row_bound)[:, I_k] @ W_k^T + offset``, ``W_k`` the drifted
    normalised block of tile ``k``, ``row_bound`` the DAC's fixed bound or ``max_j |x_bj|``
    (dynamic range). The ADC's nonlinearity and the I-V's higher terms are left out (linear model)."""
    g = state.state.grid
    u = np.empty((x.shape[0], g.n_in_tiles, g.n_out))
    for k, uk in adc_input_tiles(state, x, x_q):
        u[:, k, :] = uk
    return u


def adc_input_tiles(state: DriftedState, x: np.ndarray, x_q: np.ndarray | None) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`adc_input_lsb` one input tile at a time: yields ``(k, u[:, k, :])`` (float64
    ``[B, out]``), so that a caller that reduces each tile at once never holds ``[B, T, out]``."""
    ps = state.state
    bits = ps.profile.adc.bits
    if bits is None:
        raise ParameterError("adc_input_lsb needs a quantising ADC (adc.bits set; got None)")
    L = float((1 << (bits - 1)) - 1)
    bounds = ps.adc_bounds()
    coef = (1.0 + np.asarray(ps.adc_gain[0], dtype=np.float64)) * L / bounds
    off = np.asarray(ps.adc_offset_lsb[0], dtype=np.float64)
    xs = np.asarray(x if x_q is None else x_q, dtype=np.float64)
    fixed = ps.dac_fixed_bound()
    if fixed is None:
        rb = np.abs(np.asarray(x, dtype=np.float64)).max(axis=1) if xs.shape[1] else np.ones(xs.shape[0])
        rb[rb == 0] = 1.0
    else:
        rb = np.full(xs.shape[0], fixed)
    xn = xs / rb[:, None]
    g = ps.grid
    xt = torch.from_numpy(xn)
    for k in range(g.n_in_tiles):
        k0, k1 = g.in_slice(k)
        # torch's GEMM, not numpy's: OpenBLAS's own threads would compete with torch's for the
        # cores, and its float32 rounding follows its thread count
        wk = torch.from_numpy(state.block(state.w, k).astype(np.float64))
        yield k, (xt[:, k0:k1] @ wk.T).numpy() * coef[k] + off[k]


def hardware_mvm(
    x: torch.Tensor,
    weight: torch.Tensor,
    profile,
    *,
    seed: int | None = None,
    state=None,
    rng: SeedLike | None = None,
    t_s: float | None = 0.0,
    masks: bool = True,
    backward_weights: str = "float",
    compensation=None,
    calibration: Calibration | None = None,
    adc_backward: str = "ste",
    adc_sigma_lsb: float | None = None,
) -> HardwareResult:
    """Run ``x [batch, in] @ W[out, in]^T`` on the simulated chip, outside autograd.

    Either ``seed`` (program the chip from ``weight`` now: ``prog, read = split_seed(seed)``) or
    ``state`` (an already programmed ``ProgrammedState``/``DriftedState``) plus ``rng`` (the read
    generator) is given. ``masks=False`` skips the masks (inference). The result is in ``x``'s
    dtype and on its device.
    """
    check_backward_weights(backward_weights)
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ShapeError(
            f"hardware_mvm needs x [batch, in] and weight [out, in] with equal 'in' "
            f"(got x {tuple(x.shape)} and weight {tuple(weight.shape)})"
        )
    return _hardware_mvm(x, weight, profile, seed, state, rng, t_s, masks, backward_weights, compensation, calibration,
                         adc_backward, adc_sigma_lsb)


def _hardware_mvm(x, weight, profile, seed, state, rng, t_s, masks, backward_weights, compensation, calibration,
                  adc_backward="ste", adc_sigma_lsb=None):
    if state is None:
        if seed is None:
            raise ParameterError("hardware_mvm needs either seed= (program now) or state= and rng= (a programmed chip)")
        prog, read = split_seed(seed)
        if t_s is not None:
            # program and drift chunk by chunk without keeping the device arrays (same bits as
            # program_matrix(...).drift(t_s, read), which is what tile_mvm would do next)
            state = program_drifted(_to_numpy(weight), profile, rng=prog, t_s=t_s, read_rng=read)
            t_s = None
        else:
            state = program_matrix(_to_numpy(weight), profile, rng=prog)
        state = with_calibration(state, calibration)
    else:
        if rng is None:
            raise ParameterError("hardware_mvm with a programmed state needs rng= (the chip's read generator)")
        read = as_generator(rng)
        profile = state.profile
    w_prog = None
    expected = masks and adc_backward == "expected"
    if masks and (backward_weights == "programmed" or expected):
        # Drift explicitly (what tile_mvm does first with the same generator, so the forward's
        # bits do not change) to read the weights this very chip realised, 1/f noise included.
        if not isinstance(state, DriftedState):
            if t_s is None:
                raise ParameterError("hardware_mvm on a ProgrammedState needs t_s (seconds since programming, 0 allowed)")
            state = state.drift(t_s, read)
        t_s = None
        if backward_weights == "programmed":
            w_prog = state.effective_weights()
    xn = _to_numpy(x)
    kwargs: dict[str, Any] = {"rng": read}
    if t_s is not None:
        kwargs["t_s"] = t_s
    if compensation is not None:
        kwargs["compensation"] = compensation
    rows = int(profile.tile.rows)
    if not masks:
        y = tile_mvm(xn, state, **kwargs)
        return HardwareResult(_to_torch(y, x).to(x.dtype), None, None, None, None, rows)
    y, m = tile_mvm(xn, state, return_masks=True, **kwargs)
    x_q = None if _dac_is_ideal(profile) else _to_torch(m.x_q, x).to(x.dtype)
    dac_clip = m.dac_clip if m.dac_clip is not None and m.dac_clip.any() else None
    adc_sat = m.adc_sat if m.adc_sat is not None and m.adc_sat.any() else None
    slope = None
    if expected:
        sigma = float(profile.adc.noise_lsb) if adc_sigma_lsb is None else float(adc_sigma_lsb)
        levels = (1 << (int(profile.adc.bits or 1) - 1)) - 1  # the config checked adc.bits is set
        # tile by tile: the slope's temporaries (2 * ceil(6 sigma) + 3 thresholds per element)
        # and u in float64 then never exist for all T tiles at once; each element's value is the same
        g = state.state.grid
        slope = torch.empty((xn.shape[0], g.n_in_tiles, g.n_out), dtype=x.dtype)
        for k, uk in adc_input_tiles(state, xn, None if x_q is None else m.x_q):
            slope[:, k, :] = expected_adc_slope(torch.from_numpy(uk).to(x.dtype), levels, sigma)
        slope = slope.to(x.device)
    return HardwareResult(
        _to_torch(y, x).to(x.dtype),
        x_q,
        None if dac_clip is None else _to_torch(dac_clip, x),
        None if adc_sat is None else _to_torch(adc_sat, x),
        None if w_prog is None else _to_torch(np.asarray(w_prog), x).to(x.dtype),
        rows,
        slope,
    )


def analog_matmul(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    profile,
    *,
    seed: int | None = None,
    state=None,
    rng: SeedLike | None = None,
    t_s: float | None = 0.0,
    backward_weights: str = "float",
    compensation=None,
    input_range: torch.Tensor | None = None,
    calibration: Calibration | None = None,
    adc_backward: str = "ste",
    adc_sigma_lsb: float | None = None,
) -> torch.Tensor:
    """``y = F_hw(W, x) + b`` for ``x [B, in]`` with the extended-STE backward.

    Programs the chip from ``weight`` with ``seed`` (or uses ``state`` + read ``rng``), runs the
    hardware MVM, and wraps it in :class:`AnalogMatmulSTE`. Outside autograd (``no_grad`` or no
    input requiring grad) it skips the masks and the Function altogether; the output bits are
    the same either way.

    ``input_range`` (a 0-d tensor ``alpha``, possibly a learnable Parameter) needs a profile with
    a fixed-range DAC of bound ``B``: the input is scaled digitally by ``B / alpha`` before the
    DAC and the output by ``alpha / B`` after the ADC, so the DAC clips at ``|x| = alpha``.
    """
    check_dense(x)
    track = torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
        or (input_range is not None and input_range.requires_grad)
    )
    k = None
    if input_range is not None:
        prof = profile if state is None else state.profile
        if prof.dac.bits is None or prof.dac.range.kind != "fixed":
            raise ParameterError(
                "input_range needs a profile with a fixed-range DAC (dac.bits set, dac.range.kind: fixed); "
                f"got dac.bits={prof.dac.bits}, dac.range.kind={prof.dac.range.kind}"
            )
        a = float(input_range.detach().abs())
        if not a > 0 or not math.isfinite(a):
            raise ParameterError(f"input_range must be a positive finite number (got {a})")
        k = float(prof.dac.range.bound) / a
    x_hw = x if k is None else x.detach() * k
    hw = hardware_mvm(
        x_hw, weight, profile, seed=seed, state=state, rng=rng, t_s=t_s, masks=track,
        backward_weights=backward_weights, compensation=compensation, calibration=calibration,
        adc_backward=adc_backward, adc_sigma_lsb=adc_sigma_lsb,
    )
    y_hw = hw.y if k is None else hw.y / k
    if not track:
        return y_hw if bias is None else y_hw + bias
    x_q = hw.x_q if (k is None or hw.x_q is None) else hw.x_q / k
    adc_mask = hw.adc_sat if hw.adc_slope is None else hw.adc_slope
    return AnalogMatmulSTE.apply(
        x, weight, bias, y_hw, x_q, hw.dac_clip, adc_mask, hw.w_programmed, hw.tile_rows, input_range
    )


class MatrixReader:
    """One crossbar read many times in one forward (a recurrent layer's time steps, an attention
    layer's projections): ``reader(x, b)`` = :func:`analog_matmul` on its ``DriftedState``."""

    def __init__(self, weight, profile, state, rng, t_s, compensation, backward_weights, adc_backward="ste",
                 adc_sigma_lsb=None):
        if not isinstance(state, DriftedState):  # an attached ProgrammedState: drift once per forward
            if t_s is None:
                raise ParameterError("an attached ProgrammedState needs t_s (seconds since programming)")
            state = state.drift(t_s, rng)
        self.weight, self.profile, self.state, self.rng = weight, profile, state, rng
        self.compensation, self.backward_weights = compensation, backward_weights
        self.adc_backward, self.adc_sigma_lsb = adc_backward, adc_sigma_lsb

    def __call__(self, x, bias):
        return analog_matmul(x, self.weight, bias, self.profile, state=self.state, rng=self.rng, t_s=None,
                             backward_weights=self.backward_weights, compensation=self.compensation,
                             adc_backward=self.adc_backward, adc_sigma_lsb=self.adc_sigma_lsb)


class FloatReader:
    """A (noisy) float matrix with the reader's call signature."""

    def __init__(self, weight):
        self.weight = weight

    def __call__(self, x, bias):
        return F.linear(x, self.weight, bias)
