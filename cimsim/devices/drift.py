"""Drift and read noise at one time t: the plan a profile compiles into, and its laws.

Each device's conductance at time t, from its programmed G_P (kernel
:func:`cimsim.kernels.drift.drift_to_blocks`, in this order):

- power-law drift (Joshi et al. 2020; aihwkit PCM model): G(t) = G_P ((t + t0)/t0)^(-nu) = G_P d,
  the drift factor d = exp(-nu ln((t + t0)/t0)) of each device (:meth:`DriftPlan.drift_factor`).
- relaxation (``drift.kind: relaxation``, Falcone et al. 2025, additive and G-independent),
  applied to G_P before the rest: G = max(G_P + mu(t) + sigma(t) z, 0), z ~ N(0, 1) per device
  and evaluation time, mu(t) = a_mu ln(t_e / 1 s) + b_mu, sigma(t) = max(a_s ln(t_e / 1 s) + b_s, 0)
  µS, t_e = max(t, t_min_s); none at t = 0; stuck devices keep G_P (:meth:`DriftPlan.relaxed`).
- 1/f read noise accumulated up to t (static for one evaluation time):
  G += |G| Q_s(x_P) c_read z, x_P = G_P/g_max, c_read = sqrt(max(ln((t + t0 + t_read)/(2 t_read)), 0))
  (docs/physics.md section 5); then G = max(G, 0).  The 1/f noise acts on the relaxed G, with
  Q_s of the programmed conductance.
- the CMO/HfOx ReRAM read noise (``read_noise.kind: log_one_over_f``, aihwkit's code), on the
  relaxed G (static for one evaluation time): G += K |log10(max(G, 1e-6 µS))| c_read z with
  c_read = sqrt(max(ln((t + t_read)/(2 t_read)), 0)); the kernel takes it in the 1/f form above
  with q = K |log10 G| / G of the relaxed G (q = 0 at G = 0), so |G| q = K |log10 G|.
- clamp (``drift.clamp``, t > 0): G = min(max(G, g_min), g_max) after the noise above.
- bit-line IR drop (``tile.bit_line_r_ohm``; ideal word lines): each device's G(t) times its
  transfer u (:func:`cimsim.kernels.drift._transfer`), wire r_us = R/1e6 per cell pitch.
- per-read noise variance (drawn by the MVM on every read), in weight units^2:
  var_rel^2 w_unit^2 G(t)^2 u^2 + w_unit^2 sigma(x_P)^2 u^2, sigma(x) a Gaussian read-noise law in µS.
Weights: w = w_unit (G+ - G-) (analog subtraction) or w_unit G+ and w_unit G- (digital), with
w_unit = 1/dg (differential) or 2/dg (single_reference), dg = g_max - g_min.

:class:`DriftPlan` holds these scalars and flags as named fields (a NamedTuple of floats and
bools: the drift kernel takes it as an argument); :class:`DriftLaws` evaluates the laws of x_P
(Q_s, sigma(x_P)^2) and the drift factors with numpy, vectorised, in the chip's dtype.
:func:`drift_plan` and :func:`drift_laws` build each once per profile object and arguments
(:class:`~.cache.PlanCache`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..profiles.schema import (
    DeviceProfile,
    DriftPowerLaw,
    DriftRelaxation,
    IVPolynomial,
    ReadNoiseGaussian,
    ReadNoiseLogOneOverF,
    ReadNoiseOneOverF,
)
from .cache import PlanCache

__all__ = ["DEFAULT_T0_S", "DriftLaws", "DriftPlan", "drift_laws", "drift_plan"]

#: t0 of the 1/f read-noise time scale when the profile has no power-law drift (seconds)
DEFAULT_T0_S = 20.0


class DriftPlan(NamedTuple):
    """The scalars and flags of one drift to time ``t_s`` (equations in the module docstring).

    Field types stay fixed (float / bool) so the kernels compile once per dtype.
    """

    t_s: float
    #: ln((t + t0)/t0) (0 without drift exponents)
    log_ratio: float
    #: sqrt(max(ln((t + t0 + t_read)/(2 t_read)), 0)) (0 without 1/f noise)
    c_read: float
    #: weight units per µS: 1/dg (differential) or 2/dg (single_reference)
    w_unit: float
    #: (per-read sigma_rel)^2
    var_rel2: float
    #: bit-line wire resistance per cell pitch / 1e6 (0 with word-line IR drop: solved per tile)
    r_us: float
    g_max_us: float
    #: relaxation mu(t), sigma(t) in µS (0 without relaxation)
    relax_mu_us: float
    relax_sigma_us: float
    has_nu: bool
    has_read: bool
    #: G+ and G- blocks written apart (digital subtraction, nonlinear I-V, word-line IR drop)
    digital: bool
    has_var: bool
    #: single_reference with per-read noise: the reference's variance is drawn apart (by the MVM)
    shared_neg: bool
    has_ir: bool
    #: a Gaussian read-noise law sigma(x_P) (µS)
    has_sig: bool
    has_relax: bool
    differential: bool
    has_iv: bool
    word_ir: bool
    #: the read-noise law reads G(t) after relaxation (log_one_over_f): q is evaluated on it
    read_on_g_t: bool = False
    #: clamp G(t) to [g_min_us, g_max_us] after the noise (drift.clamp at t > 0)
    clamp: bool = False
    g_min_us: float = 0.0

    @property
    def var_scale(self) -> float:
        """var_rel^2 w_unit^2: a device's per-read variance per µS^2 of G(t)."""
        return self.var_rel2 * self.w_unit**2

    @property
    def draws(self) -> bool:
        """The drift draws random numbers (1/f noise or relaxation)."""
        return self.has_read or self.has_relax

    def relaxed(self, g: np.ndarray, z: np.ndarray, fault: np.ndarray | None, dtype) -> np.ndarray:
        """max(g + mu(t) + sigma(t) z, 0) in ``dtype`` (a new array); stuck devices keep g."""
        out = np.multiply(z, self.relax_sigma_us, dtype=dtype)
        out += self.relax_mu_us
        out += g
        np.maximum(out, 0.0, out=out)
        if fault is not None:
            stuck = fault != 0
            out[stuck] = g[stuck]
        return out


#: a training run may draw a new read time every step: the last few plans of a profile are kept
_CACHE = PlanCache(per_owner=32)


def drift_plan(profile: DeviceProfile, t: float, *, noiseless: bool, has_nu: bool) -> DriftPlan:
    """Compile ``profile`` for a drift to time ``t`` (seconds, already checked); built once per
    profile object and arguments, then the same plan.

    ``noiseless``: no 1/f, per-read or relaxation noise; ``has_nu``: the chip has drift
    exponents to apply (power-law drift only).
    """
    t, noiseless, has_nu = float(t), bool(noiseless), bool(has_nu)
    # the sign of t in the key too: -0.0 == 0.0, but the plan keeps t as given
    key = ("plan", t, math.copysign(1.0, t), noiseless, has_nu)
    return _CACHE.get(profile, key, lambda: _compile(profile, t, noiseless, has_nu))


def _compile(profile: DeviceProfile, t: float, noiseless: bool, has_nu: bool) -> DriftPlan:
    p = profile
    dg = p.conductance.g_max_us - p.conductance.g_min_us
    has_nu = has_nu and isinstance(p.drift, DriftPowerLaw)
    t0 = p.drift.t0_s if isinstance(p.drift, DriftPowerLaw) else DEFAULT_T0_S
    log_ratio = math.log((t + t0) / t0) if has_nu else 0.0
    has_read = False
    c_read = 0.0
    if isinstance(p.read_noise, ReadNoiseOneOverF) and not noiseless:
        has_read = True
        tr = p.read_noise.t_read_s
        c_read = math.sqrt(max(math.log((t + t0 + tr) / (2.0 * tr)), 0.0))
    read_on_g_t = False
    if isinstance(p.read_noise, ReadNoiseLogOneOverF) and not noiseless:
        tr = p.read_noise.t_read_s
        c_read = math.sqrt(max(math.log((t + tr) / (2.0 * tr)), 0.0))
        has_read = read_on_g_t = c_read > 0
    has_sig = False
    if isinstance(p.read_noise, ReadNoiseGaussian):
        var_rel = p.read_noise.sigma_rel
        has_sig = not noiseless and p.read_noise.sigma is not None
    elif isinstance(p.read_noise, ReadNoiseOneOverF):
        var_rel = p.read_noise.per_read_sigma_rel
    else:
        var_rel = 0.0
    has_var = (var_rel > 0 or has_sig) and not noiseless
    rx = p.drift if isinstance(p.drift, DriftRelaxation) and t > 0 and not noiseless else None
    relax_mu = relax_sigma = 0.0
    if rx is not None:
        ln_t = math.log(max(t, rx.t_min_s))
        relax_mu = rx.mean_slope_us * ln_t + rx.mean_at_1s_us
        relax_sigma = max(rx.sigma_slope_us * ln_t + rx.sigma_at_1s_us, 0.0)
    # a nonlinear I-V and word-line IR drop need each device's G(t): the kernel then writes G+
    # and G- apart (the digital-subtraction layout) and the caller forms the blocks, then
    # subtracts them where the subtraction is analog
    has_iv = isinstance(p.iv, IVPolynomial)
    word_ir = p.tile.word_line_r_ohm > 0
    diff = p.mapping.kind == "differential"
    # Ω x µS -> dimensionless; with word-line IR drop the whole tile is solved by the caller
    r_us = 0.0 if word_ir else float(p.tile.bit_line_r_ohm) * 1e-6
    return DriftPlan(
        t_s=float(t), log_ratio=float(log_ratio), c_read=float(c_read), w_unit=(1.0 if diff else 2.0) / dg,
        var_rel2=float(var_rel * var_rel), r_us=r_us, g_max_us=float(p.conductance.g_max_us),
        relax_mu_us=float(relax_mu), relax_sigma_us=float(relax_sigma), has_nu=bool(has_nu), has_read=bool(has_read),
        digital=p.mapping.subtraction == "digital" or has_iv or word_ir, has_var=bool(has_var),
        shared_neg=bool(has_var and not diff), has_ir=r_us > 0, has_sig=bool(has_sig), has_relax=rx is not None,
        differential=diff, has_iv=has_iv, word_ir=bool(word_ir), read_on_g_t=bool(read_on_g_t),
        clamp=bool(isinstance(p.drift, DriftRelaxation) and p.drift.clamp and t > 0),
        g_min_us=float(p.conductance.g_min_us),
    )


class DriftLaws:
    """The per-device laws a drift plan needs, each evaluated once over several arrays at a time
    (stacked along axis 0), in the chip's dtype with numpy's SIMD log/exp/power; each returns
    one array per input array."""

    __slots__ = ("_q_s", "_log_k", "_sigma", "dtype", "plan")

    def __init__(self, profile: DeviceProfile, plan: DriftPlan, dtype):
        self.plan = plan
        self.dtype = np.dtype(dtype)
        rn = profile.read_noise
        self._q_s = self._sigma = self._log_k = None
        if plan.has_read and plan.read_on_g_t:
            assert isinstance(rn, ReadNoiseLogOneOverF)  # what the plan was compiled from
            self._log_k = float(rn.coeff_us)
        elif plan.has_read:
            assert isinstance(rn, ReadNoiseOneOverF)  # what the plan was compiled from
            self._q_s = rn.q_s
        if plan.has_sig:
            assert isinstance(rn, ReadNoiseGaussian)
            self._sigma = rn.sigma

    def drift_factor(self, *nus: np.ndarray) -> list[np.ndarray]:
        """d = exp(-nu ln((t + t0)/t0)) of each array of drift exponents."""
        d = self._stacked(nus, -self.plan.log_ratio, np.multiply)
        np.exp(d, out=d)
        return _split(d, nus)

    def q_s(self, *gs: np.ndarray) -> list[np.ndarray]:
        """Q_s(G_P / g_max), the 1/f amplitude law, of each array of programmed conductances;
        for log_one_over_f, K |log10(max(G, 1e-6))| / G of each array of relaxed G(t) (0 at G = 0)."""
        if self._log_k is not None:
            g = self._stacked(gs, 1.0, np.multiply)
            q = np.log10(np.maximum(g, 1e-6))
            np.abs(q, out=q)
            q *= self._log_k
            np.divide(q, g, out=q, where=g > 0)
            q[~(g > 0)] = 0.0
            return _split(q, gs)
        law = self._q_s
        assert law is not None, "the plan has no 1/f noise"
        return _split(law.evaluate(self._stacked(gs, self.plan.g_max_us, np.divide)), gs)

    def read_sigma2(self, *gs: np.ndarray) -> list[np.ndarray]:
        """max(sigma(G_P / g_max), 0)^2 (µS^2), the Gaussian read-noise law, of each array."""
        law = self._sigma
        assert law is not None, "the plan has no Gaussian read-noise law"
        s = law.evaluate(self._stacked(gs, self.plan.g_max_us, np.divide))
        np.clip(s, 0.0, np.inf, out=s)
        s *= s
        return _split(s, gs)

    def _stacked(self, arrays: Sequence[np.ndarray], c: float, op) -> np.ndarray:
        """op(a, c) of every array, stacked along axis 0 into one new array of the chip's dtype."""
        out = np.empty((sum(a.shape[0] for a in arrays),) + arrays[0].shape[1:], self.dtype)
        r = 0
        for a in arrays:
            op(a, c, out=out[r : r + a.shape[0]], dtype=self.dtype)
            r += a.shape[0]
        return out


def drift_laws(profile: DeviceProfile, plan: DriftPlan, dtype) -> DriftLaws:
    """The laws ``plan`` (compiled from ``profile``) needs in ``dtype`` (built once per profile
    object, plan and dtype)."""
    dt = np.dtype(dtype)
    return _CACHE.get(profile, ("laws", plan, dt.str), lambda: DriftLaws(profile, plan, dt))


def _split(y: np.ndarray, like: Sequence[np.ndarray]) -> list[np.ndarray]:
    parts, r = [], 0
    for a in like:
        parts.append(y[r : r + a.shape[0]])
        r += a.shape[0]
    return parts
