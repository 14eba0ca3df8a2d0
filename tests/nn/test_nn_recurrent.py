"""AnalogLSTM / AnalogGRU / AnalogRNN: PyTorch's recurrences on the chip, equal to the torch
layers on an ideal chip."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from torch import nn

from cimsim.errors import ParameterError, ShapeError
from cimsim.evaluation import program
from cimsim.nn import AnalogGRU, AnalogLSTM, AnalogRNN, analog_layers, convert, rng_state, set_mode, to_digital
from cimsim.profiles.loader import load_profile


KINDS = [(nn.LSTM, AnalogLSTM, {}), (nn.GRU, AnalogGRU, {}), (nn.RNN, AnalogRNN, {"nonlinearity": "relu"})]


def _grads(fn, params):
    for p in params:
        p.grad = None
    out, hn = fn()
    h, c = hn if isinstance(hn, tuple) else (hn, hn)
    (out.square().sum() + h.sum() + 0.5 * c.sum()).backward()
    return out.detach(), [p.grad.clone() for p in params]


@pytest.mark.parametrize("torch_cls,cls,extra", KINDS, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize(
    "kw",
    [dict(), dict(num_layers=2, bidirectional=True), dict(num_layers=2, batch_first=True, bias=False)],
    ids=str,
)
def test_hardware_mode_on_the_ideal_chip_equals_torch(torch_cls, cls, extra, kw):
    """The recurrence through the analog matmul (ideal profile: an exact product) reproduces the
    torch layer, forward and every gradient (weights, biases, input, initial state)."""
    torch.manual_seed(0)
    ref = torch_cls(5, 6, **kw, **extra)
    analog = cls.from_float(ref, load_profile("ideal"))
    assert analog.analog_mode == "hardware" and analog.mode == ref.mode and analog.weight_ih_l0 is ref.weight_ih_l0
    d = 2 if ref.bidirectional else 1
    x = torch.randn(4, 7, 5) if ref.batch_first else torch.randn(7, 4, 5)
    x.requires_grad_(True)
    h0 = torch.randn(ref.num_layers * d, 4, 6, requires_grad=True)
    c0 = torch.randn(ref.num_layers * d, 4, 6, requires_grad=True)
    hx, params = ((h0, c0), [x, h0, c0]) if torch_cls is nn.LSTM else (h0, [x, h0])
    params += list(ref.parameters())
    y, g = _grads(lambda: analog(x, hx), params)
    y_ref, g_ref = _grads(lambda: ref(x, hx), params)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    x1 = x[0] if ref.batch_first else x[:, 0]  # unbatched input, as torch takes it
    torch.testing.assert_close(analog(x1)[0], ref(x1)[0], rtol=1e-5, atol=1e-6)


def test_ideal_mode_is_nn_lstm_and_the_state_dict_is_its():
    torch.manual_seed(1)
    lstm = nn.LSTM(3, 4, num_layers=2)
    analog = AnalogLSTM.from_float(lstm, load_profile("pcm"), mode="ideal")
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(analog(x)[0], lstm(x)[0], rtol=1e-6, atol=1e-7)  # the same recurrence, in float
    assert list(analog.state_dict()) == list(lstm.state_dict())
    back = analog.to_float()
    assert type(back) is nn.LSTM and back.weight_hh_l1 is lstm.weight_hh_l1 and torch.equal(back(x)[0], lstm(x)[0])


def test_training_forward_equals_its_chips_bit_for_bit():
    """Hardware mode programs one chip per crossbar per forward (seed s: matrix m with
    group_seed(s, m)) and reads it at every step: the same as attaching program(s)."""
    torch.manual_seed(2)
    analog = AnalogLSTM(6, 5, num_layers=2, bidirectional=True, profile=load_profile("pcm"), seed=3)
    x = torch.randn(9, 3, 6)
    y, (h, c) = analog(x)
    s = analog.last_seed
    states = analog.program(s)
    assert len(states) == 4 and states[0].weight_shape == (20, 11) and states[2].weight_shape == (20, 15)
    y2, (h2, c2) = analog.forward_chip(x, states, rng=analog.read_rng(s), t_s=0.0)
    assert torch.equal(y, y2) and torch.equal(h, h2) and torch.equal(c, c2)
    gru = AnalogGRU(6, 5, profile=load_profile("pcm"), seed=4)  # W_ih and W_hh on two crossbars
    yg, hg = gru(x)
    st = gru.program(gru.last_seed)
    assert [q.weight_shape for q in st] == [(15, 6), (15, 5)]
    yg2, hg2 = gru.forward_chip(x, st, rng=gru.read_rng(gru.last_seed), t_s=0.0)
    assert torch.equal(yg, yg2) and torch.equal(hg, hg2)
    y3, _ = analog(x)  # the next forward: a new chip
    assert not torch.equal(y, y3)
    # the chip is not a float LSTM: pcm noise shows
    with torch.no_grad():
        assert not torch.allclose(y, analog.to_float()(x)[0], atol=1e-3)


def test_noise_injection_dropout_and_reproducibility():
    torch.manual_seed(4)
    lstm = nn.LSTM(4, 5, num_layers=2, dropout=0.5)
    a = AnalogLSTM.from_float(lstm, "pcm", mode="noise_injection", seed=7)
    b = AnalogLSTM.from_float(copy.deepcopy(lstm), "pcm", mode="noise_injection", seed=7)
    x = torch.randn(6, 2, 4)
    ya, yb = a(x)[0], b(x)[0]
    assert torch.equal(ya, yb)  # noise and dropout masks from the layer's generator only
    assert not torch.allclose(ya, lstm(x)[0], atol=1e-4)
    ya.sum().backward()
    assert lstm.weight_ih_l0.grad is not None and torch.isfinite(lstm.weight_ih_l0.grad).all()


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 16, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def test_convert_program_chip_and_plumbing(tmp_path):
    torch.manual_seed(5)
    net = Tagger()
    model = convert(net, "pcm", seed=10)
    assert [n for n, _ in analog_layers(model)] == ["rnn", "head"] and isinstance(model.rnn, AnalogLSTM)
    assert set(rng_state(model)) == {"rnn", "head"}
    x = torch.randn(4, 6, 8)
    loss = model(x).square().mean()
    loss.backward()
    assert model.rnn.weight_hh_l0.grad is not None and model.rnn.weight_hh_l0.grad.abs().sum() > 0
    chip = program(model, seed=1)
    y1 = chip.forward(x, t_s=3600.0, compensation="global")
    y2 = chip.forward(x, t_s=3600.0, compensation="global")
    assert torch.equal(y1, y2) and y1.shape == (4, 3)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    set_mode(loaded, "ideal")
    set_mode(model, "ideal")
    assert torch.equal(loaded(x), model(x))
    assert type(to_digital(model).rnn) is nn.LSTM


def test_bad_input_and_unsupported_options():
    with pytest.raises(ParameterError, match="proj_size"):
        AnalogLSTM(3, 4, proj_size=2, profile="pcm")
    with pytest.raises(ParameterError, match="proj_size"):
        AnalogLSTM.from_float(nn.LSTM(3, 4, proj_size=2), "pcm")
    lstm = AnalogLSTM(3, 4, profile="pcm")
    with pytest.raises(ShapeError, match=r"\[T, B, 3\]"):
        lstm(torch.randn(5, 2, 4))
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 3), [5, 3])
    with pytest.raises(ParameterError, match="packed"):
        lstm(packed)
    assert lstm.mode == "LSTM"  # nn.RNNBase's cell kind; the training mode is analog_mode
    with pytest.raises(ParameterError, match="mode must be one of"):
        lstm.analog_mode = "LSTM"
    assert np.isfinite(lstm(torch.randn(5, 2, 3))[0].detach().numpy()).all()


def test_convert_swaps_gru_and_rnn_and_back():
    net = nn.ModuleDict({"g": nn.GRU(3, 4, bidirectional=True), "r": nn.RNN(3, 4, nonlinearity="relu", batch_first=True)})
    out = convert(net, "pcm", seed=2)
    assert isinstance(out["g"], AnalogGRU) and isinstance(out["r"], AnalogRNN) and out["r"].nonlinearity == "relu"
    assert out["g"].groups == 4 and out["r"].groups == 1
    back = to_digital(out)
    assert type(back["g"]) is nn.GRU and type(back["r"]) is nn.RNN and back["r"].nonlinearity == "relu"
    assert back["r"].batch_first and back["g"].bidirectional
    assert list(back.state_dict()) == list(net.state_dict())
