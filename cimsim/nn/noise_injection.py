"""The ``noise_injection`` training mode: the programming noise's standard deviation in weight units.

The weight is mapped as the crossbar maps it (scale ``s`` from
:func:`cimsim.crossbar.mapping.weight_scales`, the one definition of the mapping's scaling groups
and clipping; ``w_norm = clip(W / s, -1, 1)``), and the noise of the device(s) holding it is
carried back to weight units:

* ``differential``: ``G+ = g_min + max(w_norm, 0) span`` and ``G- = g_min + max(-w_norm, 0) span``
  (``span = g_max - g_min``) on two devices with independent noise:
  ``sigma_w = sqrt(sigma(G+)^2 + sigma(G-)^2) s / span``;
* ``single_reference``: ``G = g_min + (w_norm + 1)/2 span``, ``sigma_w = 2 sigma(G) s / span``;
* bit slicing (``mapping.weight_slices`` S, base n): slice i holds digit d_i on its pair, read
  back with weight ``c_i = n^i (n - 1) / (n^S - 1)``:
  ``sigma_w = sqrt(sum_i c_i^2 (sigma(g_min + d_i/(n-1) span)^2 + sigma(g_min)^2)) s / span``.

``sigma(G)`` is the profile's programming-noise law (``none``, ``constant``, ``relative`` or a
function of ``G / g_max`` scaled by ``g_max / g_ref``). Only the Gaussian programming noise is
modelled: this is the noise-injection baseline, not the chip.

Noise injection's own settings (:class:`~cimsim.nn.config.NoiseSpec`, ``AnalogConfig(noise=...,
noise_grad=...)``): the noise ``a(W) eps`` is the profile's (above), additive at ``level_rel``
times ``max|W|`` (per layer or output channel) or multiplicative ``W (1 + level_rel eps)``
(:func:`noise_scale`); its gradient is straight through the noise or through the noisy weights
(:func:`inject_noise`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..crossbar.mapping import weight_scales
from ..crossbar.tiling import TileGrid
from ._tensors import _to_numpy
from .config import NoiseSpec

__all__ = ["programming_noise_std", "noise_scale", "inject_noise"]


def _mapping_scale(w: torch.Tensor, profile) -> torch.Tensor:
    """Weight scale ``s`` (broadcastable to ``w [out, in]``, in ``w``'s dtype): ``w_norm = W / s``,
    the crossbar's own scales (:func:`~cimsim.crossbar.mapping.weight_scales`) spread over the
    inputs of each tile."""
    out_f, in_f = w.shape
    rows = int(profile.tile.rows)
    grid = TileGrid(out_f, in_f, rows, int(profile.tile.cols))
    s = torch.from_numpy(weight_scales(_to_numpy(w), profile.mapping, grid)).to(w)  # [n_in_tiles, out]
    if profile.mapping.scaling == "per_layer":
        return s[:1, :1]
    s = s.t()
    if s.shape[1] == 1:
        return s
    return s.repeat_interleave(rows, dim=1)[:, :in_f]


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
    """Std of the programming noise of each weight, in weight units (no gradient; the equations
    are in the module docstring). ``weight [out, ...]`` is taken as the matrix ``[out, in]``."""
    return _profile_std(weight.detach(), profile)


def _profile_std(weight: torch.Tensor, profile) -> torch.Tensor:
    """:func:`programming_noise_std`, differentiable in ``weight`` through the noise law
    ``sigma(G(w))`` (the mapping's scale ``s`` is held fixed: it comes from numpy)."""
    w = weight
    if w.dim() != 2:
        w = w.reshape(w.shape[0], -1)
    c = profile.conductance
    g_min, g_max = float(c.g_min_us), float(c.g_max_us)
    span = g_max - g_min
    s = _mapping_scale(w.detach(), profile)
    wn = (w / s).clamp(-1.0, 1.0)
    n_slices = profile.mapping.weight_slices
    if n_slices > 1:  # differential only (the schema refuses other mappings with slices)
        n = int(c.n_levels)
        m = n**n_slices - 1
        code = torch.round(wn.detach().abs() * m).to(torch.int64)  # integer digits: no gradient
        sig0 = _sigma_us(torch.full((1,), g_min, dtype=w.dtype, device=w.device), profile).square()
        var = torch.zeros_like(wn)
        for si in range(n_slices):
            digit = torch.div(code, n**si, rounding_mode="floor").remainder(n).to(w.dtype)
            g_used = digit.mul_(span / (n - 1)).add_(g_min)
            var += (n**si * (n - 1) / m) ** 2 * (_sigma_us(g_used, profile).square() + sig0)
        out = var.sqrt_().mul_(s).div_(span)
    elif profile.mapping.kind == "differential":
        # one device of the pair sits at g_min (the unused one), the other at g_min + |w_norm| span
        g_used = wn.abs() * span + g_min
        sig = _sigma_us(g_used, profile)
        sig0 = _sigma_us(torch.full((1,), g_min, dtype=w.dtype, device=w.device), profile)
        out = (sig.square() + sig0.square()).sqrt() * s / span
    else:
        g = (wn + 1.0) * (0.5 * span) + g_min
        out = _sigma_us(g, profile) * s * (2.0 / span)
    return out.reshape(weight.shape).to(weight.dtype)


def noise_scale(weight: torch.Tensor, profile, spec: NoiseSpec) -> torch.Tensor:
    """The factor ``a(W)`` that multiplies ``eps ~ N(0, 1)`` in noise injection's ``W + a(W) eps``,
    differentiable in ``W``:

    * ``"profile"``: ``a = sigma_prog(W)`` (:func:`programming_noise_std`; ``s`` fixed);
    * ``"additive"``: ``a = level_rel max|W|``, the max over the whole weight (``per="layer"``) or
      over each output channel ``W[i, ...]`` (``per="channel"``);
    * ``"multiplicative"``: ``a = level_rel W``, so ``W + a eps = W (1 + level_rel eps)``.
    """
    if spec.kind == "profile":
        return _profile_std(weight, profile)
    if spec.kind == "multiplicative":
        return weight * spec.level_rel
    if spec.per == "layer":
        return (weight.abs().amax() * spec.level_rel).expand(weight.shape)
    m = weight.abs().reshape(weight.shape[0], -1).amax(1)
    return (m * spec.level_rel).reshape((-1,) + (1,) * (weight.dim() - 1)).expand(weight.shape)


def inject_noise(weight: torch.Tensor, profile, spec: NoiseSpec, grad: str, eps: torch.Tensor) -> torch.Tensor:
    """``W + a(W) eps`` (:func:`noise_scale`) with gradient ``grad``: ``"straight"``, the identity
    (``a(W) eps`` detached), or ``"through"``: ``d/dW = 1 + (da/dW) eps`` (for multiplicative noise
    ``1 + level_rel eps``; for additive per layer, ``1`` plus ``level_rel sign(W_max) sum(g eps)``
    at the weight holding the max)."""
    if grad == "through":
        return weight + noise_scale(weight, profile, spec) * eps
    with torch.no_grad():
        a = noise_scale(weight, profile, spec)
    return weight + a * eps
