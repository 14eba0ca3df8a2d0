"""The result of a sweep: the tidy table, the report per configuration and time, the plots.

* :attr:`SweepResult.rows`: one row per configuration x chip x time, every axis a column, plus
  ``repeat``, ``chip_seed``, ``t_s``, ``time``, ``metric``, ``score``, ``digital_score``,
  ``profile_name`` and ``profile_hash`` (sha256 of the resolved profile's YAML, 16 hex digits)
  and ``key`` (the configuration's cache key, :mod:`.cache`). :attr:`SweepResult.table` is the same
  as a pandas DataFrame when pandas is installed, else the list of rows.
* :meth:`SweepResult.summary`: per configuration and time the mean, sample std (``ddof=1``) and
  95 % Student-t confidence interval of the mean over the chips (:class:`DriftReport`'s).
* :meth:`SweepResult.save`: ``results.csv`` (and ``results.parquet`` with pyarrow), ``summary.csv``,
  ``summary.md``, ``sweep.json`` (configurations, keys, meta) and, with matplotlib,
  ``score_vs_time.png`` and ``score_vs_<axis>.png``; each file written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_save, atomic_write_text
from ..errors import ParameterError
from ..evaluation.report import DriftReport, finish_figure, plot_reports
from ..times import format_time, parse_times
from .spec import Config

__all__ = ["SweepResult"]


@dataclass
class SweepResult:
    configs: list[Config]
    reports: list[DriftReport]
    keys: list[str]
    parts: list[dict[str, Any]]
    seeds: list[int]
    meta: dict[str, Any] = field(default_factory=dict)
    plot: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ tables
    @property
    def axes(self) -> list[str]:
        """Every axis name, in the order first seen."""
        names: dict[str, None] = {}
        for c in self.configs:
            names.update(dict.fromkeys(c.values))
        return list(names)

    def _axis_values(self, cfg: Config) -> dict[str, Any]:
        return {a: cfg.values.get(a) for a in self.axes}

    @property
    def rows(self) -> list[dict[str, Any]]:
        out = []
        for cfg, rep, key, parts in zip(self.configs, self.reports, self.keys, self.parts):
            for r, s in enumerate(rep.chip_seeds or []):
                for i, t in enumerate(rep.times_s):
                    out.append({**self._axis_values(cfg), "repeat": r, "chip_seed": s, "t_s": t, "time": format_time(t),
                                "metric": rep.metric, "score": float(rep.scores[r, i]), "digital_score": rep.digital_score,
                                "profile_name": rep.profile, "profile_hash": parts["profile"][:16], "key": key[:16]})
        return out

    @property
    def scores(self) -> np.ndarray:
        """``[configuration, chip, time]`` scores."""
        return np.stack([rep.scores for rep in self.reports])

    @property
    def table(self) -> Any:
        """The rows as a pandas DataFrame (pandas installed), else as a list of dicts."""
        try:
            import pandas as pd
        except ImportError:
            return self.rows
        return pd.DataFrame(self.rows)

    def summary(self) -> list[dict[str, Any]]:
        """Per configuration and time: n, mean, std, 95 % CI of the mean, min, max."""
        return [{**self._axis_values(cfg), "n": rep.repeats, **row}
                for cfg, rep in zip(self.configs, self.reports) for row in rep.rows()]

    def to_markdown(self, t_s: float | str | None = None) -> str:
        """The summary as a markdown table (at one time, or at every time)."""
        rows = self.summary()
        if t_s is not None:
            t = parse_times([t_s] if not isinstance(t_s, str) else t_s)[0]
            rows = [r for r in rows if r["t_s"] == t]
        pct = all(rep.metric == "accuracy" for rep in self.reports)
        k, unit = (100.0, " (%)") if pct else (1.0, "")
        cols = [*self.axes, "time"]
        head = "| " + " | ".join(cols) + f" | mean{unit} | std | 95 % CI |\n|" + "---|" * (len(cols) + 3) + "\n"

        def f(v: float) -> str:
            return "" if v != v else f"{k * v:.2f}"

        body = "".join("| " + " | ".join(str(r[c]) for c in cols) + f" | {f(r['mean'])} | {f(r['std'])} | "
                       f"{f(r['ci95_low'])} - {f(r['ci95_high'])} |\n" for r in rows)
        return head + body

    # ------------------------------------------------------------------ files
    @staticmethod
    def _csv(rows: list[dict[str, Any]]) -> str:
        buf = io.StringIO()
        if rows:
            w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if isinstance(v, float) and v != v else (repr(v) if isinstance(v, float) else v))
                            for k, v in r.items()})
        return buf.getvalue()

    def save(self, out: str | Path) -> list[Path]:
        """Write the tables, the JSON record and the plots to folder ``out``; the files written."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        rows = self.rows
        atomic_write_text(out / "results.csv", self._csv(rows))
        written.append(out / "results.csv")
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            pass
        else:
            table = pa.Table.from_pylist([{k: (str(v) if k in self.axes else v) for k, v in r.items()} for r in rows])
            atomic_save(out / "results.parquet", lambda f: pq.write_table(table, f))
            written.append(out / "results.parquet")
        atomic_write_text(out / "summary.csv", self._csv(self.summary()))
        atomic_write_text(out / "summary.md", self.to_markdown())
        record = {"format": "cimsim.sweep/1", "meta": self.meta, "axes": self.axes, "chip_seeds": self.seeds,
                  "configurations": [{"values": c.values, "key": k, "parts": p} for c, k, p in zip(self.configs, self.keys, self.parts)]}
        atomic_write_text(out / "sweep.json", json.dumps(record, indent=1, default=str) + "\n")
        written += [out / "summary.csv", out / "summary.md", out / "sweep.json"]
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return written
        self.plot_time(out / "score_vs_time.png")
        written.append(out / "score_vs_time.png")
        axis = self.plot.get("axis") or self._default_axis()
        if axis is not None:
            p = out / f"score_vs_{str(axis).replace('.', '_')}.png"
            self.plot_axis(axis, self.plot.get("t_s"), p)
            written.append(p)
        return written

    def _default_axis(self) -> str | None:
        """The first axis with several values other than compensation and model."""
        for a in self.axes:
            if a not in ("compensation", "model") and len({c.values.get(a) for c in self.configs}) > 1:
                return a
        return None

    # ------------------------------------------------------------------ plots
    def plot_time(self, path: str | Path | None = None, *, title: str | None = None) -> Any:
        """Score vs time, one line per configuration (band: 95 % CI)."""
        varying = [a for a in self.axes if len({str(c.values.get(a)) for c in self.configs}) > 1]
        labels = [", ".join(f"{a}={c.values.get(a)}" for a in varying) or c.label for c in self.configs]
        # the last varying axis (often compensation) as the line style when it has few values, the rest as colours
        styles = None
        groups = [", ".join(str(c.values.get(a)) for a in varying) for c in self.configs]
        if len(varying) >= 2:
            last = list(dict.fromkeys(str(c.values.get(varying[-1])) for c in self.configs))
            if len(last) <= 4:
                styles = [("-", "--", ":", "-.")[last.index(str(c.values.get(varying[-1])))] for c in self.configs]
                groups = [", ".join(str(c.values.get(a)) for a in varying[:-1]) for c in self.configs]
        order = list(dict.fromkeys(groups))
        from ..evaluation.report import _plt

        cmap = _plt().get_cmap("tab10" if len(order) <= 10 else "tab20")
        colors = [cmap(order.index(g) % cmap.N) for g in groups]
        return plot_reports(self.reports, path, labels=labels, colors=colors, linestyles=styles,
                            title=title or f"{self.meta.get('name', 'sweep')}: score vs time (band: 95 % CI)")

    def plot_axis(self, axis: str, t_s: float | str | None = None, path: str | Path | None = None) -> Any:
        """Mean score (error bars: 95 % CI) against ``axis`` at time ``t_s`` (default: the last), one
        line per combination of the other varying axes."""
        from ..evaluation.report import _plt

        if axis not in self.axes:
            raise ParameterError(f"plot axis {axis!r} is not an axis of this sweep ({self.axes})")
        times = self.reports[0].times_s
        t = times[-1] if t_s is None else parse_times([t_s] if not isinstance(t_s, str) else t_s)[0]
        if t not in times:
            raise ParameterError(f"plot time {format_time(t)} is not one of the sweep's times {[format_time(x) for x in times]}")
        i = times.index(t)
        others = [a for a in self.axes if a != axis and len({str(c.values.get(a)) for c in self.configs}) > 1]
        xs: list[Any] = list(dict.fromkeys(c.values.get(axis) for c in self.configs))
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        lines: dict[str, list[tuple[int, DriftReport]]] = {}
        for cfg, rep in zip(self.configs, self.reports):
            name = ", ".join(f"{a}={cfg.values.get(a)}" for a in others) or (rep.label or "")
            lines.setdefault(name, []).append((xs.index(cfg.values.get(axis)), rep))
        plt = _plt()
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        pct = all(rep.metric == "accuracy" for rep in self.reports)
        k = 100.0 if pct else 1.0
        for name, pts in lines.items():
            pts.sort(key=lambda p: p[0])
            pos = np.array([xs[j] if numeric else j for j, _ in pts], dtype=np.float64)
            mean = np.array([rep.mean[i] for _, rep in pts]) * k
            lo = np.array([rep.ci_low[i] for _, rep in pts]) * k
            hi = np.array([rep.ci_high[i] for _, rep in pts]) * k
            err = None if np.isnan(lo).any() else np.vstack([mean - lo, hi - mean])
            ax.errorbar(pos, mean, yerr=err, marker="o", ms=4, capsize=3, label=name)
        ax.set_xticks(xs if numeric else range(len(xs)), [str(x) for x in xs])
        ax.set_xlabel(axis)
        metric = self.reports[0].metric
        ax.set_ylabel(f"{metric} (%)" if pct else metric)
        ax.set_title(f"{metric} vs {axis} at t = {format_time(t)} (error bars: 95 % CI)", fontsize=9)
        return finish_figure(fig, ax, path)
