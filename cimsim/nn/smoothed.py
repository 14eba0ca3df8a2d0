r"""The ``smoothed`` training mode: LOTION-style smoothing on the chip's conductance grid.

LOTION (Low-precision Optimization via sTochastic-noIse smOothiNg; Kwun, Morwani, Su, Gil, Anand
and Kakade, "LOTION: Smoothing the Optimization Landscape for Quantized Training",
arXiv:2510.08757, 2025) replaces the quantised loss ``L(Q(w))`` by its expectation under unbiased
randomized rounding, ``L_s(w) = E[L(w_hat)]``, ``w_hat = RR(w)``: continuous in ``w``, and its
global minima include those of the quantised loss.

The grid is the profile's conductance levels in weight units, as the crossbar maps a weight
(scale ``s`` per scaling group, :func:`cimsim.crossbar.mapping.weight_scales`;
``w_norm = clip(W / s, -1, 1)``; ``n = conductance.n_levels``):

* ``differential``: ``|w_norm|`` on ``k / (n - 1)``: grid ``s k / (n - 1)``, ``|k| <= n - 1``;
* ``single_reference``: ``G = g_min + (w_norm + 1)/2 span`` on the levels: target grid
  ``s (-1 + 2 k / (n - 1))``, ``0 <= k <= n - 1``, read against the tile's mid-range reference
  device, itself on the nearest level ``k_ref`` (``rint((n - 1) / 2)`` as the programming kernel
  rounds it): the realised weight is the target plus ``shift = s (1 - 2 k_ref / (n - 1))`` (half a
  step for even ``n``);
* bit slices (``mapping.weight_slices`` S): ``s C / M``, ``M = n^S - 1``, ``|C| <= M``.

So the targets lie on ``offset + k step`` (:func:`grid_step`), the chip's weights at ``+ shift``. Randomized rounding of ``w`` in the cell
``[lo, hi]`` (``hi = lo + step``): ``w_hat = hi`` with probability ``p = (w - lo) / step``, else
``lo`` (:func:`randomized_round`); ``E[w_hat] = w`` and ``Var[w_hat] = (w - lo)(hi - w)``
(:func:`rounding_variance`). For a quadratic ``L(w) = 1/2 (w - a)^T H (w - a)`` and independent
rounding, ``E[L(w_hat)] = L(w) + 1/2 sum_i H_ii Var[w_hat_i]`` exactly: inside a cell it is the
multilinear interpolation of ``L`` between the cell's corners, so its minimum over a cell lies at
the best corner (grid point), not at the grid point nearest to the continuous minimum.
With ``smoothing_noise=True`` the chip's programming noise is folded in:
``w_hat = RR(w) + sigma_prog(RR(w)) eps`` (levels, then noise, the order the chip programs in;
:func:`cimsim.nn.noise_injection.programming_noise_std`).

Training: each forward draws one ``w_hat`` (from the layer's ``torch.Generator``), so the loss is
an unbiased estimate of ``L_s(w)``; the gradient goes straight to ``w``
(``w + (w_hat - w).detach()``): ``dL/dw_hat`` at the sample. Its expectation is
``E[grad L(w_hat)]``, which for a quadratic equals ``grad L(w)``; alone it leaves out the
curvature term of ``grad L_s``, ``1/2 H_ii d Var_i / dw_i = 1/2 H_ii (lo_i + hi_i - 2 w_i)``,
that pulls ``w`` to a grid point (LOTION's Gauss-Newton regulariser
``1/2 sum_i H_ii Var_i(w)``). With ``smoothing_curvature="fisher"`` the backward adds it
(:class:`Curvature`), ``H_ii`` estimated as Adam estimates its second moment: an exponential
average (``beta = 0.999``, bias-corrected) of the squared gradient ``(dL/dw_hat_i)^2``, a
diagonal Gauss-Newton / empirical-Fisher proxy (exact ``H`` only for the quadratic tests, which
pass ``H`` itself). The term counts the rounding variance only (not the folded programming noise,
whose sigma depends on ``w_hat``), and is 0 where the mapping clips ``w`` to ``+-s``.
:func:`smoothed_quadratic_grad` is the closed form for a known diagonal.
"""

from __future__ import annotations

import numpy as np
import torch

from .noise_injection import _mapping_scale, programming_noise_std

__all__ = ["grid_step", "randomized_round", "rounding_variance", "cell", "smoothed_matrix",
           "smoothed_quadratic_grad", "Curvature", "variance_slope"]

#: decay of the squared-gradient average that estimates the curvature (Adam's beta2)
FISHER_BETA = 0.999


def grid_step(weight: torch.Tensor, profile) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(step, offset, s, shift)`` of the target grid ``offset + k step`` of a matrix ``[out, in]``
    and the chip's read-back shift, in weight units, broadcastable to it (``s`` the mapping's
    scale: weights clip at ``+-s``), or ``None`` when the conductances are continuous
    (``conductance.n_levels`` unset)."""
    n = profile.conductance.n_levels
    if n is None or int(n) < 2:
        return None
    n = int(n)
    s = _mapping_scale(weight.detach(), profile)
    slices = profile.mapping.weight_slices
    zero = torch.zeros_like(s)
    if slices > 1:
        return s / float(n**slices - 1), zero, s, zero
    if profile.mapping.kind == "differential":
        return s / float(n - 1), zero, s, zero
    # the reference's level as the programming kernel computes it: rint((G_mid - g_min) / step) in
    # float64, where fastmath turns the division into a product with 1 / step (for even n the
    # exact value is a tie, k + 1/2, and that product decides it; a test pins it to the chip)
    c = profile.conductance
    g_min, span = float(c.g_min_us), float(c.g_max_us) - float(c.g_min_us)
    k_ref = float(np.rint(((g_min + 0.5 * span) - g_min) * (1.0 / (span / (n - 1)))))
    return s * (2.0 / (n - 1)), -s, s, s * (1.0 - 2.0 * k_ref / (n - 1))


def cell(w: torch.Tensor, step: torch.Tensor, offset: torch.Tensor | float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid cell ``[lo, hi]`` (``hi = lo + step``) holding ``w`` on the grid ``offset + k step``."""
    lo = torch.floor((w - offset) / step) * step + offset
    return lo, lo + step


def randomized_round(w: torch.Tensor, step: torch.Tensor | float, u: torch.Tensor,
                     offset: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Unbiased randomized rounding on the grid ``offset + k step``: ``hi`` where ``u < (w - lo)
    / step``, else ``lo``; ``u ~ U[0, 1)`` of ``w``'s shape (drawn by the caller)."""
    step_t = torch.as_tensor(step, dtype=w.dtype, device=w.device)
    lo, hi = cell(w, step_t, offset)
    return torch.where(u < (w - lo) / step_t, hi, lo)


def rounding_variance(w: torch.Tensor, step: torch.Tensor | float, offset: torch.Tensor | float = 0.0) -> torch.Tensor:
    """``Var[randomized_round(w)] = (w - lo)(hi - w)``."""
    step_t = torch.as_tensor(step, dtype=w.dtype, device=w.device)
    lo, hi = cell(w, step_t, offset)
    return (w - lo) * (hi - w)


def smoothed_quadratic_grad(grad_l: torch.Tensor, h_diag: torch.Tensor, w: torch.Tensor,
                            step: torch.Tensor | float, offset: torch.Tensor | float = 0.0) -> torch.Tensor:
    """The gradient of ``L_s(w) = L(w) + 1/2 sum_i h_i Var_i(w)`` given ``grad_l = grad L(w)`` and
    the diagonal curvature ``h``: ``grad_l + 1/2 h (lo + hi - 2 w)`` (exact for a quadratic ``L``
    with Hessian diagonal ``h``)."""
    step_t = torch.as_tensor(step, dtype=w.dtype, device=w.device)
    lo, hi = cell(w, step_t, offset)
    return grad_l + 0.5 * h_diag * (lo + hi - 2.0 * w)


def variance_slope(w: torch.Tensor, step: torch.Tensor, offset: torch.Tensor | float, s: torch.Tensor) -> torch.Tensor:
    """``d Var[RR(w)] / dw = lo + hi - 2 w`` on the grid, 0 where the mapping clips ``w`` to ``+-s``."""
    wc = torch.minimum(torch.maximum(w, -s), s)
    lo, hi = cell(wc, step, offset)
    return torch.where((w > -s) & (w < s), lo + hi - 2.0 * w, torch.zeros_like(w))


class Curvature(torch.autograd.Function):
    """Value ``w_hat``; gradient to ``W``: ``g + 1/2 h * slope`` with ``g = dL/dw_hat`` and
    ``slope`` from :func:`variance_slope`: the gradient of LOTION's ``1/2 sum_i h_i Var_i(W)``
    added to the straight-through one. ``state``: ``{"h": tensor}`` holds a fixed curvature
    (tests: the Hessian diagonal), or ``{"avg": tensor, "t": int}`` the running average of ``g^2``
    (updated here, before use, and bias-corrected as Adam's second moment)."""

    @staticmethod
    def forward(ctx, weight, w_hat, slope, state):
        ctx.slope, ctx.state = slope, state
        return w_hat.clone()

    @staticmethod
    def backward(ctx, g):
        st = ctx.state
        with torch.no_grad():
            if "h" in st:
                h = st["h"]
            else:
                st["t"] += 1
                st["avg"].mul_(FISHER_BETA).addcmul_(g, g, value=1.0 - FISHER_BETA)
                h = st["avg"] / (1.0 - FISHER_BETA ** st["t"])
            return g + 0.5 * h * ctx.slope, None, None, None


def smoothed_matrix(weight: torch.Tensor, profile, generator: torch.Generator, noise: bool = True,
                    curvature: dict | None = None) -> torch.Tensor:
    """One draw of ``w_hat = RR(clip(W, -s, s)) + shift (+ sigma_prog eps)`` for a matrix ``[out, in]``,
    returned as ``W + (w_hat - W).detach()`` (gradient straight to ``W``), or, with a
    ``curvature`` state (:class:`Curvature`), with LOTION's curvature term added to that gradient.
    Draws ``u`` then ``eps`` (the latter only when ``noise`` and the profile has programming
    noise) from ``generator`` on the CPU (the curvature draws nothing)."""
    w = weight.detach()
    g = grid_step(w, profile)
    slope = None
    if g is None:
        w_hat = w
    else:
        step, offset, s, shift = g
        u = torch.rand(w.shape, generator=generator, dtype=w.dtype).to(w.device)
        w_hat = randomized_round(torch.minimum(torch.maximum(w, -s), s), step, u, offset) + shift
        if curvature is not None:
            slope = variance_slope(w, step, offset, s)
    if noise and profile.programming.noise.kind != "none":
        eps = torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device)
        w_hat = w_hat + programming_noise_std(w_hat, profile) * eps
    if slope is not None and curvature is not None:
        if "h" not in curvature and "avg" not in curvature:
            curvature.update(avg=torch.zeros_like(w), t=0)
        return Curvature.apply(weight, w_hat, slope, curvature)
    return weight + (w_hat - w)
