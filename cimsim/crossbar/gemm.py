"""The MVM's dense products per input tile: torch bmm over strided views, or numpy per-tile blocks.

Per input tile k of a conversion stream (normalised units, x = x_norm or a bit plane):

    part_k = x[:, k] @ W_k^T  (+ (x |x|)[:, k] @ W2_k^T + (x^3)[:, k] @ W3_k^T  with a nonlinear I-V)
    var_k  = x[:, k]^2 @ V_k^T           (V_ij = sigma_ij^2: the variance of the column sum)

For float32 chips the variance product runs in bfloat16: operands and result rounded to
bfloat16 (round to nearest even), fp32 accumulation, so sigma is within a relative 1.5 2^-8 of
the exact value; float64 chips compute it in float64.

With ``read_noise.per_read_variance: column_mean`` (an explicit approximation; exact is the
default) there is no variance GEMM: each tile column's devices are taken at their mean variance,

    var_k[b, o] ~= s_k[b] vbar_k[o],   s_k[b] = sum_{i in k} x[b, i]^2,   vbar_k[o] = mean_{i in k} V_k[o, i]

(:func:`row_energy`, :func:`column_means`: float64 sums rounded to the chip's dtype, one product
in it; both engines share them, so their variances agree bit for bit).  It is exact when a
column's variances are equal (or its inputs' squares are); otherwise it keeps the expectation over
a random order of the rows and errs per output by the spread of V along the column, weighted by
x^2 (docs/physics.md gives the measured error).

Which engine (:class:`TorchGemm` for the Numba kernel set, :class:`NumpyGemm` for the reference)
and which :class:`VarianceGemm` are chosen once, by :func:`make_gemm`, when the MVM plan of a
drifted state is built.
"""

from __future__ import annotations

import enum
import warnings

import numpy as np
import torch

from .._threads import scratch
from ..kernels.converters_ref import bf16_upper
from .snapshot import DriftedState

__all__ = ["BF16_GEMM", "VarianceGemm", "TorchGemm", "NumpyGemm", "make_gemm", "bf16_bits", "bf16_round",
           "gemm_tiles", "row_energy", "column_means"]


def _cpu_has_bf16_gemm() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX-BF16).

    Read from the CPU's flags, so the choice is fixed per machine.  Without them torch's bfloat16
    GEMM falls back to a slow path, and the variance GEMM runs in fp32 on the same
    bfloat16-rounded operands instead.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:  # not Linux: take the fp32 path, never the slow one
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


#: the bfloat16 variance GEMM runs on bfloat16 tensors (True) or in fp32 on bfloat16-rounded values
BF16_GEMM = _cpu_has_bf16_gemm()


class VarianceGemm(enum.Enum):
    """How the per-read variance product runs."""

    NONE = "no per-read noise"
    FLOAT = "in the chip's dtype (float64 chips)"
    BF16 = "bfloat16 tensors, fp32 accumulation (CPUs with bf16 instructions)"
    BF16_AS_FP32 = "fp32 GEMM of bfloat16-rounded operands, result rounded to bfloat16"
    COLUMN_MEAN = "no GEMM: each tile column's mean variance times the tile's sum of x^2 (per_read_variance: column_mean)"


def column_means(grid, flat: np.ndarray) -> np.ndarray:
    """``vbar [T, O]``: per input tile k, each column's mean of the flat per-tile array ``flat``
    (the devices' per-read variances) over the tile's rows, summed in float64, in its dtype."""
    return np.stack([DriftedState.block_of(grid, flat, k).mean(axis=1, dtype=np.float64)
                     for k in range(grid.n_in_tiles)]).astype(flat.dtype)


def row_energy(grid, x: np.ndarray) -> np.ndarray:
    """``s [T, B]``: per input tile k, the sum of x[b, i]^2 over the tile's inputs i, summed in
    float64, in x's dtype."""
    xd = x.astype(np.float64)
    starts = [grid.in_slice(k)[0] for k in range(grid.n_in_tiles)]
    return np.ascontiguousarray(np.add.reduceat(xd * xd, starts, axis=1).T, dtype=x.dtype)


def _bf16_upper(a: np.ndarray) -> np.ndarray:
    """float32 ``a``'s bits rounded to the nearest bfloat16, ties to even (as torch's cast), low
    16 bits clear (one rounding for the engines and the ADC twin)."""
    return bf16_upper(np.ascontiguousarray(a, dtype=np.float32).view(np.uint32))


def bf16_bits(a: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) of float32 ``a``, round to nearest even (as torch's cast)."""
    return (_bf16_upper(a) >> np.uint32(16)).astype(np.uint16)


def bf16_round(a: np.ndarray) -> np.ndarray:
    """float32 ``a`` rounded to the nearest bfloat16 (returned as float32)."""
    return _bf16_upper(a).view(np.float32)


def gemm_tiles(xt: torch.Tensor, ops, out: torch.Tensor, k0: int = 0, k1: int | None = None,
               accumulate: bool = False) -> None:
    """out[k - k0] = x[:, tile k] @ B_k^T (``accumulate``: +=) for the input tiles k0 <= k < k1
    (default: all): one torch.bmm over the full-width tiles (zero-copy strided view of x), one
    more GEMM for a ragged last tile.  xt [B, n_in], out [k1 - k0, B, O]."""
    full, last = ops
    batch, n_in = xt.shape
    nfull = 0 if full is None else full.shape[0]
    if k1 is None:
        k1 = nfull + (last is not None)
    f1 = min(k1, nfull)
    if k0 < f1:
        rows = full.shape[2]
        xv = xt.as_strided((f1 - k0, batch, rows), (rows, n_in, 1), xt.storage_offset() + k0 * rows)
        if accumulate:
            out[: f1 - k0].baddbmm_(xv, full[k0:f1].transpose(1, 2))
        else:
            torch.bmm(xv, full[k0:f1].transpose(1, 2), out=out[: f1 - k0])
    if last is not None and k1 > nfull:
        if accumulate:
            out[nfull - k0].addmm_(xt[:, n_in - last.shape[1] :], last.T)
        else:
            torch.matmul(xt[:, n_in - last.shape[1] :], last.T, out=out[nfull - k0])


_E3 = {np.dtype(np.float32): np.zeros((0, 0, 0), np.float32), np.dtype(np.float64): np.zeros((0, 0, 0), np.float64)}
_E16 = np.zeros((0, 0, 0), np.uint16)


#: torch warns that a read-only numpy array is not writable on the process's first one only
#: (TORCH_WARN_ONCE); after :func:`_operand_tensor` has caught that warning, it skips the filters
_READ_ONLY_WARNED = [False]


def _operand_tensor(a: np.ndarray, var: VarianceGemm) -> torch.Tensor:
    """``a`` (a read-only block of a drifted state: the GEMMs only read it) as a tensor, in
    bfloat16 (``BF16``) or rounded to bfloat16 (``BF16_AS_FP32``) when it is a variance operand."""
    if a.flags.writeable or _READ_ONLY_WARNED[0]:
        t = torch.from_numpy(a)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
            t = torch.from_numpy(a)
        _READ_ONLY_WARNED[0] = True
    if var is VarianceGemm.BF16:
        return t.to(torch.bfloat16)
    if var is VarianceGemm.BF16_AS_FP32:
        return t.to(torch.bfloat16).to(torch.float32)
    return t


class TorchGemm:
    """torch GEMMs on zero-copy tensors: per stream ``(full [nfull, O, rows], last [O, rk] | None)``."""

    def __init__(self, ds: DriftedState, var: VarianceGemm):
        self.var = var
        self.grid = ds.state.grid

    def operand(self, flat: np.ndarray, variance: bool):
        grid = self.grid
        if variance and self.var is VarianceGemm.COLUMN_MEAN:
            return torch.from_numpy(column_means(grid, flat))
        n_out, rows = grid.n_out, grid.rows
        nfull = grid.n_in // rows
        var = self.var if variance else VarianceGemm.NONE
        # numpy cuts the blocks (cheaper than slicing tensors), torch views them
        full = _operand_tensor(flat[: nfull * n_out * rows].reshape(nfull, n_out, rows), var) if nfull else None
        last = None
        if nfull < grid.n_in_tiles:
            k0, k1 = grid.in_slice(nfull)
            off = grid.block_offset(nfull)
            last = _operand_tensor(flat[off : off + n_out * (k1 - k0)].reshape(n_out, k1 - k0), var)
        return full, last

    def ref_operand(self, block: np.ndarray):
        return torch.from_numpy(np.array(block))  # a small writable copy

    def plane(self, xin: np.ndarray, xiv, part: np.ndarray):
        """Per input plane: x (and its I-V powers, its square) as tensors, the variance buffers."""
        g, batch, n_out = part.shape
        xt = torch.from_numpy(xin)
        ivt = [None if a is None else torch.from_numpy(a) for a in xiv]
        x2t = vt = v16 = None
        if self.var is VarianceGemm.COLUMN_MEAN:
            x2t = torch.from_numpy(row_energy(self.grid, xin))
            vt = torch.from_numpy(scratch("var", (g, batch, n_out), xin.dtype))
        elif self.var is not VarianceGemm.NONE:
            x2t = torch.square(xt)
            if self.var is VarianceGemm.BF16:
                x2t = x2t.to(torch.bfloat16)
                v16 = torch.from_numpy(scratch("var", (g, batch, n_out), np.int16)).view(torch.bfloat16)
                vt = v16
            elif self.var is VarianceGemm.BF16_AS_FP32:
                # the fp32 result goes to the ADC kernel as bits, which rounds it to bfloat16 itself
                x2t = x2t.to(torch.bfloat16).to(torch.float32)
                vt = torch.from_numpy(scratch("var32", (g, batch, n_out), np.float32))
            else:
                vt = torch.from_numpy(scratch("var", (g, batch, n_out), xin.dtype))
        return (xt, ivt, x2t, vt, v16, torch.from_numpy(part), _E3[part.dtype])

    def group(self, ops, stream, k0: int, k1: int):
        """Partial sums of tiles k0..k1-1 into the part buffer; returns (var, var16) for the ADC."""
        xt, ivt, x2t, vt, v16, pt, e3 = ops
        n = k1 - k0
        gemm_tiles(xt, stream.w, pt, k0, k1)
        for j, ob in stream.iv:
            gemm_tiles(ivt[j], ob, pt, k0, k1, accumulate=True)
        if self.var is VarianceGemm.NONE:
            return e3, _E16
        if self.var is VarianceGemm.COLUMN_MEAN:  # x2t: s [T, B]; stream.v: vbar [T, O]
            torch.mul(x2t[k0:k1, :, None], stream.v[k0:k1, None, :], out=vt[:n])
            return vt[:n].numpy(), _E16
        gemm_tiles(x2t, stream.v, vt, k0, k1)
        if self.var is VarianceGemm.FLOAT:
            return vt[:n].numpy(), _E16
        if self.var is VarianceGemm.BF16_AS_FP32:  # float32 bits, rounded to bfloat16 by the ADC kernel
            return e3, vt[:n].numpy().view(np.uint32)
        return e3, v16[:n].view(torch.int16).numpy().view(np.uint16)

    def ref_variance(self, x2: np.ndarray, op) -> np.ndarray:
        return torch.matmul(torch.from_numpy(x2), op.T).numpy()


class NumpyGemm:
    """numpy matmuls over per-tile ``[O, rk]`` blocks (the reference engine's products)."""

    def __init__(self, ds: DriftedState, var: VarianceGemm):
        self.var = var
        self.grid = ds.state.grid

    def operand(self, flat: np.ndarray, variance: bool):
        if variance and self.var is VarianceGemm.COLUMN_MEAN:
            return column_means(self.grid, flat)
        blocks = [DriftedState.block_of(self.grid, flat, k) for k in range(self.grid.n_in_tiles)]
        return [bf16_round(b) for b in blocks] if variance and self.var is VarianceGemm.BF16_AS_FP32 else blocks

    def ref_operand(self, block: np.ndarray):
        return block

    def plane(self, xin: np.ndarray, xiv, part: np.ndarray):
        x2 = vref = None
        if self.var is not VarianceGemm.NONE:
            if self.var is VarianceGemm.COLUMN_MEAN:
                x2 = row_energy(self.grid, xin)
            else:
                x2 = bf16_round(xin * xin) if self.var is VarianceGemm.BF16_AS_FP32 else xin * xin
            vref = np.empty(part.shape, xin.dtype)
        return (xin, xiv, x2, vref, part)

    def group(self, ops, stream, k0: int, k1: int):
        xin, xiv, x2, vref, part = ops
        grid = self.grid
        for k in range(k0, k1):
            i0, i1 = grid.in_slice(k)
            np.matmul(xin[:, i0:i1], stream.w[k].T, out=part[k - k0])
            for j, ob in stream.iv:
                part[k - k0] += np.matmul(xiv[j][:, i0:i1], ob[k].T)
            if self.var is VarianceGemm.COLUMN_MEAN:
                np.multiply(x2[k][:, None], stream.v[k][None, :], out=vref[k - k0])
            elif self.var is not VarianceGemm.NONE:
                np.matmul(x2[:, i0:i1], stream.v[k].T, out=vref[k - k0])
        n = k1 - k0
        e3 = _E3[part.dtype]
        if self.var is VarianceGemm.NONE:
            return e3, _E16
        if self.var in (VarianceGemm.FLOAT, VarianceGemm.COLUMN_MEAN):
            return vref[:n], _E16
        return e3, vref[:n].view(np.uint32)  # float32 bits, rounded to bfloat16 by the ADC kernel

    def ref_variance(self, x2: np.ndarray, op) -> np.ndarray:
        return x2 @ op.T


def make_gemm(ds: DriftedState, torch_gemm: bool):
    """The GEMM engine of a drifted state: torch or numpy (the kernel set's ``torch_gemm``), and
    the variance product's :class:`VarianceGemm` from the profile's ``per_read_variance``, the
    chip's dtype and the CPU's bf16 support."""
    if ds.v is None:
        var = VarianceGemm.NONE
    elif getattr(ds.state.profile.read_noise, "per_read_variance", "exact") == "column_mean":
        var = VarianceGemm.COLUMN_MEAN
    elif ds.state.dtype != np.float32:
        var = VarianceGemm.FLOAT
    elif torch_gemm and BF16_GEMM:
        var = VarianceGemm.BF16
    else:
        var = VarianceGemm.BF16_AS_FP32
    return TorchGemm(ds, var) if torch_gemm else NumpyGemm(ds, var)
