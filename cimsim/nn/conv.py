"""``AnalogConv1d/2d/3d``: convolutions on the chip, as im2col followed by the analog matmul.

Every output pixel is a row of the batch: the input's patches ``cols [N * L, C * prod(kernel)]``
(``F.unfold``; for 3-D, windows of ``Tensor.unfold`` along each axis, rows ordered ``(C, kd, kh,
kw)`` as the weight is) meet the crossbar ``W [out, C * prod(kernel)]``::

    Y = cols @ W^T + b   (the analog matmul),   y[n, :, p] = Y[n * L + p, :]

Stride, padding (numbers, ``"same"``, ``"valid"``, every ``padding_mode``), dilation and groups
are supported. With ``groups > 1`` every group is its own matrix ``[out/groups, in/groups *
prod(kernel)]`` programmed with seed :func:`~cimsim.rng.group_seed` ``(s, g)``. Modes, chips and
the extended STE as for the other analog layers (:mod:`cimsim.nn.modules`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShapeError
from .config import AnalogConfig, as_config
from .modules import AnalogLayer

__all__ = ["AnalogConv1d", "AnalogConv2d", "AnalogConv3d"]


class _AnalogConvNd(AnalogLayer):
    """The analog convolutions' shared body; the subclass names the torch class (``nn.ConvNd``
    follows this class in the MRO, so ``super().__init__`` builds the float layer)."""

    _ND: int

    if TYPE_CHECKING:  # the members of the nn.ConvNd that follows this class in the MRO
        in_channels: int
        out_channels: int
        kernel_size: tuple[int, ...]
        stride: tuple[int, ...]
        padding: str | tuple[int, ...]
        dilation: tuple[int, ...]
        groups: int
        padding_mode: Literal["zeros", "reflect", "replicate", "circular"]
        bias: torch.Tensor | None
        _reversed_padding_repeated_twice: list[int]

        def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,  # noqa: A002 - torch's names
                          bias: torch.Tensor | None) -> torch.Tensor: ...

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None, *,
                 config: AnalogConfig | None = None, **settings):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias, padding_mode=padding_mode, device=device, dtype=dtype)
        self._setup_analog(as_config(config, type(self).__name__, **settings))

    @classmethod
    def _empty_like(cls, m, **kw):
        return cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                   dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
                   padding_mode=m.padding_mode, device="meta", **kw)

    def _empty_float(self):
        return self._FLOAT_CLS(self.in_channels, self.out_channels, self.kernel_size, stride=self.stride,
                               padding=self.padding, dilation=self.dilation, groups=self.groups,
                               bias=self.bias is not None, padding_mode=self.padding_mode, device="meta")

    def _float(self, x, w):
        return self._conv_forward(x, w, self.bias)

    def _im2col(self, x: torch.Tensor):
        """``x [N, C, *spatial]`` -> patches ``[N * L, C * prod(kernel)]`` and the output spatial size."""
        pad = list(self._reversed_padding_repeated_twice)
        if any(pad):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x, pad, mode=mode)
        k, d, s = list(self.kernel_size), list(self.dilation), list(self.stride)
        if self._ND == 1:
            x = x.unsqueeze(2)
            k, d, s = [1] + k, [1] + d, [1] + s
        n = x.shape[0]
        spatial = tuple((size - dd * (kk - 1) - 1) // ss + 1 for size, kk, dd, ss in zip(x.shape[2:], k, d, s))
        if any(o <= 0 for o in spatial):
            raise ShapeError(
                f"{type(self).__name__}: input {tuple(x.shape)} (after padding) is smaller than the kernel "
                f"{tuple(self.kernel_size)} with dilation {tuple(self.dilation)}"
            )
        if self._ND == 3:  # F.unfold is 2-D only: windows along each spatial axis, then (C, kd, kh, kw) rows
            win = x
            for ax, (kk, dd, ss) in enumerate(zip(k, d, s)):
                win = win.unfold(2 + ax, dd * (kk - 1) + 1, ss)
            win = win[..., :: d[0], :: d[1], :: d[2]]  # [N, C, Do, Ho, Wo, kd, kh, kw]
            cols = win.permute(0, 2, 3, 4, 1, 5, 6, 7).reshape(n * math.prod(spatial), -1)
            return cols, spatial
        cols = F.unfold(x, kernel_size=tuple(k), dilation=tuple(d), stride=tuple(s))  # [N, C*K, L]
        cols = cols.transpose(1, 2).reshape(n * cols.shape[2], cols.shape[1])
        if self._ND == 1:
            spatial = spatial[1:]
        return cols, spatial

    def _analog(self, x, calls):
        nd = self._ND
        if x.dim() == nd + 1:
            return self._analog(x.unsqueeze(0), calls).squeeze(0)
        if x.dim() != nd + 2 or x.shape[1] != self.in_channels:
            raise ShapeError(
                f"{type(self).__name__}: expected input [N, {self.in_channels}, {', '.join(['*'] * nd)}] "
                f"(got {tuple(x.shape)})"
            )
        n = x.shape[0]
        cols, spatial = self._im2col(x)
        mats = self.weight_matrices()
        g = self.groups
        if g == 1:
            y = self._mm(cols, mats[0], self.bias, calls[0])
        else:
            cin = cols.shape[1] // g
            cout = self.out_channels // g
            ys = []
            for i in range(g):
                b = None if self.bias is None else self.bias[i * cout:(i + 1) * cout]
                ys.append(self._mm(cols[:, i * cin:(i + 1) * cin], mats[i], b, calls[i]))
            y = torch.cat(ys, dim=1)
        L = math.prod(spatial)
        return y.reshape(n, L, self.out_channels).transpose(1, 2).reshape(n, self.out_channels, *spatial)


class AnalogConv1d(_AnalogConvNd, nn.Conv1d):
    """``nn.Conv1d`` on a simulated analog chip (im2col + the analog matmul; see the module docstring)."""

    _FLOAT_CLS = nn.Conv1d
    _ND = 1


class AnalogConv2d(_AnalogConvNd, nn.Conv2d):
    """``nn.Conv2d`` on a simulated analog chip (im2col + the analog matmul; see the module docstring)."""

    _FLOAT_CLS = nn.Conv2d
    _ND = 2


class AnalogConv3d(_AnalogConvNd, nn.Conv3d):
    """``nn.Conv3d`` on a simulated analog chip (im2col + the analog matmul; see the module docstring)."""

    _FLOAT_CLS = nn.Conv3d
    _ND = 3
