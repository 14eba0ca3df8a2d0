"""Fitting a device law of x (one of the schema's function kinds) to per-level estimates.

Input: estimates ``y_k`` of a quantity (a programming spread, a mean drift exponent ...) at
normalised conductances ``x_k``, each with a standard error ``se_k``.  Every candidate kind is a
weighted least-squares fit, linear in its coefficients once its breakpoints are chosen:

==================  ===========================================================  =============
candidate           law (``l = ln x``)                                            schema kind
==================  ===========================================================  =============
constant            ``b0``                                                        constant
polynomial-d        ``sum_k b_k x^k``, d = 1, 2, 3                                 polynomial
log_linear          ``b0 + b1 clip(l, u1, u2)`` (clipped as in the PCM model)     log_linear
power               ``exp(b0 + b1 clip(l, u1, u2))`` (fitted on ln y)             power
table               one value per level, linear in between                       table
==================  ===========================================================  =============

The breakpoints ``u1 <= u2`` of the clipped laws are chosen on a grid (the levels' ln x and the
midpoints between them) by the smallest BIC; an interior breakpoint counts as two parameters
(its location, searched over the grid, and its clip level).
The candidate with the smallest Bayesian information criterion
``BIC = chi^2 + p ln(n)`` (``chi^2 = sum ((y_k - f(x_k)) / se_k)^2``, p parameters, n levels) is
chosen; a candidate needs ``p <= n - 2`` (so a polynomial never passes through every level;
the table needs n >= 4).  Standard errors of the coefficients are ``sqrt(diag((X^T W X)^-1))``
times ``max(1, sqrt(chi^2 / (n - p)))`` (the Birge ratio: a fit worse than its error bars widens
its intervals).  Beyond the x range the data cover every law is held at its value at the
nearest end (its ``min``/``max`` bounds are the range of the fitted curve over the covered x):
nothing is extrapolated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..profiles.functions import ConstantFn, LogLinearFn, PolynomialFn, PowerFn, TableFn

__all__ = ["LawFit", "fit_law", "wls"]


def wls(X: np.ndarray, y: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted least squares: (coefficients, their covariance (X^T W X)^-1, chi^2), W = 1/se^2."""
    w = 1.0 / se
    A = X * w[:, None]
    b = y * w
    beta, *_ = np.linalg.lstsq(A, b, rcond=None)
    cov = np.linalg.pinv(A.T @ A)
    r = b - A @ beta
    return beta, cov, float(r @ r)


@dataclass
class LawFit:
    """One fitted law: ``kind`` (a candidate name), ``fn`` (the schema's function model),
    ``params`` [(name, value, standard error)], ``chi2``, ``n`` levels, ``p`` parameters, ``bic``,
    ``x_range`` covered, ``candidates`` [(name, p, chi2, bic)] of every candidate tried."""

    kind: str
    fn: Any
    params: list[tuple[str, float, float]]
    chi2: float
    n: int
    p: int
    bic: float
    x_range: tuple[float, float]
    candidates: list[tuple[str, int, float, float]] = field(default_factory=list)
    _band: Callable[[np.ndarray], np.ndarray] | None = None

    def evaluate(self, x) -> np.ndarray:
        return np.asarray(self.fn.evaluate(np.asarray(x, dtype=np.float64)), dtype=np.float64)

    def band(self, x) -> np.ndarray:
        """Standard error of the fitted curve at x (delta method; 0 where unknown)."""
        x = np.asarray(x, dtype=np.float64)
        return self._band(x) if self._band is not None else np.zeros_like(x)

    def table_rows(self) -> list[str]:
        return [f"| {name} | {v:.6g} | {'(grid)' if math.isnan(s) else format(s, '.3g')} |" for name, v, s in self.params]


def _span(fn: Any, lo: float, hi: float) -> tuple[float, float]:
    xs = np.linspace(lo, hi, 257)
    y = np.asarray(fn.evaluate(xs), dtype=np.float64)
    return float(y.min()), float(y.max())


def _scale(chi2: float, n: int, p: int) -> float:
    return max(1.0, math.sqrt(chi2 / (n - p))) if n > p else 1.0


def _breakpoints(l_lv: np.ndarray) -> np.ndarray:
    u = np.unique(l_lv)
    mids = 0.5 * (u[1:] + u[:-1])
    return np.unique(np.concatenate([u, mids]))


def _breaks(u1: float, u2: float, grid: np.ndarray) -> list[tuple[str, float, float]]:
    """The interior breakpoints of a clipped law as parameters (no standard error: chosen on a grid)."""
    out = []
    if u1 > grid[0]:
        out.append(("x below which the law is held", math.exp(u1), math.nan))
    if u2 < grid[-1]:
        out.append(("x above which the law is held", math.exp(u2), math.nan))
    return out


def fit_law(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    se: Sequence[float] | np.ndarray,
    *,
    kinds: Sequence[str] = ("constant", "polynomial", "log_linear", "power", "table"),
    max_degree: int = 3,
    nonneg: bool = True,
    extra: Sequence[tuple[str, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], Any]]] = (),
) -> LawFit:
    """Fit every candidate of ``kinds`` to ``(x, y ± se)`` and return the one with the least BIC.

    ``extra``: more linear candidates ``(name, x -> basis [n, p], coefficients -> fn)``.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    se = np.maximum(np.asarray(se, np.float64), 1e-300)
    n = x.shape[0]
    lo, hi = float(x.min()), float(x.max())
    pmax = max(1, n - 2)
    lnn = math.log(max(n, 2))
    cands: list[LawFit] = []
    fn: Any

    def add(kind: str, fn: Any, names: list[str], beta: np.ndarray, cov: np.ndarray, p: int,
            band: Callable[[np.ndarray], np.ndarray] | None) -> None:
        f = np.asarray(fn.evaluate(x), dtype=np.float64)
        chi2 = float(np.sum(((y - f) / se) ** 2))
        s = _scale(chi2, n, p)
        sd = np.sqrt(np.maximum(np.diag(cov), 0.0)) * s
        params = [(nm, float(b), float(e)) for nm, b, e in zip(names, beta, sd)]

        def scaled(xx: np.ndarray, band=band, s=s) -> np.ndarray:
            return band(xx) * s if band is not None else np.zeros_like(xx)

        cands.append(LawFit(kind, fn, params, chi2, n, p, chi2 + p * lnn, (lo, hi), _band=scaled))

    def lin_band(basis: Callable[[np.ndarray], np.ndarray], cov: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        def band(xx: np.ndarray) -> np.ndarray:
            B = basis(np.clip(xx, lo, hi))
            return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", B, cov, B), 0.0))
        return band

    def bounded(lo_v: float, hi_v: float) -> tuple[float | None, float]:
        return (max(lo_v, 0.0) if nonneg else lo_v), hi_v

    if "constant" in kinds:
        def basis0(xx: np.ndarray) -> np.ndarray:
            return np.ones((xx.shape[0], 1))
        beta, cov, _ = wls(basis0(x), y, se)
        v = float(beta[0])
        add("constant", ConstantFn(value=max(v, 0.0) if nonneg else v), ["value"], beta, cov, 1, lin_band(basis0, cov))
    if "polynomial" in kinds:
        for d in range(1, max_degree + 1):
            if d + 1 > pmax:
                break

            def basisd(xx: np.ndarray, d=d) -> np.ndarray:
                return np.vander(xx, d + 1, increasing=True)
            beta, cov, _ = wls(basisd(x), y, se)
            raw = PolynomialFn.model_validate({"coeffs": [float(b) for b in beta]})
            mn, mx = bounded(*_span(raw, lo, hi))
            fn = PolynomialFn(coeffs=[float(b) for b in beta], min=mn, max=mx)
            add(f"polynomial-{d}", fn, [f"c{k}" for k in range(d + 1)], beta, cov, d + 1, lin_band(basisd, cov))
    lx = np.log(np.maximum(x, 1e-12))
    grid = _breakpoints(lx)
    for kind in ("log_linear", "power"):
        if kind not in kinds or np.unique(x).shape[0] < 3:
            continue
        if kind == "power":
            ok = np.all(y > 0)
            if not ok:
                continue
            yy, ss = np.log(y), se / y
        else:
            yy, ss = y, se
        best: tuple[float, float, float, np.ndarray, np.ndarray, int] | None = None
        for i, u1 in enumerate(grid):
            for u2 in grid[i + 1:]:
                # an interior breakpoint is a searched location and a clip level: it counts 2 in the
                # BIC (a location picked as the best of a grid earns chi^2 by chance; one ln(n) is too little)
                p = 2 + 2 * (int(u1 > grid[0]) + int(u2 < grid[-1]))
                if p > pmax:
                    continue
                X = np.stack([np.ones(n), np.clip(lx, u1, u2)], axis=1)
                beta, cov, chi2 = wls(X, yy, ss)
                crit = chi2 + p * lnn  # within the family too: clip only where it pays its BIC
                if best is None or crit < best[0] - 1e-9 * abs(best[0]):
                    best = (crit, float(u1), float(u2), beta, cov, p)
        if best is None:
            continue
        _, u1, u2, beta, cov, p = best
        b0, b1 = float(beta[0]), float(beta[1])
        ends = sorted((b0 + b1 * u1, b0 + b1 * u2))

        def basisl(xx: np.ndarray, u1=u1, u2=u2) -> np.ndarray:
            return np.stack([np.ones(xx.shape[0]), np.clip(np.log(np.maximum(xx, 1e-12)), u1, u2)], axis=1)
        if kind == "log_linear":
            mn, mx = bounded(ends[0], ends[1])
            fn = LogLinearFn(slope=b1, intercept=b0, min=mn, max=mx, x_floor=min(1e-6, math.exp(u1)))
            add("log_linear (clipped)", fn, ["intercept", "slope"], beta, cov, p, lin_band(basisl, cov))
            cands[-1].params += _breaks(u1, u2, grid)
        else:
            fn = PowerFn(coeff=math.exp(b0), exponent=b1, min=math.exp(ends[0]), max=math.exp(ends[1]),
                         x_floor=min(1e-3, math.exp(u1)))
            lb = lin_band(basisl, cov)

            def pband(xx: np.ndarray, lb=lb, fn=fn) -> np.ndarray:
                return lb(xx) * np.asarray(fn.evaluate(xx), dtype=np.float64)
            cov_lin = cov.copy()
            cov_lin[0, :] *= math.exp(b0)
            cov_lin[:, 0] *= math.exp(b0)
            add("power (clipped)", fn, ["coeff", "exponent"], np.array([math.exp(b0), b1]), cov_lin, p, pband)
            cands[-1].params += _breaks(u1, u2, grid)
    if "table" in kinds:
        ux = np.unique(x)
        if ux.shape[0] >= 4:
            idx = np.searchsorted(ux, x)
            X = np.zeros((n, ux.shape[0]))
            X[np.arange(n), idx] = 1.0
            beta, cov, _ = wls(X, y, se)
            vals = np.maximum(beta, 0.0) if nonneg else beta
            fn = TableFn(x=[float(v) for v in ux], y=[float(v) for v in vals])

            def tband(xx: np.ndarray, cov=cov, ux=ux) -> np.ndarray:
                sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
                return np.interp(xx, ux, sd)
            add("table", fn, [f"y(x={v:.4g})" for v in ux], beta, cov, ux.shape[0], tband)
    for name, basis, make in extra:
        X = basis(x)
        if X.shape[1] > pmax and X.shape[1] > 1:
            continue
        beta, cov, _ = wls(X, y, se)
        add(name, make(beta), [f"b{k}" for k in range(X.shape[1])], beta, cov, X.shape[1], lin_band(basis, cov))
    if not cands:
        raise ValueError("no candidate law could be fitted")
    best_fit = min(cands, key=lambda c: c.bic)
    best_fit.candidates = [(c.kind, c.p, c.chi2, c.bic) for c in cands]
    return best_fit
