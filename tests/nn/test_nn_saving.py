"""cimsim.save / cimsim.load: converted models that remember their chip (issue 14 item 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import cimsim
from cimsim.errors import ParameterError, StateFormatError
from cimsim.models import lenet, mlp
from cimsim.nn import analog_layers, convert
from cimsim.profiles.loader import load_profile

ROOT = Path(__file__).resolve().parents[2]


def _run_fresh(code: str, tmp_path: Path) -> None:
    """Run ``code`` in a new Python process (nothing shared with this one but files)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.slow
def test_a_converted_calibrated_builtin_model_round_trips_bit_for_bit_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    prof = load_profile("pcm", overrides={"read_noise.per_read_sigma_rel": 0.02,
                                          "adc.range": {"kind": "calibrated", "percentile": 99.5}})
    model = convert(mlp(16, (24,), 5), prof, seed=7, overrides={"3": {"profile": {"adc.bits": 6}}})
    cimsim.calibrate(model, torch.randn(40, 16))
    model.train()
    model(torch.randn(3, 16)).sum().backward()  # the generators move on
    model.eval()
    model[3].eval_t_s = 60.0
    x = torch.randn(9, 16)
    with torch.no_grad():
        y_before = model(x)  # deploys the eval chip; the saved model must read the same one
    cimsim.save(model, tmp_path / "m.pt")
    with torch.no_grad():
        y_after = model(x)
    assert torch.equal(y_before, y_after)
    torch.save({"x": x, "y": y_after}, tmp_path / "io.pt")
    meta = json.loads(torch.load(tmp_path / "m.pt", weights_only=True)["meta"])
    assert meta["arch"]["name"] == "mlp" and meta["versions"]["torch"] == torch.__version__
    assert meta["layers"][1]["config"]["profile"]["adc"]["bits"] == 6  # the resolved profile, as data
    assert [r["calibrated"] for r in meta["layers"]] == [1, 1]
    _run_fresh(
        """
        import torch, cimsim
        m = cimsim.load("m.pt")                     # a built-in model: no model= needed
        io = torch.load("io.pt", weights_only=True)
        assert not m.training and m[3].eval_t_s == 60.0
        assert m[1].calibration is not None and m[3].calibration.bounds[0][1].shape == (1, 5)
        with torch.no_grad():
            y1, y2 = m(io["x"]), m(io["x"])
        assert torch.equal(y1, io["y"]) and torch.equal(y2, io["y"]), (y1 - io["y"]).abs().max()
        m.train()
        torch.save(m(io["x"]), "train_out.pt")     # the generators were restored too
        """,
        tmp_path,
    )
    with torch.no_grad():
        model(x)  # two eval forwards there too: one seed drawn each
    model.train()
    assert torch.equal(model(x), torch.load(tmp_path / "train_out.pt", weights_only=True))


class UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        return self.head(self.body(x))


def test_a_user_model_loads_into_the_float_or_the_converted_architecture(tmp_path):
    torch.manual_seed(1)
    model = convert(UserNet(), "pcm", seed=3, overrides={"head": {"mode": "noise_injection"}}).eval()
    x = torch.randn(5, 2, 6)
    cimsim.save(model, tmp_path / "u.pt")
    with torch.no_grad():
        ref = model(x)
    for arch in (UserNet(), convert(UserNet(), "pcm", seed=3, overrides={"head": {"mode": "noise_injection"}})):
        back = cimsim.load(tmp_path / "u.pt", model=arch)
        assert [type(m).__name__ for _, m in analog_layers(back)] == ["AnalogConv1d", "AnalogLinear"]
        assert back.head.analog_mode == "noise_injection" and back.body[0].seed == 3
        with torch.no_grad():
            assert torch.equal(back(x), ref)
    with pytest.raises(ParameterError, match="model="):
        cimsim.load(tmp_path / "u.pt")  # a user architecture is not rebuilt by name


def test_a_model_converted_differently_or_a_damaged_file_is_a_named_error(tmp_path):
    model = convert(lenet(input_size=8), "pcm", seed=0)
    path = cimsim.save(model, tmp_path / "l.pt")
    assert json.loads(torch.load(path, weights_only=True)["meta"])["arch"]["kwargs"]["input_size"] == 8
    assert [n for n, _ in analog_layers(cimsim.load(path))] == [n for n, _ in analog_layers(model)]
    with pytest.raises(StateFormatError, match=r"layer '0'.*profile .*'ideal'.*'pcm'"):
        cimsim.load(path, model=convert(lenet(input_size=8), "ideal"))
    with pytest.raises(StateFormatError, match=r"layer '0'.*seed"):
        cimsim.load(path, model=convert(lenet(input_size=8), "pcm", seed=5))
    with pytest.raises(StateFormatError, match="analog layers"):
        cimsim.load(path, model=convert(lenet(input_size=8), "pcm", filter=lambda m, n: n != "0"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(StateFormatError, match=r"l\.pt.*sha256"):
        cimsim.load(path)
    with pytest.raises(ParameterError, match="no analog layers"):
        cimsim.save(lenet(), tmp_path / "float.pt")


def test_training_method_settings_survive_save_and_load(tmp_path):
    """The noise-injection spec, its gradient option, the ADC backward and the smoothing option
    are part of a layer's config: saved, restored, and checked against a model given to load."""
    from cimsim.nn import NoiseSpec

    net = mlp(8, (6,), 3)
    model = convert(net, "pcm", seed=2, overrides={
        "1": {"mode": "noise_injection", "noise": NoiseSpec("multiplicative", 0.2, "channel"), "noise_grad": "through"},
        "3": {"adc_backward": "expected", "adc_sigma_lsb": 0.7, "smoothing_noise": False}})
    cimsim.save(model, tmp_path / "m.pt")
    back = cimsim.load(tmp_path / "m.pt", model=mlp(8, (6,), 3))
    layers = dict(analog_layers(back))
    c0, c2 = layers["1"].analog_config, layers["3"].analog_config
    assert c0.noise == NoiseSpec("multiplicative", 0.2, "channel") and c0.noise_grad == "through"
    assert c2.adc_backward == "expected" and c2.adc_sigma_lsb == 0.7 and c2.smoothing_noise is False
    plain = convert(mlp(8, (6,), 3), "pcm", seed=2, overrides={"1": {"mode": "noise_injection"}})
    with pytest.raises(StateFormatError, match=r"layer '1' was converted differently: its noise"):
        cimsim.load(tmp_path / "m.pt", model=plain)
