"""The fit report (markdown) and figure of a :class:`~cimsim.fitting.fit.FitResult`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from .laws import LawFit

if TYPE_CHECKING:
    from .fit import FitResult

__all__ = ["markdown_report", "plot_fit"]


def _law_section(title: str, law: LawFit, unit: str) -> list[str]:
    dof = law.n - law.p
    out = [f"### {title}", "", f"Chosen: **{law.kind}** ({unit}); chi^2 = {law.chi2:.3g} on {dof} degrees of freedom "
           f"(n = {law.n} points, p = {law.p}); x covered: [{law.x_range[0]:.4g}, {law.x_range[1]:.4g}].", "",
           "| parameter | value | standard error |", "|---|---|---|"]
    out += law.table_rows()
    out += ["", "| candidate | p | chi^2 | BIC |", "|---|---|---|---|"]
    for kind, p, chi2, bic in sorted(law.candidates, key=lambda r: r[3]):
        mark = " (chosen)" if kind == law.kind else ""
        out.append(f"| {kind}{mark} | {p} | {chi2:.4g} | {bic:.4g} |")
    return out + [""]


def markdown_report(res: FitResult) -> str:
    p, c, tab = res.profile, res.cells, res.table
    lines = [f"# Fit report: {p.name}", "",
             f"Data: {tab.source} (sha256 `{tab.sha256[:16]}...`), {len(tab)} reads of {c.n_dev} devices at "
             f"{c.levels_us.shape[0]} target levels ({c.levels_us.min():g} to {c.levels_us.max():g} µS), "
             f"{c.t_s.shape[0]} read times ({c.t_s.min():g} s to {c.t_s.max():g} s), "
             f"{'up to ' + str(int(c.n.max())) + ' reads per device and time' if c.has_repeats else 'one read per device and time'}.",
             "",
             f"Conductance: g_min_us = {p.conductance.g_min_us:g}, g_max_us = {p.conductance.g_max_us:g}, "
             f"n_levels = {p.conductance.n_levels}.", "", "## Programming noise", ""]
    lines += _law_section("sigma_prog(x)", res.laws["programming.noise"], "µS")
    lines += ["## Drift", "", "| model | p | BIC |", "|---|---|---|"]
    for kind, (pp, bic) in sorted(res.laws["drift.choice"].items(), key=lambda r: r[1][1]):
        lines.append(f"| {kind}{' (chosen)' if kind == p.drift.kind else ''} | {pp} | {bic:.6g} |")
    lines.append("")
    if p.drift.kind == "power_law":
        lines.append(f"t0_s = {p.drift.t0_s:.4g} s ({'fitted' if res.drift.t0_fitted else 'given'}).")
        lines.append("")
        lines += _law_section("mu_nu(x)", res.laws["drift.nu.mean"], "dimensionless")
        lines += _law_section("sigma_nu(x)", res.laws["drift.nu.std"], "dimensionless")
    elif p.drift.kind == "relaxation":
        rl = res.laws["drift.relaxation"]
        lines += ["| parameter | value | standard error |", "|---|---|---|"]
        for k in ("mean_slope_us", "mean_at_1s_us", "sigma_slope_us", "sigma_at_1s_us"):
            v, s = rl[k]
            lines.append(f"| {k} | {v:.6g} | {s:.3g} |")
        lines += ["", f"chi^2 of the mean and spread laws: {rl['chi2'][0]:.3g}, {rl['chi2'][1]:.3g} on {rl['dof']} "
                  "degrees of freedom.", ""]
    lines += ["## Read noise", ""]
    if p.read_noise.kind == "none":
        lines += ["No repeated reads: not fitted (kind none).", ""]
    else:
        ch = res.laws["read_noise.choice"]
        lines += [f"Chosen: **{p.read_noise.kind}** (log-likelihood of the reads' variances: 1/f {ch['one_over_f']:.2f}, "
                  f"gaussian {ch['gaussian']:.2f}).", ""]
        if p.read_noise.kind == "one_over_f":
            lines += _law_section("Q_s(x)", res.laws["read_noise.q_s"], "dimensionless")
        else:
            v, s = res.laws["read_noise.sigma_rel"]
            lines += [f"sigma_rel = {v:.5g} ± {s:.2g}", ""]
    lines += ["## Assumptions", ""] + [f"- {a}" for a in p.assumptions] + [""]
    return "\n".join(lines)


def _errorbar(ax: Any, x: np.ndarray, y: np.ndarray, se: np.ndarray, label: str) -> None:
    ax.errorbar(x, y, yerr=1.96 * se, fmt="o", ms=3, capsize=2, label=label)


def _curve(ax: Any, law: LawFit, lo: float, hi: float, label: str, scale: float = 1.0) -> None:
    xs = np.linspace(lo, hi, 200)
    y = law.evaluate(xs) * scale
    b = law.band(xs) * 1.96 * scale
    line, = ax.plot(xs, y, label=label)
    ax.fill_between(xs, y - b, y + b, alpha=0.2, color=line.get_color())


def plot_fit(res: FitResult, path: Path) -> Path:
    """Write a 2 x 2 figure to ``path`` and return it: programming sigma vs x, the drift law,
    drift traces of a few devices, relative read-noise variance vs t (data with 95 % bars, the
    fitted curve and its 95 % band)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DataError("plotting a fit needs matplotlib: pip install 'cimsim[plot]'") from exc
    p, c, pts = res.profile, res.cells, res.points
    x = pts["x"]
    lo, hi = float(x.min()), float(x.max())
    fig, axs = plt.subplots(2, 2, figsize=(10, 8))
    ax = axs[0, 0]
    _errorbar(ax, x, pts["sigma"], pts["sigma_se"], "per level")
    _curve(ax, res.laws["programming.noise"], lo, hi, f"fit ({res.laws['programming.noise'].kind})")
    ax.set(xlabel="x = G_T / g_max", ylabel="sigma_prog (µS)", title="programming noise")
    ax.legend()
    ax = axs[0, 1]
    if p.drift.kind == "power_law":
        _errorbar(ax, x, pts["nu_mean"], pts["nu_mean_se"], "mean nu per level")
        _curve(ax, res.laws["drift.nu.mean"], lo, hi, "mu_nu fit")
        _errorbar(ax, x, pts["nu_std"], pts["nu_std_se"], "spread of nu per level")
        _curve(ax, res.laws["drift.nu.std"], lo, hi, "sigma_nu fit")
        ax.set(xlabel="x = G_T / g_max", ylabel="nu", title=f"drift exponent (t0 = {p.drift.t0_s:.3g} s)")
        ax.legend(fontsize=8)
    elif p.drift.kind == "relaxation":
        t = pts["relax_t"]
        _errorbar(ax, t, pts["relax_m"], pts["relax_m_se"], "mean change")
        _errorbar(ax, t, pts["relax_s"], pts["relax_s_se"], "spread")
        te = np.maximum(t, p.drift.t_min_s)
        ax.plot(t, p.drift.mean_slope_us * np.log(te) + p.drift.mean_at_1s_us, label="mu(t) fit")
        ax.plot(t, np.maximum(p.drift.sigma_slope_us * np.log(te) + p.drift.sigma_at_1s_us, 0), label="sigma(t) fit")
        ax.set(xscale="log", xlabel="t (s)", ylabel="µS", title="relaxation")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no drift fitted", ha="center", va="center")
        ax.set(title="drift")
    ax = axs[1, 0]
    rng_idx = np.linspace(0, c.n_dev - 1, min(6, c.n_dev)).astype(int)
    for i in rng_idx:
        okc = np.isfinite(c.g[i]) & (c.g[i] > 0)
        line, = ax.plot(c.t_s[okc], c.g[i, okc], "o", ms=3)
        if p.drift.kind == "power_law" and res.drift.nu is not None:
            ts = np.logspace(np.log10(c.t_s.min()), np.log10(c.t_s.max()), 100)
            ax.plot(ts, res.drift.g_p[i] * ((ts + p.drift.t0_s) / p.drift.t0_s) ** (-res.drift.nu[i]),
                    color=line.get_color(), lw=1)
    ax.set(xscale="log", yscale="log", xlabel="t (s)", ylabel="G (µS)", title="drift traces (mean of the reads)")
    ax = axs[1, 1]
    rd = pts.get("read")
    if rd is None:
        ax.text(0.5, 0.5, "no repeated reads", ha="center", va="center")
    else:
        ax.plot(rd["t_s"], rd["rel_var_by_time"], "o", label="var / G^2 of the reads, all devices")
        ax.plot(rd["t_s"], rd["pred_by_time"], "-", label=f"{p.read_noise.kind} fit, same devices")
        ax.set(xscale="log", yscale="log", xlabel="t (s)", ylabel="relative read variance")
        ax.legend(fontsize=8)
    ax.set(title="read noise")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    if not path.is_file():
        raise DataError(f"{path}: the figure was not written")
    return path
