"""The mean conductance drift factor of a profile: simulated vs closed form.

For the power-law drift ``G(t) = G_prog ((t + t0)/t0)^(-nu)`` with ``nu = |N(mu, sigma)|`` drawn per
device (``mu = mu_nu(x)``, ``sigma = sigma_nu(x)`` of the profile), the mean factor over devices at
one target ``x`` has a closed form. With ``L = ln((t + t0)/t0)`` and ``Phi`` the standard normal CDF:

    E[exp(-L |X|)] = exp(-L mu + L^2 sigma^2 / 2) Phi(mu/sigma - L sigma)
                   + exp( L mu + L^2 sigma^2 / 2) Phi(-mu/sigma - L sigma)

(split the expectation at X = 0 and complete the square in each half). Without spread it is
``exp(-L mu)``; the spread raises the mean (Jensen). With ``absolute: false`` (nu clipped at 0)
the second term becomes ``Phi(-mu/sigma)``.

:func:`simulated_mean_drift_factor` measures the same number through the simulator's own
programming and drift path (``program_matrix`` then ``effective_weights(t)``), with programming
and read noise switched off so that drift is isolated: each device's weight then scales by
exactly its own ``((t + t0)/t0)^(-nu)``.
"""

from __future__ import annotations

import math

import numpy as np

from ..crossbar import program_matrix
from ..errors import ParameterError
from ..profiles.loader import profile_from_dict
from ..times import check_time

__all__ = ["closed_form_mean_drift_factor", "simulated_mean_drift_factor", "drift_factor_table"]


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _drift_params(profile, x: float) -> tuple[float, float, float, bool]:
    drift = profile.drift
    if getattr(drift, "kind", "none") != "power_law":
        raise ParameterError(f"profile {profile.name!r} has no power-law drift (drift.kind = {drift.kind!r})")
    xs = np.array([float(x)])
    return float(drift.t0_s), float(drift.nu.mean.evaluate(xs)[0]), float(drift.nu.std.evaluate(xs)[0]), bool(drift.absolute)


def closed_form_mean_drift_factor(profile, x: float, t_s: float) -> float:
    """``E[((t + t0)/t0)^(-nu)]`` over devices programmed at ``x = G_T / g_max`` (equation above)."""
    t_s = check_time(t_s)
    t0, mu, sd, absolute = _drift_params(profile, x)
    L = math.log((t_s + t0) / t0)
    if sd == 0:
        return math.exp(-L * (abs(mu) if absolute else max(mu, 0.0)))
    pos = math.exp(-L * mu + 0.5 * (L * sd) ** 2) * _phi(mu / sd - L * sd)
    if absolute:
        neg = math.exp(L * mu + 0.5 * (L * sd) ** 2) * _phi(-mu / sd - L * sd)
    else:
        neg = _phi(-mu / sd)  # nu = 0 for the negative draws: factor 1
    return pos + neg


def simulated_mean_drift_factor(profile, x: float, t_s: float, *, n: int = 256, seed: int = 0) -> tuple[float, float]:
    """``(mean, standard error)`` of ``G(t)/G_prog`` over ``n*n - 1`` simulated devices at ``x``.

    The profile's drift law and nu statistics are used as they are; programming noise, read
    noise, levels, faults and variability are switched off so that the weight of every device
    scales by its own drift factor (the G- devices sit at g_min and carry no weight).
    """
    if not 0 < x <= 1:
        raise ParameterError(f"x = G_T / g_max must be in (0, 1] (got {x})")
    data = profile.model_dump(mode="json")
    data.update(
        programming={"noise": {"kind": "none"}},
        read_noise={"kind": "none"},
        faults={},
        variability={},
    )
    data["conductance"] = dict(data["conductance"], n_levels=None, g_min_us=0.0)
    data["mapping"] = dict(data["mapping"], kind="differential", scaling="per_layer", clip_percentile=None)
    quiet = profile_from_dict(data, source=f"{profile.name} (drift only)")
    w = np.full((n, n), float(x), dtype=np.float64)
    w[0, 0] = 1.0  # sets the layer scale: every other device is programmed at G_T = x g_max
    state = program_matrix(w, quiet, rng=seed)
    ratio = (state.effective_weights(float(t_s), 0) / state.effective_weights(0.0, 0)).ravel()[1:]
    return float(ratio.mean()), float(ratio.std(ddof=1) / math.sqrt(ratio.size))


def drift_factor_table(profile, xs=(1.0, 0.5, 0.25, 0.1), times=(("1 h", 3600.0), ("1 day", 86400.0), ("1 year", 3.15576e7)),
                       *, n: int = 256, seed: int = 0) -> str:
    """Markdown table: simulated mean factor (± standard error), closed form, no-spread value."""
    lines = [
        "| x = G/G_max | mu_nu | sigma_nu | time | simulated (± s.e.) | closed form | exp(-L mu) (no spread) |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in xs:
        t0, mu, sd, _ = _drift_params(profile, x)
        for label, t in times:
            sim, se = simulated_mean_drift_factor(profile, x, t, n=n, seed=seed)
            cf = closed_form_mean_drift_factor(profile, x, t)
            lines.append(
                f"| {x:g} | {mu:.4f} | {sd:.4f} | {label} | {sim:.4f} ± {se:.4f} | {cf:.4f} | "
                f"{math.exp(-math.log((t + t0) / t0) * mu):.4f} |"
            )
    return "\n".join(lines) + "\n"
