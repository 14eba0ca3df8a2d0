"""``fit_profile``: a measurement table -> a DeviceProfile whose laws are fitted to it.

The steps (docs/fitting.md gives the protocol and the equations):

1. cells: the reads of each device at each read time -> their mean and sample variance
   (:mod:`.cells`); the checks of devices per level and read times per device.
2. conductance range: ``g_min_us`` / ``g_max_us`` the lowest / highest target (or given),
   ``n_levels`` the number of targets when they form the whole evenly spaced grid (``"auto"``).
3. drift: power law, relaxation or none, chosen by BIC over the cell means (:mod:`.drift_fit`);
   for the power law, each device's exponent nu from ln G against ln((t + t0)/t0), then
   ``mu_nu(x)`` from the level means and ``sigma_nu(x)`` from the level spreads of nu minus each
   estimate's own variance; for relaxation, ``mu(t)`` and ``sigma(t)`` linear in ln t.
4. programming noise: each device's G_P (its conductance at t = 0 from its drift fit; for no
   drift the mean of its reads) around its target: per level the variance of ``G_P - G_T`` minus
   the mean variance of the estimate (read noise and the drift fit's error), as the schema's
   constant, relative or polynomial (degree 1-4) law, chosen by BIC.
5. read noise (repeated reads only): per cell the sample variance of the reads relative to
   their mean squared; 1/f ``Q_s^2 ln((t + t0 + t_read)/(2 t_read))`` against Gaussian ``sigma_rel^2``,
   chosen by the likelihood of the sample variances (gamma, (n-1)/2 shape), in bins of the
   programmed x; then the law of ``Q_s(x)`` (:func:`.laws.fit_law`).

Every law of x is chosen among the schema's kinds by BIC (:mod:`.laws`) and held constant
outside the x range the data cover.  Peripherals come from ``base``; ``citation`` names the
data (file, sha256, devices, reads, date); ``assumptions`` list every choice.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..devices.drift import DEFAULT_T0_S
from ..errors import DataError, ParameterError
from ..profiles import DeviceProfile, load_profile, profile_from_dict
from ..profiles.schema import ReadNoiseOneOverF
from ..rng.seeds import check_seed
from .cells import Cells, check_cells, make_cells
from .drift_fit import DriftFit, fit_drift
from .laws import LawFit, fit_law, wls
from .read_fit import READ_BINS_PER_LEVEL, fit_read_noise
from .table import MeasurementTable, as_table

__all__ = ["FitResult", "fit_profile"]

#: 1/f integration start when the base profile has no 1/f noise (the PCM value, Nandakumar et al. 2019)
DEFAULT_T_READ_S = 250e-9


@dataclass
class FitResult:
    """What :func:`fit_profile` returns: ``profile`` (a validated DeviceProfile), ``report``
    (markdown), ``laws`` (each fitted law: name -> LawFit or a dict of numbers), and the per-level
    estimates the laws were fitted to (``points``, for plots)."""

    profile: DeviceProfile
    report: str
    laws: dict[str, Any]
    points: dict[str, Any]
    table: MeasurementTable
    cells: Cells = field(repr=False)
    drift: DriftFit = field(repr=False)

    def to_yaml(self) -> str:
        """The fitted profile as YAML (loads back with ``profile_from_yaml`` / ``load_profile``)."""
        head = "".join(f"# {line}\n" for line in ("fitted by cimsim.fit_profile from " + self.table.source,
                                                   "see the fit report for the laws' intervals"))
        return head + self.profile.to_yaml()

    def plot(self, path: str | Path) -> Path:
        """Write the figure (one panel per law: data, fitted curve and its band) to ``path``."""
        from .report import plot_fit

        return plot_fit(self, Path(path))


_BOOTSTRAP = 200


def _level_stats(values: np.ndarray, noise_var: np.ndarray, level: np.ndarray, n_lv: int, rng: np.random.Generator,
                 *, around_zero_upper: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per level: the mean of ``values`` and their spread with the estimates' own noise removed,
    ``sqrt(var(values) - mean(noise_var))``, each with a bootstrap standard error (devices of the
    level resampled ``_BOOTSTRAP`` times; ``noise_var`` is each device's unbiased estimate of its
    own estimation variance, so the resampling carries its noise too).

    ``around_zero_upper[k]``: the level is clipped from below (programmed within 3 sigma of
    g_min), so only the upper half of ``values`` (a spread around 0) is intact: the spread is
    ``sqrt(2 mean(v^2 [v > 0]) - mean(noise_var))`` over all the level's devices.
    """
    out = {k: np.zeros(n_lv) for k in ("mean", "mean_se", "s", "s_se")}
    for k in range(n_lv):
        v, e = values[level == k], noise_var[level == k]
        n = v.shape[0]
        idx = np.concatenate([np.arange(n)[None, :], rng.integers(0, n, size=(_BOOTSTRAP, n))])
        vb, eb = v[idx], e[idx]
        m = vb.mean(1)
        if around_zero_upper is not None and around_zero_upper[k]:
            s2 = 2 * np.where(vb > 0, vb * vb, 0.0).mean(1) - eb.mean(1)
        else:
            s2 = vb.var(1, ddof=1) - eb.mean(1)
        sd = np.sqrt(np.maximum(s2, 0.0))
        out["mean"][k], out["mean_se"][k] = m[0], m[1:].std(ddof=1)
        se = float(sd[1:].std(ddof=1))
        if not sd[0] > 2 * se:  # near 0 the clip at 0 hides the spread's error: take sqrt of s^2's
            se = max(se, math.sqrt(float(s2[1:].std(ddof=1))))
        out["s"][k], out["s_se"][k] = sd[0], max(se, 1e-12)
    return out


def _near_g_min(resid: np.ndarray, est_var: np.ndarray, c: Cells, g_min: float) -> np.ndarray:
    """Levels programmed within 3 sigma of g_min (sigma from the upper half of the spread):
    devices are clipped at g_min after programming, so there the lower half is not Gaussian."""
    near = np.zeros(c.levels_us.shape[0], bool)
    for k in range(near.shape[0]):
        r, e = resid[c.level == k], est_var[c.level == k]
        s_up = math.sqrt(max(2 * float(np.mean(np.where(r > 0, r * r, 0.0))) - float(np.mean(e)), 0.0))
        near[k] = c.levels_us[k] - g_min < 3 * s_up
    return near


def _n_levels(levels: np.ndarray, g_min: float, g_max: float, n_levels: int | None | str) -> int | None:
    if n_levels != "auto":
        if n_levels is not None and (isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 2):
            raise ParameterError(f"n_levels must be 'auto', None (continuous) or an int >= 2 (got {n_levels!r})")
        return n_levels if n_levels is None else int(n_levels)
    k = levels.shape[0]
    if k < 2 or abs(levels[0] - g_min) > 1e-9 * g_max or abs(levels[-1] - g_max) > 1e-9 * g_max:
        return None
    step = (g_max - g_min) / (k - 1)
    grid = g_min + step * np.arange(k)
    return k if np.allclose(levels, grid, rtol=0, atol=1e-6 * g_max) else None


def _name(name: str | None, source: str) -> str:
    if name is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            raise ParameterError(f"name must be letters, digits, '_', '.', '-' (got {name!r}), e.g. name='my_device'")
        return name
    stem = Path(source).stem if not source.startswith("<") and not source.startswith("simulated") else "fitted"
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", stem) or "fitted"


def _prog_noise(x: np.ndarray, s: np.ndarray, se: np.ndarray, g_max: float) -> tuple[dict, LawFit]:
    """The programming-noise section: constant, relative or polynomial sigma(x) (µS), by BIC."""
    from ..profiles.functions import ConstantFn

    def basis(xx: np.ndarray) -> np.ndarray:
        return (g_max * xx)[:, None]

    rel = ("relative", basis, lambda b: ConstantFn(value=float(b[0])))
    law = fit_law(x, s, se, kinds=("constant", "polynomial"), max_degree=4, extra=[rel])
    if law.kind == "constant":
        return {"kind": "constant", "sigma_us": float(law.params[0][1])}, law
    if law.kind == "relative":
        sig_rel = float(law.params[0][1])
        law.params = [("sigma_rel", sig_rel, law.params[0][2])]
        law.fn = _RelFn(sig_rel, g_max)
        return {"kind": "relative", "sigma_rel": min(max(sig_rel, 0.0), 1.0)}, law
    return {"kind": "function", "sigma": law.fn.model_dump(mode="json"), "g_ref_us": g_max}, law


class _RelFn:
    """sigma(x) = sigma_rel g_max x, evaluated like a law of x (for the report and plots)."""

    def __init__(self, sig_rel: float, g_max: float):
        self.s = sig_rel * g_max

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        return self.s * np.asarray(x, dtype=np.float64)


def fit_profile(
    data: Any,
    *,
    base: str | DeviceProfile = "pcm",
    name: str | None = None,
    t0_s: float | None = None,
    seed: int = 0,
    g_range_us: Sequence[float] | None = None,
    n_levels: int | None | str = "auto",
) -> FitResult:
    """Fit a device profile to a measurement table (a path, a DataFrame, a dict of columns or a
    :class:`~cimsim.fitting.table.MeasurementTable`).

    ``base``: the profile (name, path or object) the peripherals (DAC, ADC, tile, mapping,
    training) and the I-V come from.  ``t0_s``: the drift reference time (None: fitted).
    ``seed``: seeds the bootstrap of the per-level means and spreads (their standard errors).
    ``g_range_us``: (g_min, g_max) held fixed instead of the lowest / highest target.
    ``n_levels``: ``"auto"`` (the number of targets when they are the whole evenly spaced grid),
    None (continuous) or an int.
    """
    seed = check_seed(seed)
    if t0_s is not None and not (isinstance(t0_s, (int, float)) and math.isfinite(t0_s) and t0_s > 0):
        raise ParameterError(f"t0_s must be None (fitted) or a time > 0 s (got {t0_s!r}), e.g. t0_s=20")
    tab = as_table(data)
    pname = _name(name, tab.source)
    rng = np.random.default_rng(seed)  # the bootstrap of the per-level spreads
    base_p = load_profile(base) if not isinstance(base, DeviceProfile) else base
    c = make_cells(tab)
    drift_wanted = check_cells(c, tab.source)
    if g_range_us is None:
        g_min, g_max = float(c.levels_us[0]), float(c.levels_us[-1])
    else:
        g_min, g_max = (float(v) for v in g_range_us)
    if not (0 <= g_min < g_max) or g_max <= 0:
        raise DataError(
            f"{tab.source}: conductance range g_min={g_min:g}, g_max={g_max:g} µS (column 'g_target_us'): the targets need "
            "at least two levels, the highest > 0 (or give g_range_us=(g_min, g_max))"
        )
    x_lv = c.levels_us / g_max
    n_lv = c.levels_us.shape[0]
    lv = _n_levels(c.levels_us, g_min, g_max, n_levels)
    laws: dict[str, Any] = {}
    pts: dict[str, Any] = {"x": x_lv}
    assumptions: list[str] = []
    how_range = "given (g_range_us)" if g_range_us is not None else "the lowest and highest target in the data"
    assumptions.append(
        f"conductance: g_min_us = {g_min:g}, g_max_us = {g_max:g} ({how_range}); n_levels = {lv} "
        f"({'the targets form the evenly spaced grid' if lv and n_levels == 'auto' else 'as given' if n_levels != 'auto' else 'continuous: the targets are no full grid'})"
    )

    # drift
    dfit, dcands = fit_drift(c, t0_s, drift_wanted)
    laws["drift.choice"] = {f.kind: (f.p, f.bic) for f in dcands}
    drift_sec: dict[str, Any]
    t0_read = DEFAULT_T0_S
    if dfit.kind == "power_law":
        assert dfit.nu is not None and dfit.nu_se2 is not None and dfit.t0_s is not None
        t0_read = dfit.t0_s
        fitted = dfit.mask if dfit.mask is not None else np.ones(c.n_dev, bool)
        st = _level_stats(dfit.nu[fitted], dfit.nu_se2[fitted], c.level[fitted], n_lv, rng)
        m, se_m, s, se_s = st["mean"], st["mean_se"], st["s"], st["s_se"]
        mean_law = fit_law(x_lv, m, se_m, kinds=("constant", "polynomial", "log_linear", "table"), max_degree=2)
        std_law = fit_law(x_lv, s, se_s, kinds=("constant", "polynomial", "log_linear", "table"), max_degree=2)
        laws["drift.nu.mean"], laws["drift.nu.std"] = mean_law, std_law
        pts.update(nu_mean=m, nu_mean_se=se_m, nu_std=s, nu_std_se=se_s)
        drift_sec = {"kind": "power_law", "t0_s": float(dfit.t0_s), "absolute": True,
                     "nu": {"mean": mean_law.fn.model_dump(mode="json"), "std": std_law.fn.model_dump(mode="json")}}
        assumptions.append(
            f"drift: power_law chosen by BIC over the cell means (vs relaxation, none); t0_s = {dfit.t0_s:.4g} "
            f"({'fitted by profile likelihood' if dfit.t0_fitted else 'given'}); nu per device by least squares of "
            f"ln G on ln((t + t0)/t0); mu_nu(x) {mean_law.kind}, sigma_nu(x) {std_law.kind} (BIC), sigma_nu with each "
            "estimate's own variance removed; nu's fold |N(mu, sigma)| is not modelled in the fit (negligible for mu > 2 sigma)"
        )
    elif dfit.kind == "relaxation":
        assert dfit.m_us is not None and dfit.s2_us2 is not None
        t_min = float(c.t_s[0])
        lt = np.log(np.maximum(c.t_s, t_min))
        n_j = np.sum(np.isfinite(c.g) & (c.g > 0), axis=0)
        X = np.stack([lt, np.ones_like(lt)], axis=1)
        se_m = np.sqrt(dfit.s2_us2 / n_j)
        bm, cm, chi_m = wls(X, dfit.m_us, se_m)
        with np.errstate(invalid="ignore", divide="ignore"):
            rv = np.nanmean(np.where(c.n >= 2, c.v / c.n, np.nan), axis=0) if c.has_repeats else np.zeros(c.t_s.shape[0])
        rv = np.nan_to_num(rv)
        s2 = np.maximum(dfit.s2_us2 - rv, 0.0)
        sj = np.sqrt(s2)
        se_s2 = dfit.s2_us2 * np.sqrt(2.0 / np.maximum(n_j - 1, 1))
        se_sj = np.where(sj > 0, np.minimum(se_s2 / (2 * np.maximum(sj, 1e-300)), np.sqrt(se_s2)), np.sqrt(se_s2))
        bs, cs, chi_s = wls(X, sj, se_sj)
        nt = c.t_s.shape[0]
        sc_m, sc_s = (max(1.0, math.sqrt(ch / (nt - 2))) if nt > 2 else 1.0 for ch in (chi_m, chi_s))
        laws["drift.relaxation"] = {
            "mean_slope_us": (float(bm[0]), math.sqrt(cm[0, 0]) * sc_m), "mean_at_1s_us": (float(bm[1]), math.sqrt(cm[1, 1]) * sc_m),
            "sigma_slope_us": (float(bs[0]), math.sqrt(cs[0, 0]) * sc_s), "sigma_at_1s_us": (float(bs[1]), math.sqrt(cs[1, 1]) * sc_s),
            "chi2": (chi_m, chi_s), "dof": nt - 2,
        }
        pts.update(relax_t=c.t_s, relax_m=dfit.m_us, relax_m_se=se_m, relax_s=sj, relax_s_se=se_sj)
        drift_sec = {"kind": "relaxation", "mean_slope_us": float(bm[0]), "mean_at_1s_us": float(bm[1]),
                     "sigma_slope_us": float(bs[0]), "sigma_at_1s_us": max(float(bs[1]), 0.0), "t_min_s": t_min}
        assumptions.append(
            "drift: relaxation chosen by BIC over the cell means (vs power_law, none): mean change and spread linear in "
            f"ln t from t_min_s = {t_min:g} s (the first read), one realisation per device and read time as cimsim "
            "draws it (the fit takes the covariance of a device's reads across times as its programming spread)"
            + ("; sigma_at_1s_us clamped at 0" if bs[1] < 0 else "")
        )
    else:
        drift_sec = {"kind": "none"}
        assumptions.append("drift: none (" + ("chosen by BIC over the cell means vs power_law, relaxation)"
                                              if drift_wanted else "one read time in the data: drift not fitted)"))

    # programming noise
    resid = dfit.g_p - c.target
    near = _near_g_min(resid, dfit.g_p_var, c, g_min)
    st = _level_stats(resid, dfit.g_p_var, c.level, n_lv, rng, around_zero_upper=near)
    s, se = st["s"], st["s_se"]
    prog_sec, prog_law = _prog_noise(x_lv, s, se, g_max)
    laws["programming.noise"] = prog_law
    pts.update(sigma=s, sigma_se=se)
    assumptions.append(
        f"programming.noise: {prog_law.kind} chosen by BIC among "
        f"{', '.join(k for k, *_ in prog_law.candidates)}; sigma per level from each device's G_P "
        f"({'its t = 0 intercept of the drift fit' if dfit.kind == 'power_law' else 'its mean over read times'}) around its "
        "target, minus the estimate's own variance (read noise, drift fit)"
        + (f"; {int(near.sum())} level(s) within 3 sigma of g_min (clipped there) from the upper half of their spread"
           if near.any() else "")
    )

    # read noise
    t_read = base_p.read_noise.t_read_s if isinstance(base_p.read_noise, ReadNoiseOneOverF) else DEFAULT_T_READ_S
    rn = fit_read_noise(c, dfit.g_p, g_max, t0_read, t_read) if c.has_repeats else None
    if rn is None:
        read_sec: dict[str, Any] = {"kind": "none"}
        assumptions.append("read_noise: none: the data have no repeated reads (read noise is then inside the drift "
                           "residuals and the programming spread)")
    else:
        read_sec, rlaws, rpts = rn
        laws.update(rlaws)
        pts["read"] = rpts
        ch = rlaws["read_noise.choice"]
        extra = (f"Q_s(x) {rlaws['read_noise.q_s'].kind} (BIC), t_read_s = {t_read:g} held fixed "
                 f"({'from base' if isinstance(base_p.read_noise, ReadNoiseOneOverF) else 'the PCM value'}), t0 = {t0_read:g} s, "
                 "per_read_sigma_rel 0" if read_sec["kind"] == "one_over_f" else "sigma_rel the same for every x")
        assumptions.append(
            f"read_noise: {read_sec['kind']} chosen by the likelihood of the repeated reads' variances "
            f"(log-likelihood 1/f {ch['one_over_f']:.1f}, gaussian {ch['gaussian']:.1f}); {extra}; "
            f"in {READ_BINS_PER_LEVEL} bins of the programmed x per level; a repeated read is taken as an independent "
            "evaluation of the read-noise law at its time"
        )
    lo, hi = float(x_lv.min()), float(x_lv.max())
    assumptions.append(f"every law of x is held at its end value outside the covered x range [{lo:.4g}, {hi:.4g}]")
    assumptions.append("faults and variability set to 0 (stuck or outlying devices are inside the programming spread); "
                       f"iv, dac, adc, tile, mapping and training from base profile {base_p.name!r}")

    n_reads = int(len(tab))
    today = _dt.date.today().isoformat()
    d = base_p.model_dump(mode="json")
    d.update(
        name=pname,
        device=f"fitted to measurements ({tab.source})",
        description=(f"Device laws fitted by cimsim.fit_profile to {c.n_dev} devices at {n_lv} target levels, "
                     f"{c.t_s.shape[0]} read times, {n_reads} reads; peripherals of {base_p.name}."),
        citation={"reference": f"measurement table {tab.source}, sha256 {tab.sha256}, {c.n_dev} devices, {n_reads} reads, "
                               f"fitted {today} by cimsim.fit_profile (seed {seed})",
                  "doi": None, "url": None, "figure": None},
        assumptions=assumptions,
        conductance={"g_min_us": g_min, "g_max_us": g_max, "n_levels": lv},
        programming={"noise": prog_sec, "stochastic_rounding": False, "clip_upper": False},
        drift=drift_sec,
        read_noise=read_sec,
        faults={"stuck_at_g_min_rel": 0.0, "stuck_at_g_max_rel": 0.0},
        variability={"g_max_spread_rel": 0.0},
    )
    profile = profile_from_dict(d, source=f"<fit of {tab.source}>")
    res = FitResult(profile=profile, report="", laws=laws, points=pts, table=tab, cells=c, drift=dfit)
    from .report import markdown_report

    res.report = markdown_report(res)
    return res
