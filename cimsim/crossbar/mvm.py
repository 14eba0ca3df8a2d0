"""tile_mvm: DAC -> per group of input tiles, the GEMMs and a fused ADC kernel summing the tiles -> y.

The stages live beside this orchestrator: :mod:`.inputs` (checks), :mod:`.dac_stage`,
:mod:`.gemm` (torch or numpy products, chosen once per plan), :mod:`.adc_stage` (draws and
conversion), :mod:`.calibration`.  Per input plane (x_norm, or each bit plane of a bit-serial
DAC), per conversion stream c, per group of input tiles k (normalised units):

    part_k = x[:, k] @ W_k^T,   var_k = x[:, k]^2 @ V_k^T          (see :mod:`.gemm`)
    acc   += ADC(part_k + sqrt(var_k) z_read)   over k in order, float64   (see :mod:`.adc_stage`)
    y     += sign_c rowscale acc                 after the stream's last group

The groups (G = max(1, _GROUP_BYTES // (B O itemsize)) tiles, set by the shapes only) bound
the scratch memory; the result does not depend on them.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from .._threads import scratch
from ..errors import NonFiniteError, ParameterError
from ..kernels import engine as backend
from ..peripherals import AdcPlan, DacPlan, adc_plan, dac_plan
from ..profiles.schema import BoundManagementIterative
from ..rng import SeedLike, as_generator
from ..times import check_time
from .adc_stage import Stream, adc_coefficients, convert_group
from .calibration import calibrate_state
from .dac_stage import dac_stage, input_planes
from .drift import drift_state
from .gemm import BF16_GEMM, make_gemm
from .inputs import prepare_x
from .snapshot import DriftedState, ManagedMvmMasks, MvmMasks
from .state import ProgrammedState

__all__ = ["tile_mvm", "calibrate_state", "MvmPlan", "mvm_plan", "BF16_GEMM"]

#: byte budget of one group's partial-sum buffer ``part [G, B, O]``
_GROUP_BYTES = 1 << 23


class MvmPlan:
    """Per-DriftedState, per-kernel-set constants of the MVM (built on first use, then cached).

    dac / adc: the converter plans; gemm: the GEMM engine (torch or numpy, and how the variance
    product runs); streams: the conversion streams (:class:`~.adc_stage.Stream`); ref_ops: the
    reference columns' variance operands per input tile (single_reference with per-read noise;
    empty otherwise); iv: which nonlinear I-V terms (x |x|, x^3) have blocks.
    """

    def __init__(self, ds: DriftedState, K):
        st = ds.state
        p = st.profile
        self.dac: DacPlan = dac_plan(p.dac)
        self.adc: AdcPlan = adc_plan(p.adc)
        self.gemm = make_gemm(ds, K.torch_gemm)
        self.cols = int(p.tile.cols)
        self.n_out_tiles = st.grid.n_out_tiles
        self.iv = (ds.w2 is not None, ds.w3 is not None)
        arrays = [(ds.w, ds.v, 0, 1.0, (ds.w2, ds.w3))]
        if ds.wn is not None:
            arrays.append((ds.wn, ds.vn, 1, -1.0, (ds.w2n, ds.w3n)))
        # the reference columns' per-read noise (single_reference) joins the stream holding them:
        # the difference (analog subtraction) or the G- conversions (digital)
        ref_stream = -1 if ds.vref is None else len(arrays) - 1
        # single_reference + digital subtraction: stream 1 converts the reference column
        shared_conv = ds.wn is not None and p.mapping.kind == "single_reference"
        g = st.grid
        self.ref_ops = ([] if ds.vref is None else
                        [self.gemm.ref_operand(ds.vref[:, slice(*g.in_slice(k))]) for k in range(g.n_in_tiles)])
        self.streams = [
            Stream(w=self.gemm.operand(warr, False), v=None if varr is None else self.gemm.operand(varr, True),
                   coef=adc_coefficients(st, self.adc, c), sign=sign,
                   iv=[(j, self.gemm.operand(a, False)) for j, a in enumerate(iv_arrs) if a is not None],
                   ref=c == ref_stream, shared_conv=shared_conv and c == 1)
            for warr, varr, c, sign, iv_arrs in arrays
        ]


_PLANS: "weakref.WeakKeyDictionary[DriftedState, dict]" = weakref.WeakKeyDictionary()
_PLANS_LOCK = threading.Lock()


def mvm_plan(ds: DriftedState, K) -> MvmPlan:
    """The cached :class:`MvmPlan` of ``ds`` for kernel set ``K``."""
    with _PLANS_LOCK:
        d = _PLANS.get(ds)
        if d is None:
            d = _PLANS[ds] = {}
        pl = d.get(K.name)
    if pl is None:
        pl = MvmPlan(ds, K)
        with _PLANS_LOCK:
            d[K.name] = pl
    return pl


def _mvm(ds: DriftedState, xc: np.ndarray, rng, K, want_masks: bool, rowmax=None, bound_scale: float = 1.0):
    pl = mvm_plan(ds, K)
    grid = ds.state.grid
    batch = xc.shape[0]
    n_out, n_t = grid.n_out, grid.n_in_tiles
    dt = xc.dtype
    dac = dac_stage(ds.state, pl.dac, xc, rng, K, want_masks, rowmax=rowmax, bound_scale=bound_scale)
    y = np.zeros((batch, n_out), dtype=dt)
    sat = np.zeros((batch, n_t, n_out), dtype=np.bool_) if want_masks else np.zeros((0, 0, 0), np.bool_)
    g = max(1, min(n_t, _GROUP_BYTES // max(1, batch * n_out * dt.itemsize)))
    groups = [(k0, min(k0 + g, n_t)) for k0 in range(0, max(n_t, 1), g)]
    part = scratch("part", (g, batch, n_out), dt)
    acc = scratch("acc", (batch, n_out), np.float64)
    adc_kernel = K.adc_tiles.sized(part.size)
    for xin, rowscale in input_planes(pl.dac, dac):
        # the I-V's |V| V and V^3 (per v_read), for the terms the profile has
        xiv = (xin * np.abs(xin) if pl.iv[0] else None, xin * xin * xin if pl.iv[1] else None)
        ops = pl.gemm.plane(xin, xiv, part)
        for stream in pl.streams:
            acc.fill(0.0)
            for k0, k1 in groups:
                var, var16 = pl.gemm.group(ops, stream, k0, k1)
                convert_group(adc_kernel, pl.adc, stream, part[: k1 - k0], var, var16, k0, k1 == n_t, xin, rowscale,
                              pl.ref_ops, pl.gemm, pl.cols, pl.n_out_tiles, acc, y, sat, want_masks, rng, K)
    return y, dac.x_q, dac.clip, (sat if want_masks else None)


def _mvm_iterative(ds: DriftedState, xc: np.ndarray, rng, K, rowmax, max_passes: int):
    """Iterative bound management (``adc.bound_management.kind: iterative``, aihwkit's ITERATIVE):
    pass 1 reads every row; pass p = 2 .. max_passes reads again, with the DAC bound times
    2^(p-1), the rows of which some ADC saturated in pass p - 1 (each pass's draws in the order of
    :func:`tile_mvm`, over those rows); a row keeps its last pass.  Returns _mvm's four arrays
    (masks of the kept passes) and the passes per row ``[B]`` int64."""
    y, x_q, clip, sat = _mvm(ds, xc, rng, K, True, rowmax)
    passes = np.ones(xc.shape[0], dtype=np.int64)
    redo = sat.any(axis=(1, 2))
    for p in range(2, max_passes + 1):
        rows = np.flatnonzero(redo)
        if rows.size == 0:
            break
        y2, xq2, clip2, sat2 = _mvm(ds, xc[rows], rng, K, True, None if rowmax is None else rowmax[rows],
                                    bound_scale=float(2 ** (p - 1)))
        y[rows], x_q[rows], clip[rows], sat[rows] = y2, xq2, clip2, sat2
        passes[rows] = p
        redo[:] = False
        redo[rows] = sat2.any(axis=(1, 2))
    return y, x_q, clip, sat, passes


def _count_bad(arrays) -> tuple[int, int]:
    """(non-finite entries, entries) over the arrays that are set."""
    bad = total = 0
    for a in arrays:
        if a is not None and a.size:
            bad += int(a.size - np.count_nonzero(np.isfinite(a)))
            total += a.size
    return bad, total


def _nonfinite_error(y: np.ndarray, ds: DriftedState, x: np.ndarray, x_q: np.ndarray, factor) -> NonFiniteError:
    """The :class:`NonFiniteError` for a read whose output ``y`` holds NaN/Inf, naming the first
    stage (programming, drift, DAC, GEMM + ADC, compensation) whose values are non-finite.

    Only called once ``y`` is known to be bad, so a finite read pays one ``isfinite`` over y.
    The inputs were checked on entry (:func:`.inputs.prepare_x`); finite inputs and a profile
    whose laws validated can still overflow float32 in the products (|x| |W| n_in > 3.4e38)."""
    st = ds.state
    stages = [
        ("programming (the state's conductances and scales)",
         (st.g_pos, st.g_neg, st.nu_pos, st.nu_neg, st.scales, st.adc_gain, st.adc_offset_lsb),
         "check the profile's conductance and programming-noise fields"),
        (f"drift (the weights read at t_s={ds.t_s:g} s)",
         (ds.w, ds.wn, ds.v, ds.vn, ds.vref, ds.w2, ds.w3, ds.w2n, ds.w3n),
         "check the profile's drift law at this time, or read at an earlier t_s"),
        ("DAC (the converted inputs)", (x_q,), "check dac.range and the input scale"),
        ("GEMM + ADC (the summed column currents)", (y,),
         f"the products overflow {st.dtype} (max |x| = {float(np.abs(x).max(initial=0.0)):.3g}): "
         "scale the inputs down or use a DAC with a fixed range"),
    ]
    if factor is not None:
        stages.insert(3, ("drift compensation (its factor)", (np.asarray(factor),),
                          "recalibrate the compensation (its reference read was not finite)"))
    for name, arrays, fix in stages:
        bad, total = _count_bad(arrays)
        if bad:
            return NonFiniteError(f"tile_mvm: {bad} of {total} values are NaN/Inf after the {name} stage "
                                  f"(profile {st.profile.name!r}, shape {st.shape}): {fix}")
    bad, total = _count_bad((y,))
    return NonFiniteError(f"tile_mvm: {bad} of {total} outputs are NaN/Inf (profile {st.profile.name!r})")


def tile_mvm(x, state, *, t_s: float | None = None, rng: SeedLike, compensation=None,
             return_masks: bool = False, backend_name: str = "numba"):
    """``y = x W^T`` through the simulated chip: ``x [batch, in]`` (or ``[in]``) -> ``y [batch, out]``.

    With a :class:`ProgrammedState`, ``t_s`` (seconds since programming, 0 allowed) is required
    and the state is drifted first (drawing its 1/f noise from ``rng``); with a
    :class:`DriftedState` its snapshot is used.  Then, drawing in this order from ``rng``:
    DAC noise ``[batch, in]``; per input bit plane (bit-serial DAC: ``dac.bit_serial``, planes
    p = 0, 1, ..., see :func:`~.dac_stage.bit_planes`; else one pass), per conversion stream
    (G+ - G-, or G+ then G- with digital subtraction), per input tile in order, the draws of
    :mod:`.adc_stage` (each one ``normals`` call, only when the profile has it; drawn tile by
    tile, so only a group's worth is ever held).

    Per input tile k: the products of :mod:`.gemm` (float32 chips: per-read sigma within a
    relative 1.5 2^-8 of exact, from the bfloat16 variance GEMM), then the fused ADC kernel
    (:func:`cimsim.kernels.converters.adc_tiles`) converts the group's tile columns, adds
    ``sqrt(var_k) z`` before the ADC and sums the tiles in float64, in tile order across the
    groups, into y.  Per-state constants (:class:`MvmPlan`) are built on first use and cached
    with the :class:`DriftedState`.  The output is in weight x input units, dtype of ``x``
    (computed in the chip's dtype); no bias.  ``compensation`` multiplies y by its factor read
    at the snapshot's time (its readout draws from ``rng`` after the MVM).
    With iterative bound management (``adc.bound_management``) the rows whose read saturated an
    ADC are read again with the DAC bound doubled, up to ``max_passes`` reads (each drawing as
    above, over those rows; see :func:`_mvm_iterative`); the masks are then a
    :class:`~.snapshot.ManagedMvmMasks` whose ``adc_passes`` counts them.
    ``return_masks=True`` also returns :class:`MvmMasks`.  A NaN/Inf in the output raises
    :class:`~cimsim.errors.NonFiniteError` naming the first stage where one appeared.
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
    x2, squeeze, rowmax = prepare_x(x, st.dtype, st.shape[1], st.weight_shape, K)
    out_dtype = x2.dtype if x2.dtype.kind == "f" else st.dtype
    xc = np.ascontiguousarray(x2, dtype=st.dtype)
    if ds is None:
        ds = drift_state(st, t, rng, K, noiseless=False)
    bm = st.profile.adc.bound_management
    passes = None
    if isinstance(bm, BoundManagementIterative):
        y, x_q, clip, sat, passes = _mvm_iterative(ds, xc, rng, K, rowmax, bm.max_passes)
    else:
        y, x_q, clip, sat = _mvm(ds, xc, rng, K, return_masks, rowmax)
    n_slices = st.profile.mapping.weight_slices
    if n_slices > 1:  # bit slicing: a weight's slice columns, each converted, summed digitally
        y = y.reshape(y.shape[0], -1, n_slices).sum(axis=2, dtype=np.float64).astype(y.dtype)
        if sat is not None:
            sat = sat.reshape(sat.shape[0], sat.shape[1], -1, n_slices).any(axis=3)
    factor = None
    if compensation is not None:
        factor = np.asarray(compensation.factor(ds, rng, backend_name=backend_name), dtype=y.dtype)
        y = y * factor
    y = y.astype(out_dtype, copy=False)
    if not np.isfinite(y).all():
        raise _nonfinite_error(y, ds, xc, x_q, factor)
    if squeeze:
        y = y[0]
    if not return_masks:
        return y
    x_q = x_q.astype(out_dtype, copy=False)
    if squeeze:
        x_q, clip, sat = x_q[0], clip[0], sat[0]
    if passes is not None:
        return y, ManagedMvmMasks(x_q=x_q, dac_clip=clip, adc_sat=sat, adc_passes=passes[0] if squeeze else passes)
    return y, MvmMasks(x_q=x_q, dac_clip=clip, adc_sat=sat)
