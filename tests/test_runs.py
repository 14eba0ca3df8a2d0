"""Runs (cimsim/runs.py): training resumes from its checkpoint bit for bit, checkpoints of other
settings are discarded, bad arguments are named."""

from __future__ import annotations

import pytest
import torch

from cimsim.errors import ParameterError, StateFormatError
from cimsim.runs import TRAIN_MODES, build_model, load_run, train_run


def _state(path):
    return torch.load(path, weights_only=True)


def test_interrupted_training_resumes_bit_for_bit(tmp_path):
    """An interrupted `train` re-run with the same settings resumes from its checkpoint and
    ends with exactly the weights and curve of an uninterrupted run."""
    kw = dict(profile="pcm", model="mlp", data="digits", mode="hardware", epochs=3, hidden=(16,), seed=4)
    train_run(tmp_path / "whole", **kw)
    assert not (tmp_path / "whole" / "checkpoint.pt").exists()

    class Stop(Exception):
        pass

    def stop_after_epoch_2(line):
        if line.startswith("epoch   2"):
            raise Stop(line)

    with pytest.raises(Stop):
        train_run(tmp_path / "cut", echo=stop_after_epoch_2, **kw)
    assert (tmp_path / "cut" / "checkpoint.pt").is_file() and not (tmp_path / "cut" / "model.pt").exists()
    lines = []
    train_run(tmp_path / "cut", echo=lines.append, **kw)
    assert lines[0].startswith("resuming from") and "after epoch 2" in lines[0]
    assert [ln.split()[1] for ln in lines[1:]] == ["3"]
    a, b = _state(tmp_path / "whole" / "model.pt"), _state(tmp_path / "cut" / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "whole" / "curve.csv").read_text() == (tmp_path / "cut" / "curve.csv").read_text()
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()


def test_checkpoint_of_other_settings_is_discarded(tmp_path):
    kw = dict(profile="pcm", model="mlp", data="digits", mode="hardware", epochs=2, hidden=(16,))

    def stop(line):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(tmp_path / "r", echo=stop, seed=1, **kw)
    assert (tmp_path / "r" / "checkpoint.pt").is_file()
    lines = []
    train_run(tmp_path / "r", echo=lines.append, seed=2, **kw)
    assert lines[0].startswith("discarding") and "other settings" in lines[0]
    train_run(tmp_path / "ref", seed=2, **kw)
    a, b = _state(tmp_path / "r" / "model.pt"), _state(tmp_path / "ref" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    lines = []
    train_run(tmp_path / "r", echo=lines.append, seed=2, **kw)
    assert lines[0].startswith("discarding") and "cannot be read" in lines[0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="fast"), r"mode must be one of \['hardware', 'noise_injection', 'ideal', 'smoothed', 'float'\] \(got 'fast'\)"),
        (dict(model="resnet"), r"unknown model 'resnet'; built-in models: \['mlp', 'lenet'\]"),
        (dict(seed=-2), r"seed must be an int in \[0, 2\^63 - 1\] \(got -2\), e.g. train_run"),
        (dict(epochs=0), r"epochs and batch size must be >= 1"),
    ],
)
def test_train_run_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        train_run(tmp_path / "r", **kwargs)
    assert not (tmp_path / "r").exists()


def test_build_model_from_spec():
    assert TRAIN_MODES[-1] == "float"
    net = build_model({"model": "mlp", "input_shape": [64], "n_classes": 10, "hidden": [8]})
    assert net(torch.zeros(2, 64)).shape == (2, 10)
    with pytest.raises(ParameterError, match="lenet needs square images"):
        build_model({"model": "lenet", "input_shape": [1, 8, 4], "n_classes": 10})


def test_damaged_checkpoint_resumes_from_the_one_before(tmp_path):
    kw = dict(profile="pcm", model="mlp", data="digits", mode="hardware", epochs=3, hidden=(16,), seed=4)
    train_run(tmp_path / "whole", **kw)

    def stop_after_epoch_2(line):
        if line.startswith("epoch   2"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(tmp_path / "cut", echo=stop_after_epoch_2, **kw)
    ck = tmp_path / "cut" / "checkpoint.pt"
    assert ck.with_name("checkpoint.pt.sha256").is_file() and ck.with_name("checkpoint.prev.pt").is_file()
    raw = bytearray(ck.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit: torch's loader would not notice
    ck.write_bytes(bytes(raw))
    lines = []
    train_run(tmp_path / "cut", echo=lines.append, **kw)
    assert lines[0].startswith(f"discarding {ck}") and "does not match" in lines[0]
    assert lines[1].startswith("resuming from") and "checkpoint.prev.pt after epoch 1" in lines[1] and "damaged" in lines[1]
    assert [ln.split()[1] for ln in lines[2:]] == ["2", "3"]
    a, b = _state(tmp_path / "whole" / "model.pt"), _state(tmp_path / "cut" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list((tmp_path / "cut").glob("checkpoint*"))


def test_load_run_checks_files(tmp_path):
    train_run(tmp_path / "r", profile="pcm", model="mlp", data="digits", mode="float", epochs=1, hidden=(8,))
    load_run(tmp_path / "r")
    (tmp_path / "r" / "profile.yaml").write_text((tmp_path / "r" / "profile.yaml").read_text() + "\n# edited\n")
    with pytest.raises(StateFormatError, match=r"profile.yaml: sha256 .* does not match"):
        load_run(tmp_path / "r")
    with pytest.raises(StateFormatError, match=r"no such file"):
        (tmp_path / "r" / "model.pt").unlink()
        load_run(tmp_path / "r", profile="pcm")
