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

