"""Device laws as flat float64 arrays the kernels can evaluate.

A profile's :data:`~cimsim.profiles.functions.XFunction` (sigma_prog(x), mu_nu(x), sigma_nu(x),
Q_s(x)) is a pydantic object; the Numba kernels take it encoded as one float64 array (layout in
:mod:`cimsim.kernels._numba`).  ``decode(encode(f))(x) == f.evaluate(x)`` up to rounding
(tested against ``evaluate``).
"""

from __future__ import annotations

import numpy as np

from ..profiles.functions import ConstantFn, LogLinearFn, PiecewiseFn, PolynomialFn, PowerFn, TableFn

__all__ = ["encode_xfunction", "EMPTY_SPEC"]

EMPTY_SPEC = np.array([0.0, 0.0])  # constant 0: placeholder for a law the profile does not use


def _b(v: float | None, default: float) -> float:
    return default if v is None else float(v)


def _leaf(fn) -> list[float]:
    if isinstance(fn, ConstantFn):
        return [0.0, fn.value]
    if isinstance(fn, PolynomialFn):
        return [1.0, float(len(fn.coeffs)), *map(float, fn.coeffs), _b(fn.min, -np.inf), _b(fn.max, np.inf)]
    if isinstance(fn, LogLinearFn):
        return [2.0, fn.slope, fn.intercept, fn.x_floor, _b(fn.min, -np.inf), _b(fn.max, np.inf)]
    if isinstance(fn, PowerFn):
        return [3.0, fn.coeff, fn.exponent, fn.x_floor, _b(fn.min, -np.inf), _b(fn.max, np.inf)]
    if isinstance(fn, TableFn):
        return [4.0, float(len(fn.x)), *map(float, fn.x), *map(float, fn.y)]
    raise TypeError(f"unknown x-function {type(fn).__name__}")


def encode_xfunction(fn) -> np.ndarray:
    """Encode an XFunction (or ``None`` -> constant 0) as the kernels' float64 spec array."""
    if fn is None:
        return EMPTY_SPEC.copy()
    if isinstance(fn, PiecewiseFn):
        below = _leaf(fn.below)
        return np.array([5.0, fn.threshold, float(len(below)), *below, *_leaf(fn.above)], dtype=np.float64)
    return np.array(_leaf(fn), dtype=np.float64)
