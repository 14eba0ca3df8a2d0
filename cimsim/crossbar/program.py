"""program_matrix: weights -> a ProgrammedState, with every non-ideality the profile names."""

from __future__ import annotations

import numbers

import numpy as np

from ..kernels.sampling import normals, uniforms
from ..errors import NonFiniteError, ParameterError, ShapeError
from ..kernels import engine as backend
from ..profiles.schema import (
    DeviceProfile,
    DriftPowerLaw,
    ProgNoiseConstant,
    ProgNoiseFunction,
    ProgNoiseNone,
    ProgNoiseRelative,
)
from .._threads import map_pieces
from ..rng import SeedLike, as_generator, child_generators
from .mapping import weight_scales
from .mvm import _BITS
from .drift import DriftRun
from ..times import check_time
from .state import DriftedState, ProgrammedState
from .tiling import TileGrid

__all__ = ["program_matrix", "program_drifted", "check_profile", "row_chunks", "CHUNK_WEIGHTS"]


def check_profile(profile: DeviceProfile) -> None:
    """Reject settings the simulator cannot give a meaning to (LSB quantities on ideal converters)."""
    if not isinstance(profile, DeviceProfile):
        hint = f"; load it first: cimsim.load_profile({profile!r})" if isinstance(profile, str) else ""
        raise ParameterError(f"profile must be a DeviceProfile (got {type(profile).__name__}: {profile!r}){hint}")
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
    # one integer pass (max |W| bits per row, no temporaries the size of W); NaN/Inf have the
    # largest bit patterns, and only then is the offending entry located
    ut, mask, inf_bits = _BITS[W.dtype]
    mb = np.empty(W.shape[0], ut)
    backend("numba").row_absmax_bits.sized(W.size)(W.view(ut), mask, mb)
    if mb.max() >= inf_bits:
        bad = ~np.isfinite(W)
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise NonFiniteError(f"W has {int(bad.sum())} NaN/Inf entries (first at index {i}: {W[i]})")
    return W


#: Weights per row chunk: programming and drift run chunk by chunk (each with its own child
#: generator, side by side on the thread pool).  2^17: large enough that the ~40 Python-level
#: numpy/kernel calls per chunk (and the GIL hand-offs between pool threads they cause) are a
#: small part of its time, small enough that its temporaries stay a few MiB (program + drift of
#: 4096 x 4096 on 2 cores: 0.95 s at 2^15, 0.81 s at 2^16, 0.67 s at 2^17, 0.78 s at 2^18).
CHUNK_WEIGHTS = 1 << 17


def row_chunks(n_rows: int, n_cols: int) -> list[tuple[int, int]]:
    """Fixed row ranges of about CHUNK_WEIGHTS weights (depends on the shape only)."""
    step = max(1, CHUNK_WEIGHTS // max(1, n_cols))
    return [(r, min(n_rows, r + step)) for r in range(0, n_rows, step)]


def program_matrix(W: np.ndarray, profile: DeviceProfile, *, rng: SeedLike, with_drift: bool = True,
                   backend_name: str = "numba") -> ProgrammedState:
    """Program ``W [out, in]`` onto crossbar tiles described by ``profile``.

    Steps (equations in the kernel docstrings): per-tile-column scale s (mapping) -> targets
    G+/G- (differential) or G and a mid-range reference column per tile (single_reference) ->
    levels (nearest or stochastic rounding) -> device-to-device variability -> stuck-at faults ->
    programming noise -> clip to the physical range -> drift exponents nu.
    Draws: two words from ``rng`` seed one child generator per row chunk (:func:`row_chunks`;
    single_reference adds one more for the reference columns, last); each child draws, over
    its G+ devices then its G- devices: rounding uniforms, variability normals, fault uniforms,
    programming normals, nu normals (each only when the profile needs it).  Then ``rng`` draws
    the ADC gain errors and offsets ``[n_conv, n_in_tiles, out]`` (see :func:`_adc_errors`).
    float64 ``W`` gives a float64 chip (for gradient checks); anything else float32.
    ``with_drift=False`` skips the drift exponents (the last draw of every chunk, so every other
    bit is unchanged): a chip that is only read at t = 0, as in training, where drift is a
    factor of exactly 1; drifting it to t > 0 raises ParameterError.
    """
    return _program(W, profile, rng, with_drift, backend(backend_name), None)


def program_drifted(W: np.ndarray, profile: DeviceProfile, *, rng: SeedLike, t_s: float, read_rng: SeedLike,
                    backend_name: str = "numba") -> DriftedState:
    """``program_matrix(W, profile, rng=rng).drift(t_s, read_rng)``, bit for bit, without keeping the chip.

    Each row chunk is programmed into small local arrays and drifted into the GEMM blocks at
    once, so the per-device arrays (2-4 x the weights) never exist in full: what a training
    step needs (it programs a fresh chip from the current weights on every forward).  The
    snapshot's ``state`` holds the periphery only (``devices_kept=False``): it cannot be drifted
    again or saved.
    """
    check_profile(profile)
    W = _check_w(W)
    t = check_time(t_s)
    K = backend(backend_name)
    shape = (W.shape[0] * profile.mapping.weight_slices, W.shape[1])  # device columns (bit slices)
    run = DriftRun(profile, shape, W.dtype, t, as_generator(read_rng), K, noiseless=False, has_nu=t > 0)
    return run.finish(_program(W, profile, rng, t > 0, K, run.chunk))


def _program(W, profile: DeviceProfile, rng: SeedLike, with_drift: bool, K, fused) -> ProgrammedState:
    """program_matrix's body; ``fused(ci, pos, neg, p0, n0)`` (if given) takes each chunk's devices."""
    check_profile(profile)
    if fused is None:
        W = _check_w(W)
    seed = int(rng) if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) else None
    rng = as_generator(rng)
    p = profile
    dt = W.dtype
    W, map_scales, scales = _columns(W, p)
    n_out, n_in = W.shape
    grid = TileGrid(n_out, n_in, p.tile.rows, p.tile.cols)
    c = p.conductance
    g_min, g_max = float(c.g_min_us), float(c.g_max_us)
    dg = g_max - g_min
    diff = p.mapping.kind == "differential"
    n_neg_rows = n_out if diff else grid.n_out_tiles

    n_levels = c.n_levels or 0
    stochastic = bool(p.programming.stochastic_rounding) and n_levels > 1
    var_sigma = float(p.variability.g_max_spread_rel)
    f = p.faults
    has_fault = f.stuck_at_g_min_rel > 0 or f.stuck_at_g_max_rel > 0
    noise = p.programming.noise
    if isinstance(noise, ProgNoiseNone):
        prog_kind, prog_param = 0, 0.0
    elif isinstance(noise, ProgNoiseConstant):
        prog_kind, prog_param = 1, noise.sigma_us
    elif isinstance(noise, ProgNoiseRelative):
        prog_kind, prog_param = 2, noise.sigma_rel
    else:
        assert isinstance(noise, ProgNoiseFunction)
        prog_kind, prog_param = 3, g_max / noise.g_ref_us
    if prog_param == 0:
        prog_kind = 0
    has_drift = isinstance(p.drift, DriftPowerLaw) and bool(with_drift)
    ip = np.array([n_levels, stochastic, prog_kind, p.programming.clip_upper, has_drift,
                   p.drift.absolute if has_drift else False, var_sigma > 0, has_fault], dtype=np.int64)
    fp = np.array([g_min, g_max, prog_param, var_sigma, f.stuck_at_g_min_rel, f.stuck_at_g_max_rel])

    e = np.zeros(0, dt)
    e8 = np.zeros(0, np.int8)

    def new_rows(n_rows: int):
        """Empty device arrays (g, nu, fault) for ``n_rows`` rows (None where not modelled)."""
        return (np.empty((n_rows, n_in), dt), np.empty((n_rows, n_in), dt) if has_drift else None,
                np.empty((n_rows, n_in), np.int8) if has_fault else None)

    same_targets = n_levels <= 1 and var_sigma == 0 and not has_fault
    sigma_fn = noise.sigma if prog_kind == 3 else None
    mu_fn = p.drift.nu.mean if has_drift else None
    sd_fn = p.drift.nu.std if has_drift else None

    def program(gen, parts) -> None:
        """Program ``parts`` = [(flat targets, (g, nu, fault) outputs)] with one set of draws from gen.

        Kernel program_targets (levels, variability, faults), then the device laws of
        x_T = G_T/g_max evaluated vectorised in the chip's dtype (numpy's SIMD log/exp), then
        kernel program_devices.
        """
        n = sum(t.shape[0] for t, _ in parts)
        u_round = uniforms(gen, n) if stochastic else e
        z_var = normals(gen, n, np.float32, K) if var_sigma > 0 else e
        u_fault = uniforms(gen, n) if has_fault else e
        z_prog = normals(gen, n, np.float32, K) if prog_kind else e
        z_nu = normals(gen, n, np.float32, K) if has_drift else e
        # targets of all parts into one array, so the device laws run once over the chunk; with
        # no levels, variability or faults program_targets is the identity and the mapped
        # targets are used as they are (float32 targets are exact in float64: same bits)
        bounds, i0 = [], 0
        for targets, _ in parts:
            bounds.append((i0, i0 + targets.shape[0]))
            i0 += targets.shape[0]
        if same_targets:
            t = parts[0][0] if len(parts) == 1 else np.concatenate([targets for targets, _ in parts])
        else:
            t = np.empty(n)
            for (i0, i1), (targets, (g, nu, fl)) in zip(bounds, parts):
                ur, zv, uf = (a[i0:i1] if a.shape[0] else a for a in (u_round, z_var, u_fault))
                K.program_targets(targets, ur, zv, uf, ip, fp, t[i0:i1], e8 if fl is None else fl.reshape(-1))
        x = np.divide(t, g_max, dtype=dt)
        sig = e
        if sigma_fn is not None:
            sig = sigma_fn.evaluate(x)
            np.clip(sig, 0.0, np.inf, out=sig)  # max(sigma, 0) as one fast clip pass
            sig *= prog_param
        mu = mu_fn.evaluate(x) if mu_fn is not None else e
        sd = sd_fn.evaluate(x) if sd_fn is not None else e
        for (i0, i1), (targets, (g, nu, fl)) in zip(bounds, parts):
            zp, zn, sg, m, sdv = (a[i0:i1] if a.shape[0] else a for a in (z_prog, z_nu, sig, mu, sd))
            K.program_devices(t[i0:i1], e8 if fl is None else fl.reshape(-1), zp, zn, sg, m, sdv, ip, fp,
                              g.reshape(-1), e if nu is None else nu.reshape(-1))

    chunks = row_chunks(n_out, n_in)
    gens = child_generators(rng, len(chunks) + (0 if diff else 1))

    def program_chunk(ci: int, pos, neg) -> None:
        """Program rows chunks[ci] into ``pos`` (and ``neg``, differential) = (g, nu, fault) rows."""
        r0, r1 = chunks[ci]
        t_pos = np.empty((r1 - r0, n_in), dt)
        t_neg = np.empty((r1 - r0, n_in), dt) if diff else np.zeros((0, 0), dt)
        K.map_targets(W[r0:r1], np.ascontiguousarray(map_scales[:, r0:r1]), int(p.tile.rows), 0 if diff else 1,
                      g_min, dg, t_pos, t_neg)
        parts = [(t_pos.reshape(-1), pos)]
        if diff:
            parts.append((t_neg.reshape(-1), neg))
        program(gens[ci], parts)

    def program_reference():
        """The reference column of each output tile (single_reference), at mid range."""
        ref = new_rows(n_neg_rows)
        program(gens[-1], [(np.full(n_neg_rows * n_in, g_min + 0.5 * dg, dt), ref)])
        return ref

    if fused is None:
        pos = new_rows(n_out)
        neg = new_rows(n_out) if diff else None

        def chunk(ci: int) -> None:
            rows = slice(*chunks[ci])
            program_chunk(ci, [a if a is None else a[rows] for a in pos],
                          [a if a is None else a[rows] for a in neg] if diff else None)

        map_pieces(chunk, range(len(chunks)))
        if not diff:
            neg = program_reference()
        kept = True
    else:  # program each chunk into local arrays and hand them to the caller (drift), keep none
        ref = None if diff else program_reference()

        def chunk(ci: int) -> None:
            r0, r1 = chunks[ci]
            pos = new_rows(r1 - r0)
            neg = new_rows(r1 - r0) if diff else ref
            program_chunk(ci, pos, neg if diff else None)
            fused(ci, pos, neg, r0, r0 if diff else 0)

        map_pieces(chunk, range(len(chunks)))
        pos = neg = ((np.zeros((0, n_in), dt),) + (None, None))
        kept = False

    n_conv = 2 if p.mapping.subtraction == "digital" else 1
    ashape = (n_conv, grid.n_in_tiles, n_out)
    a = p.adc
    gain = a.gain_error_rel * _adc_errors(rng, p, grid, K) if a.gain_error_rel > 0 else np.zeros(ashape)
    off = a.offset_error_lsb * _adc_errors(rng, p, grid, K) if a.offset_error_lsb > 0 else np.zeros(ashape)
    return ProgrammedState(
        profile=p, shape=(n_out, n_in), seed=seed, g_pos=pos[0], g_neg=neg[0], nu_pos=pos[1], nu_neg=neg[1],
        fault_pos=pos[2], fault_neg=neg[2], scales=scales, adc_gain=gain, adc_offset_lsb=off, devices_kept=kept,
    )


def _columns(W: np.ndarray, p: DeviceProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(device-column weights, the scales map_targets divides by, the scales the periphery applies).

    One device (pair) per weight: W itself and its scales (:func:`weight_scales`) twice.  Bit
    slicing (``mapping.weight_slices`` S > 1, n = ``conductance.n_levels``): with the scales s
    of W, w_norm = clip(W / s, -1, 1), the code C = rint(|w_norm| M), M = n^S - 1, has base-n
    digits d_s = floor(C / n^s) mod n; output o becomes S device columns o S + s holding
    sign(w_norm) d_s / (n - 1) (a level of their own, mapped with scale 1), each read back with
    scale s c_s, c_s = n^s (n - 1) / M, so that the digital sum over a weight's slices is
    s sign(w_norm) C / M (the weight quantised to M + 1 magnitudes).
    """
    grid = TileGrid(W.shape[0], W.shape[1], p.tile.rows, p.tile.cols)
    scales = weight_scales(W, p.mapping, grid)
    S = p.mapping.weight_slices
    if S == 1:
        return W, scales, scales
    n = int(p.conductance.n_levels)
    M = n**S - 1
    w = np.empty(W.shape)
    for k in range(grid.n_in_tiles):
        k0, k1 = grid.in_slice(k)
        w[:, k0:k1] = np.clip(W[:, k0:k1] / scales[k][:, None], -1.0, 1.0)
    code = np.rint(np.abs(w) * M).astype(np.int64)
    sgn = np.sign(w)
    cols = np.empty((W.shape[0] * S, W.shape[1]), W.dtype)
    for si in range(S):
        cols[si::S] = sgn * ((code // n**si) % n) / (n - 1)
    c = (n ** np.arange(S) * (n - 1) / M).astype(np.float64)
    return cols, np.ones((grid.n_in_tiles, cols.shape[0])), np.repeat(scales, S, axis=1) * np.tile(c, W.shape[0])


def _adc_errors(rng: np.random.Generator, p: DeviceProfile, grid: TileGrid, K) -> np.ndarray:
    """Standard normals ``[n_conv, n_in_tiles, out]`` for the static per-column ADC errors, one
    ``normals`` call.  single_reference with digital subtraction: the reference column of an
    output tile has one ADC, so conversion stream 1 (the reference) draws ``[n_in_tiles,
    n_out_tiles]`` (after stream 0's ``[n_in_tiles, out]``) and every column of a tile gets its
    reference converter's value."""
    n_t, n_out = grid.n_in_tiles, grid.n_out
    if p.mapping.subtraction != "digital":
        return normals(rng, (1, n_t, n_out), np.float64, K)
    if p.mapping.kind == "differential":
        return normals(rng, (2, n_t, n_out), np.float64, K)
    n_ref = grid.n_out_tiles
    z = normals(rng, n_t * (n_out + n_ref), np.float64, K)
    ref = z[n_t * n_out :].reshape(n_t, n_ref)
    return np.stack([z[: n_t * n_out].reshape(n_t, n_out), np.repeat(ref, p.tile.cols, axis=1)[:, :n_out]])
