"""``AnalogConvTranspose1d/2d/3d``: transposed convolutions on the chip.

A transposed convolution scatters every input pixel: pixel ``x[n, :, i]`` (``C_in`` values, ``i``
the 1-, 2- or 3-D position) times the matrix ``W_g [C_out/groups * K, C_in/groups]`` (``K``
kernel positions; rows ordered channel, then kernel position, ``W_g[(c, k), i] = weight[i, c, k]``)
gives its contribution to ``K`` output positions, which the digital periphery adds into the
output (col2im) before the bias. So the crossbar holds ``W_g`` and reads one input pixel per row
of the batch::

    cols[(n, i), :] = x[n, :, i],   Y = cols @ W_g^T (the analog product),
    y[n, c, i s - p + k d] += Y[(n, i), (c, k)]  for every kernel position k,   y += bias

(:func:`_scatter_add`: one strided add per kernel position), equal to ``F.conv_transposeNd`` on
an ideal chip. Stride, padding, output padding (or
``output_size``), dilation and groups are supported (``padding_mode`` is ``"zeros"``, as torch
requires). Modes, chips and the extended STE as for the other analog layers
(:mod:`cimsim.nn.modules`); with ``groups > 1`` every group is its own crossbar.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShapeError
from .config import AnalogConfig, as_config
from .modules import AnalogLayer
from .noise_injection import programming_noise_std

__all__ = ["AnalogConvTranspose1d", "AnalogConvTranspose2d", "AnalogConvTranspose3d"]


class _AnalogConvTransposeNd(AnalogLayer):
    """The analog transposed convolutions' shared body; the subclass names the torch class
    (``nn.ConvTransposeNd`` follows this class in the MRO, so ``super().__init__`` builds the float layer)."""

    _ND: int

    if TYPE_CHECKING:  # the members of the nn.ConvTransposeNd that follows this class in the MRO
        in_channels: int
        out_channels: int
        kernel_size: tuple[int, ...]
        stride: tuple[int, ...]
        padding: str | tuple[int, ...]  # always a tuple here (see _pads)
        output_padding: tuple[int, ...]
        dilation: tuple[int, ...]
        groups: int
        padding_mode: Literal["zeros", "reflect", "replicate", "circular"]
        bias: torch.Tensor | None

        # torch annotates the sequences as lists, and passes its tuples with a type: ignore
        def _output_padding(self, input: torch.Tensor, output_size: Sequence[int] | None,  # noqa: A002
                            stride: Sequence[int], padding: Sequence[int], kernel_size: Sequence[int],
                            num_spatial_dims: int, dilation: Sequence[int] | None = None) -> list[int]: ...

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None, dtype=None,
                 *, config: AnalogConfig | None = None, **settings):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         output_padding=output_padding, groups=groups, bias=bias, dilation=dilation,
                         padding_mode=padding_mode, device=device, dtype=dtype)
        self._setup_analog(as_config(config, type(self).__name__, **settings))
        self._opad: list[int] | None = None  # the output padding of the forward in progress

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
        self._opad = self._output_padding(input, output_size, self.stride, _pads(self), self.kernel_size,
                                          self._ND, self.dilation)
        try:
            return AnalogLayer.forward(self, input)
        finally:
            self._opad = None

    def _float(self, x, w):
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[self._ND - 1]
        assert self._opad is not None, "set by forward, the only caller"
        return conv(x, w, self.bias, self.stride, _pads(self), self._opad, self.groups, self.dilation)

    def _analog(self, x, calls):
        nd = self._ND
        if x.dim() == nd + 1:
            return self._analog(x.unsqueeze(0), calls).squeeze(0)
        if x.dim() != nd + 2 or x.shape[1] != self.in_channels:
            raise ShapeError(f"{type(self).__name__}: expected input [N, {self.in_channels}, {', '.join(['*'] * nd)}] "
                             f"(got {tuple(x.shape)})")
        n, size = x.shape[0], tuple(x.shape[2:])
        cin, cout = self.in_channels // self.groups, self.out_channels // self.groups
        perm = (0, *range(2, nd + 2), 1)  # channels last: one input pixel per row
        ys = []
        for g, (mat, kw) in enumerate(zip(self.weight_matrices(), calls)):
            cols = x[:, g * cin:(g + 1) * cin].permute(perm).reshape(-1, cin)
            y = self._mm(cols, mat, None, kw)  # [N * pixels, cout * K]: each pixel's contributions
            y = y.reshape(n, *size, cout, *self.kernel_size)
            y = _scatter_add(y, self.stride, self.padding, self._opad, self.dilation)
            if self.bias is not None:
                y = y + self.bias[g * cout:(g + 1) * cout].reshape(1, -1, *([1] * nd))
            ys.append(y)
        return ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)


def _pads(layer: _AnalogConvTransposeNd) -> tuple[int, ...]:
    """``layer.padding``, typed: torch's ``_ConvNd`` types it as a string or a tuple; its
    transposed convolutions always hold a tuple (their constructors pass it through ``_ntuple``)."""
    return cast("tuple[int, ...]", layer.padding)


def _scatter_add(y: torch.Tensor, stride, padding, output_padding, dilation) -> torch.Tensor:
    """col2im of a transposed convolution in D dimensions: ``y [N, *in, C, *k]`` (every input
    pixel's contribution to each kernel position) -> ``out [N, C, *out]``, with
    ``out[n, c, i s - p + k d] = sum over (i, k) of y[n, i, c, k]`` and
    ``out_m = (in_m - 1) s_m - 2 p_m + d_m (k_m - 1) + op_m + 1``: one strided add per kernel
    position into the uncropped output (``p`` = 0), then the crop by ``p``, all in autograd."""
    nd = len(stride)
    n, size, c, ks = y.shape[0], y.shape[1:nd + 1], y.shape[nd + 1], y.shape[nd + 2:]
    full = [(i - 1) * s + d * (k - 1) + o + 1 for i, s, d, k, o in zip(size, stride, dilation, ks, output_padding)]
    out = y.new_zeros(n, c, *full)
    y = y.permute(0, nd + 1, *range(1, nd + 1), *range(nd + 2, 2 * nd + 2))  # [N, C, *in, *k]
    for kpos in itertools.product(*(range(k) for k in ks)):
        dst = tuple(slice(k * d, k * d + (i - 1) * s + 1, s) for k, d, i, s in zip(kpos, dilation, size, stride))
        out[(slice(None), slice(None)) + dst] += y[(Ellipsis,) + kpos]
    crop = tuple(slice(p, f - p) for p, f in zip(padding, full))
    return out[(slice(None), slice(None)) + crop]


class AnalogConvTranspose1d(_AnalogConvTransposeNd, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` on a simulated analog chip (see the module docstring)."""

    _FLOAT_CLS = nn.ConvTranspose1d
    _ND = 1


class AnalogConvTranspose2d(_AnalogConvTransposeNd, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` on a simulated analog chip (see the module docstring)."""

    _FLOAT_CLS = nn.ConvTranspose2d
    _ND = 2


class AnalogConvTranspose3d(_AnalogConvTransposeNd, nn.ConvTranspose3d):
    """``nn.ConvTranspose3d`` on a simulated analog chip (see the module docstring)."""

    _FLOAT_CLS = nn.ConvTranspose3d
    _ND = 3
