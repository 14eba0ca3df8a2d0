"""AdcPlan: the per-column ADC of a profile, compiled once for the kernels.

For one tile column (partial sum ``val`` in normalised units, with per-read noise added), with
full scale ``bound``, static gain error ``gain``, offset ``offset`` (LSB) and L levels:

    u = (1 + gain) f(val / bound)                  (f: transfer nonlinearity, see :mod:`.transfer`)
    not ideal:  w = u L + offset + noise_lsb z     (z standard normal, drawn by the caller)
                saturated = |w| > L
                code = clip(rint(w), -L, L) + inl[code + L]        (INL table, LSB)
                out = code / L bound colscale
    ideal:      out = u bound colscale             (no quantisation, saturation, offset or noise)

``linear`` (not ideal, no nonlinearity, no INL, no noise) lets the kernel fold the column's
constants into w = val (1 + gain) L / bound + offset.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..profiles.schema import Adc, NonlinearityInlTable
from ..devices.cache import PlanCache
from .transfer import NL_NONE, encode_nonlinearity, is_ideal, levels, range_kind

__all__ = ["AdcPlan", "adc_plan"]


class AdcPlan(NamedTuple):
    """An ADC section as the kernels read it (field types fixed: Numba compiles once per layout).

    ideal: no resolution (see :func:`cimsim.peripherals.transfer.is_ideal`); levels: L (0 when
    ideal); nl_code / nl_spec: the front-end nonlinearity; inl: float64 ``[2L + 1]`` INL in LSB
    per code (empty without); noise_lsb: conversion noise in LSB; noisy: a conversion draws
    noise; linear: the fast path's conditions; range_kind: RANGE_FIXED / RANGE_CALIBRATED.
    """

    ideal: bool
    levels: int
    nl_code: int
    nl_spec: np.ndarray
    inl: np.ndarray
    noise_lsb: float
    noisy: bool
    linear: bool
    range_kind: int

    @classmethod
    def compile(cls, adc: Adc) -> "AdcPlan":
        code, spec = encode_nonlinearity(adc.nonlinearity)
        inl = (np.asarray(adc.nonlinearity.inl_lsb, dtype=np.float64)
               if isinstance(adc.nonlinearity, NonlinearityInlTable) else np.zeros(0))
        ideal = is_ideal(adc.bits)
        noise = float(adc.noise_lsb)
        return cls(ideal=ideal, levels=levels(adc.bits), nl_code=code, nl_spec=spec, inl=inl, noise_lsb=noise,
                   noisy=noise > 0 and not ideal, linear=code == NL_NONE and inl.shape[0] == 0 and noise == 0.0 and not ideal,
                   range_kind=range_kind(adc.range))


_CACHE = PlanCache()


def adc_plan(adc: Adc) -> AdcPlan:
    """The plan of a profile's ``adc`` section, compiled once per section object (the same plan
    for every chip and training step of a profile; its arrays are read-only by convention)."""
    return _CACHE.get(adc, "plan", lambda: AdcPlan.compile(adc))
