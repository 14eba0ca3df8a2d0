"""Read noise from repeated reads: 1/f against Gaussian, and the law of Q_s(x).

Per cell (a device at one read time, n >= 2 reads) the relative sample variance ``u = v / Y^2``
(v the reads' sample variance, Y their mean).  Two models of its mean, each with one parameter
per bin (three bins of the programmed x per target level):

- 1/f (Nandakumar et al. 2019, as cimsim draws it): ``E[u] = Q_s^2 ln((t + t0 + t_read)/(2 t_read))``;
- Gaussian per read: ``E[u] = sigma_rel^2``.

``E[1/Y^2] = (1 + 3 mu / n) / G^2`` for a relative read variance mu, so ``E[u] = mu (1 + 3 mu / n)``:
each bin's moment equation is solved by iteration.  The model with the larger gamma
log-likelihood of the sample variances (shape (n - 1)/2) is chosen (equal parameter counts);
with one read time they cannot be told apart and the Gaussian one is taken.  Then the law of
``Q_s(x)`` over the bins (:func:`.laws.fit_law`), or one ``sigma_rel``.  Reads that agree to
rounding (no read noise) leave read noise unfitted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .cells import Cells
from .laws import fit_law

__all__ = ["READ_BINS_PER_LEVEL", "fit_read_noise"]

READ_BINS_PER_LEVEL = 3


def _gamma_ll(u: np.ndarray, mu: np.ndarray, kappa: np.ndarray) -> float:
    """Log-likelihood of sample variances u (shape kappa = (n-1)/2, mean mu)."""
    lg = np.vectorize(math.lgamma)(kappa) if kappa.size else kappa
    return float(np.sum(kappa * np.log(kappa / mu) + (kappa - 1) * np.log(u) - kappa * u / mu - lg))


def fit_read_noise(c: Cells, g_p: np.ndarray, g_max: float, t0: float, t_read: float) -> tuple[dict, dict, dict] | None:
    """(read_noise section, laws, points) from the repeated reads, or None without any."""
    rep = (c.n >= 2) & np.isfinite(c.v) & np.isfinite(c.g) & (c.g > 0)
    # reads equal to rounding (no read noise, e.g. relaxation only) carry no variance to fit
    ok = rep & (c.v > (1e-9 * np.where(rep, c.g, 0.0)) ** 2)
    if ok.sum() <= rep.sum() // 2:
        return None
    u = np.where(ok, c.v / np.where(ok, c.g, 1.0) ** 2, 1.0)
    kappa = np.where(ok, (c.n - 1) / 2.0, 0.0)
    c2 = np.log((c.t_s + t0 + t_read) / (2 * t_read))[None, :] * np.ones_like(u)
    x_p = g_p / g_max
    # bins: each level split into quantile groups of the programmed x
    bins = np.zeros(c.n_dev, np.int64)
    nb = 0
    for k in range(c.levels_us.shape[0]):
        idx = np.flatnonzero(c.level == k)
        parts = np.array_split(idx[np.argsort(x_p[idx])], READ_BINS_PER_LEVEL)
        for part in parts:
            if part.size:
                bins[part] = nb
                nb += 1
    B = np.broadcast_to(bins[:, None], u.shape)
    kw = kappa[ok]
    # u = v / Gbar^2 is biased high: E[1 / Gbar^2] = (1 + 3 mu / n) / G^2 for a relative variance mu
    # of one read, so E[u] = mu (1 + 3 mu / n); each bin's moment equation is solved by iteration
    nr = np.where(ok, c.n, 1.0)[ok]
    Bk, ck, uk = B[ok], c2[ok], u[ok]
    ksum = np.bincount(Bk, kw, nb)
    den = np.maximum(ksum, 1e-300)
    bq = np.bincount(Bk, kw * uk / ck, nb) / den
    bs = np.bincount(Bk, kw * uk, nb) / den
    for _ in range(8):
        bq = np.bincount(Bk, kw * uk / ck, nb) / np.maximum(np.bincount(Bk, kw * (1 + 3 * bq[Bk] * ck / nr), nb), 1e-300)
        bs = np.bincount(Bk, kw * uk, nb) / np.maximum(np.bincount(Bk, kw * (1 + 3 * bs[Bk] / nr), nb), 1e-300)
    mu_f, mu_g = bq[Bk] * ck, bs[Bk]
    ll_f = _gamma_ll(uk, mu_f * (1 + 3 * mu_f / nr), kw)
    ll_g = _gamma_ll(uk, mu_g * (1 + 3 * mu_g / nr), kw)
    has = ksum > 0
    xb = np.bincount(bins, x_p, nb) / np.maximum(np.bincount(bins, minlength=nb), 1)
    choice = {"one_over_f": ll_f, "gaussian": ll_g}
    pts: dict[str, Any] = {"t_s": c.t_s, "rel_var_by_time": None}
    # one read time cannot tell a law growing with t from a constant one: Gaussian (the simpler)
    if np.count_nonzero(ok.any(axis=0)) >= 2 and ll_f > ll_g:
        q = np.sqrt(bq[has])
        se_q = q / (2 * np.sqrt(ksum[has]))  # var of the kappa-weighted mean of gammas: mu^2 / sum(kappa)
        law = fit_law(xb[has], q, se_q, kinds=("constant", "polynomial", "log_linear", "power", "table"))
        sec = {"kind": "one_over_f", "q_s": law.fn.model_dump(mode="json"), "t_read_s": t_read, "per_read_sigma_rel": 0.0}
        pts.update(x=xb[has], q=q, se=se_q)
        laws: dict[str, Any] = {"read_noise.q_s": law, "read_noise.choice": choice}
    else:
        s2 = float(np.sum(kw * bs[Bk]) / np.sum(kw))
        sig = math.sqrt(s2)
        se = sig / (2 * math.sqrt(float(np.sum(kw))))
        sec = {"kind": "gaussian", "sigma_rel": min(sig, 1.0)}
        pts.update(x=xb[has], s=np.sqrt(bs[has]), se=np.sqrt(bs[has]) / np.sqrt(2 * ksum[has]))
        laws = {"read_noise.sigma_rel": (sig, se), "read_noise.choice": choice}
    # relative variance per time, pooled over all devices, and the fitted law's, for the figure
    if sec["kind"] == "one_over_f":
        pred = laws["read_noise.q_s"].evaluate(x_p)[:, None] ** 2 * c2
    else:
        pred = np.full(u.shape, laws["read_noise.sigma_rel"][0] ** 2)
    wk = kappa * ok
    den = np.maximum(wk.sum(0), 1e-300)
    pts["rel_var_by_time"] = (wk * u).sum(0) / den
    pts["pred_by_time"] = (wk * pred).sum(0) / den
    return sec, laws, pts
