"""AnalogConfig: one validated settings object for the layers, from_float and convert."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
from torch import nn

from cimsim.errors import ParameterError
from cimsim.models import mlp
from cimsim.nn import AnalogConfig, AnalogLinear, AnalogLSTM, AnalogMultiheadAttention, analog_layers, convert, set_mode
from cimsim.profiles.loader import load_profile


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(mode="fast"), r"mode must be one of \('hardware', 'noise_injection', 'ideal', 'smoothed'\) \(got 'fast'\)"),
        (dict(eval_mode="train"), r"eval_mode must be one of .* or None \(got 'train'\)"),
        (dict(backward_weights="chip"), r"backward_weights must be one of \('float', 'programmed'\) \(got 'chip'\)"),
        (dict(seed=-1), r"seed must be an int in \[0, 2\^63 - 1\] \(got -1\)"),
        (dict(seed=1.5), r"seed must be an int .*\(got 1.5\)"),
        (dict(seed=True), r"seed must be an int .*\(got True\)"),
        (dict(learn_input_range=1), r"learn_input_range must be True or False \(got 1\)"),
        (dict(learn_input_range=True), r"learn_input_range=True needs a profile with a fixed-range DAC"),
    ],
)
def test_config_refuses_bad_settings_with_the_value(pcm, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        AnalogConfig(pcm, **kwargs)
    with pytest.raises(ParameterError, match=message):  # the layers and convert go through the same check
        AnalogLinear(3, 2, profile=pcm, **kwargs)
    with pytest.raises(ParameterError, match=message):
        convert(nn.Linear(3, 2), pcm, **kwargs)
    with pytest.raises(ParameterError, match=message):  # and so does dataclasses.replace
        dataclasses.replace(AnalogConfig(pcm), **kwargs)


def test_config_resolves_the_profile_is_frozen_and_pickles(pcm):
    cfg = AnalogConfig("pcm", mode="noise_injection", seed=4)
    assert cfg.profile == pcm and cfg.mode == "noise_injection" and cfg.seed == 4
    assert "profile='pcm'" in repr(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.mode = "ideal"
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(ParameterError, match="profile must be a DeviceProfile or a preset name"):
        AnalogConfig(3)
    assert cfg.updated({"profile": {"adc.bits": 6}}).profile.adc.bits == 6
    with pytest.raises(ParameterError, match=r"unknown key\(s\) \['bits'\]"):
        cfg.updated({"bits": 6})


def test_layers_take_a_config_or_its_fields(pcm):
    cfg = AnalogConfig(pcm, mode="ideal", eval_mode="hardware", seed=7)
    a = AnalogLinear(5, 3, config=cfg)
    b = AnalogLinear(5, 3, profile=pcm, mode="ideal", eval_mode="hardware", seed=7)
    assert a.analog_config == b.analog_config == cfg
    assert AnalogLinear(5, 3, config=cfg, mode="hardware").analog_config == dataclasses.replace(cfg, mode="hardware")
    assert AnalogLinear.from_float(nn.Linear(5, 3), cfg).analog_config is cfg
    assert AnalogLinear.from_float(nn.Linear(5, 3), "pcm", seed=7).seed == 7
    assert AnalogLSTM.from_float(nn.LSTM(3, 4), cfg).analog_config is cfg
    with pytest.raises(ParameterError, match="needs a profile or an AnalogConfig"):
        AnalogLinear(5, 3)
    with pytest.raises(ParameterError, match=r"unknown key\(s\) \['bits'\]"):
        AnalogLinear(5, 3, profile=pcm, bits=4)
    with pytest.raises(ParameterError, match="profile is given twice"):
        AnalogLinear.from_float(nn.Linear(5, 3), pcm, profile=pcm)
    harsh_dac = load_profile("pcm", overrides={"dac.bits": 4, "dac.range": {"kind": "fixed", "bound": 1.0}})
    with pytest.raises(ParameterError, match="AnalogLSTM does not support learn_input_range"):
        AnalogLSTM(3, 4, profile=harsh_dac, learn_input_range=True)
    with pytest.raises(ParameterError, match="AnalogMultiheadAttention does not support learn_input_range"):
        AnalogMultiheadAttention(4, 2, profile=harsh_dac, learn_input_range=True)


def test_layer_settings_read_and_change_through_the_config(pcm):
    layer = AnalogLinear(5, 3, profile=pcm, seed=2)
    layer.analog_mode = "noise_injection"
    layer.eval_mode = "ideal"
    assert layer.analog_config == AnalogConfig(pcm, mode="noise_injection", eval_mode="ideal", seed=2)
    with pytest.raises(ParameterError, match="mode must be one of"):
        layer.analog_mode = "LSTM"
    layer.reseed(9)
    assert layer.seed == layer.analog_config.seed == 9
    set_mode(nn.Sequential(layer), "hardware", eval_mode=None)
    assert (layer.analog_mode, layer.eval_mode) == ("hardware", None)
    with pytest.raises(ParameterError, match=r"set_mode: eval_mode .* \(got 'train'\)"):
        set_mode(nn.Sequential(layer), "hardware", eval_mode="train")
    lstm = AnalogLSTM(3, 4, profile=pcm)
    assert lstm.mode == "LSTM" and lstm.analog_mode == "hardware"  # torch's cell kind is left alone
    lstm.analog_mode = "ideal"
    assert lstm.mode == "LSTM"


def test_convert_with_a_config_equals_the_keyword_form(pcm):
    torch.manual_seed(0)
    net = mlp(16, (8,), 3)
    x = torch.randn(4, 16)
    a = convert(net, AnalogConfig(pcm, mode="hardware", seed=5))
    b = convert(net, pcm, mode="hardware", seed=5)
    assert [m.analog_config for _, m in analog_layers(a)] == [m.analog_config for _, m in analog_layers(b)]
    assert [m.seed for _, m in analog_layers(a)] == [5, 6]
    assert torch.equal(a(x), b(x))
    c = convert(net, AnalogConfig(pcm, seed=5), mode="ideal")  # keywords change the config
    assert [m.analog_mode for _, m in analog_layers(c)] == ["ideal", "ideal"]


def test_convert_overrides_take_a_config_a_profile_or_changes(pcm):
    net = mlp(16, (8, 8), 3)  # analog layers "1", "3", "5"
    ideal = load_profile("ideal")
    out = convert(net, pcm, seed=10, overrides={
        "1": AnalogConfig(ideal, mode="noise_injection", seed=100),  # a whole config: its seed + i
        "3": "ideal",                                                # a profile
        "5": {"mode": "ideal", "seed": 7, "profile": {"adc.bits": 5}},  # changes; the seed pinned
    })
    l1, l3, l5 = (m for _, m in analog_layers(out))
    assert l1.analog_config == AnalogConfig(ideal, mode="noise_injection", seed=100)
    assert l3.analog_config == AnalogConfig(ideal, seed=11)
    assert l5.analog_config == AnalogConfig(pcm.model_copy(), mode="ideal", seed=7).updated({"profile": {"adc.bits": 5}})
    with pytest.raises(ParameterError, match=r"convert overrides\['5'\]: unknown key\(s\) \['bits'\]"):
        convert(net, pcm, overrides={"5": {"bits": 6}})
