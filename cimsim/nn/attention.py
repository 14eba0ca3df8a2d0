"""``AnalogMultiheadAttention``: ``nn.MultiheadAttention`` with its four projections on the chip.

The query, key, value and output projections (``W_q, W_k, W_v`` = the rows of ``in_proj_weight``,
or ``q/k/v_proj_weight`` when ``kdim``/``vdim`` differ from ``E``, and ``W_o`` = ``out_proj.weight``)
sit on four crossbars; the attention itself
(scores, masks, softmax, the weighted sum) is digital, as on analog in-memory transformer
accelerators, and follows ``torch.nn.functional.multi_head_attention_forward``::

    q, k, v = W_q query + b_q, W_k key + b_k, W_v value + b_v      (analog, per token)
    a = softmax(q_h k_h^T / sqrt(E / H) + masks)                    (digital, per head h)
    out = W_o concat_h(a v_h) + b_o                                 (analog)

Modes, chips and the extended STE as for the other analog layers (:mod:`cimsim.nn.modules`):
``"hardware"`` programs the four crossbars once per forward (matrix ``m`` with
:func:`~cimsim.rng.group_seed` ``(s, m)``), ``"ideal"`` is ``nn.MultiheadAttention``'s own
forward. Attention dropout draws its masks from the layer's generator. Supported: self- and
cross-attention, ``batch_first``, unbatched input, boolean or float ``attn_mask`` (2-D or 3-D) and
``key_padding_mask``, ``is_causal``, ``need_weights`` with or without head averaging, ``kdim`` and
``vdim``, ``add_bias_kv`` (the learned key and value ``bias_k``, ``bias_v`` are appended to the
projected sequences as one more source position: digital registers, not crossbar rows) and
``add_zero_attn`` (a zero key and value appended per head), padded into the masks as torch does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError, ShapeError
from ._tensors import check_dense
from .config import AnalogConfig, as_config
from .modules import AnalogLayer

__all__ = ["AnalogMultiheadAttention"]


class AnalogMultiheadAttention(AnalogLayer, nn.MultiheadAttention):
    """``nn.MultiheadAttention`` with the projections on a simulated analog chip (see the module docstring)."""

    _FLOAT_CLS = nn.MultiheadAttention
    _INPUT_RANGE = False

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None, *,
                 config: AnalogConfig | None = None, **settings):
        config = as_config(config, type(self).__name__, **settings)
        nn.MultiheadAttention.__init__(self, embed_dim, num_heads, dropout=dropout, bias=bias, add_bias_kv=add_bias_kv,
                                       add_zero_attn=add_zero_attn, kdim=kdim, vdim=vdim, batch_first=batch_first,
                                       device=device, dtype=dtype)
        self._setup_analog(config)

    @classmethod
    def from_float(cls, module: nn.Module, config=None, **settings):
        """The analog twin of an ``nn.MultiheadAttention``, sharing its Parameters (and ``out_proj``)."""
        if not isinstance(module, nn.MultiheadAttention):
            raise ParameterError(f"{cls.__name__}.from_float expects an nn.MultiheadAttention (got {type(module).__name__})")
        config = as_config(config, f"{cls.__name__}.from_float", **settings)
        new = cls(module.embed_dim, module.num_heads, dropout=module.dropout, bias=module.in_proj_bias is not None,
                  add_bias_kv=module.bias_k is not None, add_zero_attn=module.add_zero_attn, kdim=module.kdim,
                  vdim=module.vdim, batch_first=module.batch_first, device="meta", config=config)
        _share(module, new)
        new.train(module.training)
        return new

    def to_float(self) -> nn.Module:
        """The plain ``nn.MultiheadAttention`` (sharing this layer's Parameters and ``out_proj``)."""
        new = nn.MultiheadAttention(self.embed_dim, self.num_heads, dropout=self.dropout,
                                    bias=self.in_proj_bias is not None, add_bias_kv=self.bias_k is not None,
                                    add_zero_attn=self.add_zero_attn, kdim=self.kdim, vdim=self.vdim,
                                    batch_first=self.batch_first, device="meta")
        _share(self, new)
        new.train(self.training)
        return new

    groups = 4  # crossbars: W_q, W_k, W_v, W_o

    def weight_matrices(self) -> list[torch.Tensor]:
        """``[W_q, W_k, W_v, W_o]``: ``[E, E]``, ``[E, kdim]``, ``[E, vdim]``, ``[E, E]``."""
        if self._qkv_same_embed_dim:
            return [*self.in_proj_weight.chunk(3), self.out_proj.weight]
        return [self.q_proj_weight, self.k_proj_weight, self.v_proj_weight, self.out_proj.weight]

    # nn.MultiheadAttention's signature, which no single-input forward (AnalogLayer's) can match
    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,  # type: ignore[override]
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        for t in (query, key, value):
            check_dense(t)
        if self._chip is None and self.active_mode() == "ideal":
            return nn.MultiheadAttention.forward(self, query, key, value, key_padding_mask=key_padding_mask,
                                                 need_weights=need_weights, attn_mask=attn_mask,
                                                 average_attn_weights=average_attn_weights, is_causal=is_causal)
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = (t.unsqueeze(1) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n_l, batch, e = query.shape
        n_s = key.shape[0]
        if (e != self.embed_dim or tuple(key.shape) != (n_s, batch, self.kdim)
                or tuple(value.shape) != (n_s, batch, self.vdim)):
            raise ShapeError(f"{type(self).__name__}: query [L, N, {self.embed_dim}], key [S, N, {self.kdim}] and value "
                             f"[S, N, {self.vdim}] (batch_first: N first) expected (got {tuple(query.shape)}, "
                             f"{tuple(key.shape)}, {tuple(value.shape)})")
        h = self.num_heads
        d = e // h
        rq, rk, rv, ro = self._matrix_readers(self.weight_matrices())
        bq, bk, bv = (None, None, None) if self.in_proj_bias is None else self.in_proj_bias.chunk(3)
        q = rq(query.reshape(n_l * batch, e), bq).reshape(n_l, batch * h, d).transpose(0, 1)
        k = rk(key.reshape(n_s * batch, self.kdim), bk).reshape(n_s, batch * h, d).transpose(0, 1)
        v = rv(value.reshape(n_s * batch, self.vdim), bv).reshape(n_s, batch * h, d).transpose(0, 1)
        extra = 0  # source positions appended after the projections (digital), as torch appends them
        if self.bias_k is not None and self.bias_v is not None:  # torch creates both or neither
            k = torch.cat([k, self.bias_k.reshape(1, h, d).repeat(batch, 1, 1).reshape(batch * h, 1, d)], dim=1)
            v = torch.cat([v, self.bias_v.reshape(1, h, d).repeat(batch, 1, 1).reshape(batch * h, 1, d)], dim=1)
            extra += 1
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros(batch * h, 1, d)], dim=1)
            v = torch.cat([v, v.new_zeros(batch * h, 1, d)], dim=1)
            extra += 1
        scores = torch.bmm(q * (1.0 / math.sqrt(d)), k.transpose(1, 2))  # [N*H, L, S + extra]
        mask = _additive_mask(attn_mask, key_padding_mask, is_causal, n_l, n_s, batch, h, scores.dtype)
        if mask is not None:
            # the appended positions are always allowed (torch pads its masks with 0)
            scores = scores + (F.pad(mask, (0, extra)) if extra else mask)
        attn = torch.softmax(scores, dim=-1)
        if self.dropout > 0.0 and self.training:
            keep = 1.0 - self.dropout
            attn = attn * torch.bernoulli(torch.full(attn.shape, keep), generator=self.generator).to(attn) / keep
        out = torch.bmm(attn, v).transpose(0, 1).reshape(n_l * batch, e)
        out = ro(out, self.out_proj.bias).reshape(n_l, batch, e)
        weights = None
        if need_weights:
            weights = attn.reshape(batch, h, n_l, n_s + extra)
            if average_attn_weights:
                weights = weights.mean(dim=1)
        if unbatched:
            return out.squeeze(1), (None if weights is None else weights.squeeze(0))
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


def _additive_mask(attn_mask, key_padding_mask, is_causal, n_l, n_s, batch, h, dtype):
    """``attn_mask`` and ``key_padding_mask`` as one additive float mask ``[N*H | 1, L, S]`` (boolean
    True = not allowed = -inf), as torch merges them; ``is_causal`` without a mask builds one."""
    if attn_mask is None and is_causal:
        attn_mask = torch.ones(n_l, n_s, dtype=torch.bool).triu(1)
    mask = None
    if attn_mask is not None:
        mask = _as_float(attn_mask, dtype)
        if mask.dim() == 2:
            mask = mask.unsqueeze(0)
        if mask.shape not in ((1, n_l, n_s), (batch * h, n_l, n_s)):
            raise ShapeError(f"attn_mask must be [L, S] or [N*H, L, S] = [{n_l}, {n_s}] or [{batch * h}, {n_l}, {n_s}] "
                             f"(got {tuple(attn_mask.shape)})")
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (batch, n_s):
            raise ShapeError(f"key_padding_mask must be [N, S] = [{batch}, {n_s}] (got {tuple(key_padding_mask.shape)})")
        kpm = _as_float(key_padding_mask, dtype).reshape(batch, 1, 1, n_s).expand(-1, h, -1, -1).reshape(batch * h, 1, n_s)
        mask = kpm if mask is None else mask + kpm
    return mask


def _as_float(mask: torch.Tensor, dtype) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def _share(src: nn.MultiheadAttention, dst: nn.MultiheadAttention) -> None:
    for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "bias_k",
                 "bias_v"):
        setattr(dst, name, getattr(src, name))
    dst.out_proj = src.out_proj
