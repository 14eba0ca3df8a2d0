"""``AnalogLSTM``: ``nn.LSTM`` whose gate matrix-vector products run on the simulated chip.

Each layer and direction keeps its gate weights on one crossbar, ``[W_ih | W_hh]`` (``[4H, I + H]``
with ``I`` the layer's input width), read at every time step with the input ``[x_t, h_(t-1)]``;
the biases ``b_ih + b_hh`` are added digitally. The recurrence is PyTorch's (gate order i, f, g,
o)::

    i, f, g, o = split(W [x_t, h_(t-1)] + b_ih + b_hh)
    c_t = sigmoid(f) c_(t-1) + sigmoid(i) tanh(g),   h_t = sigmoid(o) tanh(c_t)

Modes as for the other analog layers (:mod:`cimsim.nn.modules`): ``"hardware"`` draws one seed
per forward, programs every matrix once from the current weights (matrix ``m`` with
:func:`~cimsim.nn.modules.group_seed` ``(s, m)``) and reads that chip at every time step (per-read
noise drawn anew at each step from the matrix's read generator), the backward being the extended
STE of each read; ``"noise_injection"`` adds the profile's programming noise to the weights once
per forward, inside autograd; ``"ideal"`` is ``nn.LSTM``'s own forward. A programmed chip can be
attached (``attach_chip``), as the drift studies do. The state dict is exactly ``nn.LSTM``'s.
Dropout between layers (``dropout > 0``, training) draws its masks from the layer's generator.
Not supported: ``proj_size``, packed sequences, a learnable input range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..crossbar import program_drifted
from ..crossbar.state import DriftedState
from ..errors import ParameterError, ShapeError
from ..rng import split_seed
from .functional import analog_matmul, programming_noise_std
from .modules import AnalogLayer, _check_mode

__all__ = ["AnalogLSTM"]


class AnalogLSTM(AnalogLayer, nn.LSTM):
    """``nn.LSTM`` on a simulated analog chip (see the module docstring).

    ``AnalogLSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, *, profile, mode="hardware", seed=0, backward_weights="float", eval_mode=None)``.
    """

    _FLOAT_CLS = nn.LSTM

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, *, profile, mode: str = "hardware", seed: int = 0,
                 backward_weights: str = "float", eval_mode: str | None = None, learn_input_range: bool = False):
        if proj_size:
            raise ParameterError(f"AnalogLSTM does not support proj_size (got proj_size={proj_size}); use proj_size=0")
        if learn_input_range:
            raise ParameterError("AnalogLSTM does not support learn_input_range (use it on Linear/Conv layers)")
        nn.LSTM.__init__(self, input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first,
                         dropout=dropout, bidirectional=bidirectional, device=device, dtype=dtype)
        self._setup_analog(profile, mode, seed, backward_weights, eval_mode)

    # ``nn.RNNBase`` keeps its cell kind in ``self.mode`` ("LSTM"), the name the analog layers use
    # for their training mode: its constructor's assignment is let through unseen, and the
    # cuDNN weight flattening that would read it is off (the crossbar runs on the CPU).
    @property
    def mode(self) -> str:
        """Training mode: ``"hardware"``, ``"noise_injection"`` or ``"ideal"`` (checked on assignment)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value == "LSTM" and "_mode" not in self.__dict__:
            return
        self._mode = _check_mode(value)

    def flatten_parameters(self) -> None:
        """No-op (see the ``mode`` note above)."""

    # ------------------------------------------------------------------ float <-> analog
    @classmethod
    def from_float(cls, module: nn.Module, profile, *, mode: str = "hardware", seed: int = 0,
                   backward_weights: str = "float", eval_mode: str | None = None,
                   learn_input_range: bool = False):
        """The analog twin of an ``nn.LSTM``, sharing its Parameter objects (no copy)."""
        if type(module) is not nn.LSTM and not isinstance(module, AnalogLSTM):
            raise ParameterError(f"AnalogLSTM.from_float expects an nn.LSTM (got {type(module).__name__})")
        if module.proj_size:
            raise ParameterError(f"AnalogLSTM does not support proj_size (got proj_size={module.proj_size})")
        new = cls(module.input_size, module.hidden_size, module.num_layers, bias=module.bias,
                  batch_first=module.batch_first, dropout=module.dropout, bidirectional=module.bidirectional,
                  device="meta", profile=profile, mode=mode, seed=seed, backward_weights=backward_weights,
                  eval_mode=eval_mode, learn_input_range=learn_input_range)
        _share_weights(module, new)
        new.train(module.training)
        return new

    def to_float(self) -> nn.Module:
        """The plain ``nn.LSTM`` (sharing this layer's Parameter objects)."""
        new = nn.LSTM(self.input_size, self.hidden_size, self.num_layers, bias=self.bias,
                      batch_first=self.batch_first, dropout=self.dropout, bidirectional=self.bidirectional,
                      device="meta")
        _share_weights(self, new)
        new.train(self.training)
        return new

    # ------------------------------------------------------------------ chips
    @property
    def groups(self) -> int:
        """Number of crossbar matrices: one per layer and direction."""
        return self.num_layers * (2 if self.bidirectional else 1)

    def _names(self, m: int) -> tuple[str, str, str, str]:
        layer, d = divmod(m, 2 if self.bidirectional else 1)
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        return f"weight_ih{sfx}", f"weight_hh{sfx}", f"bias_ih{sfx}", f"bias_hh{sfx}"

    def weight_matrices(self) -> list[torch.Tensor]:
        """``[W_ih | W_hh]`` (``[4H, I + H]``) of every layer and direction, in ``h_n`` order."""
        return [torch.cat([getattr(self, a), getattr(self, b)], dim=1) for a, b, _, _ in map(self._names, range(self.groups))]

    def _biases(self) -> list[torch.Tensor | None]:
        if not self.bias:
            return [None] * self.groups
        return [getattr(self, c) + getattr(self, d) for _, _, c, d in map(self._names, range(self.groups))]

    def noisy_weight(self) -> list[torch.Tensor]:
        """Every matrix plus ``sigma(W) N(0, 1)`` (noise-injection mode), differentiable in ``W``."""
        out = []
        for w in self.weight_matrices():
            noise = torch.randn(w.shape, generator=self.generator, dtype=w.dtype).to(w.device)
            out.append(w + programming_noise_std(w, self.profile) * noise)
        return out

    # ------------------------------------------------------------------ forward
    def forward(self, input, hx=None):  # noqa: A002 - nn.LSTM's signature
        if isinstance(input, nn.utils.rnn.PackedSequence):
            raise ParameterError("AnalogLSTM does not take packed sequences; pad them (nn.utils.rnn.pad_packed_sequence)")
        mode = self.active_mode()
        if self._chip is None and mode == "ideal":
            return nn.LSTM.forward(self, input, hx)
        if input.dim() not in (2, 3) or input.shape[-1] != self.input_size:
            raise ShapeError(f"AnalogLSTM: input must be [T, B, {self.input_size}] (batch_first: [B, T, ...]) or "
                             f"[T, {self.input_size}] (got {tuple(input.shape)})")
        mats = self.weight_matrices()
        if self._chip is not None:
            states, rngs, t_s, comps = self._chip
            readers = [_Reader(w, self.profile, s, r, t_s, c, self.backward_weights)
                       for w, s, r, c in zip(mats, states, rngs, comps)]
        elif mode == "noise_injection":
            readers = [_Float(w) for w in self.noisy_weight()]
        else:
            seed, t = self._draw_seed(), self._draw_t()
            self.last_seed, self.last_t_s = seed, t
            readers = []
            for w, s in zip(mats, self._group_seeds(seed)):
                prog, read = split_seed(s)
                ds = program_drifted(w.detach().cpu().contiguous().numpy(), self.profile, rng=prog, t_s=t,
                                     read_rng=read)
                readers.append(_Reader(w, self.profile, ds, read, None, None, self.backward_weights))
        return self._recurrence(input, hx, readers)

    def _recurrence(self, x, hx, readers):
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        n_t, batch, _ = x.shape
        n_dir = 2 if self.bidirectional else 1
        if hx is None:
            h0 = x.new_zeros(self.num_layers * n_dir, batch, self.hidden_size)
            c0 = torch.zeros_like(h0)
        else:
            h0, c0 = hx
            if unbatched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        biases = self._biases()
        h_n, c_n = [], []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(n_dir):
                m = layer * n_dir + d
                h, c = h0[m], c0[m]
                steps = range(n_t - 1, -1, -1) if d else range(n_t)
                seq = [None] * n_t
                for t in steps:
                    gates = readers[m](torch.cat([layer_in[t], h], dim=1), biases[m])
                    i, f, g, o = gates.chunk(4, dim=1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                    seq[t] = h
                outs.append(torch.stack(seq))
                h_n.append(h)
                c_n.append(c)
            layer_in = outs[0] if n_dir == 1 else torch.cat(outs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                mask = torch.bernoulli(torch.full(layer_in.shape, keep), generator=self.generator).to(layer_in)
                layer_in = layer_in * mask / keep
        out, h_n, c_n = layer_in, torch.stack(h_n), torch.stack(c_n)
        if unbatched:
            return out.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, (h_n, c_n)


class _Reader:
    """One gate matrix on its chip: ``reader(x, b)`` = the analog product with the STE backward."""

    def __init__(self, weight, profile, state, rng, t_s, compensation, backward_weights):
        if not isinstance(state, DriftedState):  # an attached ProgrammedState: drift once per forward
            if t_s is None:
                raise ParameterError("AnalogLSTM: an attached ProgrammedState needs t_s (seconds since programming)")
            state = state.drift(t_s, rng)
        self.weight, self.profile, self.state, self.rng = weight, profile, state, rng
        self.compensation, self.backward_weights = compensation, backward_weights

    def __call__(self, x, bias):
        return analog_matmul(x, self.weight, bias, self.profile, state=self.state, rng=self.rng, t_s=None,
                             backward_weights=self.backward_weights, compensation=self.compensation)


class _Float:
    """A (noisy) float gate matrix with the reader's call signature."""

    def __init__(self, weight):
        self.weight = weight

    def __call__(self, x, bias):
        return F.linear(x, self.weight, bias)


def _share_weights(src: nn.LSTM, dst: nn.LSTM) -> None:
    """Point ``dst``'s flat weights at ``src``'s Parameter objects."""
    for name in src._flat_weights_names:
        setattr(dst, name, getattr(src, name))
    dst._init_flat_weights()
