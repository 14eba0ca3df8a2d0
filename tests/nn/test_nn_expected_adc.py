"""Expected-transfer ADC gradients (``AnalogConfig(adc_backward="expected")``): closed forms, a
Monte-Carlo check, the converter input they are evaluated at, and the training path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cimsim.crossbar import program_drifted, tile_mvm
from cimsim.errors import ParameterError
from cimsim.nn import AnalogLinear, expected_adc_slope, expected_transfer_slope, hardware_mvm
from cimsim.nn.hardware import adc_input_lsb
from cimsim.profiles.loader import load_profile
from cimsim.rng import split_seed

A = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)


def test_uniform_noise_gives_the_hard_tanh_ste():
    """x = sign(a - Z), Z ~ U[-1, 1]: d E[x] / da = 2 p_Z(a) = 1 on |a| < 1, else 0 (hard tanh)."""
    got = expected_transfer_slope(A, [0.0], [2.0], 1.0, "uniform")
    torch.testing.assert_close(got, (A.abs() < 1).to(A.dtype), rtol=0, atol=1e-15)


def test_logistic_noise_gives_the_sigmoid_derivative():
    """Z logistic: d E[x] / da = 2 s(a) (1 - s(a)) (0.5 at a = 0, where the identity STE says 1)."""
    s = torch.sigmoid(A)
    torch.testing.assert_close(expected_transfer_slope(A, [0.0], [2.0], 1.0, "logistic"), 2 * s * (1 - s))
    assert abs(expected_transfer_slope(torch.zeros(1, dtype=torch.float64), [0.0], [2.0], 1.0, "logistic").item() - 0.5) < 1e-15


@pytest.mark.parametrize("sigma", [0.3, 0.7, 1.5])
def test_gaussian_slope_matches_monte_carlo(sigma):
    """ADC(v) = clip(rint(v), -L, L) in LSB, L = 7 (4 bits). d/du E[ADC(u + sigma z)] by the
    likelihood ratio E[ADC(u + sigma z) z] / sigma over n = 4e5 normals: the closed form lies
    within 5 standard errors (the sample's std / sqrt(n)) at points inside, between levels and
    beyond both rails."""
    L, n = 7, 400_000
    z = torch.randn(n, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    for u in (0.0, 0.5, 2.3, 6.4, 7.2, -7.9, 9.0):
        f = torch.clamp(torch.round(u + sigma * z), -L, L) * z / sigma
        mc, se = f.mean().item(), f.std().item() / np.sqrt(n)
        got = expected_adc_slope(torch.tensor([u], dtype=torch.float64), L, sigma).item()
        assert abs(got - mc) < 5 * se + 1e-12, (u, got, mc, se)


def test_windowed_adc_slope_equals_the_full_sum():
    """expected_adc_slope sums only thresholds within 6 sigma + 1; the full sum over all 2L
    thresholds j + 1/2 agrees to 1e-7 (phi(6) / sigma per left-out threshold), and far inside the range the slope is 1 (the STE's mask)."""
    L = 127
    u = torch.linspace(-140, 140, 2001, dtype=torch.float64)
    th = torch.arange(-L, L, dtype=torch.float64) + 0.5
    for sigma in (0.4, 1.0, 2.5):
        full = expected_transfer_slope(u, th, torch.ones_like(th), sigma, "gaussian")
        torch.testing.assert_close(expected_adc_slope(u, L, sigma), full, rtol=0, atol=1e-7)
    inside = expected_adc_slope(torch.linspace(-100, 100, 77, dtype=torch.float64), L, 1.0)
    torch.testing.assert_close(inside, torch.ones_like(inside), rtol=0, atol=1e-6)


def _chip_profile(**over):
    return load_profile("pcm", overrides={"tile.rows": 32, "tile.cols": 16, "adc.bits": 4, "adc.range.bound": 3.0,
                                          "read_noise": {"kind": "none"}, **over})


@pytest.mark.parametrize("dac", [{}, {"dac.range": {"kind": "fixed", "bound": 1.5}, "dac.bits": 5}, {"dac.bits": None}],
                         ids=["dynamic", "fixed", "ideal"])
def test_adc_input_is_what_the_converter_rounds(dac):
    """Without read or conversion noise the chip's output is sum_k clip(rint(u_k), -L, L) / L *
    bound * colscale * row_bound: the noise-free converter input u of adc_input_lsb rebuilds the
    chip's y (dynamic, fixed-range and ideal DAC, 3 input tiles, saturating tiles included)."""
    prof = _chip_profile(**dac)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((20, 80)).astype(np.float32)
    x = rng.standard_normal((9, 80)).astype(np.float32)
    prog, read = split_seed(5)
    ds = program_drifted(w, prof, rng=prog, t_s=0.0, read_rng=read)
    y, m = tile_mvm(x, ds, rng=read, return_masks=True)
    u = adc_input_lsb(ds, x, None if dac.get("dac.bits", 8) is None else m.x_q)
    L = 7
    code = np.clip(np.rint(u), -L, L)
    rb = np.full(9, 1.5) if "dac.range" in dac else np.abs(x).max(1)
    rebuilt = (code / L * 3.0 * ds.state.scales[None]).sum(1) * rb[:, None]
    assert m.adc_sat.any()  # the check covers saturated tiles
    np.testing.assert_allclose(rebuilt, y, rtol=1e-4, atol=1e-4 * np.abs(y).max())


def test_expected_backward_keeps_the_forward_and_weighs_the_gradient_by_the_slope():
    """adc_backward="expected": the forward equals the STE layer's bit for bit (same seed); the
    input gradient is sum_k (g * slope_k) @ W[:, I_k] with the slopes of hardware_mvm, which are 1
    in the linear range and fall off smoothly past the rails (a soft version of the mask)."""
    prof = _chip_profile(**{"adc.noise_lsb": 0.6})
    torch.manual_seed(0)
    ste = AnalogLinear(80, 20, profile=prof, seed=3)
    exp = AnalogLinear(80, 20, profile=prof, seed=3, adc_backward="expected")
    exp.weight, exp.bias = ste.weight, ste.bias
    x = (2 * torch.randn(9, 80)).requires_grad_()
    y1, y2 = ste(x), exp(x)
    assert torch.equal(y1, y2)
    g = torch.randn_like(y2)
    (dx,) = torch.autograd.grad(y2, x, g)
    hw = hardware_mvm(x.detach(), ste.weight.detach(), prof, seed=exp.last_seed, adc_backward="expected")
    s = hw.adc_slope
    assert s is not None and s.shape == (9, 3, 20)
    expect = torch.cat([(g * s[:, k]) @ ste.weight.detach()[:, 32 * k:32 * (k + 1)] for k in range(3)], 1)
    torch.testing.assert_close(dx, expect)
    sat = hw.adc_sat
    assert sat is not None and sat.any() and (~sat).any()
    assert s[sat.bool()].max() < 0.9 and s[~sat.bool()].max() > 0.99


def test_expected_backward_needs_noise_and_one_conversion_per_column(pcm):
    with pytest.raises(ParameterError, match="adc_sigma_lsb"):
        AnalogLinear(4, 3, profile=pcm, adc_backward="expected")
    AnalogLinear(4, 3, profile=pcm, adc_backward="expected", adc_sigma_lsb=0.5)
    dig = load_profile("pcm", overrides={"mapping.subtraction": "digital"})
    with pytest.raises(ParameterError, match="subtraction"):
        AnalogLinear(4, 3, profile=dig, adc_backward="expected", adc_sigma_lsb=0.5)
