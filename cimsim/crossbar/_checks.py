"""Input checks shared by programming and the MVM: weights, float bit patterns."""

from __future__ import annotations

import numpy as np

from ..errors import NonFiniteError, ParameterError, ShapeError
from ..kernels import engine as backend

__all__ = ["FLOAT_BITS", "check_w"]

#: float dtype -> (unsigned int of its width, sign-clearing mask, bit pattern of +Inf): |x| as
#: an integer, and x is NaN or Inf exactly when that integer is >= the pattern of +Inf
FLOAT_BITS = {np.dtype(np.float32): (np.uint32, np.uint32(0x7FFFFFFF), np.uint32(0x7F800000)),
              np.dtype(np.float64): (np.uint64, np.uint64(0x7FFFFFFFFFFFFFFF), np.uint64(0x7FF0000000000000))}


def check_w(W) -> np.ndarray:
    """``W`` as a contiguous 2-D float array (float64 stays float64, anything else float32);
    raises ShapeError / ParameterError / NonFiniteError naming the offending value."""
    if not isinstance(W, np.ndarray):
        W = np.asarray(W)
    if W.ndim != 2:
        raise ShapeError(f"W must be 2-D [out, in] (got shape {W.shape})")
    if W.shape[0] == 0 or W.shape[1] == 0:
        raise ShapeError(f"W must have out >= 1 and in >= 1 (got shape {W.shape})")
    if not (np.issubdtype(W.dtype, np.floating) or np.issubdtype(W.dtype, np.integer)):
        raise ParameterError(f"W must be a real numeric array (got dtype {W.dtype})")
    dt = np.float64 if W.dtype == np.float64 else np.float32
    W = np.ascontiguousarray(W, dtype=dt)
    # one integer pass (max |W| bits per row, no temporaries the size of W); NaN/Inf have the
    # largest bit patterns, and only then is the offending entry located
    ut, mask, inf_bits = FLOAT_BITS[W.dtype]
    mb = np.empty(W.shape[0], ut)
    backend("numba").row_absmax_bits.sized(W.size)(W.view(ut), mask, mb)
    if mb.max() >= inf_bits:
        bad = ~np.isfinite(W)
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise NonFiniteError(f"W has {int(bad.sum())} NaN/Inf entries (first at index {i}: {W[i]})")
    return W
