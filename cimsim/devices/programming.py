"""Programming: the plan a profile compiles into, and the device laws it evaluates.

A chip is programmed device by device (kernels :func:`cimsim.kernels.programming.program_targets`
and :func:`~cimsim.kernels.programming.program_devices`, in this order), after an optional
weight-noise law on each mapped weight (``programming.weight_noise``, differential pairs:
w_n' = w_n + sigma(|w_n|) z, pruned to 0 below a threshold, then G+/G- = g_min + max(+-w_n', 0) dg;
:func:`cimsim.crossbar.program._weight_noise`; e.g. the PCM law of IBM's Analog Foundation Models):

1. levels: G_T = g_min + q((G_T - g_min)/step) step, step = (g_max - g_min)/(n_levels - 1),
   q = rint, or q(v) = floor(v + u), u ~ U[0, 1) (stochastic rounding: P(up) = the distance to
   the lower level / step).
2. device-to-device variability: G_T = g_min + (G_T - g_min) max(1 + s z, 0), s =
   ``variability.g_max_spread_rel`` (each device's range scales).
3. stuck-at faults: u < p_min -> stuck at g_min (code 1); u < p_min + p_max -> stuck at g_max
   (code 2); u ~ U[0, 1).
4. programming noise, z ~ N(0, 1):
   NOISE_CONSTANT G = G_T + sigma_us z;  NOISE_RELATIVE G = G_T (1 + sigma_rel z);
   NOISE_FUNCTION G = G_T + sigma_prog(x_T) z with x_T = G_T/g_max and
   sigma_prog(x) = max(sigma(x), 0) g_max/g_ref (µS; the profile's law, given at g_max = g_ref;
   for PCM sigma(x) = 0.26348 + 1.9650 x - 1.1731 x^2 µS at g_ref = 25 µS, Nandakumar et al.
   2019, Joshi et al. 2020 Fig. 3).
5. clip: G = max(G, g_min) (and min(G, g_max) with ``programming.clip_upper``).
6. drift exponent (power-law drift only): nu = |N(mu_nu(x_T), sigma_nu(x_T))| (``absolute``)
   or max(N(.), 0).
Stuck devices sit at g_min / g_max with no noise and nu = 0 (they never drift).

:class:`ProgrammingPlan` holds the scalars and flags of these steps as named fields (a
NamedTuple of floats, ints and bools: the kernels take it as an argument); the laws of x_T
(steps 4 and 6) are evaluated by :class:`ProgrammingLaws` with numpy, vectorised, in the chip's
dtype, before the kernel of steps 4-6 runs.  :func:`programming_plan` and
:func:`programming_laws` build each once per profile object (:class:`~.cache.PlanCache`): a
training step programs a fresh chip, from the same profile, every time.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..profiles.schema import (
    DeviceProfile,
    DriftPowerLaw,
    ProgNoiseConstant,
    ProgNoiseFunction,
    ProgNoiseNone,
    ProgNoiseRelative,
)
from ..profiles.functions import Logs
from .cache import PlanCache

__all__ = [
    "NOISE_CONSTANT",
    "NOISE_FUNCTION",
    "NOISE_NONE",
    "NOISE_RELATIVE",
    "ProgrammingLaws",
    "ProgrammingPlan",
    "programming_laws",
    "programming_plan",
]

#: Programming-noise kinds (:attr:`ProgrammingPlan.noise`): no noise (or a zero sigma), additive
#: constant sigma (µS), relative to the target, a law sigma_prog(x_T) (µS).
NOISE_NONE = 0
NOISE_CONSTANT = 1
NOISE_RELATIVE = 2
NOISE_FUNCTION = 3


class ProgrammingPlan(NamedTuple):
    """The scalars and flags of programming one chip (steps in the module docstring).

    The field types stay fixed (float / int / bool) so the kernels compile once per dtype.
    """

    g_min_us: float
    g_max_us: float
    #: levels per device, 0 = continuous
    n_levels: int
    #: stochastic rounding to the levels (only with n_levels > 1)
    stochastic: bool
    #: NOISE_NONE / NOISE_CONSTANT / NOISE_RELATIVE / NOISE_FUNCTION (NONE when its parameter is 0)
    noise: int
    #: sigma_us (constant), sigma_rel (relative) or g_max/g_ref (function): the noise parameter
    prog_param: float
    #: device-to-device spread of the range, relative; has_var = var_sigma_rel > 0
    var_sigma_rel: float
    has_var: bool
    #: stuck-at rates (fractions of devices) at g_min and at g_max; has_fault = either > 0
    p_stuck_min: float
    p_stuck_max: float
    has_fault: bool
    clip_upper: bool
    #: drift exponents are drawn (power-law drift, and the chip is to be drifted)
    has_drift: bool
    #: nu = |N(.)| (True) or max(N(.), 0) (False); False without has_drift
    nu_absolute: bool

    @property
    def same_targets(self) -> bool:
        """Steps 1-3 leave every target as it is (no levels, variability or faults)."""
        return self.n_levels <= 1 and not self.has_var and not self.has_fault


_CACHE = PlanCache()


def programming_plan(profile: DeviceProfile, *, with_drift: bool = True) -> ProgrammingPlan:
    """Compile ``profile`` (conductance, programming, variability, faults, drift) into a plan
    (built once per profile object and ``with_drift``, then the same plan).

    ``with_drift=False``: no drift exponents (a chip only read at t = 0).
    """
    with_drift = bool(with_drift)
    return _CACHE.get(profile, ("plan", with_drift), lambda: _compile(profile, with_drift))


def _compile(profile: DeviceProfile, with_drift: bool) -> ProgrammingPlan:
    p = profile
    c, f = p.conductance, p.faults
    g_min, g_max = float(c.g_min_us), float(c.g_max_us)
    n_levels = int(c.n_levels or 0)
    var_sigma = float(p.variability.g_max_spread_rel)
    noise = p.programming.noise
    if isinstance(noise, ProgNoiseNone):
        kind, param = NOISE_NONE, 0.0
    elif isinstance(noise, ProgNoiseConstant):
        kind, param = NOISE_CONSTANT, float(noise.sigma_us)
    elif isinstance(noise, ProgNoiseRelative):
        kind, param = NOISE_RELATIVE, float(noise.sigma_rel)
    else:
        assert isinstance(noise, ProgNoiseFunction)
        kind, param = NOISE_FUNCTION, g_max / noise.g_ref_us
    if param == 0:
        kind = NOISE_NONE
    drift = p.drift if isinstance(p.drift, DriftPowerLaw) and with_drift else None
    has_drift = drift is not None
    return ProgrammingPlan(
        g_min_us=g_min, g_max_us=g_max, n_levels=n_levels,
        stochastic=bool(p.programming.stochastic_rounding) and n_levels > 1,
        noise=kind, prog_param=float(param), var_sigma_rel=var_sigma, has_var=var_sigma > 0,
        p_stuck_min=float(f.stuck_at_g_min_rel), p_stuck_max=float(f.stuck_at_g_max_rel),
        has_fault=f.stuck_at_g_min_rel > 0 or f.stuck_at_g_max_rel > 0,
        clip_upper=bool(p.programming.clip_upper), has_drift=has_drift,
        nu_absolute=bool(drift.absolute) if drift is not None else False,
    )


class ProgrammingLaws:
    """The laws of x_T = G_T/g_max a plan needs (programming sigma, mu_nu, sigma_nu), evaluated
    with numpy over whole arrays in the chip's dtype.  Each returns an empty array when the plan
    does not use it."""

    __slots__ = ("_mu", "_sd", "_sigma", "plan")

    def __init__(self, profile: DeviceProfile, plan: ProgrammingPlan):
        self.plan = plan
        noise, drift = profile.programming.noise, profile.drift
        self._sigma = self._mu = self._sd = None
        if plan.noise == NOISE_FUNCTION:
            assert isinstance(noise, ProgNoiseFunction)  # what the plan was compiled from
            self._sigma = noise.sigma
        if plan.has_drift:
            assert isinstance(drift, DriftPowerLaw)
            self._mu, self._sd = drift.nu.mean, drift.nu.std

    def x(self, t: np.ndarray, dtype) -> np.ndarray:
        """x_T = G_T / g_max in ``dtype``."""
        return np.divide(t, self.plan.g_max_us, dtype=dtype)

    def all(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sigma_prog, mu_nu, sigma_nu) of one x_T: the laws share their ln(max(x, floor)) per floor."""
        logs: Logs = {}
        return self.sigma_us(x, logs), self.nu_mean(x, logs), self.nu_std(x, logs)

    def sigma_us(self, x: np.ndarray, logs: Logs | None = None) -> np.ndarray:
        """sigma_prog(x_T) = max(sigma(x_T), 0) g_max/g_ref, µS (NOISE_FUNCTION)."""
        if self._sigma is None:
            return np.zeros(0, x.dtype)
        sig = self._sigma.evaluate(x, logs)
        np.clip(sig, 0.0, np.inf, out=sig)  # max(sigma, 0) as one fast clip pass
        sig *= self.plan.prog_param
        return sig

    def nu_mean(self, x: np.ndarray, logs: Logs | None = None) -> np.ndarray:
        """mu_nu(x_T), the mean drift exponent."""
        return self._mu.evaluate(x, logs) if self._mu is not None else np.zeros(0, x.dtype)

    def nu_std(self, x: np.ndarray, logs: Logs | None = None) -> np.ndarray:
        """sigma_nu(x_T), the device-to-device spread of the drift exponent."""
        return self._sd.evaluate(x, logs) if self._sd is not None else np.zeros(0, x.dtype)


def programming_laws(profile: DeviceProfile, plan: ProgrammingPlan) -> ProgrammingLaws:
    """The laws ``plan`` (compiled from ``profile``) needs (built once per profile object and plan)."""
    return _CACHE.get(profile, ("laws", plan), lambda: ProgrammingLaws(profile, plan))
