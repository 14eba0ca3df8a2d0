"""Eval mode deploys the chip: programmed once per weight version, read many times (issue 14 item 7)."""

from __future__ import annotations

import torch
from torch import nn

from cimsim.nn import AnalogLinear, AnalogLSTM, analog_layers, convert, reprogram
from cimsim.profiles.loader import load_profile

# per-read noise: two reads of one chip differ unless the read generator restarts per forward
_PROFILE = {"read_noise.per_read_sigma_rel": 0.02}


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Flatten(), nn.ReLU(), nn.Linear(24, 5))
    return convert(net, load_profile("pcm", overrides=_PROFILE), seed=3)


def test_two_eval_calls_give_identical_outputs_and_equal_the_hardware_forward():
    net = _net().eval()
    x = torch.randn(7, 2, 8)
    with torch.no_grad():
        y1, y2 = net(x), net(x)
    assert torch.equal(y1, y2)
    # the deployed chip is the one a hardware forward with the recorded seed programs
    fc = net[3]
    h = net[2](net[1](net[0](x)))
    with torch.no_grad():
        assert torch.equal(fc(h), fc.hardware_forward(h, fc.last_seed, t_s=0.0))


def test_eval_reprograms_when_the_weights_or_time_change_or_on_request():
    layer = AnalogLinear(12, 4, profile=load_profile("pcm", overrides=_PROFILE), seed=1).eval()
    x = torch.randn(5, 12)
    with torch.no_grad():
        y0 = layer(x)
        s0 = layer.last_seed
        layer.weight.data.mul_(0.5)  # no autograd version bump: seen by value
        y1 = layer(x)
        s1 = layer.last_seed
        assert s1 != s0 and not torch.equal(y1, y0) and torch.equal(y1, layer.hardware_forward(x, s1))
        assert torch.equal(layer(x), y1)
        layer.eval_t_s = 3600.0
        y2 = layer(x)
        assert layer.last_seed != s1 and torch.equal(y2, layer.hardware_forward(x, layer.last_seed, t_s=3600.0))
        assert torch.equal(layer(x), y2)
        layer.reprogram()
        assert not torch.equal(layer(x), y2)


def test_training_mode_still_programs_every_forward_and_the_generator_advances_as_before():
    a, b = _net(), _net()
    x = torch.randn(3, 2, 8)
    a.train()
    y1, y2 = a(x), a(x)
    assert not torch.equal(y1, y2)  # a fresh chip per training forward
    # one seed drawn per forward in eval too: a model evaluated in between trains on the same seeds
    b.eval()
    with torch.no_grad():
        b(x)
        b(x)
    b.train()
    b(x)
    a(x)
    assert [m.last_seed for _, m in analog_layers(a)] == [m.last_seed for _, m in analog_layers(b)]


def test_recurrent_layer_eval_is_deployed_too_and_reprogram_reaches_every_layer():
    torch.manual_seed(0)
    lstm = convert(nn.LSTM(3, 4), load_profile("pcm", overrides=_PROFILE), seed=2).eval()
    assert isinstance(lstm, AnalogLSTM)
    x = torch.randn(6, 2, 3)
    with torch.no_grad():
        y1, y2 = lstm(x)[0], lstm(x)[0]
        assert torch.equal(y1, y2)
        reprogram(lstm)
        assert not torch.equal(lstm(x)[0], y1)
