"""program_matrix: weights -> a ProgrammedState, with every non-ideality the profile names."""

from __future__ import annotations

import numbers

import numpy as np

from ..devices.laws import encode_xfunction
from ..devices.random import normals, uniforms
from ..errors import NonFiniteError, ParameterError, ShapeError
from ..kernels import backend
from ..profiles.schema import (
    DeviceProfile,
    DriftPowerLaw,
    ProgNoiseConstant,
    ProgNoiseFunction,
    ProgNoiseNone,
    ProgNoiseRelative,
    ReadNoiseOneOverF,
)
from ..rng import SeedLike, as_generator
from .mapping import weight_scales
from .state import ProgrammedState
from .tiling import TileGrid

__all__ = ["program_matrix", "check_profile"]


def check_profile(profile: DeviceProfile) -> None:
    """Reject settings the simulator cannot give a meaning to (LSB quantities on ideal converters)."""
    if not isinstance(profile, DeviceProfile):
        raise ParameterError(f"profile must be a DeviceProfile (got {type(profile).__name__})")
    a, d = profile.adc, profile.dac
    if a.bits is None and (a.offset_error_lsb > 0 or a.noise_lsb > 0):
        raise ParameterError(
            f"adc.offset_error_lsb / adc.noise_lsb are in LSB and need adc.bits (got bits=null, "
            f"offset_error_lsb={a.offset_error_lsb}, noise_lsb={a.noise_lsb})"
        )
    if d.bits is None and d.noise_lsb > 0:
        raise ParameterError(f"dac.noise_lsb is in LSB and needs dac.bits (got bits=null, noise_lsb={d.noise_lsb})")


def _check_w(W) -> np.ndarray:
    if not isinstance(W, np.ndarray):
        W = np.asarray(W)
    if W.ndim != 2:
        raise ShapeError(f"W must be 2-D [out, in] (got shape {W.shape})")
    if W.shape[0] == 0 or W.shape[1] == 0:
        raise ShapeError(f"W must have out >= 1 and in >= 1 (got shape {W.shape})")
    if not (np.issubdtype(W.dtype, np.floating) or np.issubdtype(W.dtype, np.integer)):
        raise ParameterError(f"W must be a real numeric array (got dtype {W.dtype})")
    dt = np.float64 if W.dtype == np.float64 else np.float32
    W = np.ascontiguousarray(W, dtype=dt)
    bad = ~np.isfinite(W)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise NonFiniteError(f"W has {int(bad.sum())} NaN/Inf entries (first at index {i}: {W[i]})")
    return W


def program_matrix(W: np.ndarray, profile: DeviceProfile, *, rng: SeedLike, backend_name: str = "numba") -> ProgrammedState:
    """Program ``W [out, in]`` onto crossbar tiles described by ``profile``.

    Steps (equations in the kernel docstrings): per-tile-column scale s (mapping) -> targets
    G+/G- (differential) or G and a mid-range reference column per tile (single_reference) ->
    levels (nearest or stochastic rounding) -> device-to-device variability -> stuck-at faults ->
    programming noise -> clip to the physical range -> drift exponents nu -> 1/f amplitudes.
    Random draws, in order, each over all devices (G+ devices first, then g_neg): rounding
    uniforms, variability normals, fault uniforms, programming normals, nu normals (each only
    when the profile needs it); then ADC gain errors and offsets ``[n_conv, n_in_tiles, out]``.
    float64 ``W`` gives a float64 chip (for gradient checks); anything else float32.
    """
    check_profile(profile)
    W = _check_w(W)
    seed = int(rng) if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) else None
    rng = as_generator(rng)
    K = backend(backend_name)
    p = profile
    dt = W.dtype
    n_out, n_in = W.shape
    grid = TileGrid(n_out, n_in, p.tile.rows, p.tile.cols)
    c = p.conductance
    g_min, g_max = float(c.g_min_us), float(c.g_max_us)
    dg = g_max - g_min
    diff = p.mapping.kind == "differential"
    n_neg_rows = n_out if diff else grid.n_out_tiles
    n_pos, n_neg = n_out * n_in, n_neg_rows * n_in
    n_dev = n_pos + n_neg

    scales = weight_scales(W, p.mapping, grid)
    target = np.empty(n_dev, dt)
    t_pos = target[:n_pos].reshape(n_out, n_in)
    t_neg = target[n_pos:].reshape(n_neg_rows, n_in)
    if diff:
        K.map_targets(W, scales, int(p.tile.rows), 0, g_min, dg, t_pos, t_neg)
    else:
        K.map_targets(W, scales, int(p.tile.rows), 1, g_min, dg, t_pos, np.zeros((0, 0), dt))
        t_neg[...] = g_min + 0.5 * dg

    e = np.zeros(0, np.float32)
    n_levels = c.n_levels or 0
    stochastic = bool(p.programming.stochastic_rounding) and n_levels > 1
    u_round = uniforms(rng, n_dev) if stochastic else e
    var_sigma = float(p.variability.g_max_spread_rel)
    z_var = normals(rng, n_dev, np.float32, K) if var_sigma > 0 else e
    f = p.faults
    has_fault = f.stuck_at_g_min_rel > 0 or f.stuck_at_g_max_rel > 0
    u_fault = uniforms(rng, n_dev) if has_fault else e
    noise = p.programming.noise
    if isinstance(noise, ProgNoiseNone):
        prog_kind, prog_param, sigma_spec = 0, 0.0, encode_xfunction(None)
    elif isinstance(noise, ProgNoiseConstant):
        prog_kind, prog_param, sigma_spec = 1, noise.sigma_us, encode_xfunction(None)
    elif isinstance(noise, ProgNoiseRelative):
        prog_kind, prog_param, sigma_spec = 2, noise.sigma_rel, encode_xfunction(None)
    else:
        assert isinstance(noise, ProgNoiseFunction)
        prog_kind, prog_param, sigma_spec = 3, g_max / noise.g_ref_us, encode_xfunction(noise.sigma)
    z_prog = normals(rng, n_dev, np.float32, K) if prog_kind and prog_param > 0 else e
    if prog_kind and prog_param == 0:
        prog_kind = 0
    has_drift = isinstance(p.drift, DriftPowerLaw)
    z_nu = normals(rng, n_dev, np.float32, K) if has_drift else e
    mu_spec = encode_xfunction(p.drift.nu.mean if has_drift else None)
    sd_spec = encode_xfunction(p.drift.nu.std if has_drift else None)
    has_qs = isinstance(p.read_noise, ReadNoiseOneOverF)
    qs_spec = encode_xfunction(p.read_noise.q_s if has_qs else None)

    g = np.empty(n_dev, dt)
    nu = np.empty(n_dev, dt) if has_drift else np.zeros(0, dt)
    qs = np.empty(n_dev, dt) if has_qs else np.zeros(0, dt)
    fault = np.empty(n_dev, np.int8)
    ip = np.array([n_levels, stochastic, prog_kind, p.programming.clip_upper, has_drift,
                   p.drift.absolute if has_drift else False, has_qs, var_sigma > 0, has_fault], dtype=np.int64)
    fp = np.array([g_min, g_max, prog_param, var_sigma, f.stuck_at_g_min_rel, f.stuck_at_g_max_rel])
    K.program_devices(target, u_round, z_var, u_fault, z_prog, z_nu, ip, fp,
                      sigma_spec, mu_spec, sd_spec, qs_spec, g, nu, qs, fault)
    del target

    def split(a):
        return a[:n_pos].reshape(n_out, n_in), a[n_pos:].reshape(n_neg_rows, n_in)

    n_conv = 2 if p.mapping.subtraction == "digital" else 1
    ashape = (n_conv, grid.n_in_tiles, n_out)
    a = p.adc
    gain = a.gain_error_rel * normals(rng, ashape, np.float64, K) if a.gain_error_rel > 0 else np.zeros(ashape)
    off = a.offset_error_lsb * normals(rng, ashape, np.float64, K) if a.offset_error_lsb > 0 else np.zeros(ashape)
    g_pos, g_neg = split(g)
    nu_pos, nu_neg = split(nu) if has_drift else (None, None)
    qs_pos, qs_neg = split(qs) if has_qs else (None, None)
    f_pos, f_neg = split(fault) if has_fault else (None, None)
    return ProgrammedState(
        profile=p, shape=(n_out, n_in), seed=seed, g_pos=g_pos, g_neg=g_neg, nu_pos=nu_pos, nu_neg=nu_neg,
        qs_pos=qs_pos, qs_neg=qs_neg, fault_pos=f_pos, fault_neg=f_neg, scales=scales,
        adc_gain=gain, adc_offset_lsb=off,
    )
