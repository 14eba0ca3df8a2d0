"""AnalogMultiheadAttention: the four projections on the chip, torch's attention in between."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cimsim.errors import ParameterError
from cimsim.nn import AnalogLinear, AnalogMultiheadAttention, convert, to_digital
from cimsim.profiles.loader import load_profile


def _run(mha, q, k, v, **kw):
    params = [q, k, v] + list(mha.parameters())
    for p in params:
        p.grad = None
    out, w = mha(q, k, v, **kw)
    loss = out.square().sum() + (0.0 if w is None else w.sum() * 3.0)
    loss.backward()
    return out.detach(), (None if w is None else w.detach()), [p.grad.clone() for p in params]


CASES = [
    dict(),
    dict(batch_first=True, need_weights=False),
    dict(masks="bool", average_attn_weights=False),
    dict(batch_first=True, masks="float", bias=False),
    dict(self_attention=True, masks="causal"),
    dict(kdim=6, vdim=10, masks="bool"),
    dict(add_bias_kv=True, masks="bool", average_attn_weights=False),
    dict(add_zero_attn=True, masks="float"),
    dict(add_bias_kv=True, add_zero_attn=True, batch_first=True, kdim=6, vdim=10),
    dict(add_bias_kv=True, self_attention=True, masks="causal"),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_ideal_chip_equals_nn_multihead_attention(case):
    case = dict(case)
    bf, bias = case.pop("batch_first", False), case.pop("bias", True)
    masks, self_attn = case.pop("masks", None), case.pop("self_attention", False)
    kdim, vdim = case.pop("kdim", 16), case.pop("vdim", 16)
    extra = {key: case.pop(key) for key in ("add_bias_kv", "add_zero_attn") if key in case}
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(16, 4, bias=bias, batch_first=bf, kdim=kdim, vdim=vdim, **extra)
    analog = AnalogMultiheadAttention.from_float(ref, load_profile("ideal"))
    n, n_l, n_s = 2, 5, 5 if self_attn else 7

    def tok(length, width=16):
        return torch.randn(n, length, width) if bf else torch.randn(length, n, width)

    q = tok(n_l).requires_grad_(True)
    k = q if self_attn else tok(n_s, kdim).requires_grad_(True)
    v = q if self_attn else tok(n_s, vdim).requires_grad_(True)
    kw = dict(case)
    if masks == "bool":
        kpm = torch.zeros(n, n_s, dtype=torch.bool)
        kpm[:, -2:] = True
        am = torch.zeros(n_l, n_s, dtype=torch.bool)
        am[0, :3] = True
        kw.update(key_padding_mask=kpm, attn_mask=am)
    elif masks == "float":
        kw.update(attn_mask=torch.randn(n * 4, n_l, n_s), key_padding_mask=torch.randn(n, n_s))
    elif masks == "causal":
        kw.update(attn_mask=nn.Transformer.generate_square_subsequent_mask(n_l), is_causal=True)
    got = _run(analog, q, k, v, **kw)
    want = _run(ref, q, k, v, **kw)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert (got[1] is None) == (want[1] is None)
    if got[1] is not None:
        torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-6)
    for a, b in zip(got[2], want[2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    q1, k1, v1 = ((t[0] if bf else t[:, 0]) for t in (q, k, v))  # unbatched
    torch.testing.assert_close(analog(q1, k1, v1)[0], ref(q1, k1, v1)[0], rtol=1e-5, atol=1e-5)


def test_training_forward_equals_its_chips_and_ideal_mode_is_torch():
    torch.manual_seed(1)
    mha = AnalogMultiheadAttention(12, 3, profile=load_profile("pcm"), seed=2)
    x = torch.randn(6, 2, 12)
    y, w = mha(x, x, x)
    states = mha.program(mha.last_seed)
    assert [s.weight_shape for s in states] == [(12, 12)] * 4
    mha.attach_chip(states, rng=mha.read_rng(mha.last_seed), t_s=0.0)
    y2, w2 = mha(x, x, x)
    mha.detach_chip()
    assert torch.equal(y, y2) and torch.equal(w, w2)
    mha.analog_mode = "ideal"
    assert torch.equal(mha(x, x, x)[0], mha.to_float()(x, x, x)[0])


def test_a_converted_transformer_layer_trains_and_evaluates_on_the_chip():
    torch.manual_seed(3)
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0)
    model = convert(layer, load_profile("pcm"), seed=0)
    assert isinstance(model.self_attn, AnalogMultiheadAttention) and isinstance(model.linear1, AnalogLinear)
    assert type(model.self_attn.out_proj) is not AnalogLinear  # read through the attention's crossbar W_o
    x = torch.randn(3, 5, 16)
    F.mse_loss(model(x), x).backward()
    assert model.self_attn.in_proj_weight.grad.abs().sum() > 0 and model.self_attn.out_proj.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        model(x)
    assert model.self_attn.last_seed is not None  # the eval forward ran on the chip (no fused float kernel)
    back = to_digital(model)
    assert type(back.self_attn) is nn.MultiheadAttention and list(back.state_dict()) == list(layer.state_dict())


def test_bias_kv_and_zero_attention_are_shared_and_survive_conversion():
    torch.manual_seed(4)
    ref = nn.MultiheadAttention(8, 2, add_bias_kv=True, add_zero_attn=True)
    analog = AnalogMultiheadAttention.from_float(ref, load_profile("pcm"), seed=1)
    assert analog.bias_k is ref.bias_k and analog.bias_v is ref.bias_v and analog.add_zero_attn
    assert list(analog.state_dict()) == list(ref.state_dict())
    x = torch.randn(4, 3, 8)
    out, w = analog(x, x, x)
    assert w.shape == (3, 4, 4 + 2)  # two appended source positions: bias_k/v and the zero key
    out.square().sum().backward()
    assert ref.bias_k.grad.abs().sum() > 0 and ref.bias_v.grad.abs().sum() > 0
    back = analog.to_float()
    assert type(back) is nn.MultiheadAttention and back.bias_k is ref.bias_k and back.add_zero_attn
    fresh = AnalogMultiheadAttention(8, 2, add_bias_kv=True, profile=load_profile("pcm"))
    assert fresh.bias_k.shape == (1, 1, 8) and fresh.bias_k.abs().sum() > 0


def test_unsupported_options_are_refused():
    with pytest.raises(ParameterError, match="learn_input_range"):
        AnalogMultiheadAttention.from_float(nn.MultiheadAttention(8, 2), "pcm", learn_input_range=True)
