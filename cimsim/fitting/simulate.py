"""Simulated measurements: the table a lab would record, drawn from a profile's own laws.

For planning an experiment (how many devices and reads does a fit need?) and for testing the
fit (:func:`~cimsim.fitting.fit.fit_profile` must recover the laws that made the data).  The
devices are programmed and drifted with the very plans and laws the crossbar uses
(:mod:`cimsim.devices.programming`, :mod:`cimsim.devices.drift`, and the numpy twins of the
kernels in :mod:`cimsim.kernels.programming_ref`), in float64:

1. programming (levels, variability, faults, programming noise, clip, drift exponent nu), once
   per device;
2. at each read time t, the device's state: power-law drift ``G(t) = G_P ((t + t0)/t0)^-nu``, or
   relaxation ``G(t) = max(G_P + mu(t) + sigma(t) z_t, 0)`` (one realisation per device and time,
   shared by the reads at that time, as cimsim draws one per evaluation time);
3. each read: the 1/f term ``|G| Q_s(x_P) c(t) z`` (``c(t) = sqrt(ln((t + t0 + t_read)/(2 t_read)))``,
   then clip at 0) and the per-read white noise ``sqrt((sigma_rel G)^2 + sigma(x_P)^2) z``, each
   with a fresh z per read: a repeated read is an independent evaluation of the read-noise laws
   at time t (cimsim draws the 1/f term once per evaluation time; a repeated read is a repeated
   evaluation).  A meter reads a conductance >= 0, so every read is clipped at 0.

Every draw comes from one ``numpy.random.Generator`` seeded by ``seed``.
"""

from __future__ import annotations

import numpy as np

from ..devices.drift import drift_laws, drift_plan
from ..devices.programming import programming_laws, programming_plan
from ..errors import ParameterError
from ..kernels import programming_ref as K
from ..profiles import DeviceProfile, load_profile
from ..rng.generators import SeedLike, as_generator
from .table import MeasurementTable, check_table

__all__ = ["simulate_measurements"]


def _positive_int(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 1:
        raise ParameterError(f"{what} must be an int >= 1 (got {v!r}), e.g. {what}=100")
    return int(v)


def simulate_measurements(
    profile: DeviceProfile | str,
    targets_us,
    times_s,
    *,
    devices_per_target: int,
    reads: int = 1,
    seed: SeedLike,
) -> MeasurementTable:
    """Simulate a measurement table: ``devices_per_target`` devices programmed to each target
    (µS), each read ``reads`` times at every time in ``times_s`` (seconds since programming, > 0).

    Returns a :class:`~cimsim.fitting.table.MeasurementTable` (``.to_pandas()`` for a DataFrame,
    ``.save(path)`` for CSV/NPZ/Parquet) with rows ordered by device, time, read.
    """
    p = load_profile(profile) if isinstance(profile, str) else profile
    if not isinstance(p, DeviceProfile):
        raise ParameterError(f"profile must be a DeviceProfile or a profile name (got {type(profile).__name__})")
    n_per = _positive_int(devices_per_target, "devices_per_target")
    n_reads = _positive_int(reads, "reads")
    targets = np.asarray(targets_us, dtype=np.float64).ravel()
    times = np.asarray(times_s, dtype=np.float64).ravel()
    if targets.size == 0 or not np.all(np.isfinite(targets)) or np.any(targets < 0):
        raise ParameterError(f"targets_us must be finite conductances >= 0 µS (got {targets.tolist()[:8]})")
    if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times <= 0):
        raise ParameterError(f"times_s must be finite times > 0 s since programming (got {times.tolist()[:8]}), e.g. [1, 60, 3600]")
    rng = as_generator(seed)
    plan = programming_plan(p)
    laws = programming_laws(p, plan)
    target = np.repeat(targets, n_per)
    n = target.shape[0]
    e = np.zeros(0)
    # the draws, in the crossbar's order, each only when the plan needs it
    u_round = rng.random(n) if plan.stochastic else e
    z_var = rng.standard_normal(n) if plan.has_var else e
    u_fault = rng.random(n) if plan.has_fault else e
    z_prog = rng.standard_normal(n) if plan.noise else e
    z_nu = rng.standard_normal(n) if plan.has_drift else e
    t_dev = np.empty(n)
    fault = np.zeros(n, np.int8)
    K.program_targets(target, u_round, z_var, u_fault, plan, t_dev, fault)
    x = laws.x(t_dev, np.float64)
    g_p, nu = np.empty(n), np.zeros(n)
    K.program_devices(t_dev, fault, z_prog, z_nu, *laws.all(x), plan, g_p,
                      nu if plan.has_drift else e)

    g = np.empty((n, times.size, n_reads))
    stuck = fault if plan.has_fault else None
    for j, t in enumerate(times.tolist()):
        dp = drift_plan(p, t, noiseless=False, has_nu=plan.has_drift)
        dl = drift_laws(p, dp, np.float64)
        g_t = g_p * dl.drift_factor(nu)[0] if dp.has_nu else g_p.copy()
        if dp.has_relax:
            g_t = dp.relaxed(g_t, rng.standard_normal(n), stuck, np.float64)
        # the 1/f amplitude law reads the programmed G, or (log_one_over_f) the relaxed G(t)
        q = dl.q_s(g_t if dp.read_on_g_t else g_p)[0] if dp.has_read else None
        sd = np.sqrt(dp.var_rel2 * g_t**2 + (dl.read_sigma2(g_p)[0] if dp.has_sig else 0.0)) if dp.has_var else None
        for r in range(n_reads):
            g_r = g_t
            if q is not None:
                g_r = np.maximum(g_t + np.abs(g_t) * q * dp.c_read * rng.standard_normal(n), 0.0)
            if dp.clamp:  # drift.clamp: the device stays in [g_min, g_max] (as the drift kernel)
                g_r = np.minimum(np.maximum(g_r, dp.g_min_us), dp.g_max_us)
            if sd is not None:
                g_r = g_r + sd * rng.standard_normal(n)
            g[:, j, r] = np.maximum(g_r, 0.0)
    shape = g.shape
    dev = np.broadcast_to(np.arange(n)[:, None, None], shape).ravel()
    cols = {
        "device": dev.astype(np.int64),
        "g_target_us": np.broadcast_to(target[:, None, None], shape).ravel().copy(),
        "t_s": np.broadcast_to(times[None, :, None], shape).ravel().copy(),
        "g_us": g.ravel(),
        "read": np.broadcast_to(np.arange(n_reads)[None, None, :], shape).ravel().astype(np.int64),
    }

    return check_table(cols, source=f"simulated from profile {p.name} ({n} devices, {times.size} times, {n_reads} reads)")
