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
"""

from __future__ import annotations

import torch

from .._threads import release_free_heap

__all__ = ["AnalogMatmulSTE", "TRIM_MIN_WEIGHTS"]

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
                gk = g.masked_fill(adc_sat[:, k, :], 0.0)
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

