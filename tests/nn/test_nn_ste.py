"""The extended STE: ideal-profile equality, gradcheck, the hand formula, masks, saved tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cimsim.crossbar import program_matrix, tile_mvm
from cimsim.nn import AnalogConv1d, AnalogConv2d, AnalogConv3d, AnalogLinear, AnalogMatmulSTE, hardware_mvm
from cimsim.profiles.loader import load_profile
from cimsim.rng import split_seed


def _grads(fn, *tensors):
    for t in tensors:
        t.grad = None
    out = fn()
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=out.dtype)
    (out * g).sum().backward()
    return out.detach(), [t.grad.clone() for t in tensors]


# --------------------------------------------------------------------------- ideal profile
@pytest.mark.parametrize(
    "in_f,out_f,lead",
    [(64, 10, (7,)), (300, 20, (1,)), (257, 3, (2, 3)), (5, 513, (4,))],
)
def test_ideal_linear_equals_F_linear_forward_and_backward(ideal, in_f, out_f, lead):
    torch.manual_seed(0)
    layer = AnalogLinear(in_f, out_f, profile=ideal)
    x = torch.randn(*lead, in_f, requires_grad=True)
    y, (gx, gw, gb) = _grads(lambda: layer(x), x, layer.weight, layer.bias)
    y_ref, (rx, rw, rb) = _grads(lambda: F.linear(x, layer.weight, layer.bias), x, layer.weight, layer.bias)
    tol = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, y_ref, **tol)
    torch.testing.assert_close(gx, rx, **tol)
    torch.testing.assert_close(gw, rw, **tol)
    torch.testing.assert_close(gb, rb, **tol)


def test_ideal_linear_zero_and_large_inputs(ideal):
    layer = AnalogLinear(40, 6, profile=ideal)
    for x in (torch.zeros(3, 40), 1e4 * torch.randn(3, 40, generator=torch.Generator().manual_seed(1))):
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-3)


CONV2D_CASES = [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), padding="same", dilation=2),
    dict(kernel_size=4, padding="same"),
    dict(kernel_size=3, padding="valid", stride=(1, 2)),
    dict(kernel_size=3, groups=2, padding=2, padding_mode="reflect"),
    dict(kernel_size=3, groups=4, padding=1, padding_mode="circular", bias=False),
    dict(kernel_size=1, padding=1, padding_mode="replicate"),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kw", CONV2D_CASES, ids=str)
def test_ideal_conv2d_equals_nn_conv2d(ideal, kw):
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(4, 8, **kw)
    analog = AnalogConv2d.from_float(conv, ideal)
    x = torch.randn(2, 4, 9, 10, requires_grad=True)
    params = [x, conv.weight] + ([conv.bias] if conv.bias is not None else [])
    y, g = _grads(lambda: analog(x), *params)
    y_ref, g_ref = _grads(lambda: conv(x), *params)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "kw", [dict(kernel_size=3), dict(kernel_size=5, stride=2, padding=2, dilation=1), dict(kernel_size=3, groups=2, padding="same", dilation=2)], ids=str
)
def test_ideal_conv1d_equals_nn_conv1d(ideal, kw):
    torch.manual_seed(2)
    conv = torch.nn.Conv1d(4, 6, **kw)
    analog = AnalogConv1d.from_float(conv, ideal)
    x = torch.randn(3, 4, 17, requires_grad=True)
    y, g = _grads(lambda: analog(x), x, conv.weight, conv.bias)
    y_ref, g_ref = _grads(lambda: conv(x), x, conv.weight, conv.bias)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    # unbatched input, as nn.Conv1d accepts it
    torch.testing.assert_close(analog(x[0]), conv(x[0]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kw",
    [dict(kernel_size=3), dict(kernel_size=(2, 3, 1), stride=(2, 1, 2), padding=(1, 0, 2), dilation=(1, 2, 1)),
     dict(kernel_size=3, groups=2, padding="same", dilation=2, padding_mode="replicate", bias=False)],
    ids=str,
)
def test_ideal_conv3d_equals_nn_conv3d(ideal, kw):
    torch.manual_seed(4)
    conv = torch.nn.Conv3d(4, 6, **kw)
    analog = AnalogConv3d.from_float(conv, ideal)
    x = torch.randn(2, 4, 7, 6, 8, requires_grad=True)
    params = [x, conv.weight] + ([conv.bias] if conv.bias is not None else [])
    y, g = _grads(lambda: analog(x), *params)
    y_ref, g_ref = _grads(lambda: conv(x), *params)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(analog(x[0]), conv(x[0]), rtol=1e-5, atol=1e-5)  # unbatched


def test_gradcheck_float64_ideal_conv3d(ideal):
    torch.manual_seed(5)
    conv = AnalogConv3d(2, 2, 2, stride=(1, 2, 1), padding=1, groups=2, profile=ideal, dtype=torch.float64)
    x = torch.randn(1, 2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))


def test_gradcheck_float64_ideal_linear(ideal):
    from cimsim.nn import analog_matmul

    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 6, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(4, 6, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: analog_matmul(x, w, b, ideal, seed=123, t_s=0.0), (x, w, b))
    layer = AnalogLinear(6, 4, profile=ideal, dtype=torch.float64)
    assert torch.autograd.gradcheck(layer, (x,))


def test_gradcheck_float64_ideal_conv2d(ideal):
    torch.manual_seed(3)
    conv = AnalogConv2d(2, 4, 3, stride=2, padding=1, groups=2, profile=ideal, dtype=torch.float64)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))
    # the weight gradient, against autograd through F.conv2d in double precision
    gw = torch.autograd.grad(conv(x).sum(), conv.weight)[0]
    ref = torch.autograd.grad(F.conv2d(x, conv.weight, conv.bias, 2, 1, 1, 2).sum(), conv.weight)[0]
    torch.testing.assert_close(gw, ref, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- non-ideal profile
def _hand_grads(hw, x, w, g, rows):
    """The extended-STE equation written out in numpy, tile by tile."""
    x_q = (x if hw.x_q is None else hw.x_q).double().numpy()
    w = w.double().numpy()
    g = g.double().numpy()
    B, n_in = x_q.shape
    T = -(-n_in // rows)
    sat = np.zeros((B, T, w.shape[0]), bool) if hw.adc_sat is None else hw.adc_sat.numpy()
    clip = np.zeros((B, n_in), bool) if hw.dac_clip is None else hw.dac_clip.numpy()
    dx = np.zeros((B, n_in))
    dw = np.zeros_like(w)
    for k in range(T):
        sl = slice(k * rows, (k + 1) * rows)
        gk = np.where(sat[:, k, :], 0.0, g)
        dx[:, sl] = gk @ w[:, sl]
        dw[:, sl] = gk.T @ x_q[:, sl]
    dx[clip] = 0.0
    return dx, dw, g.sum(0)


def test_nonideal_gradients_equal_hand_formula(harsh):
    torch.manual_seed(4)
    layer = AnalogLinear(50, 20, profile=harsh)
    x = (1.5 * torch.randn(32, 50)).requires_grad_()
    layer.train()
    y = layer(x)
    seed = layer.last_seed
    g = torch.randn_like(y)
    (y * g).sum().backward()
    hw = hardware_mvm(x.detach(), layer.weight.detach(), harsh, seed=seed, t_s=0.0)
    # the case must exercise both masks
    assert hw.adc_sat is not None and 0 < hw.adc_sat.float().mean() < 1
    assert hw.dac_clip is not None and 0 < hw.dac_clip.float().mean() < 1
    torch.testing.assert_close(y.detach(), hw.y + layer.bias.detach(), rtol=0, atol=0)
    dx, dw, db = _hand_grads(hw, x.detach(), layer.weight.detach(), g, harsh.tile.rows)
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad.numpy(), dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.bias.grad.numpy(), db, rtol=1e-5, atol=1e-5)


def test_saturated_outputs_get_exactly_zero_gradient(harsh):
    torch.manual_seed(5)
    layer = AnalogLinear(16, 12, profile=harsh)  # one input tile: a saturated output is fully cut
    x = (2 * torch.randn(64, 16)).requires_grad_()
    y = layer(x)
    hw = hardware_mvm(x.detach(), layer.weight.detach(), harsh, seed=layer.last_seed, t_s=0.0)
    sat = hw.adc_sat[:, 0, :]
    assert sat.any() and not sat.all()
    g = torch.randn_like(y) * sat  # gradient only on saturated outputs
    (y * g).sum().backward()
    assert torch.count_nonzero(x.grad) == 0
    assert torch.count_nonzero(layer.weight.grad) == 0
    # the bias is added digitally after the ADC: its gradient is not cut
    torch.testing.assert_close(layer.bias.grad, g.sum(0))


def test_additive_output_noise_only_matches_autograd_through_noise():
    # 16-bit ADC whose rails (64) lie beyond any possible column sum of 30 inputs: no saturation,
    # quantisation step 0.002, conversion noise 100 LSB = 0.2 normalised units
    prof = load_profile("ideal", overrides={"adc.bits": 16, "adc.range": {"kind": "fixed", "bound": 64.0},
                                            "adc.noise_lsb": 100.0})
    torch.manual_seed(6)
    layer = AnalogLinear(30, 7, profile=prof)
    x = torch.randn(9, 30, requires_grad=True)
    y, (gx, gw, gb) = _grads(lambda: layer(x), x, layer.weight, layer.bias)
    noise = (y - F.linear(x, layer.weight, layer.bias)).detach()
    assert noise.abs().max() > 1e-3  # the noise is really there
    y2, (rx, rw, rb) = _grads(lambda: F.linear(x, layer.weight, layer.bias) + noise, x, layer.weight, layer.bias)
    torch.testing.assert_close(gx, rx, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gw, rw, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gb, rb, rtol=1e-6, atol=1e-6)


def test_only_input_masks_and_weight_are_saved(harsh):
    torch.manual_seed(7)
    layer = AnalogLinear(50, 20, profile=harsh)
    x = (1.5 * torch.randn(32, 50)).requires_grad_()
    packed = []

    def pack(t):
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = layer(x)
    y.sum().backward()
    hw = hardware_mvm(x.detach(), layer.weight.detach(), harsh, seed=layer.last_seed, t_s=0.0)
    kinds = sorted((tuple(t.shape), str(t.dtype)) for t in packed)
    assert kinds == sorted([
        ((32, 50), "torch.float32"),    # x_q
        ((32, 50), "torch.bool"),       # DAC clip mask
        ((32, 4, 20), "torch.bool"),    # ADC saturation mask per input tile
        ((20, 50), "torch.float32"),    # W_b: the float weight Parameter itself
    ])
    w_saved = [t for t in packed if t.shape == (20, 50)][0]
    assert w_saved.data_ptr() == layer.weight.data_ptr()  # no copy of the weights
    xq_saved = [t for t in packed if t.shape == (32, 50) and t.dtype == torch.float32][0]
    torch.testing.assert_close(xq_saved, hw.x_q, rtol=0, atol=0)


def test_ideal_dac_saves_the_input_itself(ideal):
    layer = AnalogLinear(10, 5, profile=ideal)
    x = torch.randn(4, 10, requires_grad=True)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        layer(x).sum().backward()
    ptrs = {t.data_ptr() for t in packed}
    assert ptrs == {x.data_ptr(), layer.weight.data_ptr()}


def test_first_layer_without_input_grad_saves_no_weight(ideal):
    layer = AnalogLinear(10, 5, profile=ideal)
    x = torch.randn(4, 10)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        y = layer(x)
    assert [t.data_ptr() for t in packed] == [x.data_ptr()]
    y.sum().backward()
    assert x.grad is None and layer.weight.grad is not None


def test_backward_weights_programmed_uses_effective_weights():
    prof = load_profile("pcm", overrides={"tile.rows": 16})
    torch.manual_seed(8)
    layer = AnalogLinear(40, 10, profile=prof, backward_weights="programmed")
    x = torch.randn(8, 40, requires_grad=True)
    y = layer(x)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    hw = hardware_mvm(x.detach(), layer.weight.detach(), prof, seed=layer.last_seed, t_s=0.0,
                      backward_weights="programmed")
    assert hw.w_programmed is not None and not torch.equal(hw.w_programmed, layer.weight.detach())
    dx, _, _ = _hand_grads(hw, x.detach(), hw.w_programmed, g, prof.tile.rows)
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=1e-5, atol=1e-5)
    # the effective weights are those of this very chip (drift + 1/f noise from the read generator)
    prog, read = split_seed(layer.last_seed)
    ref = program_matrix(layer.weight.detach().numpy(), prof, rng=prog).drift(0.0, read).effective_weights()
    assert np.array_equal(hw.w_programmed.numpy(), ref)
    # and asking for them leaves the forward's bits unchanged
    plain = AnalogLinear(40, 10, profile=prof)
    plain.load_state_dict(layer.state_dict())
    assert torch.equal(plain.hardware_forward(x, layer.last_seed).detach(), y.detach())


def test_no_grad_forward_has_the_same_bits(pcm):
    layer = AnalogLinear(300, 30, profile=pcm)
    x = torch.randn(5, 300)
    y1 = layer.hardware_forward(x.requires_grad_(), 99)
    with torch.no_grad():
        y2 = layer.hardware_forward(x, 99)
    assert torch.equal(y1.detach(), y2)


def test_ste_direct_apply_without_masks():
    """The Function alone, with no masks: exactly the F.linear backward."""
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    y_hw = (x @ w.t()).detach()
    assert torch.autograd.gradcheck(
        lambda x, w, b: AnalogMatmulSTE.apply(x, w, b, (x @ w.t()).detach(), None, None, None, None, 256, None), (x, w, b)
    )
    assert torch.equal(AnalogMatmulSTE.apply(x, w, None, y_hw, None, None, None, None, 256, None).detach(), y_hw)


def test_chip_reference_direct(pcm):
    """``hardware_mvm`` with a seed is literally program_matrix + tile_mvm with split_seed."""
    w = torch.randn(12, 300)
    x = torch.randn(6, 300)
    hw = hardware_mvm(x, w, pcm, seed=2024, t_s=0.0, masks=False)
    prog, read = split_seed(2024)
    ref = tile_mvm(x.numpy(), program_matrix(w.numpy(), pcm, rng=prog), t_s=0.0, rng=read)
    assert np.array_equal(hw.y.numpy(), ref)


def test_learnable_input_range_gradient_equals_lsq_pact_formula(harsh):
    torch.manual_seed(9)
    layer = AnalogLinear(50, 20, profile=harsh, learn_input_range=True)
    assert float(layer.input_range.detach()) == harsh.dac.range.bound
    with torch.no_grad():
        layer.input_range.fill_(0.8)
    x = (1.2 * torch.randn(32, 50)).requires_grad_()
    y = layer(x)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    k = harsh.dac.range.bound / 0.8
    hw = hardware_mvm(x.detach() * k, layer.weight.detach(), harsh, seed=layer.last_seed, t_s=0.0)
    torch.testing.assert_close(y.detach(), hw.y / k + layer.bias.detach(), rtol=0, atol=0)
    assert hw.dac_clip is not None
    x_q = hw.x_q / k
    # G = dL/dx_q per tile (masks applied by hand), then the range gradient
    rows = harsh.tile.rows
    assert hw.adc_sat is not None
    G = torch.zeros(32, 50)
    for t in range(hw.adc_sat.shape[1]):
        sl = slice(t * rows, (t + 1) * rows)
        G[:, sl] = (g * ~hw.adc_sat[:, t, :]) @ layer.weight.detach()[:, sl]
    d = torch.where(hw.dac_clip, torch.sign(x.detach()), (x_q - x.detach()) / 0.8)
    torch.testing.assert_close(layer.input_range.grad, (G * d).sum(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, G.masked_fill(hw.dac_clip, 0.0), rtol=1e-5, atol=1e-5)
    assert "input_range" in layer.state_dict()
    with pytest.raises(Exception, match="fixed-range DAC"):
        AnalogLinear(4, 2, profile=load_profile("pcm"), learn_input_range=True)


def test_large_matrices_release_the_free_heap_after_their_backward(monkeypatch):
    import cimsim.nn.ste as fn

    calls = []
    monkeypatch.setattr(fn, "release_free_heap", lambda: calls.append(1))
    monkeypatch.setattr(fn, "TRIM_MIN_WEIGHTS", 20)
    for out_f, want in ((3, 0), (4, 1)):  # 15 weights: below; 20: at the threshold
        calls.clear()
        x = torch.randn(2, 5, requires_grad=True)
        w = torch.randn(out_f, 5, requires_grad=True)
        y = AnalogMatmulSTE.apply(x, w, None, (x @ w.t()).detach(), None, None, None, None, 256, None)
        y.sum().backward()
        assert len(calls) == want
