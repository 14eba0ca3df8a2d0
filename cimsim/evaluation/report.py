"""The result of a drift study: :class:`DriftReport`.

A report holds the raw per-repeat scores (``scores[r, i]`` = score of chip ``r`` at time
``times_s[i]``), so every statistic can be recomputed; the mean, the sample standard deviation
(``ddof=1``) and the two-sided 95 % confidence interval of the mean from Student's t
distribution with ``repeats - 1`` degrees of freedom are derived from them:

    CI = mean +- t_{0.975, n-1} * std / sqrt(n)

With one repeat the spread and the interval are undefined (NaN in arrays, ``null`` in JSON,
blank in CSV/markdown).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._io import atomic_save, atomic_write_text, read_verified
from ..errors import ParameterError, StateFormatError
from ..times import format_time

__all__ = [
    "DriftReport",
    "t_quantile",
    "plot_reports",
    "REPORT_FORMAT",
]

REPORT_FORMAT = "cimsim.drift_report/1"

# --------------------------------------------------------------------------- Student t
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t distribution (pure Python: no scipy needed), |error| < 1e-10."""
    if not 0 < p < 1 or df <= 0:
        raise ParameterError(f"t_quantile needs 0 < p < 1 and df > 0 (got p={p}, df={df})")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------- the report
def _nan_to_none(values: Any) -> Any:
    if isinstance(values, (list, tuple)):
        return [_nan_to_none(v) for v in values]
    if isinstance(values, float) and not math.isfinite(values):
        return None
    return values


def _none_to_nan(values: Any) -> Any:
    if isinstance(values, list):
        return [_none_to_nan(v) for v in values]
    return float("nan") if values is None else values


@dataclass(eq=False)
class DriftReport:
    """Scores of ``repeats`` independently programmed chips, each read at ``times_s``.

    ``scores[r, i]`` is the score of chip ``r`` at ``times_s[i]``; ``chip_seeds[r]`` programs it again
    (``cimsim.program(model, seed=chip_seeds[r])``). ``digital_score`` is the same metric on the float
    (digital) model. Statistics are properties computed from ``scores``.
    """

    times_s: list[float]
    scores: np.ndarray
    metric: str = "accuracy"
    digital_score: float | None = None
    profile: str | None = None
    seed: int | None = None
    chip_seeds: list[int] = field(default_factory=list)
    compensation: str = "global"
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.times_s = [float(t) for t in self.times_s]
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.scores.ndim != 2 or self.scores.shape[1] != len(self.times_s):
            raise ParameterError(
                f"scores must be [repeats, n_times] = [*, {len(self.times_s)}] (got shape {self.scores.shape})"
            )
        self.chip_seeds = [int(s) for s in self.chip_seeds]
        if self.digital_score is not None:
            self.digital_score = float(self.digital_score)

    # ------------------------------------------------------------------ statistics
    @property
    def repeats(self) -> int:
        return int(self.scores.shape[0])

    @property
    def mean(self) -> np.ndarray:
        return self.scores.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        """Sample standard deviation over repeats (ddof=1); NaN with one repeat."""
        if self.repeats < 2:
            return np.full(len(self.times_s), np.nan)
        return self.scores.std(axis=0, ddof=1)

    def ci_halfwidth(self, level: float = 0.95) -> np.ndarray:
        """Half-width of the two-sided ``level`` confidence interval of the mean (Student t)."""
        if not 0 < level < 1:
            raise ParameterError(f"level must be in (0, 1) (got {level})")
        n = self.repeats
        if n < 2:
            return np.full(len(self.times_s), np.nan)
        return t_quantile(0.5 + level / 2.0, n - 1) * self.std / math.sqrt(n)

    @property
    def ci_low(self) -> np.ndarray:
        return self.mean - self.ci_halfwidth()

    @property
    def ci_high(self) -> np.ndarray:
        return self.mean + self.ci_halfwidth()

    def rows(self) -> list[dict[str, Any]]:
        """One dict per time: t_s, time, mean, std, ci_low, ci_high, min, max."""
        mean, std, lo, hi = self.mean, self.std, self.ci_low, self.ci_high
        return [
            {
                "t_s": t,
                "time": format_time(t),
                "mean": float(mean[i]),
                "std": float(std[i]),
                "ci95_low": float(lo[i]),
                "ci95_high": float(hi[i]),
                "min": float(self.scores[:, i].min()),
                "max": float(self.scores[:, i].max()),
            }
            for i, t in enumerate(self.times_s)
        ]

    # ------------------------------------------------------------------ comparisons
    def equals(self, other: "DriftReport") -> bool:
        """Exactly equal results: times, every score bit, digital score, seeds and settings."""
        return (
            isinstance(other, DriftReport)
            and self.times_s == other.times_s
            and self.scores.shape == other.scores.shape
            and np.array_equal(self.scores, other.scores, equal_nan=True)
            and self.digital_score == other.digital_score
            and self.chip_seeds == other.chip_seeds
            and (self.metric, self.profile, self.seed, self.compensation)
            == (other.metric, other.profile, other.seed, other.compensation)
        )

    # ------------------------------------------------------------------ text output
    def _fmt(self, v: float, pct: bool) -> str:
        if v is None or not math.isfinite(v):
            return ""
        return f"{100 * v:.2f}" if pct else f"{v:.4g}"

    def to_markdown(self, *, percent: bool | None = None) -> str:
        """A markdown table: one row per time with mean, std, 95 % CI, min and max over repeats."""
        pct = self.metric == "accuracy" if percent is None else percent
        unit = " (%)" if pct else ""
        title = self.label or f"{self.metric} vs time"
        hashes = sorted(set(self.meta.get("layer_profiles", {}).values()))
        digest = f" (sha256 {', '.join(h[:12] for h in hashes)})" if hashes else ""
        head = (
            f"**{title}**: profile `{self.profile}`{digest}, compensation `{self.compensation}`, "
            f"{self.repeats} chips, seed {self.seed}"
        )
        if self.digital_score is not None:
            head += f"; digital reference {self._fmt(self.digital_score, pct)}{unit}"
        lines = [
            head,
            "",
            f"| time | mean{unit} | std | 95 % CI | min | max |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows():
            ci = (
                f"[{self._fmt(r['ci95_low'], pct)}, {self._fmt(r['ci95_high'], pct)}]"
                if math.isfinite(r["ci95_low"])
                else ""
            )
            lines.append(
                f"| {r['time']} | {self._fmt(r['mean'], pct)} | {self._fmt(r['std'], pct)} | {ci} | "
                f"{self._fmt(r['min'], pct)} | {self._fmt(r['max'], pct)} |"
            )
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()

    def to_csv(self, path: str | Path | None = None) -> str:
        """Summary CSV (one row per time; the per-repeat scores as ``r0, r1, ...`` columns).

        Written to ``path`` when given; the text is returned either way.
        """
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(
            ["t_s", "time", "mean", "std", "ci95_low", "ci95_high", "min", "max", "digital"]
            + [f"r{k}" for k in range(self.repeats)]
        )
        dig = "" if self.digital_score is None else repr(self.digital_score)
        for i, r in enumerate(self.rows()):
            vals = [r["mean"], r["std"], r["ci95_low"], r["ci95_high"], r["min"], r["max"]]
            w.writerow(
                [repr(r["t_s"]), r["time"]]
                + ["" if not math.isfinite(v) else repr(v) for v in vals]
                + [dig]
                + [repr(float(s)) for s in self.scores[:, i]]
            )
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(path, text)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "metric": self.metric,
            "label": self.label,
            "profile": self.profile,
            "compensation": self.compensation,
            "seed": self.seed,
            "repeats": self.repeats,
            "chip_seeds": list(self.chip_seeds),
            "times_s": list(self.times_s),
            "digital_score": self.digital_score,
            "scores": _nan_to_none(self.scores.tolist()),
            "summary": [{k: _nan_to_none(v) for k, v in r.items()} for r in self.rows()],
            "meta": self.meta,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON with the raw scores (floats written with full precision: from_json round-trips bit for bit)."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DriftReport":
        if d.get("format") != REPORT_FORMAT:
            raise StateFormatError(f"not a drift report of format {REPORT_FORMAT!r} (got format {d.get('format')!r})")
        return cls(
            times_s=d["times_s"],
            scores=np.asarray(_none_to_nan(d["scores"]), dtype=np.float64).reshape(-1, len(d["times_s"])),
            metric=d["metric"],
            digital_score=d.get("digital_score"),
            profile=d.get("profile"),
            seed=d.get("seed"),
            chip_seeds=d.get("chip_seeds", []),
            compensation=d.get("compensation", "global"),
            label=d.get("label"),
            meta=d.get("meta", {}),
        )

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> "DriftReport":
        """Read a report written by :meth:`to_json` (a path, or the JSON text itself)."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            p = Path(path_or_text)
            if not p.is_file():
                raise StateFormatError(f"no drift report at {p} (expected a JSON file written by DriftReport.to_json)")
            try:  # checked against the checksum file to_json writes beside it, when there is one
                text = read_verified(p, required=False).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise StateFormatError(f"{p} is not a drift report (not UTF-8 text: {exc})") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateFormatError(f"drift report is not valid JSON ({exc})") from exc
        return cls.from_dict(d)

    # ------------------------------------------------------------------ plot
    def plot(self, path: str | Path | None = None, *, ax: Any = None, label: str | None = None, color: Any = None):
        """Score vs time (log axis) with the 95 % CI band and the digital reference as a dashed line.

        Needs matplotlib (``pip install cimsim[plot]``). Draws on ``ax`` when given; saves to
        ``path`` when given. Returns the matplotlib Figure.
        """
        return plot_reports([self], path, ax=ax, labels=[label] if label else None, colors=[color] if color else None)


def _plt():
    try:
        import matplotlib.pyplot as plt  # headless machines fall back to Agg on their own
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ParameterError("plotting needs matplotlib: pip install 'cimsim[plot]' (or pip install matplotlib)") from exc
    return plt


def plot_reports(
    reports: Sequence[DriftReport],
    path: str | Path | None = None,
    *,
    ax: Any = None,
    labels: Sequence[str] | None = None,
    colors: Sequence[Any] | None = None,
    linestyles: Sequence[str] | None = None,
    title: str | None = None,
):
    """Several reports on one axis (e.g. hardware- vs float-trained, with/without compensation)."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
    else:
        fig = ax.figure
    pct = all(r.metric == "accuracy" for r in reports)
    k = 100.0 if pct else 1.0
    seen_digital: set[float] = set()
    tick_labels: dict[float, str] = {}
    for j, rep in enumerate(reports):
        lab = labels[j] if labels else (rep.label or f"{rep.profile}, {rep.compensation}")
        c = colors[j] if colors else None
        # t = 0 cannot sit on a log axis: draw it at a tenth of the next time
        t = np.array(rep.times_s, dtype=np.float64)
        if t.size and t[0] == 0:
            t[0] = t[1] / 10 if t.size > 1 else 1.0
        for v, raw in zip(t, rep.times_s):
            tick_labels.setdefault(float(v), format_time(raw))
        ls = linestyles[j] if linestyles else "-"
        (line,) = ax.plot(t, k * rep.mean, marker="o", ms=3, label=lab, color=c, ls=ls)
        if rep.repeats > 1:
            ax.fill_between(t, k * rep.ci_low, k * rep.ci_high, color=line.get_color(), alpha=0.2, lw=0)
        if rep.digital_score is not None and rep.digital_score not in seen_digital:
            seen_digital.add(rep.digital_score)
            ax.axhline(k * rep.digital_score, color=line.get_color(), ls=(0, (2, 2)), lw=1, alpha=0.6)
    ax.set_xscale("log")
    if tick_labels:
        ticks = sorted(tick_labels)
        ax.set_xticks(ticks, [tick_labels[t] for t in ticks])
        ax.minorticks_off()
    ax.set_xlabel("time since programming")
    metric = reports[0].metric if reports else "score"
    ax.set_ylabel(f"{metric} (%)" if pct else metric)
    ax.set_title(title or "score vs time (band: 95 % CI; dashed: digital reference)", fontsize=9)
    return finish_figure(fig, ax, path)


def finish_figure(fig, ax, path: str | Path | None):
    """Grid, legend and tight layout; with ``path``, the figure written atomically (format from
    the suffix, PNG by default) and closed. Returns ``fig``."""
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fmt = Path(path).suffix[1:] or "png"
        atomic_save(path, lambda f: fig.savefig(f, format=fmt, dpi=120))
        _plt().close(fig)
    return fig
