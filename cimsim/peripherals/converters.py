"""DAC and ADC parameters, turned from profile sections into kernel inputs.

Signed symmetric converters: ``bits`` b gives L = 2^(b-1) - 1 levels per polarity (codes -L..L);
``bits = None`` is ideal (L = 0: no quantisation, clipping or saturation).  Transfer
nonlinearities act on the normalised signal u = value / bound:
polynomial u -> sum_k c_k u^k, table (linear interpolation, constant beyond the ends),
s-curve u -> tanh(k u)/tanh(k); the ADC's INL table adds inl_lsb[code + L] LSB to each code.
The equations of the conversion itself are in :func:`cimsim.kernels._numba.dac_convert` and
:func:`cimsim.kernels._numba.adc_tiles`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..profiles.schema import (
    Adc,
    Dac,
    NonlinearityInlTable,
    NonlinearityNone,
    NonlinearityPolynomial,
    NonlinearitySCurve,
    NonlinearityTable,
)

__all__ = ["levels", "encode_nonlinearity", "ConverterParams", "dac_params", "adc_params"]


def levels(bits: int | None) -> int:
    """Levels per polarity, L = 2^(bits-1) - 1; 0 for an ideal converter (bits None)."""
    return 0 if bits is None else (1 << (bits - 1)) - 1


def encode_nonlinearity(nl) -> tuple[int, np.ndarray]:
    """(code, spec) of a transfer nonlinearity for the kernels (INL tables are code 0 here)."""
    if isinstance(nl, (NonlinearityNone, NonlinearityInlTable)):
        return 0, np.zeros(1)
    if isinstance(nl, NonlinearityPolynomial):
        return 1, np.asarray(nl.coeffs, dtype=np.float64)
    if isinstance(nl, NonlinearityTable):
        return 2, np.array([float(len(nl.u)), *nl.u, *nl.v], dtype=np.float64)
    if isinstance(nl, NonlinearitySCurve):
        return 3, np.array([nl.k], dtype=np.float64)
    raise TypeError(f"unknown nonlinearity {type(nl).__name__}")


@dataclass(frozen=True)
class ConverterParams:
    levels: int
    nl_code: int
    nl_spec: np.ndarray
    inl: np.ndarray
    noise_lsb: float


def dac_params(dac: Dac) -> ConverterParams:
    code, spec = encode_nonlinearity(dac.nonlinearity)
    return ConverterParams(levels(dac.bits), code, spec, np.zeros(0), float(dac.noise_lsb))


def adc_params(adc: Adc) -> ConverterParams:
    code, spec = encode_nonlinearity(adc.nonlinearity)
    inl = (
        np.asarray(adc.nonlinearity.inl_lsb, dtype=np.float64)
        if isinstance(adc.nonlinearity, NonlinearityInlTable)
        else np.zeros(0)
    )
    return ConverterParams(levels(adc.bits), code, spec, inl, float(adc.noise_lsb))
