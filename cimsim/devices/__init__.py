"""Device physics as plans: each profile section compiles once into a named, immutable plan
(a NamedTuple of floats, ints and bools the kernels take as an argument), beside the laws it
evaluates with numpy.  Imports only :mod:`cimsim.profiles` (and errors, rng, times).

- :mod:`.programming`: :class:`ProgrammingPlan` (levels, variability, faults, programming
  noise, clipping, drift exponents) and :class:`ProgrammingLaws` (sigma_prog, mu_nu, sigma_nu).
- :mod:`.drift`: :class:`DriftPlan` at one time t (power-law drift, relaxation, 1/f and
  per-read noise, bit-line IR drop, block layout) and :class:`DriftLaws` (drift factors, Q_s,
  read sigma^2).
- :mod:`.cache`: :class:`PlanCache`, which keeps each plan per profile object (a training step
  programs a fresh chip from the same profile every time; its plans are built once).
"""

from .cache import PlanCache
from .drift import DriftLaws, DriftPlan, drift_laws, drift_plan
from .programming import (
    NOISE_CONSTANT,
    NOISE_FUNCTION,
    NOISE_NONE,
    NOISE_RELATIVE,
    ProgrammingLaws,
    ProgrammingPlan,
    programming_laws,
    programming_plan,
)

__all__ = [
    "NOISE_CONSTANT",
    "NOISE_FUNCTION",
    "NOISE_NONE",
    "NOISE_RELATIVE",
    "DriftLaws",
    "DriftPlan",
    "PlanCache",
    "ProgrammingLaws",
    "ProgrammingPlan",
    "drift_laws",
    "drift_plan",
    "programming_laws",
    "programming_plan",
]
