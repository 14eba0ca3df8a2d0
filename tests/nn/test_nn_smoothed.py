"""Smoothed (LOTION) training: randomized rounding on the conductance grid and its closed forms on
a quadratic loss with a correlated Hessian."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cimsim.crossbar import program_matrix
from cimsim.nn import AnalogLinear, randomized_round, rounding_variance
from cimsim.nn.smoothed import cell, grid_step, smoothed_quadratic_grad
from cimsim.profiles.loader import load_profile

D = torch.float64


def _rr(w, step, n, seed):
    u = torch.rand((n,) + w.shape, generator=torch.Generator().manual_seed(seed), dtype=D)
    return randomized_round(w.expand((n,) + w.shape), step, u)


def test_randomized_rounding_is_unbiased_with_the_cell_variance():
    """Per coordinate: mean within 5 SE of w; sample variance within 5 SE of (w - lo)(hi - w),
    SE from the two-point law's fourth moment, step^4 p q (1 - 3 p q)."""
    step, n = 0.25, 50_000
    w = torch.tensor([-0.61, -0.25, 0.0, 0.07, 0.3, 0.49, 0.999], dtype=D)
    s = _rr(w, step, n, 0)
    lo, hi = cell(w, torch.tensor(step, dtype=D))
    assert torch.all((s == lo) | (s == hi))
    var = rounding_variance(w, step)
    torch.testing.assert_close(var, (w - lo) * (hi - w))
    p = (w - lo) / step
    pq = p * (1 - p)
    se_mean = (var / n).sqrt()
    se_var = (step**4 * pq * (1 - 3 * pq) / n).clamp_min(0).sqrt()
    assert torch.all((s.mean(0) - w).abs() <= 5 * se_mean + 1e-12)
    assert torch.all((s.var(0) - var).abs() <= 5 * se_var + 1e-12)


H3 = torch.tensor([[2.0, 1.2, -0.6], [1.2, 1.5, 0.4], [-0.6, 0.4, 1.0]], dtype=D)  # SPD, correlated
A3 = torch.tensor([0.13, -0.42, 0.77], dtype=D)


def _quad(w, h, a):
    d = w - a
    return 0.5 * torch.einsum("...i,ij,...j->...", d, h, d)


def test_expected_quadratic_loss_adds_half_the_hessian_diagonal_times_the_variance():
    """E[L(w_hat)] = L(w) + 1/2 sum_i H_ii (w_i - lo_i)(hi_i - w_i): exactly, by enumerating the
    cell's 8 corners with their probabilities, and by Monte Carlo within 5 SE."""
    step = 0.5
    w = torch.tensor([0.31, -0.12, 0.64], dtype=D)
    closed = _quad(w, H3, A3) + 0.5 * (torch.diagonal(H3) * rounding_variance(w, step)).sum()
    lo, hi = cell(w, torch.tensor(step, dtype=D))
    p = (w - lo) / step
    exact = 0.0
    for bits in itertools.product((0, 1), repeat=3):
        b = torch.tensor(bits, dtype=D)
        exact += float(torch.prod(torch.where(b == 1, p, 1 - p))) * float(_quad(lo + b * step, H3, A3))
    assert abs(exact - closed.item()) < 1e-12
    n = 100_000
    vals = _quad(_rr(w, step, n, 1), H3, A3)
    assert abs(vals.mean().item() - closed.item()) < 5 * vals.std().item() / np.sqrt(n)


H2 = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=D)
A2 = torch.tensor([0.45, 0.35], dtype=D)  # nearest grid point (0, 0): L = 0.304; best (1, 0): L = 0.039


def _smoothed2(w):
    return _quad(w, H2, A2) + 0.5 * (torch.diagonal(H2) * rounding_variance(w, 1.0)).sum(-1)


def test_smoothed_minimum_over_the_cell_is_the_best_grid_point_not_the_nearest():
    """On the unit grid with H = [[1, .9], [.9, 1]] and continuous minimum a = (0.45, 0.35), round-
    to-nearest gives (0, 0) (L = 0.304) while the best grid point is (1, 0) (L = 0.039, the best of
    all grid points in [-3, 3]^2). The smoothed loss over the cell [0, 1]^2 (a 201 x 201 grid) is
    smallest at (1, 0), where it equals L; and descending its gradient from a ends there too."""
    pts = torch.tensor(list(itertools.product(range(-3, 4), repeat=2)), dtype=D)
    best = pts[_quad(pts, H2, A2).argmin()]
    assert best.tolist() == [1.0, 0.0] and torch.round(A2).tolist() == [0.0, 0.0]
    t = torch.linspace(0, 1, 201, dtype=D)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    ls = _smoothed2(grid)
    assert grid[ls.argmin()].tolist() == [1.0, 0.0]
    assert abs(ls.min().item() - _quad(best, H2, A2).item()) < 1e-12
    w = A2.clone()
    for i in range(400):  # gradient descent on the smoothed loss (exact diagonal curvature), decaying steps
        g = smoothed_quadratic_grad(H2 @ (w - A2), torch.diagonal(H2), w, 1.0)
        w = w - 0.05 / (1 + i / 50) * g
    assert torch.allclose(w, best, atol=0.01), w
    w = A2.clone()
    for _ in range(400):  # the same without the curvature term: back to a, which rounds to (0, 0)
        w = w - 0.05 * (H2 @ (w - A2))
    assert torch.round(w).tolist() == [0.0, 0.0]


def test_sample_gradient_estimates_the_gradient_at_w_not_the_smoothed_one():
    """What the training mode's straight sample gradient estimates: E[grad L(w_hat)] = H (w - a)
    (Monte Carlo, 5 SE), which lacks the smoothed loss's curvature term 1/2 H_ii (lo + hi - 2 w)."""
    w, n = torch.tensor([0.3, 0.8], dtype=D), 100_000
    g = (_rr(w, 1.0, n, 2) - A2) @ H2
    se = g.std(0) / np.sqrt(n)
    assert torch.all((g.mean(0) - H2 @ (w - A2)).abs() < 5 * se)
    full = smoothed_quadratic_grad(H2 @ (w - A2), torch.diagonal(H2), w, 1.0)
    assert torch.all((g.mean(0) - full).abs() > 10 * se)


@pytest.mark.parametrize("n", [7, 8])
@pytest.mark.parametrize("kind", ["differential", "single_reference"])
def test_grid_is_the_chips_conductance_levels_in_weight_units(kind, n):
    """A noise-free float64 chip with 7 or 8 levels (rint to the levels) holds each weight at
    round-to-nearest on grid_step's target grid offset + k step, plus the shift (single_reference:
    the mid-range reference device sits on level 3 or 4 of 0..7 for 8 levels, half a step off); randomized rounding
    in the layer lands on the same grid."""
    prof = load_profile("pcm", overrides={"conductance.n_levels": n, "mapping.kind": kind, "tile.rows": 16,
                                          "tile.cols": 8, "programming.noise": {"kind": "none"},
                                          "drift": {"kind": "none"}, "read_noise": {"kind": "none"}})
    w = torch.randn(10, 40, generator=torch.Generator().manual_seed(3), dtype=D)
    step, off, _, shift = grid_step(w, prof)
    assert torch.all(shift == 0) if kind == "differential" or n == 7 else torch.allclose(shift.abs(), step / 2)
    eff = torch.from_numpy(program_matrix(w.numpy(), prof, rng=0).effective_weights(0.0, 0)).to(D)
    nearest = randomized_round(w, step, torch.full_like(w, 0.5), off) + shift
    torch.testing.assert_close(eff, nearest, rtol=0, atol=1e-9)
    off = off + shift
    layer = AnalogLinear(40, 10, profile=prof, mode="smoothed", dtype=D)
    with torch.no_grad():
        layer.weight.copy_(w)
    k2 = (layer.smoothed_weight().detach() - off) / step
    torch.testing.assert_close(k2, torch.round(k2), rtol=0, atol=1e-9)


def test_smoothed_layer_is_unbiased_with_a_straight_gradient():
    """Mode "smoothed" (8 levels, no programming noise): the mean of 4000 draws is W within 5 SE
    per weight, and dL/dW equals dL/dw_hat of the drawn weights; with smoothing_noise=True the
    programming noise is added on top."""
    prof = load_profile("pcm", overrides={"conductance.n_levels": 8})
    layer = AnalogLinear(12, 5, profile=prof, mode="smoothed", smoothing_noise=False, seed=1, dtype=D)
    w = layer.weight.detach()
    step = grid_step(w, prof)[0].expand(w.shape)
    d = torch.stack([layer.smoothed_weight().detach() for _ in range(4000)])
    se = (rounding_variance(w, step) / 4000).sqrt()
    assert torch.all((d.mean(0) - w).abs() <= 5 * se + 1e-12)
    x = torch.randn(7, 12, dtype=D)
    layer.reseed(9)
    layer(x).square().sum().backward()
    layer.reseed(9)
    wh = layer.smoothed_weight().detach().requires_grad_()
    torch.nn.functional.linear(x, wh, layer.bias).square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, wh.grad)
    noisy = AnalogLinear(12, 5, profile=prof, mode="smoothed", seed=1, dtype=D)
    with torch.no_grad():
        noisy.weight.copy_(w)
    k = (noisy.smoothed_weight().detach()) / step
    assert (k - torch.round(k)).abs().max() > 1e-3  # off the grid: programming noise added


def test_smoothed_mode_on_other_layers():
    """A grouped conv rounds each group's matrix on its own grid (its own scales), the recurrent
    layers read rounded matrices, and a transposed conv (matrices not row blocks of its weight)
    is refused by name."""
    from cimsim.errors import ParameterError
    from cimsim.nn import AnalogConv2d, AnalogConvTranspose2d, AnalogLSTM

    prof = load_profile("pcm", overrides={"conductance.n_levels": 8})
    conv = AnalogConv2d(4, 6, 3, groups=2, profile=prof, mode="smoothed", smoothing_noise=False, dtype=D)
    wh = conv.smoothed_weight().detach()
    for g, m in enumerate(conv.weight_matrices()):
        step = grid_step(m.detach(), prof)[0]
        k = wh.reshape(6, -1)[3 * g:3 * (g + 1)] / step
        torch.testing.assert_close(k, torch.round(k), rtol=0, atol=1e-9)
    x = torch.randn(2, 4, 5, 5, dtype=D)
    conv(x).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.shape == conv.weight.shape
    lstm = AnalogLSTM(3, 4, profile=prof, mode="smoothed")
    out, _ = lstm(torch.randn(5, 2, 3))
    out.sum().backward()
    assert torch.isfinite(lstm.weight_ih_l0.grad).all()
    with pytest.raises(ParameterError, match="does not support mode='smoothed'"):
        AnalogConvTranspose2d(4, 6, 3, profile=prof, mode="smoothed")(torch.randn(1, 4, 5, 5))


def test_curvature_term_gives_the_smoothed_loss_gradient_on_a_quadratic():
    """With the Hessian diagonal as the curvature (Curvature state {"h": diag H}), the mean of
    the per-draw gradients is grad L_s = H (w - a) + 1/2 H_ii (lo + hi - 2 w) (the closed form,
    smoothed_quadratic_grad) within 5 SE, not the straight H (w - a)."""
    from cimsim.nn.smoothed import Curvature, variance_slope

    w0, n = torch.tensor([0.3, 0.8], dtype=D), 40_000
    step, s = torch.tensor(1.0, dtype=D), torch.tensor(10.0, dtype=D)
    slope = variance_slope(w0, step, 0.0, s)
    grads = []
    for w_hat in _rr(w0, 1.0, n, 7):
        w = w0.clone().requires_grad_()
        wh = Curvature.apply(w, w_hat, slope, {"h": torch.diagonal(H2)})
        (0.5 * (wh - A2) @ H2 @ (wh - A2)).backward()
        grads.append(w.grad)
    g = torch.stack(grads)
    se = g.std(0) / np.sqrt(n)
    full = smoothed_quadratic_grad(H2 @ (w0 - A2), torch.diagonal(H2), w0, 1.0)
    assert torch.all((g.mean(0) - full).abs() < 5 * se)
    assert torch.all((g.mean(0) - H2 @ (w0 - A2)).abs() > 10 * se)


def test_fisher_curvature_in_the_layer():
    """smoothing_curvature="fisher": the same draws as "none" (the curvature draws nothing), and on
    the first step dL/dW = g + 1/2 g^2 (lo + hi - 2 W) (the bias-corrected average of g^2 is g^2),
    0 where the mapping clips W; the average persists and is bias-corrected on the next step."""
    from cimsim.nn.smoothed import FISHER_BETA, variance_slope

    prof = load_profile("pcm", overrides={"conductance.n_levels": 8})
    kw = dict(profile=prof, mode="smoothed", smoothing_noise=False, seed=1, dtype=D)
    plain = AnalogLinear(12, 5, **kw)
    lotion = AnalogLinear(12, 5, smoothing_curvature="fisher", **kw)
    with torch.no_grad():
        lotion.weight.copy_(plain.weight)
        lotion.bias.copy_(plain.bias)
    x = torch.randn(7, 12, dtype=D, generator=torch.Generator().manual_seed(2))
    for layer in (plain, lotion):
        layer(x).square().sum().backward()
    w = plain.weight.detach()
    step, off, s, _ = grid_step(w, prof)
    g = plain.weight.grad
    want = g + 0.5 * g * g * variance_slope(w, step, off, s)
    torch.testing.assert_close(lotion.weight.grad, want)
    assert not torch.equal(lotion.weight.grad, g)
    # second step, same weights: h = (beta (1 - beta) g1^2 + (1 - beta) g2^2) / (1 - beta^2)
    for layer in (plain, lotion):
        layer.weight.grad = None
        layer(2 * x).square().sum().backward()
    g2 = plain.weight.grad
    h = (FISHER_BETA * (1 - FISHER_BETA) * g * g + (1 - FISHER_BETA) * g2 * g2) / (1 - FISHER_BETA**2)
    torch.testing.assert_close(lotion.weight.grad, g2 + 0.5 * h * variance_slope(w, step, off, s))
    with pytest.raises(Exception, match="smoothing_curvature must be 'none' or 'fisher'"):
        AnalogLinear(12, 5, smoothing_curvature="adam", **kw)
