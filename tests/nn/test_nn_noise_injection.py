"""Noise injection: the programming noise's std in weight units, on the crossbar's own mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cimsim.crossbar.mapping import weight_scales
from cimsim.crossbar.tiling import TileGrid
from cimsim.nn import AnalogLinear, programming_noise_std
from cimsim.nn.noise_injection import _mapping_scale
from cimsim.profiles.loader import load_profile


# --------------------------------------------------------------------------- the mapping
MAPPINGS = [
    {"mapping.scaling": scaling, "mapping.clip_percentile": pct, "mapping.kind": kind}
    for scaling in ("per_layer", "per_tile", "per_column")
    for pct in (None, 97.3)
    for kind in ("differential", "single_reference")
] + [
    {"mapping.scaling": "per_column", "mapping.weight_slices": 3, "conductance.n_levels": 4},
    {"mapping.scaling": "per_tile", "mapping.weight_slices": 2, "conductance.n_levels": 8,
     "mapping.clip_percentile": 99.0},
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("overrides", MAPPINGS, ids=lambda o: ",".join(f"{k.split('.')[-1]}={v}" for k, v in o.items()))
def test_noise_injection_scale_equals_the_crossbar_mapping(overrides, dtype):
    """The scale ``s`` noise injection divides by is, for every weight, the scale the crossbar
    programs it with (``weight_scales``: one per tile column), bit for bit: shapes tile-aligned,
    ragged, smaller than a tile and one column, a zero row (scale 1)."""
    prof = load_profile("pcm", overrides={"tile.rows": 16, "tile.cols": 8, **overrides})
    gen = torch.Generator().manual_seed(1)
    for shape in ((16, 32), (20, 40), (3, 5), (17, 1)):
        w = torch.randn(shape, generator=gen, dtype=dtype)
        w[0] = 0.0
        grid = TileGrid(shape[0], shape[1], 16, 8)
        chip = weight_scales(w.numpy(), prof.mapping, grid)  # [n_in_tiles, out]
        expect = torch.from_numpy(np.repeat(chip.T, 16, axis=1)[:, : shape[1]]).to(dtype)
        got = _mapping_scale(w, prof).expand(shape)
        assert got.dtype == dtype
        assert torch.equal(got, expect), (shape, (got - expect).abs().max().item())


# --------------------------------------------------------------------------- the std
def test_noise_injection_std_matches_profile_and_gradient_is_identity():
    prof = load_profile("ideal", overrides={"programming.noise": {"kind": "constant", "sigma_us": 0.05},
                                            "conductance.g_max_us": 1.0})
    torch.manual_seed(3)
    w = torch.randn(64, 300)
    std = programming_noise_std(w, prof)
    # differential pair, both devices noisy: sqrt(2) * sigma_us * s / (g_max - g_min), s per column per tile
    s0 = w[:, :256].abs().amax(1, keepdim=True)
    s1 = w[:, 256:].abs().amax(1, keepdim=True)
    expect = torch.cat([s0.expand(64, 256), s1.expand(64, 44)], 1) * 0.05 * np.sqrt(2)
    torch.testing.assert_close(std, expect)
    layer = AnalogLinear(300, 64, profile=prof, mode="noise_injection")
    layer.weight.data.copy_(w)
    x = torch.randn(5, 300)
    # statistics of W_noisy - W over 64*300*20 draws: std ratio within 5 standard errors
    d = torch.stack([layer.noisy_weight().detach() - w for _ in range(20)])
    ratio = (d / expect).std().item()
    n = d.numel()
    assert abs(ratio - 1) < 5 / np.sqrt(2 * n)
    # gradient: identity through the noise (dL/dW = dL/dW_noisy)
    layer.reseed(9)
    y = layer(x)
    y.sum().backward()
    layer.reseed(9)
    wn = layer.noisy_weight().detach().requires_grad_()
    F.linear(x, wn, layer.bias).sum().backward()
    torch.testing.assert_close(layer.weight.grad, wn.grad)


def test_noise_injection_pcm_std_follows_the_polynomial(pcm):
    w = torch.tensor([[1.0, -0.5, 0.0, 0.25], [0.0, 0.0, -2.0, 2.0]])
    std = programming_noise_std(w, pcm)

    def sig(x):  # pcm: sigma(x) = 0.26348 + 1.965 x - 1.1731 x^2 uS at g_ref = g_max = 25 uS
        return 0.26348 + 1.9650 * x - 1.1731 * x**2

    s = torch.tensor([[1.0], [2.0]])
    x = (w / s).abs()
    expect = torch.sqrt(sig(x) ** 2 + sig(torch.zeros_like(x)) ** 2) * s / 25.0
    torch.testing.assert_close(std, expect)


def test_noise_injection_std_of_bit_sliced_weights():
    """With bit slicing the noise-injection std sums the slices' pairs, each weighed by its digit
    weight c_s = n^s (n - 1) / (n^S - 1): computed here by hand from the digits."""
    prof = load_profile("pcm", overrides={"conductance.n_levels": 4, "mapping.weight_slices": 3,
                                          "conductance.g_min_us": 5.0, "mapping.scaling": "per_layer"})
    w = torch.tensor([[1.0, 0.9, -0.37, 0.05, 0.0]])
    got = programming_noise_std(w, prof)[0]

    def sig(g):  # pcm's law at x = G / 25 uS, g_ref = 25 uS
        x = g / 25.0
        return max(0.26348 + 1.9650 * x - 1.1731 * x**2, 0.0)

    for i, v in enumerate(w[0].tolist()):
        code = round(abs(v) * 63)
        var = 0.0
        for si in range(3):
            d = (code // 4**si) % 4
            var += (4**si * 3 / 63) ** 2 * (sig(5.0 + d / 3 * 20.0) ** 2 + sig(5.0) ** 2)
        assert abs(got[i].item() - var**0.5 / 20.0) < 1e-6, (v, got[i].item(), var**0.5 / 20.0)



# --------------------------------------------------------------------------- own settings (NoiseSpec)
def _draws(layer, n):
    return torch.stack([layer.noisy_weight().detach() - layer.weight.detach() for _ in range(n)])


@pytest.mark.parametrize("per", ["layer", "channel"])
def test_additive_noise_has_its_level_times_max_abs_w(pcm, per):
    """Additive noise: (W_noisy - W) / (level max|W|) is N(0, 1) per weight, with max|W| over the
    layer or each output row. Std within 5 standard errors (sqrt(1 / (2 n))) per row; mean within
    5 / sqrt(n)."""
    torch.manual_seed(0)
    layer = AnalogLinear(40, 6, profile=pcm, mode="noise_injection", noise={"kind": "additive", "level_rel": 0.07,
                                                                             "per": per})
    with torch.no_grad():
        layer.weight.mul_(torch.arange(1.0, 7.0)[:, None])  # rows of different max|W|
    w = layer.weight.detach()
    m = w.abs().amax() if per == "layer" else w.abs().amax(1, keepdim=True)
    z = _draws(layer, 400) / (0.07 * m)  # [400, 6, 40]
    n_row = z[:, 0].numel()
    for i in range(6):
        assert abs(z[:, i].std().item() - 1.0) < 5 / np.sqrt(2 * n_row), (i, z[:, i].std().item())
        assert abs(z[:, i].mean().item()) < 5 / np.sqrt(n_row)


def test_multiplicative_noise_is_relative_to_each_weight(pcm):
    """Multiplicative: W_noisy = W (1 + level eps), so (W_noisy - W) / W has std = level."""
    layer = AnalogLinear(50, 8, profile=pcm, mode="noise_injection", noise={"kind": "multiplicative", "level_rel": 0.2})
    r = _draws(layer, 200) / layer.weight.detach()
    n = r.numel()
    assert abs(r.std().item() / 0.2 - 1.0) < 5 / np.sqrt(2 * n)
    assert abs(r.mean().item()) < 5 * 0.2 / np.sqrt(n)


def test_noise_grad_through_matches_the_analytic_form(pcm):
    """noise_grad="through": dL/dW of L = sum(c * W_noisy) is c (1 + level eps) for multiplicative
    noise, and c plus level sign(W_max) sum(c eps) at the weight holding max|W| of its row for
    additive per-channel noise; "straight" gives c. eps replayed from the layer's generator."""
    torch.manual_seed(1)
    c = torch.randn(5, 9)
    for spec in ({"kind": "multiplicative", "level_rel": 0.3}, {"kind": "additive", "level_rel": 0.1, "per": "channel"}):
        for grad in ("straight", "through"):
            layer = AnalogLinear(9, 5, profile=pcm, mode="noise_injection", noise=spec, noise_grad=grad, seed=4)
            w = layer.weight.detach().clone()
            (layer.noisy_weight() * c).sum().backward()
            eps = torch.randn(w.shape, generator=AnalogLinear(9, 5, profile=pcm, seed=4).generator)
            if grad == "straight":
                expect = c
            elif spec["kind"] == "multiplicative":
                expect = c * (1 + 0.3 * eps)
            else:
                expect = c.clone()
                j = w.abs().argmax(1)
                rows = torch.arange(5)
                expect[rows, j] += 0.1 * torch.sign(w[rows, j]) * (c * eps).sum(1)
            torch.testing.assert_close(layer.weight.grad, expect)


def test_noise_grad_through_profile_noise_differentiates_sigma(pcm):
    """With the profile's noise and noise_grad="through" the gradient carries d sigma/dW eps
    (sigma(G) of pcm grows with G), checked against autograd of the std function by hand."""
    layer = AnalogLinear(7, 3, profile=pcm, mode="noise_injection", noise_grad="through", seed=2)
    w = layer.weight.detach().clone().requires_grad_()
    layer.noisy_weight().sum().backward()
    eps = torch.randn(w.shape, generator=AnalogLinear(7, 3, profile=pcm, seed=2).generator)
    from cimsim.nn.noise_injection import _profile_std
    (w + _profile_std(w, pcm) * eps).sum().backward()
    torch.testing.assert_close(layer.weight.grad, w.grad)
    assert (w.grad - 1).abs().max() > 1e-3  # sigma(W) is not constant: the term is there


def test_default_noise_spec_keeps_the_profile_noise(pcm):
    """The default config (kind profile, gradient straight) draws exactly W + programming_noise_std(W) eps."""
    layer = AnalogLinear(12, 4, profile=pcm, mode="noise_injection", seed=5)
    got = layer.noisy_weight().detach()
    eps = torch.randn((4, 12), generator=AnalogLinear(12, 4, profile=pcm, seed=5).generator)
    assert torch.equal(got, layer.weight.detach() + programming_noise_std(layer.weight, pcm) * eps)


@pytest.mark.parametrize("bad, msg", [({"kind": "gauss"}, "NoiseSpec.kind"), ({"level_rel": -0.1}, "level_rel"),
                                      ({"per": "row"}, "per")])
def test_noise_spec_refuses_bad_settings(pcm, bad, msg):
    from cimsim.errors import ParameterError
    with pytest.raises(ParameterError, match=msg):
        AnalogLinear(3, 2, profile=pcm, noise=bad)
    with pytest.raises(ParameterError, match="noise_grad"):
        AnalogLinear(3, 2, profile=pcm, noise_grad="detach")
