"""``AnalogConvTranspose1d`` / ``AnalogConvTranspose2d``: transposed convolutions on the chip.

A transposed convolution scatters every input pixel: pixel ``x[n, :, h, w]`` (``C_in`` values)
times the matrix ``W_g [C_out/groups * K, C_in/groups]`` (``K`` kernel positions; rows ordered
channel, then kernel position, ``W_g[(c, k), i] = weight[i, c, k]``) gives its contribution to
``K`` output positions, which the digital periphery adds into the output (col2im, ``F.fold``)
before the bias. So the crossbar holds ``W_g`` and reads one input pixel per row of the batch::

    cols[(n, h, w), :] = x[n, :, h, w],   Y = cols @ W_g^T (the analog product),
    y = fold(Y) + bias

equal to ``F.conv_transpose2d`` on an ideal chip. Stride, padding, output padding (or
``output_size``), dilation and groups are supported (``padding_mode`` is ``"zeros"``, as torch
requires). Modes, chips and the extended STE as for the other analog layers
(:mod:`cimsim.nn.modules`); with ``groups > 1`` every group is its own crossbar.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShapeError
from .functional import programming_noise_std
from .modules import AnalogLayer

__all__ = ["AnalogConvTranspose1d", "AnalogConvTranspose2d"]


class _AnalogConvTransposeNd(AnalogLayer):
    _ND: int

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None, dtype=None,
                 *, profile, mode: str = "hardware", seed: int = 0, backward_weights: str = "float",
                 eval_mode: str | None = None, learn_input_range: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         output_padding=output_padding, groups=groups, bias=bias, dilation=dilation,
                         padding_mode=padding_mode, device=device, dtype=dtype)
        self._setup_analog(profile, mode, seed, backward_weights, eval_mode, learn_input_range)
        self._opad = None  # the output padding of the forward in progress

    @classmethod
    def _empty_like(cls, m, **kw):
        return cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                   output_padding=m.output_padding, groups=m.groups, bias=m.bias is not None, dilation=m.dilation,
                   padding_mode=m.padding_mode, device="meta", **kw)

    def _empty_float(self):
        return self._FLOAT_CLS(self.in_channels, self.out_channels, self.kernel_size, stride=self.stride,
                               padding=self.padding, output_padding=self.output_padding, groups=self.groups,
                               bias=self.bias is not None, dilation=self.dilation, padding_mode=self.padding_mode,
                               device="meta")

    # ------------------------------------------------------------------ weight <-> crossbar matrices
    def weight_matrices(self, weight: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``W_g [C_out/groups * K, C_in/groups]`` of every group (rows: channel, then kernel position)."""
        w = self.weight if weight is None else weight
        cin = self.in_channels // self.groups
        return [w[g * cin:(g + 1) * cin].reshape(cin, -1).T for g in range(self.groups)]

    def noisy_weight(self) -> torch.Tensor:
        """``W + sigma(W) N(0, 1)`` with sigma from the crossbar matrices' mapping (noise injection)."""
        std = torch.cat([programming_noise_std(m, self.profile).T for m in self.weight_matrices()]).reshape(self.weight.shape)
        return self._with_noise(self.weight, std)

    # ------------------------------------------------------------------ forward
    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:  # noqa: A002
        self._opad = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                          self._ND, self.dilation)
        try:
            return AnalogLayer.forward(self, input)
        finally:
            self._opad = None

    def _float(self, x, w):
        conv = F.conv_transpose1d if self._ND == 1 else F.conv_transpose2d
        return conv(x, w, self.bias, self.stride, self.padding, self._opad, self.groups, self.dilation)

    def _analog(self, x, calls):
        nd = self._ND
        if x.dim() == nd + 1:
            return self._analog(x.unsqueeze(0), calls).squeeze(0)
        if x.dim() != nd + 2 or x.shape[1] != self.in_channels:
            raise ShapeError(f"{type(self).__name__}: expected input [N, {self.in_channels}, {', '.join(['*'] * nd)}] "
                             f"(got {tuple(x.shape)})")
        # 1-D runs as 2-D over a height of 1 (kernel, stride, dilation 1 there; no padding)
        k, s, d = (((1, v[0]) if nd == 1 else tuple(v)) for v in (self.kernel_size, self.stride, self.dilation))
        p, op = (((0, v[0]) if nd == 1 else tuple(v)) for v in (self.padding, self._opad))
        x2 = x.unsqueeze(2) if nd == 1 else x
        n, _, h, w = x2.shape
        out_hw = tuple((i - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1 for i, ss, pp, dd, kk, oo in zip((h, w), s, p, d, k, op))
        cin, cout = self.in_channels // self.groups, self.out_channels // self.groups
        ys = []
        for g, (mat, kw) in enumerate(zip(self.weight_matrices(), calls)):
            cols = x2[:, g * cin:(g + 1) * cin].permute(0, 2, 3, 1).reshape(n * h * w, cin)
            b = None if self.bias is None else self.bias[g * cout:(g + 1) * cout]
            y = self._mm(cols, mat, None, kw)  # [N*H*W, cout*K]: each pixel's contributions
            y = y.reshape(n, h * w, cout * math.prod(k)).transpose(1, 2)
            y = F.fold(y, out_hw, k, dilation=d, padding=p, stride=s)  # the digital scatter-add
            ys.append(y if b is None else y + b.reshape(1, -1, 1, 1))
        y = ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)
        return y.squeeze(2) if nd == 1 else y


class AnalogConvTranspose1d(_AnalogConvTransposeNd, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` on a simulated analog chip (see the module docstring)."""

    _FLOAT_CLS = nn.ConvTranspose1d
    _ND = 1


class AnalogConvTranspose2d(_AnalogConvTransposeNd, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` on a simulated analog chip (see the module docstring)."""

    _FLOAT_CLS = nn.ConvTranspose2d
    _ND = 2
