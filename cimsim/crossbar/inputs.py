"""Input checks of program_matrix (W) and tile_mvm (x): shape, dtype, finiteness; the row abs-max
of the DAC's dynamic range.

Fast path (:func:`prepare_x`): for a C-contiguous ``x`` already in the chip's float dtype, one
integer pass over the bits gives max_j |x[b, j]| per row (|x| ordered as floats equals its bits
ordered as integers with the sign bit cleared) and the finiteness check (NaN/Inf have the
largest patterns, >= the bits of +Inf).
"""

from __future__ import annotations

import numpy as np

from ..errors import NonFiniteError, ParameterError, ShapeError
from ..kernels import NUMBA

__all__ = ["as_array", "check_w", "check_x", "prepare_x", "FLOAT_BITS"]

#: float dtype -> (unsigned int of its width, sign-clearing mask, bit pattern of +Inf)
FLOAT_BITS = {np.dtype(np.float32): (np.uint32, np.uint32(0x7FFFFFFF), np.uint32(0x7F800000)),
              np.dtype(np.float64): (np.uint64, np.uint64(0x7FFFFFFFFFFFFFFF), np.uint64(0x7FF0000000000000))}

#: dtype kinds of real numeric arrays (np.floating, np.signedinteger, np.unsignedinteger)
_REAL_KINDS = "fiu"


def as_array(a, what: str) -> np.ndarray:
    """``a`` as a numpy array; a torch tensor is detached and moved to the CPU first (the chip
    takes data, not autograd graphs: the STE in :mod:`cimsim.nn` owns the gradients), and a meta
    tensor, which holds no data, is refused by name."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "detach") and hasattr(a, "is_meta"):  # a torch.Tensor, without importing torch here
        if a.is_meta:
            raise ParameterError(f"{what} is a tensor on the 'meta' device, which holds no values: materialise it "
                                 "first (module.to_empty(device='cpu') and load the weights)")
        a = a.detach().cpu().resolve_conj().resolve_neg().numpy()
    return np.asarray(a)


def check_w(W) -> np.ndarray:
    """``W`` as a contiguous 2-D float array (float64 stays float64, anything else float32);
    raises ShapeError / ParameterError / NonFiniteError naming the offending value."""
    W = as_array(W, "W")
    if W.ndim != 2:
        raise ShapeError(f"W must be 2-D [out, in] (got shape {W.shape})")
    if W.shape[0] == 0 or W.shape[1] == 0:
        raise ShapeError(f"W must have out >= 1 and in >= 1 (got shape {W.shape})")
    if W.dtype.kind not in _REAL_KINDS:
        raise ParameterError(f"W must be a real numeric array (got dtype {W.dtype})")
    dt = np.float64 if W.dtype == np.float64 else np.float32
    W = np.ascontiguousarray(W, dtype=dt)
    # one integer pass (max |W| bits per row, no temporaries the size of W); NaN/Inf have the
    # largest bit patterns, and only then is the offending entry located
    ut, mask, inf_bits = FLOAT_BITS[W.dtype]
    mb = np.empty(W.shape[0], ut)
    NUMBA.row_absmax_bits.sized(W.size)(W.view(ut), mask, W.shape[1], mb[:, None])
    if mb.max() >= inf_bits:
        bad = ~np.isfinite(W)
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise NonFiniteError(f"W has {int(bad.sum())} NaN/Inf entries (first at index {i}: {W[i]})")
    return W


def check_x(x, n_in: int, w_shape) -> tuple[np.ndarray, bool]:
    """``x`` as ``[batch, n_in]`` and whether it was 1-D; raises a named error for a bad one."""
    x = as_array(x, "x")
    if x.dtype.kind not in _REAL_KINDS:
        raise ParameterError(f"x must be a real numeric array (got dtype {x.dtype})")
    if x.ndim not in (1, 2) or x.shape[-1] != n_in:
        raise ShapeError(
            f"x has shape {x.shape} but the programmed matrix has shape {tuple(w_shape)} [out, in]: "
            f"x must be [batch, {n_in}] or [{n_in}]"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise NonFiniteError(f"x has {int(bad.sum())} NaN/Inf entries (first at index {i}: {x[i]})")
    squeeze = x.ndim == 1
    return (x[None, :] if squeeze else x), squeeze


def prepare_x(x, dtype: np.dtype, n_in: int, w_shape, K):
    """(x2 ``[batch, n_in]``, squeeze, rowmax): rowmax is max |x| per row from the fast path
    (None where the general path ran and the DAC stage computes it)."""
    if (isinstance(x, np.ndarray) and x.dtype == dtype and x.dtype in FLOAT_BITS and x.ndim in (1, 2)
            and x.shape[-1] == n_in and x.flags.c_contiguous):
        x2, squeeze = (x[None, :], True) if x.ndim == 1 else (x, False)
        ut, mask, inf_bits = FLOAT_BITS[x.dtype]
        mb = np.empty(x2.shape[0], ut)
        K.row_absmax_bits.sized(x2.size)(x2.view(ut), mask, max(1, x2.shape[1]), mb[:, None])
        if mb.size and mb.max() >= inf_bits:
            check_x(x, n_in, w_shape)  # raises NonFiniteError
        return x2, squeeze, mb.view(x.dtype)
    x2, squeeze = check_x(x, n_in, w_shape)
    return x2, squeeze, None
