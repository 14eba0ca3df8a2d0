"""``AnalogLSTM``, ``AnalogGRU``, ``AnalogRNN``: the torch recurrent layers with their matrix-vector
products on the simulated chip.

Each layer and direction keeps its weights on crossbars read at every time step, biases added
digitally, with PyTorch's recurrences (gate orders as in torch):

* LSTM, one crossbar ``[W_ih | W_hh]`` (``[4H, I + H]``) read with ``[x_t, h_(t-1)]``:
  ``i, f, g, o = split(W [x_t, h] + b_ih + b_hh)``, ``c' = s(f) c + s(i) tanh(g)``,
  ``h' = s(o) tanh(c')`` (s the logistic sigmoid);
* GRU, two crossbars ``W_ih`` (``[3H, I]``) and ``W_hh`` (``[3H, H]``), since the reset gate acts
  on the hidden part alone: ``r, z, n_i = split(W_ih x + b_ih)``, ``r_h, z_h, n_h = split(W_hh h + b_hh)``,
  ``r = s(r + r_h)``, ``z = s(z + z_h)``, ``n = tanh(n_i + r n_h)``, ``h' = (1 - z) n + z h``;
* RNN, one crossbar ``[W_ih | W_hh]``: ``h' = act(W [x_t, h] + b_ih + b_hh)``, act tanh or relu.

Modes as for the other analog layers (:mod:`cimsim.nn.modules`): ``"hardware"`` draws one seed per
forward, programs every crossbar once from the current weights (crossbar ``k`` of
:meth:`~_AnalogRNNBase.weight_matrices` with :func:`~cimsim.rng.group_seed` ``(s, k)``) and
reads it at every time step (per-read noise drawn anew at each step from its read generator), the
backward being the extended STE of each read; ``"noise_injection"`` adds the profile's programming
noise to the weights once per forward, inside autograd; ``"ideal"`` runs the same recurrence on the
float weights. A programmed chip can be attached (``attach_chip``), as the drift studies do. The
state dict is exactly the torch layer's. Dropout between layers (``dropout > 0``, training) draws
its masks from the layer's generator. Not supported: ``proj_size``, packed sequences, a learnable
input range. The training mode is ``layer.analog_mode``; ``layer.mode`` stays ``nn.RNNBase``'s cell
kind (``"LSTM"``, ``"GRU"``, ``"RNN_TANH"``, ``"RNN_RELU"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
from torch import nn

from ..errors import ParameterError, ShapeError
from ._tensors import check_dense
from .config import AnalogConfig, as_config
from .modules import AnalogLayer

__all__ = ["AnalogLSTM", "AnalogGRU", "AnalogRNN"]


class _FlatWeights(Protocol):
    """What :func:`_share_weights` reads of a torch recurrent layer (or its analog twin)."""

    _flat_weights_names: list[str]

    def _init_flat_weights(self) -> None: ...


class _AnalogRNNBase(AnalogLayer):
    """The shared body; a subclass names the torch class and its cell (:meth:`_crossbars`, :meth:`_step`)."""

    _INPUT_RANGE = False

    if TYPE_CHECKING:  # the members of the nn.RNNBase that follows this class in the MRO
        mode: str
        input_size: int
        hidden_size: int
        num_layers: int
        bias: bool
        batch_first: bool
        dropout: float
        bidirectional: bool
        _flat_weights_names: list[str]

        def __init__(self, input_size: int, hidden_size: int, *args: Any, config: AnalogConfig | None = None,
                     **kwargs: Any) -> None: ...

        def _init_flat_weights(self) -> None: ...

        def _step(self, bars: list[tuple[Any, torch.Tensor | None]], x_t: torch.Tensor, state: Any) -> Any: ...

    def flatten_parameters(self) -> None:
        """No-op: the analog forward reads each crossbar's weights itself, never cuDNN's flat buffer."""

    # ------------------------------------------------------------------ float <-> analog
    def _torch_kwargs(self: _AnalogRNNBase | nn.RNNBase) -> dict[str, Any]:
        return dict(num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                    dropout=self.dropout, bidirectional=self.bidirectional)

    @classmethod
    def from_float(cls, module: nn.Module, config=None, **settings):
        """The analog twin of a torch recurrent layer, sharing its Parameter objects (no copy)."""
        if not isinstance(module, cls._FLOAT_CLS):
            raise ParameterError(f"{cls.__name__}.from_float expects an nn.{cls._FLOAT_CLS.__name__} (got {type(module).__name__})")
        if getattr(module, "proj_size", 0):
            raise ParameterError(f"{cls.__name__} does not support proj_size (got proj_size={module.proj_size})")
        config = as_config(config, f"{cls.__name__}.from_float", **settings)
        rnn = cast(nn.RNNBase, module)  # checked above: the torch layer or an analog twin
        new = cls(rnn.input_size, rnn.hidden_size, device="meta", config=config,
                  **_AnalogRNNBase._torch_kwargs(rnn), **cls._extra_kwargs(rnn))
        _share_weights(rnn, new)
        new.train(module.training)
        return new

    @staticmethod
    def _extra_kwargs(module) -> dict:
        return {}

    def to_float(self) -> nn.Module:
        """The plain torch layer (sharing this layer's Parameter objects)."""
        new = cast(nn.RNNBase, self._FLOAT_CLS(self.input_size, self.hidden_size, device="meta",
                                               **self._torch_kwargs(), **self._extra_kwargs(self)))
        _share_weights(self, new)
        new.train(self.training)
        return new

    # ------------------------------------------------------------------ crossbars
    _PER_CELL: int  # crossbars per layer and direction

    @property
    def groups(self) -> int:
        """Number of crossbar matrices: :attr:`_PER_CELL` per layer and direction."""
        return self.num_layers * (2 if self.bidirectional else 1) * self._PER_CELL

    def _params(self, cell: int) -> tuple:
        layer, d = divmod(cell, 2 if self.bidirectional else 1)
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        bias = (getattr(self, f"bias_ih{sfx}"), getattr(self, f"bias_hh{sfx}")) if self.bias else (None, None)
        return getattr(self, f"weight_ih{sfx}"), getattr(self, f"weight_hh{sfx}"), *bias

    def weight_matrices(self) -> list[torch.Tensor]:
        """Every crossbar's weight matrix, cell by cell (layer, then direction) in ``h_n`` order."""
        return [w for cell in range(self.groups // self._PER_CELL) for w, _ in self._crossbars(*self._params(cell))]

    def _crossbars(self, w_ih, w_hh, b_ih, b_hh) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """(matrix, digital bias) of each crossbar of one cell: ``[W_ih | W_hh]`` and ``b_ih + b_hh``."""
        bias = None if b_ih is None else b_ih + b_hh
        return [(torch.cat([w_ih, w_hh], dim=1), bias)]

    # ------------------------------------------------------------------ forward
    def forward(self, input, hx=None):  # noqa: A002 - torch's signature
        if isinstance(input, nn.utils.rnn.PackedSequence):
            raise ParameterError(f"{type(self).__name__} does not take packed sequences; pad them "
                                 "(nn.utils.rnn.pad_packed_sequence)")
        check_dense(input)
        if input.dim() not in (2, 3) or input.shape[-1] != self.input_size:
            raise ShapeError(f"{type(self).__name__}: input must be [T, B, {self.input_size}] (batch_first: [B, T, ...]) "
                             f"or [T, {self.input_size}] (got {tuple(input.shape)})")
        readers = self._matrix_readers(self.weight_matrices())
        return self._recurrence(input, hx, readers)

    def _recurrence(self, x, hx, readers):
        lstm = isinstance(self, nn.LSTM)
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        n_t, batch, _ = x.shape
        n_dir = 2 if self.bidirectional else 1
        if hx is None:
            h0 = x.new_zeros(self.num_layers * n_dir, batch, self.hidden_size)
            hx = (h0, torch.zeros_like(h0)) if lstm else h0
        elif unbatched:
            hx = tuple(h.unsqueeze(1) for h in hx) if lstm else hx.unsqueeze(1)
        per = self._PER_CELL
        # a cell's state is (h, c) for an LSTM and h otherwise
        state: Any
        finals: list[Any] = []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(n_dir):
                cell = layer * n_dir + d
                bars = [(readers[cell * per + j], b) for j, (_, b) in enumerate(self._crossbars(*self._params(cell)))]
                state = (hx[0][cell], hx[1][cell]) if lstm else hx[cell]
                seq: list[torch.Tensor] = []  # the outputs in the order computed
                for t in (range(n_t - 1, -1, -1) if d else range(n_t)):
                    state = self._step(bars, layer_in[t], state)
                    seq.append(state[0] if lstm else state)
                outs.append(torch.stack(seq[::-1] if d else seq))
                finals.append(state)
            layer_in = outs[0] if n_dir == 1 else torch.cat(outs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                mask = torch.bernoulli(torch.full(layer_in.shape, keep), generator=self.generator).to(layer_in)
                layer_in = layer_in * mask / keep
        out = layer_in
        h_n: Any = (torch.stack([s[0] for s in finals]), torch.stack([s[1] for s in finals])) if lstm else torch.stack(finals)
        if unbatched:
            return out.squeeze(1), (tuple(h.squeeze(1) for h in h_n) if lstm else h_n.squeeze(1))
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, h_n


class AnalogLSTM(_AnalogRNNBase, nn.LSTM):
    """``nn.LSTM`` on a simulated analog chip (see the module docstring).

    ``AnalogLSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, *, config=None, **settings)`` (an :class:`AnalogConfig` and/or its fields).
    """

    _FLOAT_CLS = nn.LSTM
    _PER_CELL = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, *, config: AnalogConfig | None = None, **settings):
        if proj_size:  # before torch builds the projections
            raise ParameterError(f"AnalogLSTM does not support proj_size (got proj_size={proj_size}); use 0")
        nn.LSTM.__init__(self, input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first,
                         dropout=dropout, bidirectional=bidirectional, device=device, dtype=dtype)
        self._setup_analog(as_config(config, type(self).__name__, **settings))

    def _step(self, bars, x_t, state):
        h, c = state
        (read, bias), = bars
        i, f, g, o = read(torch.cat([x_t, h], dim=1), bias).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class AnalogGRU(_AnalogRNNBase, nn.GRU):
    """``nn.GRU`` on a simulated analog chip: ``W_ih`` and ``W_hh`` on two crossbars (see the module docstring)."""

    _FLOAT_CLS = nn.GRU
    _PER_CELL = 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, *, config: AnalogConfig | None = None, **settings):
        nn.GRU.__init__(self, input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first,
                        dropout=dropout, bidirectional=bidirectional, device=device, dtype=dtype)
        self._setup_analog(as_config(config, type(self).__name__, **settings))

    def _crossbars(self, w_ih, w_hh, b_ih, b_hh):
        return [(w_ih, b_ih), (w_hh, b_hh)]

    def _step(self, bars, x_t, h):
        (read_i, b_i), (read_h, b_h) = bars
        r_i, z_i, n_i = read_i(x_t, b_i).chunk(3, dim=1)
        r_h, z_h, n_h = read_h(h, b_h).chunk(3, dim=1)
        r = torch.sigmoid(r_i + r_h)
        z = torch.sigmoid(z_i + z_h)
        n = torch.tanh(n_i + r * n_h)
        return (1.0 - z) * n + z * h


class AnalogRNN(_AnalogRNNBase, nn.RNN):
    """``nn.RNN`` (tanh or relu) on a simulated analog chip (see the module docstring)."""

    _FLOAT_CLS = nn.RNN
    _PER_CELL = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, config: AnalogConfig | None = None, **settings):
        nn.RNN.__init__(self, input_size, hidden_size, num_layers, nonlinearity=nonlinearity, bias=bias,
                        batch_first=batch_first, dropout=dropout, bidirectional=bidirectional, device=device,
                        dtype=dtype)
        self._setup_analog(as_config(config, type(self).__name__, **settings))

    @staticmethod
    def _extra_kwargs(module) -> dict:
        return {"nonlinearity": module.nonlinearity}

    def _step(self, bars, x_t, h):
        (read, bias), = bars
        a = read(torch.cat([x_t, h], dim=1), bias)
        return torch.tanh(a) if self.nonlinearity == "tanh" else torch.relu(a)


def _share_weights(src: _FlatWeights, dst: _FlatWeights) -> None:
    """Point ``dst``'s flat weights at ``src``'s Parameter objects."""
    for name in src._flat_weights_names:
        setattr(dst, name, getattr(src, name))
    dst._init_flat_weights()
