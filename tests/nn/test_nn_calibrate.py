"""cimsim.calibrate: calibrated converter ranges for whole models (issue 14 item 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cimsim
from cimsim.errors import CalibrationError, ParameterError
from cimsim.models import mlp
from cimsim.nn import analog_layers, calibrate, convert
from cimsim.profiles.loader import load_profile

ADC_CAL = {"adc.range": {"kind": "calibrated", "percentile": 99.5}}


def _fefet():
    return load_profile("fefet", overrides=ADC_CAL)


def test_a_fefet_calibrated_model_runs_and_its_chips_carry_the_ranges():
    torch.manual_seed(0)
    model = convert(mlp(16, (32,), 4), _fefet(), seed=2)
    x = torch.randn(50, 16)
    with pytest.raises(CalibrationError, match=r"cimsim\.calibrate\(model"):
        model(x)
    loader = [(x[:20], torch.zeros(20)), (x[20:], torch.zeros(30))]  # DataLoader-like (x, y) batches
    assert calibrate(model, loader) is model
    first = model[1]
    # the stored ADC bounds are the reference chip's calibration on the layer's inputs
    ref = first._program_raw(first.seed)[0].calibrate(x.numpy())
    (dac, adc), = first.calibration.bounds
    assert dac is None and np.array_equal(adc, ref.adc_bound)
    assert adc.shape == (1, 32) and (adc > 0).all()
    model.train()
    y = model(x)  # training forward: a fresh chip with the calibrated ranges
    s = first.last_seed
    h = model[0](x)
    assert torch.equal(first.hardware_forward(h, s),
                       first.forward_chip(h, first.program(s), rng=first.read_rng(s), t_s=0.0))
    assert y.shape == (50, 4)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    assert "calibrated=" in repr(first)  # the study and chip fingerprints hash the repr
    chip = cimsim.program(model, seed=5)
    st = chip.states["1"]
    assert np.array_equal(st.adc_bound, adc)
    assert chip.forward(x, t_s=10.0).shape == (50, 4)


def test_dac_and_adc_calibration_reach_conv_and_recurrent_layers():
    prof = load_profile("pcm", overrides={"dac.range": {"kind": "calibrated", "percentile": 99.0}, **ADC_CAL})
    torch.manual_seed(1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 6, 3, groups=2)
            self.gru = nn.GRU(6, 5)

        def forward(self, x):  # x [N, 4, L]
            h = self.conv(x).permute(2, 0, 1)  # [L', N, 6]
            return self.gru(h)[0]

    model = convert(Net(), prof, seed=0).eval()
    x = torch.randn(3, 4, 9)
    calibrate(model, x)
    for name, layer in analog_layers(model):
        assert layer.calibration is not None, name
        for dac, adc in layer.calibration.bounds:
            assert dac is not None and dac > 0 and adc is not None and (adc > 0).all()
    assert len(model.conv.calibration.bounds) == 2  # one per group
    with torch.no_grad():
        y1, y2 = model(x), model(x)
    assert torch.equal(y1, y2) and torch.isfinite(y1).all()
    # a new profile invalidates the calibration
    model.conv.analog_config = model.conv.analog_config.updated({"profile": {"adc.bits": 6}})
    with pytest.raises(CalibrationError, match="calibrate"):
        model(x)


def test_calibrate_refuses_models_without_calibrated_ranges_and_bad_data():
    with pytest.raises(ParameterError, match="calibrated converter range"):
        calibrate(convert(mlp(4, (3,), 2), "pcm"), torch.randn(2, 4))
    model = convert(mlp(4, (3,), 2), _fefet())
    with pytest.raises(ParameterError, match="batch must be"):
        calibrate(model, [3.0])
    assert model[1]._recorder is None  # recording switched off again after a failure
