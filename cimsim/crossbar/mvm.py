"""tile_mvm: DAC -> one BLAS GEMM per input tile -> fused ADC kernel accumulating y."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..devices.random import normals
from ..errors import NonFiniteError, ParameterError, ShapeError
from ..kernels import backend
from ..peripherals.converters import adc_params, dac_params
from ..profiles.schema import RangeCalibrated
from ..rng import SeedLike, as_generator
from .state import DriftedState, MvmMasks, ProgrammedState, _drift, check_time

__all__ = ["tile_mvm", "calibrate_state"]


def _check_x(x, n_in: int, w_shape) -> tuple[np.ndarray, bool]:
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ParameterError(f"x must be a real numeric array (got dtype {x.dtype})")
    if x.ndim not in (1, 2) or x.shape[-1] != n_in:
        raise ShapeError(
            f"x has shape {x.shape} but the programmed matrix has shape {tuple(w_shape)} [out, in]: "
            f"x must be [batch, {n_in}] or [{n_in}]"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise NonFiniteError(f"x has {int(bad.sum())} NaN/Inf entries (first at index {i}: {x[i]})")
    squeeze = x.ndim == 1
    return (x[None, :] if squeeze else x), squeeze


def _gemm_torch(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a @ b through torch's CPU BLAS (zero-copy views; same library as the baseline)."""
    torch.matmul(torch.from_numpy(a), torch.from_numpy(b), out=torch.from_numpy(out))


def _gemm_numpy(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    np.matmul(a, b, out=out)


def _dac(ds_state: ProgrammedState, xc: np.ndarray, rng, K, want_masks: bool, *, noise: bool = True):
    """DAC stage: returns (x_norm, row_bound, x_q, clip)."""
    batch, n_in = xc.shape
    fixed = ds_state.dac_fixed_bound()
    if fixed is None:
        bound = np.abs(xc).max(axis=1).astype(np.float64) if n_in else np.ones(batch)
        bound[bound == 0] = 1.0
    else:
        bound = np.full(batch, fixed)
    dp = dac_params(ds_state.profile.dac)
    noisy = noise and dp.noise_lsb > 0 and dp.levels > 0
    z = normals(rng, xc.shape, xc.dtype, K) if noisy else np.zeros((0, 0), xc.dtype)
    x_norm = np.empty_like(xc)
    if want_masks:
        x_q = np.empty_like(xc)
        clip = np.empty(xc.shape, dtype=np.bool_)
    else:
        x_q = np.zeros((0, 0), xc.dtype)
        clip = np.zeros((0, 0), np.bool_)
    K.dac_convert(xc, bound, dp.levels, dp.nl_code, dp.nl_spec, dp.noise_lsb if noisy else 0.0, z,
                  x_norm, x_q, clip, want_masks)
    return x_norm, bound, x_q, clip


def _mvm(ds: DriftedState, xc: np.ndarray, rng, K, want_masks: bool):
    st = ds.state
    p = st.profile
    grid = st.grid
    batch = xc.shape[0]
    n_out = grid.n_out
    x_norm, row_bound, x_q, clip = _dac(st, xc, rng, K, want_masks)
    ap = adc_params(p.adc)
    bounds = st.adc_bounds()
    y = np.zeros((batch, n_out), dtype=xc.dtype)
    sat = np.zeros((batch, grid.n_in_tiles, n_out), dtype=np.bool_) if want_masks else None
    empty_b = np.zeros((0, 0), np.bool_)
    e2 = np.zeros((0, 0), xc.dtype)
    has_var = ds.v is not None
    x2 = None
    if has_var:
        x2 = np.empty_like(x_norm)
        K.square_into(x_norm, x2)
    part = vpart = None
    conv_noise = ap.noise_lsb > 0 and ap.levels > 0
    gemm = _gemm_numpy if K.__name__.endswith("_reference") else _gemm_torch
    streams = [(ds.w, ds.v, 0, 1.0)]
    if ds.wn is not None:
        streams.append((ds.wn, ds.vn, 1, -1.0))
    with warnings.catch_warnings():
        # torch warns on read-only numpy views; the GEMM only reads them
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        _tiles(ds, grid, x_norm, x2, part, vpart, streams, gemm, has_var, conv_noise, rng, K, st, bounds,
               row_bound, ap, y, sat, want_masks, empty_b, e2, batch, n_out)
    return y, x_q, clip, sat


def _partials(ds: DriftedState, flat: np.ndarray, xn: np.ndarray, gemm) -> np.ndarray:
    """All input tiles' partial sums ``[n_in_tiles, batch, out]``: ``xn[:, k] @ W_k^T`` per tile.

    The full-width tiles go through one batched GEMM (torch.bmm over zero-copy strided views);
    a ragged last tile through one more GEMM.  The reference backend loops with numpy.
    """
    grid = ds.state.grid
    batch = xn.shape[0]
    n_out, rows = grid.n_out, grid.rows
    out = np.empty((grid.n_in_tiles, batch, n_out), xn.dtype)
    if gemm is _gemm_numpy:
        for k in range(grid.n_in_tiles):
            k0, k1 = grid.in_slice(k)
            gemm(xn[:, k0:k1], ds.block(flat, k).T, out[k])
        return out
    nfull = grid.n_in // rows
    if nfull:
        s0, s1 = xn.strides
        xv = np.lib.stride_tricks.as_strided(xn, (nfull, batch, rows), (rows * s1, s0, s1), writeable=False)
        w3 = flat[: nfull * n_out * rows].reshape(nfull, n_out, rows)
        torch.bmm(torch.from_numpy(xv), torch.from_numpy(w3).transpose(1, 2), out=torch.from_numpy(out[:nfull]))
    if nfull < grid.n_in_tiles:
        k = nfull
        k0, k1 = grid.in_slice(k)
        gemm(xn[:, k0:k1], ds.block(flat, k).T, out[k])
    return out


def _tiles(ds, grid, x_norm, x2, part, vpart, streams, gemm, has_var, conv_noise, rng, K, st, bounds,
           row_bound, ap, y, sat, want_masks, empty_b, e2, batch, n_out):
    dt = x_norm.dtype
    for warr, varr, c, sign in streams:
        parts = _partials(ds, warr, x_norm, gemm)
        vparts = _partials(ds, varr, x2, gemm) if has_var else None
        for k in range(grid.n_in_tiles):
            z_read = normals(rng, (batch, n_out), dt, K) if has_var else e2
            z_conv = normals(rng, (batch, n_out), dt, K) if conv_noise else e2
            K.adc_accumulate(parts[k], vparts[k] if has_var else e2, z_read, z_conv, bounds[k], st.adc_gain[c, k],
                             st.adc_offset_lsb[c, k], st.scales[k], row_bound, sign, ap.levels, ap.nl_code,
                             ap.nl_spec, ap.inl, ap.noise_lsb if conv_noise else 0.0, y,
                             sat[:, k, :] if want_masks else empty_b, want_masks)


def tile_mvm(x, state, *, t_s: float | None = None, rng: SeedLike, compensation=None,
             return_masks: bool = False, backend_name: str = "numba"):
    """``y = x W^T`` through the simulated chip: ``x [batch, in]`` (or ``[in]``) -> ``y [batch, out]``.

    With a :class:`ProgrammedState`, ``t_s`` (seconds since programming, 0 allowed) is required
    and the state is drifted first (drawing its 1/f noise from ``rng``); with a
    :class:`DriftedState` its snapshot is used.  Then, drawing in this order from ``rng``:
    DAC noise ``[batch, in]``; per conversion stream (G+ - G-, or G+ then G- with digital
    subtraction) and per input tile: per-read noise ``[batch, out]``, ADC conversion noise
    ``[batch, out]``.  Per input tile k: ``part = x_norm[:, k] @ W_k^T`` (one batched BLAS
    GEMM over the tiles, through torch's CPU BLAS), per-read variance ``x_norm[:, k]^2 @ V_k^T``
    (the same, when the profile has per-read noise), then the fused ADC kernel.  The output is in weight x
    input units, dtype of ``x`` (computed in the chip's dtype); no bias.  ``compensation``
    multiplies y by its factor read at the snapshot's time (its readout draws from ``rng``
    after the MVM).  ``return_masks=True`` also returns :class:`MvmMasks`.
    """
    rng = as_generator(rng)
    K = backend(backend_name)
    if isinstance(state, ProgrammedState):
        if t_s is None:
            raise ParameterError("tile_mvm on a ProgrammedState needs t_s (seconds since programming, 0 allowed)")
        t = check_time(t_s)
        ds = None
    elif isinstance(state, DriftedState):
        if t_s is not None and check_time(t_s) != state.t_s:
            raise ParameterError(f"state is a DriftedState at t_s={state.t_s}; got t_s={t_s} (omit t_s or drift again)")
        ds = state
    else:
        raise ParameterError(f"state must be a ProgrammedState or DriftedState (got {type(state).__name__})")
    st = state if ds is None else ds.state
    x2, squeeze = _check_x(x, st.shape[1], st.shape)
    out_dtype = x2.dtype if np.issubdtype(x2.dtype, np.floating) else st.dtype
    xc = np.ascontiguousarray(x2, dtype=st.dtype)
    if ds is None:
        ds = _drift(st, t, rng, K, noiseless=False)
    y, x_q, clip, sat = _mvm(ds, xc, rng, K, return_masks)
    if compensation is not None:
        y = y * np.asarray(compensation.factor(ds, rng, backend_name=backend_name), dtype=y.dtype)
    y = y.astype(out_dtype, copy=False)
    if squeeze:
        y = y[0]
    if not return_masks:
        return y
    x_q = x_q.astype(out_dtype, copy=False)
    if squeeze:
        x_q, clip, sat = x_q[0], clip[0], sat[0]
    return y, MvmMasks(x_q=x_q, dac_clip=clip, adc_sat=sat)


def calibrate_state(state: ProgrammedState, x_ref, K) -> ProgrammedState:
    """Set calibrated DAC/ADC ranges from ``x_ref`` (see ProgrammedState.calibrate)."""
    p = state.profile
    x2, _ = _check_x(x_ref, state.shape[1], state.shape)
    xc = np.ascontiguousarray(x2, dtype=state.dtype)
    kw = {}
    if isinstance(p.dac.range, RangeCalibrated):
        b = float(np.percentile(np.abs(xc), p.dac.range.percentile))
        kw["dac_bound"] = b if b > 0 else 1.0
    st = state.replace(**kw)
    if isinstance(p.adc.range, RangeCalibrated):
        ds = _drift(st, 0.0, np.random.default_rng(0), K, noiseless=True)
        x_norm, _, _, _ = _dac(st, xc, None, K, False, noise=False)
        grid = st.grid
        bounds = np.empty((grid.n_in_tiles, grid.n_out))
        for k in range(grid.n_in_tiles):
            k0, k1 = grid.in_slice(k)
            parts = [np.abs(x_norm[:, k0:k1] @ ds.block(ds.w, k).T)]
            if ds.wn is not None:
                parts.append(np.abs(x_norm[:, k0:k1] @ ds.block(ds.wn, k).T))
            bounds[k] = np.percentile(np.concatenate(parts, axis=0), p.adc.range.percentile, axis=0)
        bounds[~(bounds > 0)] = 1.0
        st = st.replace(adc_bound=bounds)
    return st
