"""The extended straight-through estimator: one ``torch.autograd.Function`` and its helpers.

A hardware-mode forward runs in two steps:

1. :func:`hardware_mvm` (outside autograd, on detached numpy arrays) programs the chip from the
   current float weights and runs :func:`cimsim.crossbar.tile_mvm` with ``return_masks=True``:
   the noisy, quantised output ``y_hw`` plus what the backward needs (``x_q``, the DAC-clip mask
   and the per-tile ADC-saturation mask).  Seed ``s`` means exactly what a deployed chip with seed
   ``s`` means: ``prog, read = split_seed(s)``; ``program_matrix(W, profile, rng=prog)``;
   ``tile_mvm(x, state, t_s=t, rng=read)``.  So the training forward *is* the chip's forward.
2. :class:`AnalogMatmulSTE` adds the bias digitally and defines the backward (the equation is in
   its docstring).  It saves only ``x_q`` (or ``x``), the boolean masks, and the backward weight
   (the float ``W`` itself, a Parameter that is alive anyway, or the programmed effective weights
   when asked): nothing of the noise model.

:func:`analog_matmul` chains the two; :func:`programming_noise_std` gives the per-weight standard
deviation used by the ``noise_injection`` training mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .._threads import release_free_heap
from ..crossbar import DriftedState, program_drifted, program_matrix, tile_mvm
from ..errors import ParameterError, ShapeError
from ..peripherals import dac_plan
from ..rng import SeedLike, as_generator, split_seed

__all__ = [
    "AnalogMatmulSTE",
    "HardwareResult",
    "hardware_mvm",
    "analog_matmul",
    "programming_noise_std",
    "BACKWARD_WEIGHTS",
]

BACKWARD_WEIGHTS = ("float", "programmed")


# --------------------------------------------------------------------------- hardware forward
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


def _dac_is_ideal(profile) -> bool:
    return dac_plan(profile.dac).identity


def check_dense(x: torch.Tensor) -> None:
    """Refuse a nested tensor with a named error (the chip takes dense batches)."""
    if x.is_nested:
        raise ParameterError(
            "analog layers take dense tensors, not nested ones (nn.TransformerEncoder builds nested tensors from a "
            "src_key_padding_mask in eval): build it with nn.TransformerEncoder(..., enable_nested_tensor=False)"
        )


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.contiguous().numpy()


def _to_torch(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.device != like.device:
        t = t.to(like.device)
    return t


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
) -> HardwareResult:
    """Run ``x [batch, in] @ W[out, in]^T`` on the simulated chip, outside autograd.

    Either ``seed`` (program the chip from ``weight`` now: ``prog, read = split_seed(seed)``) or
    ``state`` (an already programmed ``ProgrammedState``/``DriftedState``) plus ``rng`` (the read
    generator) is given. ``masks=False`` skips the masks (inference). The result is in ``x``'s
    dtype and on its device.
    """
    if backward_weights not in BACKWARD_WEIGHTS:
        raise ParameterError(f"backward_weights must be one of {BACKWARD_WEIGHTS} (got {backward_weights!r})")
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ShapeError(
            f"hardware_mvm needs x [batch, in] and weight [out, in] with equal 'in' "
            f"(got x {tuple(x.shape)} and weight {tuple(weight.shape)})"
        )
    return _hardware_mvm(x, weight, profile, seed, state, rng, t_s, masks, backward_weights, compensation)


def _hardware_mvm(x, weight, profile, seed, state, rng, t_s, masks, backward_weights, compensation):
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
    else:
        if rng is None:
            raise ParameterError("hardware_mvm with a programmed state needs rng= (the chip's read generator)")
        read = as_generator(rng)
        profile = state.profile
    w_prog = None
    if masks and backward_weights == "programmed":
        # Drift explicitly (what tile_mvm does first with the same generator, so the forward's
        # bits do not change) to read the weights this very chip realised, 1/f noise included.
        if not isinstance(state, DriftedState):
            if t_s is None:
                raise ParameterError("hardware_mvm on a ProgrammedState needs t_s (seconds since programming, 0 allowed)")
            state = state.drift(t_s, read)
        t_s = None
        w_prog = state.effective_weights()
    xn = _to_numpy(x)
    kwargs = {"rng": read}
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
    return HardwareResult(
        _to_torch(y, x).to(x.dtype),
        x_q,
        None if dac_clip is None else _to_torch(dac_clip, x),
        None if adc_sat is None else _to_torch(adc_sat, x),
        None if w_prog is None else _to_torch(np.asarray(w_prog), x).to(x.dtype),
        rows,
    )


# --------------------------------------------------------------------------- the STE
#: matrices of at least this many weights release the C heap's free pages after their backward
TRIM_MIN_WEIGHTS = 1 << 20


class AnalogMatmulSTE(torch.autograd.Function):
    r"""Extended straight-through estimator for one analog matrix-vector product.

    Forward (the hardware output ``y_hw = F_hw(W, x; xi)`` was computed outside autograd by
    :func:`hardware_mvm`; this adds the bias digitally)::

        y = y_hw + b

    Backward, with ``g = dL/dy`` from the noisy forward, ``m_out[:, k, :] = ~adc_sat[:, k, :]``
    (zero where input tile ``k``'s partial sum hit an ADC rail), ``m_in = ~dac_clip``, ``x_q`` the
    DAC-quantised input (``x`` when the DAC is ideal) and ``W_b`` the float ``W`` (default) or the
    programmed effective weights (``backward_weights="programmed"``); for every input tile
    ``k`` (inputs ``I_k = k*rows : (k+1)*rows``)::

        G[:, I_k]     = (m_out[:, k, :] * g) @ W_b[:, I_k]          (= dL/dx_q)
        dL/dx         = m_in * G
        dL/dW[:, I_k] = (m_out[:, k, :] * g)^T @ x_q[:, I_k]
        dL/db         = sum_batch g

    With a learnable DAC input range ``alpha`` (the DAC clips at ``|x| = alpha`` and quantises
    with step ``alpha / L``; LSQ/PACT-style range learning)::

        dL/dalpha = sum( G * (sign(x) where clipped, else (x_q - x) / alpha) )

    With no saturation anywhere ``G`` and ``dL/dW`` are one GEMM each (``g @ W_b`` and
    ``g^T @ x_q``); with the ``ideal`` profile this is exactly the backward of
    ``torch.nn.functional.linear``.

    ``apply(x, weight, bias, y_hw, x_q, dac_clip, adc_sat, w_b, tile_rows, alpha)``: ``x [B, in]``,
    ``weight [out, in]``, ``bias [out]`` or ``None``, ``y_hw [B, out]`` (no grad),
    ``x_q [B, in]`` or ``None``, ``dac_clip [B, in]`` bool or ``None`` (no clipping),
    ``adc_sat [B, T, out]`` bool or ``None`` (no saturation), ``w_b [out, in]`` or ``None``
    (use ``weight``), ``tile_rows`` int, ``alpha`` a 0-d tensor or ``None``. Only
    ``save_for_backward`` holds tensors: ``x_q`` (or ``x``), the two masks and ``W_b`` (plus
    ``x`` when ``alpha`` is learnt), each only when the requested gradients need it. After the
    backward of a matrix of at least :data:`TRIM_MIN_WEIGHTS` weights the C heap's free pages go
    back to the OS (:func:`~cimsim._threads.release_free_heap`: what programming the chip
    freed, so that the optimizer step does not stack on it; no value changes).
    """

    @classmethod
    def apply(cls, *args):
        # ``Function.apply`` binds the arguments with ``inspect.signature`` on every call when
        # ``setup_context`` is defined (~50 us, a third of a small layer's step). ``forward`` has
        # no defaults and is called positionally, so binding is a no-op: skip it unless a
        # functorch transform is active (then take the documented path).
        if len(args) == 10 and not torch._C._are_functorch_transforms_active():
            return super(torch.autograd.Function, cls).apply(*args)
        return super().apply(*args)

    @staticmethod
    def forward(x, weight, bias, y_hw, x_q, dac_clip, adc_sat, w_b, tile_rows, alpha):
        if bias is None:
            return y_hw.clone()
        return torch.add(y_hw, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, _y_hw, x_q, dac_clip, adc_sat, w_b, tile_rows, alpha = inputs
        need_x, need_w, need_a = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[9]
        need_g = need_x or need_a
        xq = x if x_q is None else x_q
        ctx.save_for_backward(
            xq if (need_w or need_a) else None,
            dac_clip if need_g else None,
            adc_sat if (need_g or need_w) else None,
            (weight if w_b is None else w_b) if need_g else None,
            x if need_a else None,
            alpha if need_a else None,
        )
        ctx.tile_rows = int(tile_rows)  # plain ints: the geometry of the tiles and the matrix, no tensor
        ctx.n_weights = int(weight.numel())

    @staticmethod
    def backward(ctx, g):
        x_s, dac_clip, adc_sat, w_b, x_raw, alpha = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_a = ctx.needs_input_grad[9]
        need_g = need_x or need_a
        G = dw = db = da = None
        if adc_sat is None:
            if need_g:
                G = g @ w_b.to(g.dtype)
            if need_w:
                dw = g.t() @ x_s.to(g.dtype)
        else:
            rows = ctx.tile_rows
            if need_g:
                G = g.new_empty((g.shape[0], w_b.shape[1]))
            if need_w:
                dw = g.new_empty((g.shape[1], x_s.shape[1]))
            for k in range(adc_sat.shape[1]):
                sl = slice(k * rows, (k + 1) * rows)
                gk = g.masked_fill(adc_sat[:, k, :], 0.0)
                if need_g:
                    torch.matmul(gk, w_b[:, sl].to(g.dtype), out=G[:, sl])
                if need_w:
                    torch.matmul(gk.t(), x_s[:, sl].to(g.dtype), out=dw[:, sl])
        if need_a:
            d = (x_s - x_raw) / alpha
            if dac_clip is not None:
                d = torch.where(dac_clip, torch.sign(x_raw), d)
            da = (G * d.to(G.dtype)).sum().reshape(alpha.shape).to(alpha.dtype)
        dx = None
        if need_x:
            dx = G if dac_clip is None else G.masked_fill(dac_clip, 0.0)
        if need_b:
            db = g.sum(0)
        if ctx.n_weights >= TRIM_MIN_WEIGHTS:
            release_free_heap()
        return dx, dw, db, None, None, None, None, None, None, da


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
        backward_weights=backward_weights, compensation=compensation,
    )
    y_hw = hw.y if k is None else hw.y / k
    if not track:
        return y_hw if bias is None else y_hw + bias
    x_q = hw.x_q if (k is None or hw.x_q is None) else hw.x_q / k
    return AnalogMatmulSTE.apply(
        x, weight, bias, y_hw, x_q, hw.dac_clip, hw.adc_sat, hw.w_programmed, hw.tile_rows, input_range
    )


# --------------------------------------------------------------------------- noise injection
def _mapping_scale(w: torch.Tensor, profile) -> torch.Tensor:
    """Weight scale ``s`` (broadcastable to ``w [out, in]``): ``w_norm = W / s``.

    Follows the profile's mapping: ``per_layer`` one scale, ``per_tile`` one per ``rows x cols``
    tile, ``per_column`` one per output in each input tile; max |W| or the ``clip_percentile``
    of |W| in each group. A group of zeros gets scale 1.
    """
    out_f, in_f = w.shape
    rows, cols = int(profile.tile.rows), int(profile.tile.cols)
    pct = profile.mapping.clip_percentile
    kind = profile.mapping.scaling
    a = w.abs()

    def group_max(block: torch.Tensor) -> torch.Tensor:  # [groups, n] -> [groups]
        if pct is None:
            return block.amax(dim=1)
        return torch.from_numpy(np.percentile(block.cpu().double().numpy(), pct, axis=1)).to(block)

    n_i = -(-in_f // rows)
    n_o = -(-out_f // cols)
    if kind == "per_layer":
        s = group_max(a.reshape(1, -1)).reshape(1, 1)
    elif kind == "per_column":
        if n_i == 1:
            s = group_max(a)[:, None]
        else:
            s = torch.stack([group_max(a[:, k * rows:(k + 1) * rows]) for k in range(n_i)], 1)
            s = s.repeat_interleave(rows, dim=1)[:, :in_f]
    else:  # per_tile
        s = torch.stack([
            torch.stack([group_max(a[j * cols:(j + 1) * cols, k * rows:(k + 1) * rows].reshape(1, -1))[0]
                         for k in range(n_i)])
            for j in range(n_o)
        ])
        s = s.repeat_interleave(cols, dim=0)[:out_f].repeat_interleave(rows, dim=1)[:, :in_f]
    return torch.where(s > 0, s, torch.ones_like(s))


def _sigma_us(g: torch.Tensor, profile) -> torch.Tensor:
    """Programming-noise std (µS) at target conductance ``g`` (µS) for the profile's noise kind."""
    noise = profile.programming.noise
    kind = noise.kind
    if kind == "none":
        return torch.zeros_like(g)
    if kind == "constant":
        return torch.full_like(g, float(noise.sigma_us))
    if kind == "relative":
        return g.abs() * float(noise.sigma_rel)
    g_max = float(profile.conductance.g_max_us)
    xg = g / g_max
    fn = noise.sigma
    if getattr(fn, "kind", None) == "polynomial":  # evaluate in torch (Horner): the common PCM fit
        coeffs = [float(c) for c in fn.coeffs]
        y = torch.full_like(xg, coeffs[-1])
        for c in reversed(coeffs[:-1]):
            y.mul_(xg).add_(c)
        if fn.min is not None or fn.max is not None:
            y.clamp_(min=fn.min, max=fn.max)
    else:
        y = torch.from_numpy(np.asarray(fn.evaluate(xg.cpu().numpy()), dtype=np.float64)).to(g)
    return y.clamp_min_(0.0).mul_(g_max / float(noise.g_ref_us))


@torch.no_grad()
def programming_noise_std(weight: torch.Tensor, profile) -> torch.Tensor:
    """Std of the programming noise of each weight, in weight units (no gradient).

    The weight is mapped as the crossbar does (scale ``s`` per the profile's mapping, ``w_norm =
    clip(W / s, -1, 1)``): ``differential`` puts ``G+ = g_min + max(w_norm, 0) * (g_max - g_min)``
    and ``G- = g_min + max(-w_norm, 0) * (g_max - g_min)`` on two devices with independent noise,
    so ``sigma_w = sqrt(sigma(G+)^2 + sigma(G-)^2) * s / (g_max - g_min)``; ``single_reference``
    puts ``G = g_min + (w_norm + 1)/2 * (g_max - g_min)`` and ``sigma_w = 2 sigma(G) s / (g_max - g_min)``.
    With bit slicing (``mapping.weight_slices`` S, base n, :func:`cimsim.crossbar.program._columns`)
    slice s holds digit d_s on its pair, read back with weight c_s:
    ``sigma_w = sqrt(sum_s c_s^2 (sigma(g_min + d_s/(n-1) span)^2 + sigma(g_min)^2)) * s / span``.
    Only the Gaussian programming noise is modelled (this is the noise-injection baseline, not
    the chip).
    """
    w = weight.detach()
    if w.dim() != 2:
        w = w.reshape(w.shape[0], -1)
    c = profile.conductance
    g_min, g_max = float(c.g_min_us), float(c.g_max_us)
    span = g_max - g_min
    s = _mapping_scale(w, profile)
    wn = (w / s).clamp(-1.0, 1.0)
    n_slices = profile.mapping.weight_slices
    if n_slices > 1:  # differential only (the schema refuses other mappings with slices)
        n = int(c.n_levels)
        m = n**n_slices - 1
        code = torch.round(wn.abs() * m).to(torch.int64)
        sig0 = _sigma_us(torch.full((1,), g_min, dtype=w.dtype, device=w.device), profile).square()
        var = torch.zeros_like(wn)
        for si in range(n_slices):
            digit = torch.div(code, n**si, rounding_mode="floor").remainder(n).to(w.dtype)
            g_used = digit.mul_(span / (n - 1)).add_(g_min)
            var += (n**si * (n - 1) / m) ** 2 * (_sigma_us(g_used, profile).square() + sig0)
        out = var.sqrt_().mul_(s).div_(span)
    elif profile.mapping.kind == "differential":
        # one device of the pair sits at g_min (the unused one), the other at g_min + |w_norm| span
        g_used = wn.abs_().mul_(span).add_(g_min)
        sig = _sigma_us(g_used, profile)
        sig0 = _sigma_us(torch.full((1,), g_min, dtype=w.dtype, device=w.device), profile)
        out = sig.square_().add_(sig0.square()).sqrt_().mul_(s).div_(span)
    else:
        g = wn.add_(1.0).mul_(0.5 * span).add_(g_min)
        out = _sigma_us(g, profile).mul_(s).mul_(2.0 / span)
    return out.reshape(weight.shape).to(weight.dtype)


class MatrixReader:
    """One crossbar read many times in one forward (a recurrent layer's time steps, an attention
    layer's projections): ``reader(x, b)`` = :func:`analog_matmul` on its ``DriftedState``."""

    def __init__(self, weight, profile, state, rng, t_s, compensation, backward_weights):
        if not isinstance(state, DriftedState):  # an attached ProgrammedState: drift once per forward
            if t_s is None:
                raise ParameterError("an attached ProgrammedState needs t_s (seconds since programming)")
            state = state.drift(t_s, rng)
        self.weight, self.profile, self.state, self.rng = weight, profile, state, rng
        self.compensation, self.backward_weights = compensation, backward_weights

    def __call__(self, x, bias):
        return analog_matmul(x, self.weight, bias, self.profile, state=self.state, rng=self.rng, t_s=None,
                             backward_weights=self.backward_weights, compensation=self.compensation)


class FloatReader:
    """A (noisy) float matrix with the reader's call signature."""

    def __init__(self, weight):
        self.weight = weight

    def __call__(self, x, bias):
        return F.linear(x, self.weight, bias)
