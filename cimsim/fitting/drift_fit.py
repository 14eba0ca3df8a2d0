"""The drift candidates fitted to the device x time grid of mean reads, and their choice.

Three models of the cell means ``Y_ij`` (device i, read time j), each a Gaussian likelihood
over the same cells (those with a mean read > 0), compared by BIC = -2 LL + p ln(N cells):

- ``power_law`` (PCM; Joshi et al. 2020): ``ln Y_ij = a_i - nu_i L_j + e_ij``,
  ``L_j = ln((t_j + t0)/t0)``, per device an intercept and an exponent (ordinary least squares),
  residual variance per target level; likelihood taken on G (the Jacobian ``-sum ln Y_ij``
  added), p = 2 n_dev + n_levels (+1 when t0 is fitted).  ``ln Y`` is first corrected by
  ``+ v_ij / (2 n_ij Y_ij^2)`` (v the sample variance of the n_ij reads): the mean of a log of
  a noisy read is biased low by half its relative variance, and the 1/f variance grows with t.
  t0 (when not given) maximises the profile likelihood on a grid of 0.1 s to 1e5 s.
- ``relaxation`` (ReRAM; Falcone et al. 2025): ``Y_ij = b_i + m_j + e_ij``, ``e_ij ~
  N(0, s_j^2)``, additive and G-independent; one realisation per device and time, as cimsim
  draws it; p = n_dev + 2 n_t - 1.  ``b_i`` is the programmed G_P (the mean of ``b_i - G_T`` is
  set to 0: programming noise has mean 0).
- ``none``: ``Y_ij = b_i + e_ij``, variance per level; p = n_dev + n_levels.

Every model gives each device's programmed conductance estimate ``G_P`` and that estimate's
variance, from which :mod:`.fit` takes the programming spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .cells import MIN_TIMES_DRIFT, Cells

__all__ = ["DriftFit", "fit_drift"]

_T0_GRID_S = np.logspace(-1, 5, 49)


@dataclass
class DriftFit:
    kind: str
    ll: float
    p: int
    bic: float
    g_p: np.ndarray  # per device, µS
    g_p_var: np.ndarray  # variance of that estimate, µS^2
    t0_s: float | None = None
    t0_fitted: bool = False
    nu: np.ndarray | None = None
    nu_se2: np.ndarray | None = None
    mask: np.ndarray | None = None  # devices in the power-law fit
    m_us: np.ndarray | None = None  # relaxation mean change per time
    s2_us2: np.ndarray | None = None  # relaxation residual variance per time
    n_cells: int = 0
    extra: dict = field(default_factory=dict)


def _power(c: Cells, ok: np.ndarray, y: np.ndarray, t0: float) -> DriftFit:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _power_fit(c, ok, y, t0)


def _power_fit(c: Cells, ok: np.ndarray, y: np.ndarray, t0: float) -> DriftFit:
    L = np.log((c.t_s + t0) / t0)[None, :]
    M = ok.astype(np.float64)
    n = M.sum(1)
    Lb = (M * L).sum(1) / n
    dL = np.where(ok, L - Lb[:, None], 0.0)
    sxx = (dL**2).sum(1)
    yb = np.where(ok, y, 0.0).sum(1) / n
    sxy = (dL * np.where(ok, y - yb[:, None], 0.0)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = sxy / sxx
    a = yb - slope * Lb
    r = np.where(ok, y - a[:, None] - slope[:, None] * L, 0.0)
    rss = (r**2).sum(1)
    n_lv = c.levels_us.shape[0]
    s2_ml = np.bincount(c.level, rss, n_lv) / np.maximum(np.bincount(c.level, n, n_lv), 1)
    s2_ml = np.maximum(s2_ml, 1e-300)
    s2d = s2_ml[c.level]
    ll = float(np.sum(np.where(ok, -0.5 * np.log(2 * np.pi * s2d[:, None]) - 0.5 * r**2 / s2d[:, None] - y, 0.0)))
    # y includes the bias correction; the Jacobian uses ln Y itself (same to first order)
    # each device's own residual variance (unbiased, n - 2 dof): the variance of its intercept
    # and slope estimates, so that resampling devices carries the noise of these too
    s2i = rss / np.maximum(n - 2, 1)
    var_a = s2i * (1.0 / n + Lb**2 / sxx)
    g_p = np.exp(a)
    return DriftFit("power_law", ll, 0, 0.0, g_p, g_p**2 * var_a, t0_s=t0, nu=-slope, nu_se2=s2i / sxx)


def _relaxation(c: Cells, ok: np.ndarray) -> DriftFit:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _relaxation_fit(c, ok)


def _relaxation_fit(c: Cells, ok: np.ndarray) -> DriftFit:
    Y = np.where(ok, c.g, 0.0)
    M = ok.astype(np.float64)
    n_t = c.t_s.shape[0]
    m = np.zeros(n_t)
    # unweighted alternation (b_i the mean over times of Y_ij - m_j): weighting by 1/s_j^2 lets
    # the likelihood run off to a zero variance at one time, where b_i fits that time exactly
    for _ in range(30):
        b = (M * (Y - m)).sum(1) / M.sum(1)
        m = (M * (Y - b[:, None])).sum(0) / M.sum(0)
    r = np.where(ok, Y - b[:, None] - m, 0.0)
    s2 = np.maximum((r**2).sum(0) / M.sum(0), 1e-300)
    shift = float(np.mean(b - c.target))
    b, m = b - shift, m + shift
    ll = float(np.sum(np.where(ok, -0.5 * np.log(2 * np.pi * s2) - 0.5 * r**2 / s2, 0.0)))
    # the fixed effects b_i took a degree of freedom from every device: with r_ij = e_ij - mean_k e_ik,
    # E[S_j] = s_j^2 (1 - 2/n_t) + A / n_t^2, A = sum_k s_k^2, so sum_j S_j = A (1 - 1/n_t)
    A = float(np.sum(s2)) / (1 - 1 / n_t) if n_t > 1 else float(np.sum(s2))
    s2u = np.maximum((s2 - A / n_t**2) / (1 - 2 / n_t), 1e-300) if n_t > 2 else s2
    # var(b_i - G_P) = sum_j s_j^2 / n_i^2, estimated without bias by each device's own residuals:
    # E[sum_j r_ij^2] = (1 - 1/n_i) sum_j s_j^2
    n_i = M.sum(1)
    var_b = (r**2).sum(1) / (n_i * np.maximum(n_i - 1, 1))
    return DriftFit("relaxation", ll, 0, 0.0, b, var_b, m_us=m, s2_us2=s2u)


def _none(c: Cells, ok: np.ndarray) -> DriftFit:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _none_fit(c, ok)


def _none_fit(c: Cells, ok: np.ndarray) -> DriftFit:
    Y = np.where(ok, c.g, 0.0)
    M = ok.astype(np.float64)
    n = M.sum(1)
    b = Y.sum(1) / n
    r = np.where(ok, Y - b[:, None], 0.0)
    n_lv = c.levels_us.shape[0]
    s2_ml = np.maximum(np.bincount(c.level, (r**2).sum(1), n_lv) / np.bincount(c.level, n, n_lv), 1e-300)
    s2d = s2_ml[c.level][:, None]
    ll = float(np.sum(np.where(ok, -0.5 * np.log(2 * np.pi * s2d) - 0.5 * r**2 / s2d, 0.0)))
    return DriftFit("none", ll, 0, 0.0, b, (r**2).sum(1) / (n * np.maximum(n - 1, 1)))


def fit_drift(c: Cells, t0_s: float | None, fit: bool) -> tuple[DriftFit, list[DriftFit]]:
    """The chosen drift model and every candidate (for the report)."""
    ok = np.isfinite(c.g) & (c.g > 0)
    # a device read at 0 (programmed to g_min = 0, or clipped there) has no drift to fit: it
    # keeps its mean read as G_P and stays out of every model's likelihood
    dev_ok = ok.sum(1) >= (MIN_TIMES_DRIFT if fit else 1)
    ok &= dev_ok[:, None]
    n_cells = int(ok.sum())
    n_lv = c.levels_us.shape[0]
    n_dev = c.n_dev
    none = _none(c, ok)
    none.p = n_dev + n_lv
    if not fit:
        none.bic = -2 * none.ll + none.p * math.log(max(n_cells, 2))
        none.n_cells = n_cells
        _outside(none, c, dev_ok)
        return none, [none]
    # the bias-corrected log of the mean read
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(c.n >= 2, c.v / (2 * c.n * c.g**2), 0.0)
        y = np.where(ok, np.log(np.where(ok, c.g, 1.0)) + np.nan_to_num(corr), 0.0)
    if t0_s is None:
        fits = [_power(c, ok, y, float(t0)) for t0 in _T0_GRID_S]
        k = int(np.argmax([f.ll for f in fits]))
        if 0 < k < len(fits) - 1:  # refine between the neighbours (golden section on ln t0)
            lo, hi = math.log(_T0_GRID_S[k - 1]), math.log(_T0_GRID_S[k + 1])
            g = (math.sqrt(5) - 1) / 2
            for _ in range(30):
                a, b = hi - g * (hi - lo), lo + g * (hi - lo)
                if _power(c, ok, y, math.exp(a)).ll > _power(c, ok, y, math.exp(b)).ll:
                    hi = b
                else:
                    lo = a
            pw = _power(c, ok, y, math.exp(0.5 * (lo + hi)))
        else:
            pw = fits[k]
        pw.t0_fitted = True
        pw.extra["t0_profile"] = (_T0_GRID_S, np.array([f.ll for f in fits]))
    else:
        pw = _power(c, ok, y, float(t0_s))
    pw.p = 2 * n_dev + n_lv + int(pw.t0_fitted)
    rx = _relaxation(c, ok)
    rx.p = n_dev + 2 * c.t_s.shape[0] - 1
    cands = [pw, rx, none]
    for f in cands:
        f.bic = -2 * f.ll + f.p * math.log(max(n_cells, 2))
        f.n_cells = n_cells
    for f in cands:
        _outside(f, c, dev_ok)
    return min(cands, key=lambda f: f.bic), cands


def _outside(f: DriftFit, c: Cells, dev_ok: np.ndarray) -> None:
    """Devices outside the fit: G_P = their mean read, no estimate variance, nu NaN."""
    f.mask = dev_ok
    if dev_ok.all():
        return
    out = ~dev_ok
    with np.errstate(invalid="ignore"):
        f.g_p[out] = np.nan_to_num(np.nanmean(np.where(np.isfinite(c.g[out]), c.g[out], np.nan), axis=1))
    f.g_p_var[out] = 0.0
    if f.nu is not None and f.nu_se2 is not None:
        f.nu[out] = np.nan
        f.nu_se2[out] = np.nan
