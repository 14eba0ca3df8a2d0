"""What the DAC and the ADC share: resolution, the ideal converter, the transfer nonlinearities.

Signed symmetric converters: ``bits`` b gives L = 2^(b-1) - 1 levels per polarity (codes -L..L).
A converter is ideal when its profile section gives no resolution (``bits`` null): no
quantisation, clipping, saturation or LSB noise (the profile forbids noise on an ideal
converter).  :func:`is_ideal` is the one place that says so; the plans carry it as ``ideal``.

Transfer nonlinearities act on the normalised signal u = value / bound, encoded for the kernels
as a code and a float64 spec array:

- ``NL_NONE``   u -> u                                  spec [0]
- ``NL_POLY``   u -> sum_k c_k u^k (Horner)             spec [c_0, c_1, ...]
- ``NL_TABLE``  linear interpolation of (u_i, v_i),     spec [n, u_0..u_n-1, v_0..v_n-1]
  constant beyond the ends
- ``NL_SCURVE`` u -> tanh(k u) / tanh(k)                spec [k]

The ADC's INL table (not a transfer curve: code NL_NONE) adds inl_lsb[code + L] LSB to each code.
"""

from __future__ import annotations

import numpy as np

from ..profiles.schema import (
    NonlinearityInlTable,
    NonlinearityNone,
    NonlinearityPolynomial,
    NonlinearitySCurve,
    NonlinearityTable,
    RangeCalibrated,
    RangeDynamic,
    RangeFixed,
)

__all__ = ["NL_NONE", "NL_POLY", "NL_TABLE", "NL_SCURVE", "RANGE_FIXED", "RANGE_CALIBRATED", "RANGE_DYNAMIC",
           "is_ideal", "levels", "encode_nonlinearity", "range_kind"]

NL_NONE = 0
NL_POLY = 1
NL_TABLE = 2
NL_SCURVE = 3

RANGE_FIXED = 0
RANGE_CALIBRATED = 1
RANGE_DYNAMIC = 2


def is_ideal(bits: int | None) -> bool:
    """THE definition of an ideal converter: its section gives no resolution (``bits`` null)."""
    return bits is None


def levels(bits: int | None) -> int:
    """Levels per polarity, L = 2^(bits-1) - 1; 0 for an ideal converter."""
    if is_ideal(bits):
        return 0
    assert bits is not None  # what is_ideal says
    return (1 << (bits - 1)) - 1


def encode_nonlinearity(nl) -> tuple[int, np.ndarray]:
    """(code, spec) of a transfer nonlinearity for the kernels (an INL table is NL_NONE here)."""
    if isinstance(nl, (NonlinearityNone, NonlinearityInlTable)):
        return NL_NONE, np.zeros(1)
    if isinstance(nl, NonlinearityPolynomial):
        return NL_POLY, np.asarray(nl.coeffs, dtype=np.float64)
    if isinstance(nl, NonlinearityTable):
        return NL_TABLE, np.array([float(len(nl.u)), *nl.u, *nl.v], dtype=np.float64)
    if isinstance(nl, NonlinearitySCurve):
        return NL_SCURVE, np.array([nl.k], dtype=np.float64)
    raise TypeError(f"unknown nonlinearity {type(nl).__name__}")


def range_kind(r) -> int:
    """RANGE_FIXED, RANGE_CALIBRATED or RANGE_DYNAMIC for a converter's range section."""
    if isinstance(r, RangeFixed):
        return RANGE_FIXED
    if isinstance(r, RangeCalibrated):
        return RANGE_CALIBRATED
    if isinstance(r, RangeDynamic):
        return RANGE_DYNAMIC
    raise TypeError(f"unknown range {type(r).__name__}")
