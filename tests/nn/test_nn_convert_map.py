"""convert's conversion map: subclasses, HuggingFace Conv1D, user entries, and the report (issue 14 item 3)."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from cimsim.errors import ParameterError
from cimsim.nn import AnalogLayer, AnalogLinear, ConversionWarning, analog_layers, convert
from cimsim.nn.hf import AnalogConv1D


class MyLinear(nn.Linear):
    """A user's Linear subclass (exact-type matching used to skip it)."""


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = Conv1D(12, 8)  # HF layout: weight [in=8, out=12]
        self.head = MyLinear(12, 3)

    def forward(self, x):
        return self.head(F.relu(self.proj(x)))


class Custom(nn.Module):
    """A module holding a weight matrix that no map entry knows."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 3))

    def forward(self, x):
        return x @ self.w


def test_hf_conv1d_and_linear_subclass_are_converted_reported_and_exact_on_the_ideal_chip():
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(4, 5, 8)
    ref = net(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing holding a weight matrix was skipped
        analog = convert(net, "ideal")
    assert isinstance(analog.proj, AnalogConv1D) and isinstance(analog.proj, Conv1D)
    assert type(analog.head) is AnalogLinear
    assert analog.conversion_report.converted == {"proj": "Conv1D -> AnalogConv1D", "head": "MyLinear -> AnalogLinear"}
    assert analog.conversion_report.digital == {}
    assert analog.proj.weight.shape == (8, 12)  # the HF layout and state dict are kept
    assert analog.state_dict().keys() == net.state_dict().keys()
    y = analog(x)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5)
    y.sum().backward()  # the gradient reaches the transposed weight
    assert analog.proj.weight.grad is not None and analog.proj.weight.grad.abs().sum() > 0


def test_hf_conv1d_runs_on_a_real_chip_and_pickles_by_name():
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(6, 8)
    analog = convert(net, "pcm", seed=1).eval()
    with torch.no_grad():
        y = analog(x)
        assert not torch.allclose(y, net(x), atol=1e-4)  # programming noise: the chip really ran
        # the crossbar holds W^T [out, in]: the forward is the chip of that matrix
        h = analog.proj(x)
        s = analog.proj.last_seed
        state = analog.proj.program(s)
        assert state.weight_shape == (12, 8)
        assert torch.equal(h, analog.proj.forward_chip(x, state, rng=analog.proj.read_rng(s), t_s=0.0))
    buf = io.BytesIO()
    torch.save(analog, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    assert type(back.proj) is AnalogConv1D


def test_gpt2_from_a_config_has_every_projection_converted():
    cfg = GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 40, (2, 7))
    with torch.no_grad():
        ref = model(ids).logits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analog = convert(model, "ideal").eval()
    rep = analog.conversion_report
    conv1d = [n for n, v in rep.converted.items() if v == "Conv1D -> AnalogConv1D"]
    assert len(conv1d) == 2 * 4  # c_attn, c_proj (attention), c_fc, c_proj (mlp) per block
    assert "lm_head" in rep.converted
    assert set(rep.digital) == {"transformer.wte", "transformer.wpe"}  # embeddings: digital by design
    assert not rep.unmapped
    with torch.no_grad():
        torch.testing.assert_close(analog(ids).logits, ref, rtol=1e-4, atol=1e-4)


def test_a_skipped_weight_module_warns_and_the_map_can_convert_or_silence_it():
    model = nn.Sequential(nn.Linear(3, 3), Custom(), nn.Embedding(5, 3))
    with pytest.warns(ConversionWarning, match=r"1: Custom \(w\)"):
        out = convert(model, "ideal")
    assert out.conversion_report.unmapped == ("1",)
    assert set(out.conversion_report.digital) == {"1", "2"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = convert(model, "ideal", conversion_map={Custom: None})
    assert quiet.conversion_report.unmapped == ()
    seen = []

    def factory(module, config):
        seen.append((type(module), config.seed))
        return nn.Identity()

    mapped = convert(model, "ideal", seed=10, conversion_map={Custom: factory})
    assert isinstance(mapped[1], nn.Identity) and seen == [(Custom, 11)]  # seeds count in tree order
    assert mapped.conversion_report.converted["1"] == "Custom -> Identity"


def test_the_most_specific_registered_class_wins_and_bad_maps_are_refused():
    class Special(MyLinear):
        pass

    model = nn.Sequential(nn.Linear(2, 2), MyLinear(2, 2), Special(2, 2))
    out = convert(model, "ideal", conversion_map={Special: lambda m, c: nn.Identity(), MyLinear: None})
    assert type(out[0]) is AnalogLinear
    assert type(out[1]) is MyLinear and "kept digital" in out.conversion_report.digital["1"]
    assert isinstance(out[2], nn.Identity)
    assert [n for n, _ in analog_layers(out)] == ["0"]
    assert all(isinstance(m, AnalogLayer) for _, m in analog_layers(convert(out, "pcm")))
    with pytest.raises(ParameterError, match="conversion_map"):
        convert(model, "ideal", conversion_map={"Linear": AnalogLinear})
