"""Analog layers as torch modules: simulated == deployed, modes, state_dict/save/deepcopy, convert."""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cimsim.crossbar import program_matrix, tile_mvm
from cimsim.errors import ParameterError, ShapeError
from cimsim.models import lenet, mlp
from cimsim.nn import (
    AnalogConv1d,
    AnalogConv2d,
    AnalogLinear,
    analog_layers,
    convert,
    rng_state,
    set_mode,
    set_rng_state,
    to_digital,
)
from cimsim.profiles.loader import load_profile
from cimsim.rng import group_seed, split_seed


# --------------------------------------------------------------------------- simulated == deployed
def test_training_forward_equals_chip_programmed_with_same_seed_bit_for_bit(pcm):
    torch.manual_seed(0)
    layer = AnalogLinear(300, 40, profile=pcm, seed=11).train()
    x = torch.randn(16, 300, requires_grad=True)
    y = layer(x)
    s = layer.last_seed
    assert layer.last_t_s == 0.0
    prog, read = split_seed(s)
    state = program_matrix(layer.weight.detach().numpy(), pcm, rng=prog)
    y_chip = tile_mvm(x.detach().numpy(), state, t_s=0.0, rng=read) + layer.bias.detach().numpy()
    assert np.array_equal(y.detach().numpy(), y_chip)
    # ... and through the layer's own chip API
    y2 = layer.forward_chip(x, layer.program(s), rng=layer.read_rng(s), t_s=0.0)
    assert torch.equal(y.detach(), y2.detach())


def test_grouped_conv_equals_its_chips(pcm):
    torch.manual_seed(1)
    conv = AnalogConv2d(4, 6, 3, padding=1, groups=2, profile=pcm)
    x = torch.randn(2, 4, 6, 6)
    y = conv(x)
    s = conv.last_seed
    states = conv.program(s)
    assert isinstance(states, tuple) and len(states) == 2
    assert torch.equal(y, conv.forward_chip(x, states, rng=conv.read_rng(s), t_s=0.0))
    # group g is the matrix [out/groups, in/groups * k*k] programmed with group_seed(s, g)
    cols = F.unfold(F.pad(x, [1, 1, 1, 1]), 3).transpose(1, 2).reshape(-1, 36)
    w1 = conv.weight[3:].reshape(3, 18).detach().numpy()
    prog, read = split_seed(group_seed(s, 1))
    y1 = tile_mvm(cols[:, 18:].contiguous().numpy(), program_matrix(w1, pcm, rng=prog), t_s=0.0, rng=read)
    y1 = y1 + conv.bias[3:].detach().numpy()
    assert np.array_equal(y[:, 3:].detach().permute(0, 2, 3, 1).reshape(-1, 3).numpy(), y1)


def test_training_drift_time_is_drawn_per_step_and_reproducible():
    prof = load_profile("pcm", overrides={"training.drift_t_min_s": 60.0, "training.drift_t_max_s": 3.15e7})
    layer = AnalogLinear(20, 5, profile=prof, seed=3).train()
    x = torch.randn(4, 20)
    ts = []
    for _ in range(50):
        y = layer(x)
        ts.append(layer.last_t_s)
        assert 60.0 <= layer.last_t_s <= 3.15e7
    # the last one is the chip with that seed read at that time
    s, t = layer.last_seed, layer.last_t_s
    assert torch.equal(y, layer.forward_chip(x, layer.program(s), rng=layer.read_rng(s), t_s=t))
    # log-uniform: the median of log10(t) is near the middle of [log10(60), log10(3.15e7)] (5 SE)
    logs = np.log10(ts)
    mid = (np.log10(60.0) + np.log10(3.15e7)) / 2
    se = (np.log10(3.15e7) - np.log10(60.0)) / np.sqrt(12 * len(ts))
    assert abs(logs.mean() - mid) < 5 * se
    layer.eval()
    layer(x)
    assert layer.last_t_s == 0.0  # eval reads at eval_t_s (0 by default)


def test_same_generator_seed_gives_same_forward_and_reseed_restarts(pcm):
    a = AnalogLinear(30, 8, profile=pcm, seed=5)
    b = copy.deepcopy(a)
    x = torch.randn(3, 30)
    assert torch.equal(a(x), b(x))
    y1 = a(x)
    a.reseed(5)
    a(x)
    assert torch.equal(a(x), y1)


# --------------------------------------------------------------------------- modes
def test_modes_ideal_eval_mode_and_errors(pcm):
    torch.manual_seed(2)
    layer = AnalogLinear(20, 6, profile=pcm, mode="ideal")
    x = torch.randn(3, 20)
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    layer.analog_mode = "hardware"
    layer.eval_mode = "ideal"
    layer.eval()
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    layer.train()
    assert not torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    with pytest.raises(ParameterError, match="mode must be one of"):
        AnalogLinear(2, 2, profile=pcm, mode="fast")
    with pytest.raises(ParameterError, match="backward_weights"):
        AnalogLinear(2, 2, profile=pcm, backward_weights="chip")
    with pytest.raises(ShapeError, match=r"in_features=20 \(got input \(3, 21\)\)"):
        AnalogLinear(20, 2, profile=pcm)(torch.randn(3, 21))


def test_eval_mode_default_is_the_hardware_forward(pcm):
    layer = AnalogLinear(20, 6, profile=pcm).eval()
    x = torch.randn(3, 20)
    with torch.no_grad():
        y = layer(x)
    s = layer.last_seed
    assert torch.equal(y, layer.forward_chip(x, layer.program(s), rng=layer.read_rng(s), t_s=0.0))


# --------------------------------------------------------------------------- torch plumbing
def test_state_dict_is_the_float_layers(pcm):
    lin = nn.Linear(10, 4)
    a = AnalogLinear.from_float(lin, pcm)
    assert list(a.state_dict()) == list(lin.state_dict())
    b = AnalogLinear(10, 4, profile=pcm)
    b.load_state_dict(lin.state_dict())
    assert torch.equal(b.weight, lin.weight)
    lin2 = nn.Linear(10, 4)
    lin2.load_state_dict(b.state_dict())
    assert torch.equal(lin2.weight, lin.weight)


def test_rng_state_puts_every_layer_generator_back(pcm, tmp_path):
    """rng_state/set_rng_state (saved with torch.save) restore the position of every layer's
    generator: the next hardware forwards repeat bit for bit; a model of other layers is refused."""
    torch.manual_seed(0)
    net = convert(mlp(12, (8,), 3), pcm, seed=3)
    x = torch.randn(5, 12)
    net(x)
    torch.save({"model": net.state_dict(), "gen": rng_state(net)}, tmp_path / "ck.pt")
    ahead = [net(x) for _ in range(2)]
    ck = torch.load(tmp_path / "ck.pt", weights_only=True)
    other = convert(mlp(12, (8,), 3), pcm, seed=3)
    other.load_state_dict(ck["model"])
    assert not torch.equal(other(x), ahead[0])  # a fresh generator is elsewhere in its stream
    set_rng_state(other, ck["gen"])
    assert all(torch.equal(other(x), y) for y in ahead)
    assert list(ck["gen"]) == [name for name, _ in analog_layers(net)]
    with pytest.raises(ParameterError, match=r"without a state: \['3'\].*for no layer: \['9'\]"):
        set_rng_state(other, {"1": ck["gen"]["1"], "9": ck["gen"]["1"]})
    with pytest.raises(ParameterError, match="uint8 tensor"):
        set_rng_state(other, {k: 1 for k in ck["gen"]})


def test_torch_save_load_deepcopy_pickle_and_optimizer(pcm):
    torch.manual_seed(4)
    model = convert(mlp(16, (12,), 3), pcm, seed=7)
    x = torch.randn(5, 16)
    for clone in (
        copy.deepcopy(model),
        pickle.loads(pickle.dumps(model)),
        _torch_roundtrip(model),
    ):
        assert torch.equal(clone(x), copy.deepcopy(model)(x))
        assert clone[1].profile == model[1].profile
    # state dict round trip through torch.save with weights_only
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = convert(mlp(16, (12,), 3), pcm, seed=7)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(fresh(x), copy.deepcopy(model)(x))
    # an optimizer built before conversion in place still steps the same Parameters
    base = mlp(16, (12,), 3)
    opt = torch.optim.Adam(base.parameters(), lr=1e-2)
    convert(base, pcm, inplace=True)
    w0 = base[1].weight.detach().clone()
    loss = F.cross_entropy(base(x), torch.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    opt.step()
    assert not torch.equal(base[1].weight, w0)
    # and the next forward programs from the new weights
    s = 123
    prog, read = split_seed(s)
    state = program_matrix(base[1].weight.detach().numpy(), pcm, rng=prog)
    y_ref = tile_mvm(x.numpy(), state, t_s=0.0, rng=read) + base[1].bias.detach().numpy()
    assert np.array_equal(base[1].hardware_forward(x, s).detach().numpy(), y_ref)


def _torch_roundtrip(model):
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


# --------------------------------------------------------------------------- convert / to_digital
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv1d(4, 4, 1))
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 2)})
        self.shared = self.blocks[0]  # the same module under two names
        self.norm = nn.LayerNorm(8)
        self.attn = nn.MultiheadAttention(8, 2)  # swapped whole; its out_proj (a Linear subclass) is not

    def forward(self, x):
        return self.heads["a"](self.blocks[1](self.shared(x)))


def test_convert_walks_any_tree_and_to_digital_reverses(pcm):
    net = _Net()
    out = convert(net, pcm, seed=10)
    assert isinstance(net.blocks[0], nn.Linear) and not isinstance(net.blocks[0], AnalogLinear)  # not in place
    names = [n for n, _ in analog_layers(out)]
    assert names == ["features.0", "features.2", "blocks.0", "blocks.1", "heads.a", "attn"]
    assert [m.seed for _, m in analog_layers(out)] == [10, 11, 12, 13, 14, 15]
    assert isinstance(out.features[0], AnalogConv2d) and isinstance(out.features[2], AnalogConv1d)
    assert out.shared is out.blocks[0]
    assert type(out.attn.out_proj) is not AnalogLinear
    back = to_digital(out)
    assert not analog_layers(back)
    assert type(back.blocks[0]) is nn.Linear and back.shared is back.blocks[0]
    assert list(back.state_dict()) == list(net.state_dict())
    x = torch.randn(3, 8)
    set_mode(out, "ideal")
    torch.testing.assert_close(out(x), back(x), rtol=0, atol=0)
    torch.testing.assert_close(out(x), net(x), rtol=0, atol=0)


def test_convert_swaps_conv3d_and_it_trains_in_hardware_mode(pcm):
    from cimsim.nn import AnalogConv3d

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1, groups=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4 * 4, 3))
    out = convert(net, pcm, seed=1)
    assert isinstance(out[0], AnalogConv3d) and type(to_digital(out)[0]) is nn.Conv3d
    x = torch.randn(5, 2, 4, 4, 4)
    loss = F.cross_entropy(out(x), torch.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    assert out[0].weight.grad is not None and torch.isfinite(out[0].weight.grad).all() and out[0].weight.grad.abs().sum() > 0
    # the training forward equals its chips (one per group), programmed with the same seed
    layer = out[0]
    y = layer.hardware_forward(x, 77)
    assert torch.equal(y, layer.forward_chip(x, layer.program(77), rng=layer.read_rng(77), t_s=0.0))


def test_convert_filter_overrides_and_root_layer(pcm):
    net = _Net()
    out = convert(net, pcm, filter=lambda m, name: not name.startswith("features") and name != "attn",
                  overrides={"blocks.*": {"mode": "noise_injection"},
                             "heads.a": {"profile": {"adc.bits": 6}, "seed": 99}})
    assert [n for n, _ in analog_layers(out)] == ["blocks.0", "blocks.1", "heads.a"]
    assert type(out.attn) is nn.MultiheadAttention
    assert out.blocks[0].analog_mode == "noise_injection" and out.heads["a"].analog_mode == "hardware"
    assert out.heads["a"].profile.adc.bits == 6 and out.blocks[0].profile.adc.bits == 8
    assert out.heads["a"].seed == 99
    with pytest.raises(ParameterError, match="unknown key"):
        convert(net, pcm, overrides={"heads.a": {"bits": 6}})
    with pytest.raises(ParameterError, match="mode must be one of"):
        convert(net, pcm, mode="analog")
    lin = nn.Linear(3, 2)
    a = convert(lin, "ideal", inplace=True)
    assert isinstance(a, AnalogLinear) and a.weight is lin.weight
    assert type(to_digital(a)) is nn.Linear


def test_models_shapes():
    assert mlp()(torch.zeros(2, 64)).shape == (2, 10)
    assert mlp()(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    for size, ch in ((8, 1), (28, 1), (32, 3)):
        assert lenet(ch, input_size=size)(torch.zeros(2, ch, size, size)).shape == (2, 10)
    with pytest.raises(ParameterError):
        lenet(input_size=4)


def test_convert_with_learnable_input_range(harsh):
    model = convert(mlp(16, (8,), 3), harsh, learn_input_range=True, seed=2)
    layers = [m for _, m in analog_layers(model)]
    assert all(isinstance(m.input_range, nn.Parameter) for m in layers)
    assert {n for n, _ in model.named_parameters()} >= {"1.input_range", "3.input_range"}
    x = torch.randn(4, 16)
    loss = model(x).pow(2).sum()
    loss.backward()
    assert all(m.input_range.grad is not None for m in layers)
    s = layers[0].last_seed
    with torch.no_grad():
        y = layers[0].hardware_forward(x, s)
        assert torch.equal(y, layers[0].forward_chip(x, layers[0].program(s), rng=layers[0].read_rng(s), t_s=0.0))
    back = to_digital(model)
    assert "1.input_range" not in back.state_dict()
    assert torch.equal(copy.deepcopy(model)[1].input_range, model[1].input_range)


def test_non_finite_weights_or_inputs_raise_named_errors(pcm):
    from cimsim.errors import NonFiniteError

    layer = AnalogLinear(8, 3, profile=pcm)
    with pytest.raises(NonFiniteError):
        layer(torch.full((2, 8), float("nan")))
    with torch.no_grad():
        layer.weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteError):
        layer(torch.randn(2, 8))


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")
def test_converted_transformer_layers_run_on_the_chip_in_eval_too():
    """torch's fused TransformerEncoderLayer kernel (eval + no_grad, as drift studies run) reads the
    float weights: the analog layers' hook keeps it off, so the chip is used; nested tensors from
    nn.TransformerEncoder's padding fast path get a named error."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True, dropout=0.0).eval()
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        ref = layer(x)
    analog = convert(layer, load_profile("pcm", overrides={"adc.bits": 4}), seed=0).eval()
    with torch.no_grad():
        y = analog(x)
    assert analog.linear1.last_seed is not None  # the analog forward ran
    assert not torch.allclose(y, ref, atol=1e-4)
    with torch.no_grad():  # the ideal chip gives the float layer back through the slow path
        y_ideal = convert(layer, "ideal").eval()(x)
    torch.testing.assert_close(y_ideal, ref, rtol=1e-4, atol=1e-5)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0), 2)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[:, -2:] = True
    with torch.no_grad(), pytest.raises(ParameterError, match="enable_nested_tensor=False"):
        convert(enc, "pcm").eval()(x, src_key_padding_mask=mask)
