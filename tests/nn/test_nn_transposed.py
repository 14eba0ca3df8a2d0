"""AnalogConvTranspose1d/2d/3d: the scatter of every input pixel through the chip, then col2im."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cimsim.nn import (
    AnalogConvTranspose1d,
    AnalogConvTranspose2d,
    AnalogConvTranspose3d,
    convert,
    programming_noise_std,
    to_digital,
)
from cimsim.profiles.loader import load_profile

CASES_2D = [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), dilation=2, groups=2, bias=False),
    dict(kernel_size=4, stride=3, padding=2, output_padding=(2, 0), dilation=(1, 2)),
]


def _grads(fn, params):
    for p in params:
        p.grad = None
    y = fn()
    (y.square().sum() + y.sum()).backward()
    return y.detach(), [p.grad.clone() for p in params]


CASES_3D = [
    dict(kernel_size=2),
    dict(kernel_size=(3, 2, 2), stride=(2, 1, 3), padding=(1, 0, 1), output_padding=(1, 0, 2), groups=2),
    dict(kernel_size=3, stride=2, dilation=(2, 1, 1), padding=2, bias=False),
]
#: nd -> (torch layer, analog layer, input shape)
LAYERS = {2: (nn.ConvTranspose2d, AnalogConvTranspose2d, (2, 4, 5, 6)),
          3: (nn.ConvTranspose3d, AnalogConvTranspose3d, (2, 4, 3, 4, 5))}


@pytest.mark.parametrize("nd,kw", [(2, kw) for kw in CASES_2D] + [(3, kw) for kw in CASES_3D], ids=str)
def test_ideal_chip_equals_conv_transpose(nd, kw):
    torch_cls, analog_cls, shape = LAYERS[nd]
    torch.manual_seed(0)
    ref = torch_cls(4, 6, **kw)
    analog = analog_cls.from_float(ref, load_profile("ideal"))
    x = torch.randn(*shape, requires_grad=True)
    params = [x, ref.weight] + ([ref.bias] if ref.bias is not None else [])
    y, g = _grads(lambda: analog(x), params)
    y_ref, g_ref = _grads(lambda: ref(x), params)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(analog(x[0]), ref(x[0]), rtol=1e-5, atol=1e-5)  # unbatched
    if min(ref.stride) > 1:  # an output_size one above the smallest becomes output padding 1
        size = [o - op + 1 for o, op in zip(ref(x).shape[2:], ref.output_padding)]
        torch.testing.assert_close(analog(x, output_size=size), ref(x, output_size=size), rtol=1e-5, atol=1e-5)


def test_output_size_1d_and_gradcheck():
    torch.manual_seed(1)
    ref = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    analog = AnalogConvTranspose2d.from_float(ref, "ideal")
    x = torch.randn(1, 3, 4, 5)
    torch.testing.assert_close(analog(x, output_size=[8, 10]), ref(x, output_size=[8, 10]), rtol=1e-5, atol=1e-5)
    assert analog(x, output_size=[8, 10]).shape == (1, 2, 8, 10)
    r1 = nn.ConvTranspose1d(3, 5, 4, stride=3, padding=1, output_padding=2, dilation=2, groups=1)
    a1 = AnalogConvTranspose1d.from_float(r1, "ideal")
    x1 = torch.randn(2, 3, 7)
    torch.testing.assert_close(a1(x1), r1(x1), rtol=1e-5, atol=1e-5)
    a64 = AnalogConvTranspose2d(2, 2, 2, stride=2, groups=2, profile="ideal", dtype=torch.float64)
    x64 = torch.randn(1, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(a64, (x64,))
    gw = torch.autograd.grad(a64(x64).sum(), a64.weight)[0]
    ref_gw = torch.autograd.grad(F.conv_transpose2d(x64, a64.weight, a64.bias, 2, 0, 0, 2).sum(), a64.weight)[0]
    torch.testing.assert_close(gw, ref_gw, rtol=1e-12, atol=1e-12)
    a3 = AnalogConvTranspose3d(2, 2, (2, 1, 2), stride=(2, 1, 1), padding=(0, 0, 1), profile="ideal", dtype=torch.float64)
    x3 = torch.randn(1, 2, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(a3, (x3,))


def test_hardware_forward_equals_its_chips_and_noise_injection_std():
    """The crossbar of group g holds W_g [C_out/groups * K, C_in/groups]; the training forward is
    that chip programmed with the forward's seed; noise injection uses the same matrices' mapping."""
    torch.manual_seed(2)
    layer = AnalogConvTranspose2d(4, 6, 3, stride=2, groups=2, profile=load_profile("pcm"), seed=5)
    x = torch.randn(2, 4, 5, 5)
    y = layer(x)
    states = layer.program(layer.last_seed)
    assert [s.weight_shape for s in states] == [(27, 2), (27, 2)]
    assert torch.equal(y, layer.forward_chip(x, states, rng=layer.read_rng(layer.last_seed), t_s=0.0))
    with torch.no_grad():
        assert not torch.allclose(y, layer.to_float()(x), atol=1e-3)
    mats = layer.weight_matrices()
    std = torch.cat([programming_noise_std(m, layer.profile).T for m in mats]).reshape(layer.weight.shape)
    assert torch.equal(std[0, 1, 2, 0], programming_noise_std(mats[0], layer.profile)[1 * 9 + 2 * 3 + 0, 0])
    layer.analog_mode = "noise_injection"
    assert layer(x).shape == y.shape


def test_convert_swaps_and_to_digital_restores():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(4, 2, 2, stride=2))
    out = convert(net, "pcm", seed=1)
    assert isinstance(out[2], AnalogConvTranspose2d)
    net3 = nn.Sequential(nn.ConvTranspose3d(2, 3, 2, stride=2), nn.ConvTranspose1d(3, 1, 1))
    out3 = convert(net3, "pcm", seed=2)
    assert isinstance(out3[0], AnalogConvTranspose3d) and isinstance(out3[1], AnalogConvTranspose1d)
    y3 = out3[0](torch.randn(1, 2, 2, 3, 2))
    assert y3.shape == (1, 3, 4, 6, 4)
    states = out3[0].program(out3[0].last_seed)
    assert states.weight_shape == (3 * 8, 2)  # C_out * K rows of W_g, C_in columns
    assert type(to_digital(out3)[0]) is nn.ConvTranspose3d
    x = torch.randn(1, 1, 6, 6)
    out(x).sum().backward()
    assert out[2].weight.grad is not None and out[2].weight.grad.abs().sum() > 0
    back = to_digital(out)
    assert type(back[2]) is nn.ConvTranspose2d and list(back.state_dict()) == list(net.state_dict())


def test_3d_hardware_forward_equals_its_chips():
    torch.manual_seed(6)
    layer = AnalogConvTranspose3d(4, 2, (2, 3, 1), stride=(1, 2, 2), padding=(0, 1, 0), groups=2,
                                  profile=load_profile("pcm"), seed=7)
    x = torch.randn(2, 4, 3, 3, 2)
    y = layer(x)
    states = layer.program(layer.last_seed)
    assert [s.weight_shape for s in states] == [(1 * 6, 2), (1 * 6, 2)]
    assert torch.equal(y, layer.forward_chip(x, states, rng=layer.read_rng(layer.last_seed), t_s=0.0))
    with torch.no_grad():
        assert y.shape == layer.to_float()(x).shape == (2, 2, 4, 5, 3)
