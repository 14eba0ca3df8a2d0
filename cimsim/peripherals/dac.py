"""DacPlan: the input DAC of a profile, compiled once for the kernels.

Per element of an input row b (signed, symmetric, L levels per polarity):

    u = x / bound[b]
    not ideal:  clip[b, j] = |u| > 1,   u = rint(clip(u, -1, 1) L) / L
    v = f(u)                                   (transfer nonlinearity, see :mod:`.transfer`)
    noise:      v += noise_lsb z / L           (z standard normal, drawn by the caller)
    x_norm = v  (drives the array, normalised units);   x_q = v bound[b]  (input units)

An ideal DAC (``bits`` null) neither clips, quantises nor adds noise.  ``bound`` is the range:
fixed, calibrated (``ProgrammedState.calibrate``) or dynamic (max |x| of each row, 1 for a zero row).
Bit-serial input (``bit_serial``) drives the rows with the bit planes of the code rint(x_norm L).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..profiles.schema import Dac
from ..devices.cache import PlanCache
from .transfer import NL_NONE, encode_nonlinearity, is_ideal, levels, range_kind

__all__ = ["DacPlan", "dac_plan"]


class DacPlan(NamedTuple):
    """A DAC section as the kernels read it (field types fixed: Numba compiles once per layout).

    ideal: no resolution (see :func:`cimsim.peripherals.transfer.is_ideal`); levels: L (0 when
    ideal); nl_code / nl_spec: the transfer nonlinearity; noise_lsb: conversion noise in LSB;
    bit_serial: inputs applied bit plane by bit plane; range_kind: RANGE_FIXED / _CALIBRATED / _DYNAMIC.
    """

    ideal: bool
    levels: int
    nl_code: int
    nl_spec: np.ndarray
    noise_lsb: float
    bit_serial: bool
    range_kind: int

    @classmethod
    def compile(cls, dac: Dac) -> "DacPlan":
        code, spec = encode_nonlinearity(dac.nonlinearity)
        ideal = is_ideal(dac.bits)
        return cls(ideal=ideal, levels=levels(dac.bits), nl_code=code, nl_spec=spec,
                   noise_lsb=float(dac.noise_lsb), bit_serial=bool(dac.bit_serial) and not ideal,
                   range_kind=range_kind(dac.range))

    @property
    def noisy(self) -> bool:
        """Whether a conversion draws noise (never for an ideal DAC)."""
        return self.noise_lsb > 0 and not self.ideal

    @property
    def identity(self) -> bool:
        """The transfer is exactly x -> x (ideal and linear): the array sees the input itself."""
        return self.ideal and self.nl_code == NL_NONE

    def without_noise(self) -> "DacPlan":
        """The same DAC without conversion noise (calibration reads the noise-free transfer)."""
        return self._replace(noise_lsb=0.0)


_CACHE = PlanCache()


def dac_plan(dac: Dac) -> DacPlan:
    """The plan of a profile's ``dac`` section, compiled once per section object (the same plan
    for every chip and training step of a profile; its arrays are read-only by convention)."""
    return _CACHE.get(dac, "plan", lambda: DacPlan.compile(dac))
