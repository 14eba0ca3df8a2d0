r"""The extended straight-through estimator (STE): one ``torch.autograd.Function``.

The hardware forward ``y_hw = F_hw(W, x; xi)`` (noisy, quantised, computed outside autograd by
:func:`cimsim.nn.hardware.hardware_mvm`) is wrapped so that autograd sees ``y = y_hw + b`` and
the backward is, with ``g = dL/dy``, ``m_out[:, k, :] = ~adc_sat[:, k, :]`` (input tile ``k``'s
ADC-saturation mask), ``m_in = ~dac_clip``, ``x_q`` the DAC-quantised input and ``W_b`` the float
or the programmed weights, for every input tile ``k`` (inputs ``I_k``)::

    G[:, I_k]     = (m_out[:, k, :] * g) @ W_b[:, I_k]          (= dL/dx_q)
    dL/dx         = m_in * G
    dL/dW[:, I_k] = (m_out[:, k, :] * g)^T @ x_q[:, I_k]
    dL/db         = sum_batch g
    dL/dalpha     = sum( G * (sign(x) where clipped, else (x_q - x) / alpha) )   (learnable DAC range)

With the ``ideal`` profile this is exactly the backward of ``torch.nn.functional.linear``.

Expected-transfer ADC gradients (``AnalogConfig(adc_backward="expected")``): where Gaussian noise
``n ~ N(0, sigma^2)`` before the converter is comparable to one step, the expected output
``E[ADC(u + n)]`` is smooth in the converter input ``u`` and its slope is exact where the
mask's identity is not. In LSB units (``u`` the converter input in LSB, ``L`` levels per polarity,
thresholds ``theta_j = j + 1/2`` for ``j = -L .. L-1``, one LSB per step)::

    d/du E[ADC(u + n)] = sum_j phi((u - theta_j) / sigma) / sigma          (expected_adc_slope)

which replaces ``m_out`` (one per batch row, input tile and column): about 1 inside the range when
``sigma`` is a step or more, falling off smoothly across the rails. The general form for a
staircase with thresholds ``theta_k``, steps ``step_k`` and noise density ``p``,
``sum_k step_k p((u - theta_k) / c) / c`` (:func:`expected_transfer_slope`), gives the hard-tanh
STE for uniform noise and ``2 s(a)(1 - s(a))`` for a logistic one on a sign unit (the tests).
"""

from __future__ import annotations

import math

import torch

from .._threads import release_free_heap

__all__ = ["AnalogMatmulSTE", "TRIM_MIN_WEIGHTS", "expected_transfer_slope", "expected_adc_slope"]

_NOISES = ("gaussian", "logistic", "uniform")


def _pdf(z: torch.Tensor, noise: str) -> torch.Tensor:
    """Density of the standardised noise (scale 1): N(0, 1), logistic(0, 1), or U[-1, 1]."""
    if noise == "gaussian":
        return torch.exp(-0.5 * z * z) * (1.0 / math.sqrt(2.0 * math.pi))
    if noise == "logistic":
        sg = torch.sigmoid(z)
        return sg * (1.0 - sg)
    if noise == "uniform":
        return (z.abs() < 1.0).to(z.dtype) * 0.5
    raise ValueError(f"noise must be one of {_NOISES} (got {noise!r})")


def expected_transfer_slope(u: torch.Tensor, thresholds, steps, scale: float, noise: str = "gaussian") -> torch.Tensor:
    """``d/du E[Q(u + c Z)] = sum_k step_k p((u - theta_k) / c) / c`` for the staircase ``Q`` that
    jumps by ``step_k`` at ``theta_k`` and noise ``c Z`` (``Z`` of density ``p``: ``"gaussian"``
    N(0, 1), ``"logistic"``, ``"uniform"`` on [-1, 1]; scale ``c > 0``)."""
    th = torch.as_tensor(thresholds, dtype=u.dtype, device=u.device)
    st = torch.as_tensor(steps, dtype=u.dtype, device=u.device)
    z = (u.unsqueeze(-1) - th) / scale
    return (_pdf(z, noise) * st).sum(-1) / scale


def expected_adc_slope(u_lsb: torch.Tensor, levels: int, sigma_lsb: float) -> torch.Tensor:
    """The ADC's ``sum_{j=-L}^{L-1} phi((u - j - 1/2) / sigma) / sigma`` (``u`` in LSB, Gaussian
    noise of ``sigma`` LSB), summed over the thresholds within ``6 sigma + 1`` of ``u`` only (the
    rest add less than ``phi(6) / sigma ~ 6e-9 / sigma`` each)."""
    width = int(math.ceil(6.0 * sigma_lsb)) + 1
    d = torch.arange(-width, width + 1, dtype=u_lsb.dtype, device=u_lsb.device)
    j = torch.floor(u_lsb).unsqueeze(-1) + d  # the thresholds j + 1/2 near u
    z = (u_lsb.unsqueeze(-1) - j - 0.5) * (1.0 / sigma_lsb)
    dens = torch.exp(z.square_().mul_(-0.5)).masked_fill_((j < -levels) | (j > levels - 1), 0.0)
    return dens.sum(-1).mul_(1.0 / (sigma_lsb * math.sqrt(2.0 * math.pi)))

#: matrices of at least this many weights release the C heap's free pages after their backward
TRIM_MIN_WEIGHTS = 1 << 20


class AnalogMatmulSTE(torch.autograd.Function):
    r"""Extended straight-through estimator for one analog matrix-vector product.

    Forward (the hardware output ``y_hw = F_hw(W, x; xi)`` was computed outside autograd by
    :func:`~cimsim.nn.hardware.hardware_mvm`; this adds the bias digitally)::

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
    ``adc_sat [B, T, out]`` bool or ``None`` (no saturation), or a floating ``[B, T, out]``
    tensor of ADC slopes that replaces ``m_out`` (expected-transfer gradients), ``w_b [out, in]`` or ``None``
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
        # ``setup_context`` is defined, a large part of a small layer's step. ``forward`` has
        # no defaults and is called positionally, so binding is a no-op: skip it unless a
        # functorch transform is active (then take the documented path).
        if len(args) == 10 and not torch._C._are_functorch_transforms_active():
            # _C._FunctionBase.apply exists at run time; torch's stub leaves it out
            return super(torch.autograd.Function, cls).apply(*args)  # type: ignore[misc]
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
                sk = adc_sat[:, k, :]
                gk = g.masked_fill(sk, 0.0) if sk.dtype == torch.bool else g * sk.to(g.dtype)
                if G is not None:  # need_g
                    torch.matmul(gk, w_b[:, sl].to(g.dtype), out=G[:, sl])
                if dw is not None:  # need_w
                    torch.matmul(gk.t(), x_s[:, sl].to(g.dtype), out=dw[:, sl])
        if need_a:
            assert G is not None  # need_a implies need_g
            d = (x_s - x_raw) / alpha
            if dac_clip is not None:
                d = torch.where(dac_clip, torch.sign(x_raw), d)
            da = (G * d.to(G.dtype)).sum().reshape(alpha.shape).to(alpha.dtype)
        dx = None
        if need_x:
            assert G is not None  # need_x implies need_g
            dx = G if dac_clip is None else G.masked_fill(dac_clip, 0.0)
        if need_b:
            db = g.sum(0)
        if ctx.n_weights >= TRIM_MIN_WEIGHTS:
            release_free_heap()
        return dx, dw, db, None, None, None, None, None, None, da

