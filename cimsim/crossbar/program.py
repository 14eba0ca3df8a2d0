"""program_matrix: weights -> a ProgrammedState, with every non-ideality the profile names."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .._threads import map_pieces
from ..devices.programming import ProgrammingLaws, ProgrammingPlan, programming_laws, programming_plan
from ..errors import ParameterError
from ..kernels import Engine
from ..kernels import engine as backend
from ..kernels.sampling import normals, uniforms
from ..profiles.schema import DeviceProfile, WeightNoise
from ..rng import SeedLike, as_generator, child_generators
from ..times import check_time
from .inputs import check_w
from .drift import DriftRun
from .mapping import weight_scales
from .snapshot import DriftedState
from .state import ProgrammedState
from .tiling import CHUNK_WEIGHTS, TileGrid, row_chunks

__all__ = ["CHUNK_WEIGHTS", "DeviceRows", "check_profile", "program_drifted", "program_matrix", "row_chunks"]


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


class DeviceRows(NamedTuple):
    """Per-device arrays of some rows of one side (G+, G- or reference columns), each [rows, in]:
    conductances, drift exponents, fault codes (None where the plan does not model them)."""

    g: np.ndarray
    nu: np.ndarray | None
    fault: np.ndarray | None

    def rows(self, sl: slice) -> DeviceRows:
        return DeviceRows(self.g[sl], None if self.nu is None else self.nu[sl],
                          None if self.fault is None else self.fault[sl])


class _Job(NamedTuple):
    """One programming of W: what every row chunk shares."""

    W: np.ndarray  # device-column weights [out, in] (bit slices already split)
    map_scales: np.ndarray  # the scales map_targets divides by, [n_in_tiles, out]
    plan: ProgrammingPlan
    laws: ProgrammingLaws
    K: Engine
    tile_rows: int
    differential: bool
    chunks: list  # row_chunks of W
    gens: list  # one child generator per chunk (+ the reference columns', last)
    weight_noise: WeightNoise | None = None  # programming.weight_noise (differential only)


def program_matrix(W: np.ndarray, profile: DeviceProfile, *, rng: SeedLike, with_drift: bool = True,
                   backend_name: str = "numba") -> ProgrammedState:
    """Program ``W [out, in]`` onto crossbar tiles described by ``profile``.

    Steps (equations in :mod:`cimsim.devices.programming`): per-tile-column scale s (mapping) ->
    targets G+/G- (differential) or G and a mid-range reference column per tile
    (single_reference) -> levels (nearest or stochastic rounding) -> device-to-device
    variability -> stuck-at faults -> programming noise -> clip to the physical range -> drift
    exponents nu.
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
    check_profile(profile)
    W = check_w(W)
    return _program(W, profile, rng, with_drift, backend(backend_name), _keep_devices)


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
    W = check_w(W)
    t = check_time(t_s)
    K = backend(backend_name)
    shape = (W.shape[0] * profile.mapping.weight_slices, W.shape[1])  # device columns (bit slices)
    run = DriftRun(profile, shape, W.dtype, t, as_generator(read_rng), K, noiseless=False, has_nu=t > 0)
    return run.finish(_program(W, profile, rng, t > 0, K, functools.partial(_stream_devices, sink=run.chunk)))


#: A programming driver: (job, n_neg_rows) -> (G+ rows, G- / reference rows, devices kept).
Driver = Callable[[_Job, int], tuple[DeviceRows, DeviceRows, bool]]


def _program(W: np.ndarray, profile: DeviceProfile, rng: SeedLike, with_drift: bool, K: Engine, drive: Driver) -> ProgrammedState:
    """Program the checked ``W``: the plan, the job, then ``drive`` (keep or stream the devices),
    then the periphery's static errors."""
    seed = int(rng) if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) else None
    rng = as_generator(rng)
    p = profile
    plan = programming_plan(p, with_drift=with_drift)
    W, map_scales, scales = _columns(W, p)
    n_out, n_in = W.shape
    grid = TileGrid(n_out, n_in, p.tile.rows, p.tile.cols)
    diff = p.mapping.kind == "differential"
    chunks = row_chunks(n_out, n_in)
    job = _Job(W=W, map_scales=map_scales, plan=plan, laws=programming_laws(p, plan), K=K, tile_rows=int(p.tile.rows),
               differential=diff, chunks=chunks, gens=child_generators(rng, len(chunks) + (0 if diff else 1)),
               weight_noise=p.programming.weight_noise)
    pos, neg, kept = drive(job, n_out if diff else grid.n_out_tiles)
    n_conv = 2 if p.mapping.subtraction == "digital" else 1
    ashape = (n_conv, grid.n_in_tiles, n_out)
    a = p.adc
    gain = a.gain_error_rel * _adc_errors(rng, p, grid, K) if a.gain_error_rel > 0 else np.zeros(ashape)
    off = a.offset_error_lsb * _adc_errors(rng, p, grid, K) if a.offset_error_lsb > 0 else np.zeros(ashape)
    return ProgrammedState(
        profile=p, shape=(n_out, n_in), seed=seed, g_pos=pos.g, g_neg=neg.g, nu_pos=pos.nu, nu_neg=neg.nu,
        fault_pos=pos.fault, fault_neg=neg.fault, scales=scales, adc_gain=gain, adc_offset_lsb=off, devices_kept=kept,
    )


def _keep_devices(job: _Job, n_neg_rows: int) -> tuple[DeviceRows, DeviceRows, bool]:
    """Driver of program_matrix: every chunk into the chip's full device arrays (side by side
    on the thread pool), then the reference columns (single_reference)."""
    n_out = job.W.shape[0]
    pos = _new_rows(job, n_out)
    neg = _new_rows(job, n_out) if job.differential else None

    def chunk(ci: int) -> None:
        rows = slice(*job.chunks[ci])
        _program_chunk(job, ci, pos.rows(rows), neg.rows(rows) if neg is not None else None)

    map_pieces(chunk, range(len(job.chunks)))
    if neg is None:
        neg = _program_reference(job, n_neg_rows)
    return pos, neg, True


def _stream_devices(job: _Job, n_neg_rows: int, *, sink) -> tuple[DeviceRows, DeviceRows, bool]:
    """Driver of program_drifted: each chunk into local arrays handed to ``sink(ci, pos, neg,
    p0, n0)`` (DriftRun.chunk), kept by nobody; the reference columns first, whole."""
    ref = None if job.differential else _program_reference(job, n_neg_rows)

    def chunk(ci: int) -> None:
        r0, r1 = job.chunks[ci]
        pos = _new_rows(job, r1 - r0)
        if job.differential:
            neg = _new_rows(job, r1 - r0)
            _program_chunk(job, ci, pos, neg)
            sink(ci, pos, neg, r0, r0)
        else:
            _program_chunk(job, ci, pos, None)
            sink(ci, pos, ref, r0, 0)

    map_pieces(chunk, range(len(job.chunks)))
    empty = DeviceRows(np.zeros((0, job.W.shape[1]), job.W.dtype), None, None)
    return empty, empty, False


def _new_rows(job: _Job, n_rows: int) -> DeviceRows:
    """Empty device arrays for ``n_rows`` rows (None where not modelled)."""
    shape, dt = (n_rows, job.W.shape[1]), job.W.dtype
    return DeviceRows(np.empty(shape, dt), np.empty(shape, dt) if job.plan.has_drift else None,
                      np.empty(shape, np.int8) if job.plan.has_fault else None)


def _program_chunk(job: _Job, ci: int, pos: DeviceRows, neg: DeviceRows | None) -> None:
    """Map rows chunks[ci] of W to targets and program them into ``pos`` (and ``neg``, differential)."""
    r0, r1 = job.chunks[ci]
    n_in, dt = job.W.shape[1], job.W.dtype
    t_pos = np.empty((r1 - r0, n_in), dt)
    t_neg = np.empty((r1 - r0, n_in), dt) if job.differential else np.zeros((0, 0), dt)
    job.K.map_targets(job.W[r0:r1], np.ascontiguousarray(job.map_scales[:, r0:r1]), job.tile_rows, job.differential,
                      job.plan, t_pos, t_neg)
    if job.weight_noise is not None:
        _weight_noise(job, job.gens[ci], t_pos, t_neg)
    parts = [(t_pos.reshape(-1), pos)]
    if job.differential:
        assert neg is not None  # job.differential: the driver made the G- rows
        parts.append((t_neg.reshape(-1), neg))
    _program_parts(job, job.gens[ci], parts)


def _weight_noise(job: _Job, gen: np.random.Generator, t_pos: np.ndarray, t_neg: np.ndarray) -> None:
    """``programming.weight_noise`` on a chunk's differential targets, in place: w_n = (G+ - G-)/dg,
    w_n' = w_n + max(sigma(|w_n|), 0) z (z ~ N(0, 1), drawn first from the chunk's generator, one
    per weight), w_n' = 0 where |w_n| < prune_below, then G+ = g_min + max(w_n', 0) dg and
    G- = g_min + max(-w_n', 0) dg."""
    wn = job.weight_noise
    assert wn is not None and job.differential  # the profile's validator: differential mapping only
    g0, dg = job.plan.g_min_us, job.plan.g_max_us - job.plan.g_min_us
    w = (t_pos.astype(np.float64) - t_neg) / dg
    x = np.abs(w)
    z = normals(gen, w.shape, np.float64, job.K)
    w += np.maximum(wn.sigma.evaluate(x), 0.0) * z
    w[x < wn.prune_below] = 0.0
    t_pos[...] = g0 + np.maximum(w, 0.0) * dg
    t_neg[...] = g0 + np.maximum(-w, 0.0) * dg


def _program_reference(job: _Job, n_rows: int) -> DeviceRows:
    """The reference column of each output tile (single_reference), at mid range."""
    plan, n_in = job.plan, job.W.shape[1]
    ref = _new_rows(job, n_rows)
    g_mid = plan.g_min_us + 0.5 * (plan.g_max_us - plan.g_min_us)
    _program_parts(job, job.gens[-1], [(np.full(n_rows * n_in, g_mid, job.W.dtype), ref)])
    return ref


def _program_parts(job: _Job, gen: np.random.Generator, parts: list[tuple[np.ndarray, DeviceRows]]) -> None:
    """Program ``parts`` = [(flat targets, outputs)] with one set of draws from ``gen``.

    Kernel program_targets (levels, variability, faults), then the device laws of
    x_T = G_T/g_max evaluated vectorised in the chip's dtype (numpy's SIMD log/exp), then
    kernel program_devices.
    """
    plan, K, dt = job.plan, job.K, job.W.dtype
    e, e8 = np.zeros(0, dt), np.zeros(0, np.int8)
    n = sum(t.shape[0] for t, _ in parts)
    # the draws, in this order, each only when the plan needs it
    u_round = uniforms(gen, n) if plan.stochastic else e
    z_var = normals(gen, n, np.float32, K) if plan.has_var else e
    u_fault = uniforms(gen, n) if plan.has_fault else e
    z_prog = normals(gen, n, np.float32, K) if plan.noise else e
    z_nu = normals(gen, n, np.float32, K) if plan.has_drift else e
    bounds, i0 = [], 0
    for targets, _ in parts:
        bounds.append((i0, i0 + targets.shape[0]))
        i0 += targets.shape[0]

    def piece(a: np.ndarray, i0: int, i1: int) -> np.ndarray:
        return a[i0:i1] if a.shape[0] else a

    # targets of all parts into one array, so the device laws run once over the chunk; with
    # no levels, variability or faults program_targets is the identity and the mapped
    # targets are used as they are (float32 targets are exact in float64: same bits)
    if plan.same_targets:
        t = parts[0][0] if len(parts) == 1 else np.concatenate([targets for targets, _ in parts])
    else:
        t = np.empty(n)
        for (i0, i1), (targets, dev) in zip(bounds, parts):
            K.program_targets(targets, piece(u_round, i0, i1), piece(z_var, i0, i1), piece(u_fault, i0, i1), plan,
                              t[i0:i1], e8 if dev.fault is None else dev.fault.reshape(-1))
    x = job.laws.x(t, dt)
    sig, mu, sd = job.laws.all(x)
    for (i0, i1), (_, dev) in zip(bounds, parts):
        K.program_devices(t[i0:i1], e8 if dev.fault is None else dev.fault.reshape(-1), piece(z_prog, i0, i1),
                          piece(z_nu, i0, i1), piece(sig, i0, i1), piece(mu, i0, i1), piece(sd, i0, i1), plan,
                          dev.g.reshape(-1), e if dev.nu is None else dev.nu.reshape(-1))


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
    assert p.conductance.n_levels is not None  # the profile's validator: weight_slices > 1 needs n_levels
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


def _adc_errors(rng: np.random.Generator, p: DeviceProfile, grid: TileGrid, K: Engine) -> np.ndarray:
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
