"""tile_mvm: DAC -> per group of input tiles, batched BLAS GEMMs and a fused ADC kernel summing the tiles -> y."""

from __future__ import annotations

import threading
import warnings
import weakref

import numpy as np
import torch

from .._threads import scratch
from ..kernels.sampling import normals
from ..errors import NonFiniteError, ParameterError, ShapeError
from ..kernels import engine as backend
from ..peripherals.converters import adc_params, dac_params, levels
from ..profiles.schema import RangeCalibrated
from ..rng import SeedLike, as_generator
from .drift import drift_state
from ..times import check_time
from .state import DriftedState, MvmMasks, ProgrammedState

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


def _dac(ds_state: ProgrammedState, xc: np.ndarray, rng, K, want_masks: bool, *, noise: bool = True,
         dp=None, fixed=False, rowmax=None):
    """DAC stage: returns (x_norm, row_bound, x_q, clip); rowmax: max|xc| per row, if known."""
    batch, n_in = xc.shape
    if fixed is False:
        fixed = ds_state.dac_fixed_bound()
    if fixed is None:
        if rowmax is not None:
            bound = rowmax.astype(np.float64)
        else:
            bound = np.abs(xc).max(axis=1).astype(np.float64) if n_in else np.ones(batch)
        bound[bound == 0] = 1.0
    else:
        bound = np.full(batch, fixed)
    if dp is None:
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
    K.dac_convert.sized(xc.size)(xc, bound, dp.levels, dp.nl_code, dp.nl_spec, dp.noise_lsb if noisy else 0.0, z,
                  x_norm, x_q, clip, want_masks)
    return x_norm, bound, x_q, clip


def _cpu_has_bf16_gemm() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX-BF16).

    Read from the CPU's flags, so the choice is fixed per machine.  Without them torch's bfloat16
    GEMM falls back to a slow path (about 75x an fp32 GEMM on an AVX2-only EPYC), and the
    variance GEMM runs in fp32 on the same bfloat16-rounded operands instead.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:  # not Linux: take the fp32 path, never the slow one
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


#: the bfloat16 variance GEMM runs on bfloat16 tensors (True) or in fp32 on bfloat16-rounded values
BF16_GEMM = _cpu_has_bf16_gemm()


def _bf16_bits(a: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) of float32 ``a``, round to nearest even (as torch's cast)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)).astype(np.uint16)


def _bf16_round(a: np.ndarray) -> np.ndarray:
    """float32 ``a`` rounded to the nearest bfloat16 (returned as float32)."""
    return (_bf16_bits(a).astype(np.uint32) << np.uint32(16)).view(np.float32)


class _Plan:
    """Per-DriftedState, per-backend constants of the MVM (built on first use, then cached).

    coef[c]: ``[6, T, O]`` float64 ADC coefficients of stream c (see ``adc_tiles``);
    w[c] / v[c]: the weight / per-read-variance blocks of stream c as GEMM operands (torch
    tensors ``(full [nfull, O, rows], last [O, rk] or None)``, or numpy ``[T]`` lists for the
    reference backend); bf16: the variance GEMM runs in bfloat16 (float32 chips); iv[c]: the
    nonlinear I-V's (term, operand) pairs, term 0 read with x |x|, 1 with x^3 (none when ohmic).
    """

    def __init__(self, ds: DriftedState, K):
        st = ds.state
        p = st.profile
        self.torch = not not K.torch_gemm
        self.ap = adc_params(p.adc)
        self.dp = dac_params(p.dac)
        self.bit_serial = bool(p.dac.bit_serial) and self.dp.levels > 0
        self.dac_fixed = st.dac_fixed_bound()
        bounds = np.asarray(st.adc_bounds(), dtype=np.float64)
        L = float(self.ap.levels)
        colscale = np.asarray(st.scales, dtype=np.float64)
        self.has_var = ds.v is not None
        self.bf16 = self.has_var and st.dtype == np.float32
        arrays = [(ds.w, ds.v, 0, 1.0, (ds.w2, ds.w3))]
        if ds.wn is not None:
            arrays.append((ds.wn, ds.vn, 1, -1.0, (ds.w2n, ds.w3n)))
        # nonlinear I-V: which of its terms (x |x|, x^3) have blocks, one more GEMM per stream each
        # (a term whose law is identically 0 has none)
        self.iv = (ds.w2 is not None, ds.w3 is not None)
        # the reference columns' per-read noise (single_reference) joins the stream holding them:
        # the difference (analog subtraction) or the G- conversions (digital); per input tile k
        # its variance operand is vref[:, tile k] [n_out_tiles, rk]
        self.ref_stream = None if ds.vref is None else len(arrays) - 1
        # single_reference + digital subtraction: stream 1 converts the reference column, one
        # ADC per output tile, so its conversion noise is one draw per tile shared by its columns
        self.shared_conv_stream = 1 if (ds.wn is not None and p.mapping.kind == "single_reference") else None
        self.ref_ops = None
        self.cols = int(p.tile.cols)
        if ds.vref is not None:
            g = st.grid
            self.ref_ops = [ds.vref[:, slice(*g.in_slice(k))] for k in range(g.n_in_tiles)]
            if self.torch:
                self.ref_ops = [torch.from_numpy(np.array(b)) for b in self.ref_ops]  # small writable copies
        self.streams = []
        with warnings.catch_warnings():
            # torch warns on read-only numpy views; the GEMMs only read them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
            for warr, varr, c, sign, iv_arrs in arrays:
                gain1 = 1.0 + np.asarray(st.adc_gain[c], dtype=np.float64)
                off = np.asarray(st.adc_offset_lsb[c], dtype=np.float64)
                sc = bounds * colscale
                coef = np.stack([gain1 * L / bounds if L > 0 else np.zeros_like(bounds), off,
                                 sc / L if L > 0 else np.zeros_like(bounds), 1.0 / bounds, gain1, sc])
                wb = self._operand(ds, warr, False)
                vb = self._operand(ds, varr, self.bf16) if self.has_var else None
                ivb = [(j, self._operand(ds, a, False)) for j, a in enumerate(iv_arrs) if a is not None]
                self.streams.append((wb, vb, coef, sign, ivb))

    def _operand(self, ds: DriftedState, flat: np.ndarray, bf16: bool):
        grid = ds.state.grid
        n_out, rows = grid.n_out, grid.rows
        if not self.torch:
            blocks = [ds.block(flat, k) for k in range(grid.n_in_tiles)]
            return [_bf16_round(b) for b in blocks] if bf16 else blocks
        nfull = grid.n_in // rows
        t = torch.from_numpy(flat)
        if bf16:
            t = t.to(torch.bfloat16) if BF16_GEMM else t.to(torch.bfloat16).to(torch.float32)
        full = t[: nfull * n_out * rows].view(nfull, n_out, rows) if nfull else None
        last = None
        if nfull < grid.n_in_tiles:
            k0, k1 = grid.in_slice(nfull)
            off = grid.block_offset(nfull)
            last = t[off : off + n_out * (k1 - k0)].view(n_out, k1 - k0)
        return full, last


_PLANS: "weakref.WeakKeyDictionary[DriftedState, dict]" = weakref.WeakKeyDictionary()
_PLANS_LOCK = threading.Lock()


def _plan(ds: DriftedState, K) -> _Plan:
    with _PLANS_LOCK:
        d = _PLANS.get(ds)
        if d is None:
            d = _PLANS[ds] = {}
        pl = d.get(K.name)
    if pl is None:
        pl = _Plan(ds, K)
        with _PLANS_LOCK:
            d[K.name] = pl
    return pl


def _gemm_tiles(xt: torch.Tensor, ops, out: torch.Tensor, k0: int = 0, k1: int | None = None,
                accumulate: bool = False) -> None:
    """out[k - k0] = x[:, tile k] @ B_k^T (``accumulate``: +=) for the input tiles k0 <= k < k1
    (default: all): one torch.bmm over the full-width tiles (zero-copy strided view of x), one
    more GEMM for a ragged last tile.  xt [B, n_in], out [k1 - k0, B, O]."""
    full, last = ops
    batch, n_in = xt.shape
    nfull = 0 if full is None else full.shape[0]
    if k1 is None:
        k1 = nfull + (last is not None)
    f1 = min(k1, nfull)
    if k0 < f1:
        rows = full.shape[2]
        xv = xt.as_strided((f1 - k0, batch, rows), (rows, n_in, 1), xt.storage_offset() + k0 * rows)
        if accumulate:
            out[: f1 - k0].baddbmm_(xv, full[k0:f1].transpose(1, 2))
        else:
            torch.bmm(xv, full[k0:f1].transpose(1, 2), out=out[: f1 - k0])
    if last is not None and k1 > nfull:
        if accumulate:
            out[nfull - k0].addmm_(xt[:, n_in - last.shape[1] :], last.T)
        else:
            torch.matmul(xt[:, n_in - last.shape[1] :], last.T, out=out[nfull - k0])


#: float dtype -> (unsigned int of its width, sign-clearing mask, bit pattern of +Inf)
_BITS = {np.dtype(np.float32): (np.uint32, np.uint32(0x7FFFFFFF), np.uint32(0x7F800000)),
         np.dtype(np.float64): (np.uint64, np.uint64(0x7FFFFFFFFFFFFFFF), np.uint64(0x7FF0000000000000))}

#: byte budget of one group's partial-sum buffer ``part [G, B, O]``: the input tiles go through
#: the GEMMs and the ADC kernel in groups of G = max(1, _GROUP_BYTES // (B O itemsize)) tiles
#: (shapes only, never the thread count), bounding the scratch memory of large layers
_GROUP_BYTES = 1 << 23


def _mvm(ds: DriftedState, xc: np.ndarray, rng, K, want_masks: bool, rowmax=None):
    pl = _plan(ds, K)
    st = ds.state
    grid = st.grid
    batch = xc.shape[0]
    n_out, n_t = grid.n_out, grid.n_in_tiles
    dt = xc.dtype
    x_norm, row_bound, x_q, clip = _dac(st, xc, rng, K, want_masks, dp=pl.dp, fixed=pl.dac_fixed, rowmax=rowmax)
    ap = pl.ap
    conv_noise = ap.noise_lsb > 0 and ap.levels > 0
    y = np.zeros((batch, n_out), dtype=dt)
    sat = np.zeros((batch, n_t, n_out), dtype=np.bool_) if want_masks else np.zeros((0, 0, 0), np.bool_)
    e3 = np.zeros((0, 0, 0), dt)
    e16 = np.zeros((0, 0, 0), np.uint16)
    g = max(1, min(n_t, _GROUP_BYTES // max(1, batch * n_out * dt.itemsize)))
    groups = [(k0, min(k0 + g, n_t)) for k0 in range(0, max(n_t, 1), g)]
    part = scratch("part", (g, batch, n_out), dt)
    acc = scratch("acc", (batch, n_out), np.float64)
    adc = K.adc_tiles.sized(part.size)
    planes = _bit_planes(x_norm, row_bound, pl.dp.levels) if pl.bit_serial else [(x_norm, row_bound)]
    for xin, rowscale in planes:  # one pass, or one per input bit plane (bit-serial DAC)
        # the I-V's |V| V and V^3 (per v_read), for the terms the profile has
        xiv = (xin * np.abs(xin) if pl.iv[0] else None, xin * xin * xin if pl.iv[1] else None)
        if pl.torch:
            xt = torch.from_numpy(xin)
            pt = torch.from_numpy(part)
            xiv = [None if a is None else torch.from_numpy(a) for a in xiv]
            if pl.has_var:
                x2t = torch.square(xt)
                if pl.bf16:
                    # bfloat16 operands, fp32 accumulation, result rounded to bfloat16: on bfloat16
                    # tensors where the CPU has the instructions, else as fp32 GEMM of the rounded values
                    x2t = x2t.to(torch.bfloat16)
                    v16 = torch.from_numpy(scratch("var", (g, batch, n_out), np.int16)).view(torch.bfloat16)
                    if BF16_GEMM:
                        vt = v16
                    else:
                        x2t = x2t.to(torch.float32)
                        vt = torch.from_numpy(scratch("var32", (g, batch, n_out), np.float32))
                else:
                    vt = torch.from_numpy(scratch("var", (g, batch, n_out), dt))
        elif pl.has_var:
            x2 = xin * xin
            if pl.bf16:
                x2 = _bf16_round(x2)
            vref = np.empty((g, batch, n_out), dt)
        for c, (wb, vb, coef, sign, ivb) in enumerate(pl.streams):
            acc.fill(0.0)
            for k0, k1 in groups:
                n = k1 - k0
                pg = part[:n]
                var = e3
                var16 = e16
                if pl.torch:
                    _gemm_tiles(xt, wb, pt, k0, k1)
                    for j, ob in ivb:
                        _gemm_tiles(xiv[j], ob, pt, k0, k1, accumulate=True)
                    if pl.has_var:
                        _gemm_tiles(x2t, vb, vt, k0, k1)
                        if pl.bf16:
                            if not BF16_GEMM:
                                v16[:n].copy_(vt[:n])  # round to nearest even, as the bf16 GEMM's output
                            var16 = v16[:n].view(torch.int16).numpy().view(np.uint16)
                        else:
                            var = vt[:n].numpy()
                else:
                    for k in range(k0, k1):
                        i0, i1 = grid.in_slice(k)
                        np.matmul(xin[:, i0:i1], wb[k].T, out=part[k - k0])
                        for j, ob in ivb:
                            part[k - k0] += np.matmul(xiv[j][:, i0:i1], ob[k].T)
                        if pl.has_var:
                            np.matmul(x2[:, i0:i1], vb[k].T, out=vref[k - k0])
                    if pl.has_var:
                        if pl.bf16:
                            var16 = _bf16_bits(vref[:n])
                        else:
                            var = vref[:n]
                zr = scratch("z_read", (n, batch, n_out), dt) if pl.has_var else e3
                zc = scratch("z_conv", (n, batch, n_out), dt) if conv_noise else e3
                for k in range(n):  # the group's draws, tile by tile (so the grouping never changes a bit)
                    if pl.has_var:
                        normals(rng, (batch, n_out), dt, K, out=zr[k])
                    if c == pl.ref_stream:
                        _add_reference_noise(pg[k], xin, k0 + k, pl, rng, K)
                    if conv_noise and c == pl.shared_conv_stream:
                        zt = normals(rng, (batch, grid.n_out_tiles), dt, K)
                        zc[k] = np.repeat(zt, pl.cols, axis=1)[:, :n_out]
                    elif conv_noise:
                        normals(rng, (batch, n_out), dt, K, out=zc[k])
                adc(pg, var, var16, zr, zc, coef, k0, rowscale, sign, ap.levels, ap.nl_code, ap.nl_spec,
                    ap.inl, ap.noise_lsb if conv_noise else 0.0, acc, y, sat, want_masks, k1 == n_t)
    return y, x_q, clip, (sat if want_masks else None)


def _bit_planes(x_norm: np.ndarray, row_bound: np.ndarray, levels: int):
    """Bit-serial input: (plane, rowscale) for every bit p = 0 .. bits-2 of the DAC code.

    code = rint(x_norm L) in [-L, L] (x_norm = code / L exactly, L = 2^(bits-1) - 1); plane p =
    sign(code) bit_p(|code|) in {-1, 0, 1} drives the rows; the ADC converts the plane's column
    sums and the periphery weighs them by 2^p / L, so sum_p 2^p plane_p / L = x_norm (exact) and
    each plane's conversion error is scaled down by its weight.  rowscale = row_bound 2^p / L.
    """
    code = np.rint(x_norm * levels).astype(np.int64)
    sgn = np.sign(code).astype(x_norm.dtype)
    mag = np.abs(code)
    for p in range(int(levels).bit_length()):
        yield ((mag >> p) & 1).astype(x_norm.dtype) * sgn, row_bound * (2.0**p / levels)


def _add_reference_noise(part: np.ndarray, x_norm: np.ndarray, k: int, pl: _Plan, rng, K) -> None:
    """Per-read noise of the reference columns (single_reference), added to input tile k's
    partial sums ``part [B, O]`` before the ADC: one column per output tile, read once per input
    vector, so one draw ``sqrt(x_norm[:, k]^2 @ vref_k^T) z``, ``z [B, n_out_tiles]``, is common to
    all outputs of that tile (the sign of the subtraction does not change a centred Gaussian)."""
    i0 = k * pl.ref_ops[0].shape[1]  # tile k's first input (every tile but the last is full)
    xk = x_norm[:, i0 : i0 + pl.ref_ops[k].shape[1]]
    x2 = xk * xk
    if pl.torch:
        var = torch.matmul(torch.from_numpy(x2), pl.ref_ops[k].T).numpy()
    else:
        var = x2 @ pl.ref_ops[k].T
    z = normals(rng, var.shape, part.dtype, K)
    s = np.sqrt(np.maximum(var, 0.0)) * z
    part += np.repeat(s, pl.cols, axis=1)[:, : part.shape[1]]


def tile_mvm(x, state, *, t_s: float | None = None, rng: SeedLike, compensation=None,
             return_masks: bool = False, backend_name: str = "numba"):
    """``y = x W^T`` through the simulated chip: ``x [batch, in]`` (or ``[in]``) -> ``y [batch, out]``.

    With a :class:`ProgrammedState`, ``t_s`` (seconds since programming, 0 allowed) is required
    and the state is drifted first (drawing its 1/f noise from ``rng``); with a
    :class:`DriftedState` its snapshot is used.  Then, drawing in this order from ``rng``:
    DAC noise ``[batch, in]``; per input bit plane (bit-serial DAC: ``dac.bit_serial``, planes
    p = 0, 1, ..., see :func:`_bit_planes`; else one pass), per conversion stream (G+ - G-, or G+ then G- with digital
    subtraction), per input tile in order: per-read noise ``[batch, out]``, the reference
    columns' per-read noise ``[batch, n_out_tiles]`` (single_reference, in the stream that holds
    the reference: see :func:`_add_reference_noise`), then ADC conversion noise ``[batch, out]``
    (``[batch, n_out_tiles]`` for the reference stream of single_reference + digital
    subtraction: one reference converter per tile) (each one ``normals`` call, only when the
    profile has it; drawn tile by tile, so only a group's worth is ever held).

    Per input tile k (normalised units): ``part_k = x_norm[:, k] @ W_k^T`` (one batched BLAS GEMM
    over a group of tiles, torch's CPU BLAS); with per-read noise ``var_k = x_norm[:, k]^2 @ V_k^T``,
    ``V_ij = sigma_ij^2`` (the variance of the column sum, a second batched GEMM); then a fused
    ADC kernel (:func:`cimsim.kernels._numba.adc_tiles`) converts the group's tile columns, adds
    ``sqrt(var_k) z`` before the ADC and sums the tiles in float64, in tile order across the
    groups, into y (written once, after the last group).  The groups (about 8 MiB of partial sums
    each, set by the shapes only) bound the scratch memory; the result does not depend on them.
    For float32 chips the variance GEMM runs in bfloat16 (operands and result rounded to bfloat16, fp32 accumulation): the
    per-read noise's standard deviation is within a relative ``1.5 * 2^-8`` (0.6 %) of the
    exact value; float64 chips compute it in float64.  Per-state constants (ADC coefficients,
    bfloat16 variance blocks) are built on first use and cached with the :class:`DriftedState`.
    The output is in weight x input units, dtype of ``x`` (computed in the chip's dtype); no
    bias.  ``compensation`` multiplies y by its factor read at the snapshot's time (its readout
    draws from ``rng`` after the MVM).  ``return_masks=True`` also returns :class:`MvmMasks`.
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
    rowmax = None
    if (isinstance(x, np.ndarray) and x.dtype == st.dtype and x.dtype in _BITS and x.ndim in (1, 2)
            and x.shape[-1] == st.shape[1] and x.flags.c_contiguous):
        # fast path: one integer pass gives max|x| per row and the finiteness check
        x2, squeeze = (x[None, :], True) if x.ndim == 1 else (x, False)
        ut, mask, inf_bits = _BITS[x.dtype]
        mb = np.empty(x2.shape[0], ut)
        K.row_absmax_bits.sized(x2.size)(x2.view(ut), mask, mb)
        if mb.size and mb.max() >= inf_bits:
            _check_x(x, st.shape[1], st.weight_shape)  # raises NonFiniteError
        rowmax = mb.view(x.dtype)
    else:
        x2, squeeze = _check_x(x, st.shape[1], st.weight_shape)
    out_dtype = x2.dtype if np.issubdtype(x2.dtype, np.floating) else st.dtype
    xc = np.ascontiguousarray(x2, dtype=st.dtype)
    if ds is None:
        ds = drift_state(st, t, rng, K, noiseless=False)
    y, x_q, clip, sat = _mvm(ds, xc, rng, K, return_masks, rowmax)
    n_slices = st.profile.mapping.weight_slices
    if n_slices > 1:  # bit slicing: a weight's slice columns, each converted, summed digitally
        y = y.reshape(y.shape[0], -1, n_slices).sum(axis=2, dtype=np.float64).astype(y.dtype)
        if sat is not None:
            sat = sat.reshape(sat.shape[0], sat.shape[1], -1, n_slices).any(axis=3)
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


def _column_sums(ds: DriftedState, xk: np.ndarray, k: int, arrs) -> np.ndarray:
    """Noise-free partial sums of input tile k, ``xk [B, rk]``, through one stream's blocks
    ``(W1, W2, W3)`` (W2, W3 None for ohmic devices; else the I-V terms, see ``DriftRun._iv_blocks``)."""
    w1, w2, w3 = arrs
    y = xk @ ds.block(w1, k).T
    if w2 is not None:
        y = y + (xk * np.abs(xk)) @ ds.block(w2, k).T
    if w3 is not None:
        y = y + (xk * xk * xk) @ ds.block(w3, k).T
    return y


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
        ds = drift_state(st, 0.0, np.random.default_rng(0), K, noiseless=True)
        x_norm, row_bound, _, _ = _dac(st, xc, None, K, False, noise=False)
        # what the ADC converts: the column sums of x_norm, or of every bit plane (bit-serial DAC)
        xs = [xp for xp, _ in _bit_planes(x_norm, row_bound, levels(p.dac.bits))] if p.dac.bit_serial else [x_norm]
        grid = st.grid
        bounds = np.empty((grid.n_in_tiles, grid.n_out))
        for k in range(grid.n_in_tiles):
            k0, k1 = grid.in_slice(k)
            parts = [np.abs(_column_sums(ds, xi[:, k0:k1], k, arrs)) for arrs in ((ds.w, ds.w2, ds.w3), (ds.wn, ds.w2n, ds.w3n))
                     if arrs[0] is not None for xi in xs]
            bounds[k] = np.percentile(np.concatenate(parts, axis=0), p.adc.range.percentile, axis=0)
        bounds[~(bounds > 0)] = 1.0
        st = st.replace(adc_bound=bounds)
    return st
