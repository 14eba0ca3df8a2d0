"""Chips: programming never touches the model, deployed == simulated, save/load bit-exact, views."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

from cimsim.data import digits
from cimsim.errors import ParameterError, StateFormatError
from cimsim.evaluation import Chip, evaluate_drift, program
from cimsim.models import lenet, mlp
from cimsim.nn import analog_layers, convert
from cimsim.profiles import load_profile
from cimsim.rng import layer_seed, split_seed


def _arrays(state) -> dict[str, np.ndarray]:
    """Every numpy array an object holds (dataclass fields or attributes), by name."""
    items = (
        {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
        if dataclasses.is_dataclass(state)
        else dict(vars(state))
    )
    return {k: v for k, v in items.items() if isinstance(v, np.ndarray)}


def _assert_states_equal(a, b) -> None:
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    assert len(a) == len(b)
    for sa, sb in zip(a, b):
        aa, ab = _arrays(sa), _arrays(sb)
        assert aa.keys() == ab.keys() and aa
        for k in aa:
            assert aa[k].dtype == ab[k].dtype and aa[k].tobytes() == ab[k].tobytes(), k


@pytest.fixture(scope="module")
def pcm():
    return load_profile("pcm")


@pytest.fixture(scope="module")
def data():
    return digits(seed=0)


@pytest.fixture(scope="module")
def model(pcm):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return convert(mlp(64, (48, 32), 10), pcm, seed=0)


@pytest.fixture(scope="module")
def cnn(pcm):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = lenet(1, 10, input_size=8, channels=(4, 8), hidden=(16,))
    net[0] = torch.nn.Conv2d(1, 4, 3, padding=1, groups=1)
    net[3] = torch.nn.Conv2d(4, 8, 3, padding=1, groups=2)  # grouped: one state per group
    return convert(net, pcm, seed=0)


def test_program_does_not_touch_the_model(model, data):
    before = copy.deepcopy(model.state_dict())
    grads = [p.requires_grad for p in model.parameters()]
    training = model.training
    chip = program(model, seed=3)
    chip.forward(data.x_test[:8], t_s=3600.0, compensation="global")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in model.parameters()] == grads and model.training == training
    assert all(not layer.chip_attached for _, layer in analog_layers(model))
    assert chip.layer_names == ["1", "3", "5"]


def test_deployed_equals_simulated(model):
    """Layer i of chip s holds exactly the state a hardware forward with layer_seed(s, i) programs."""
    chip = program(model, seed=9)
    for i, (name, layer) in enumerate(analog_layers(model)):
        s = layer_seed(9, i)
        assert chip.layer_seeds[i] == s
        _assert_states_equal(chip.states[name], layer.program(s))
        from cimsim.crossbar import program_matrix

        ref = program_matrix(layer.weight.detach().numpy(), layer.profile, rng=split_seed(s)[0])
        _assert_states_equal(chip.states[name], ref)


def test_chip_reads_are_reproducible_and_depend_on_time(model, data):
    chip = program(model, seed=1)
    x = data.x_test[:32]
    a = chip.forward(x, t_s=86400.0)
    b = chip.forward(x, t_s=86400.0)
    assert torch.equal(a, b)
    chip.forward(x, t_s=1.0)  # reading another time first changes nothing
    assert torch.equal(chip.forward(x, t_s=86400.0), a)
    with torch.no_grad():  # first layer, bias removed: the decayed conductances give smaller outputs
        early = chip.at(1.0)[1](x) - chip.model[1].bias
        late = chip.at(3.15576e8)[1](x) - chip.model[1].bias
    ratio = float(late.abs().mean() / early.abs().mean())
    assert 0.3 < ratio < 0.8, ratio
    assert torch.equal(program(model, seed=1).forward(x, t_s=86400.0), a)
    assert not torch.equal(program(model, seed=2).forward(x, t_s=86400.0), a)


def test_module_view(model, data):
    chip = program(model, seed=1)
    x = data.x_test[:16]
    view = chip.at(3600.0, compensation="global")
    assert isinstance(view, torch.nn.Module) and not view.training
    with torch.no_grad():
        y = view(x)
    assert y.shape == (16, 10)
    assert torch.equal(y, chip.forward(x, t_s=3600.0, compensation="global"))
    assert torch.equal(chip(x, t_s=3600.0), chip.forward(x, t_s=3600.0))
    # the view shares the chip's weights, it does not copy them
    assert next(view.parameters()).data_ptr() == next(chip.model.parameters()).data_ptr()


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_save_load_bit_exact(which, model, cnn, data, tmp_path):
    net = model if which == "mlp" else cnn
    x = data.x_test[:24] if which == "mlp" else data.x_test[:6].reshape(-1, 1, 8, 8)
    chip = program(net, seed=5)
    chip.save(tmp_path / "chip")
    loaded = Chip.load(tmp_path / "chip", model=net)  # weights_only, into the given architecture
    other = loaded
    assert other.seed == chip.seed and other.layer_seeds == chip.layer_seeds
    for name in chip.layer_names:
        _assert_states_equal(chip.states[name], other.states[name])
    cases = [(0.0, "none"), (1.0, "global"), (3.15576e7, "per_column")]
    if which == "mlp":
        cases += [(0.0, "global"), (3.15576e7, "none"), (3.15576e7, "global")]
    for t, comp in cases:
        assert torch.equal(chip.forward(x, t_s=t, compensation=comp), other.forward(x, t_s=t, compensation=comp))


def test_loaded_chip_evaluates_equal(model, data, tmp_path):
    small = (data.x_test[:100], data.y_test[:100])
    chip = program(model, seed=5)
    chip.save(tmp_path / "c")
    times = [1.0, 3600.0, 3.15576e8]
    a = evaluate_drift(chip, small, times_s=times, workers=1)
    b = evaluate_drift(Chip.load(tmp_path / "c", model=model), small, times_s=times, workers=1)
    assert a.equals(b)


def test_chip_errors(model, tmp_path):
    with pytest.raises(ParameterError, match="seed must be an int"):
        program(model, seed=-1)
    chip = program(model, seed=0)
    with pytest.raises(ParameterError, match=r"t_s must be a finite number of seconds >= 0.*\(got -5"):
        chip.forward(torch.zeros(1, 64), t_s=-5)
    with pytest.raises(ParameterError, match="compensation must be one of"):
        chip.at(1.0, compensation="magic")
    with pytest.raises(StateFormatError, match="no chip at .*missing chip.json"):
        Chip.load(tmp_path / "nothing", model=model)
    chip.save(tmp_path / "c")
    with pytest.raises(StateFormatError, match="does not match the saved chip"):
        Chip.load(tmp_path / "c", model=convert(mlp(64, (8,), 10), "pcm"))


def test_load_never_unpickles(model, tmp_path):
    chip = program(model, seed=0)
    chip.save(tmp_path / "c")
    assert not (tmp_path / "c" / "model.pt").exists()
    flag = tmp_path / "ran"

    class Boom:
        def __reduce__(self):
            return (open, (str(flag), "w"))

    import pickle

    (tmp_path / "c" / "model.pt").write_bytes(pickle.dumps(Boom()))  # a planted file
    with pytest.raises(ParameterError, match=r"Chip.load\(.*model=converted_model\)"):
        Chip.load(tmp_path / "c")
    torch.save({"x": Boom()}, tmp_path / "c" / "state_dict.pt")  # pickled code in place of the weights
    with pytest.raises(StateFormatError, match=r"state_dict.pt: sha256 .* does not match"):
        Chip.load(tmp_path / "c", model=model)
    assert not flag.exists()


def test_chip_directory_checks(model, tmp_path):
    a, b = program(model, seed=0), program(model, seed=1)
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    import shutil

    shutil.copy(tmp_path / "b" / "layer001_g000.npz", tmp_path / "a" / "layer001_g000.npz")  # mixed chips
    with pytest.raises(StateFormatError, match=r"layer001_g000.npz: sha256 .* does not match its recorded checksum"):
        Chip.load(tmp_path / "a", model=model)
    man = json.loads((tmp_path / "b" / "chip.json").read_text())
    del man["layers"]
    text = json.dumps(man)
    (tmp_path / "b" / "chip.json").write_text(text)
    with pytest.raises(StateFormatError, match=r"chip.json: sha256 .* does not match"):
        Chip.load(tmp_path / "b", model=model)
    (tmp_path / "b" / "chip.json.sha256").write_text(hashlib.sha256(text.encode()).hexdigest() + "  chip.json\n")
    with pytest.raises(StateFormatError, match=r"chip.json: field 'layers' must be a list of layer names"):
        Chip.load(tmp_path / "b", model=model)
    (tmp_path / "b" / "chip.json.sha256").unlink()
    with pytest.raises(StateFormatError, match=r"chip.json: no checksum file"):
        Chip.load(tmp_path / "b", model=model)
