"""Scalar functions of the normalised conductance ``x = G / g_max_us``.

Published device models give programming-noise sigma, drift-exponent statistics and 1/f
read-noise amplitude as small closed forms in x (polynomials, clipped log-linear laws, clipped
power laws, piecewise combinations, or tables).  One union, :data:`XFunction`, describes all of
them; every model evaluates element-wise on a numpy array with ``.evaluate(x)``.

``x`` is floored at ``x_floor`` before a logarithm or negative power is taken, so ``x = 0``
(an unused device at g_min = 0) gives a finite value, which the clip bounds then cap.

Bounds: coefficients, values, clip bounds and table entries within ``±LAW_MAX`` (1e6), exponents
within ``±EXPONENT_MAX`` (100), ``x_floor`` and ``x_scale`` at least ``X_FLOOR_MIN`` (1e-30), so that
every law stays finite in float32; the schema also evaluates each law on a grid of x in [0, 1]
in float32 and float64 and checks the values against the quantity's own range.

Precision: a float32 ``x`` is evaluated in float32 (numpy's 16-lane SIMD log/exp; the crossbar
passes float32 for float32 chips, whose conductances are float32 anyway: a relative 6e-8 on a
device law fitted to a few percent), anything else in float64.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "LAW_MAX",
    "X_FLOOR_MIN",
    "EXPONENT_MAX",
    "XFunction",
    "ConstantFn",
    "PolynomialFn",
    "LogLinearFn",
    "PowerFn",
    "SaturatingExpFn",
    "TableFn",
    "PiecewiseFn",
    "Logs",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


LAW_MAX = 1e6
"""Largest magnitude of a law's coefficient, value, clip bound or table entry.  Far above any
fitted device law (their coefficients are below 100), and small enough that a polynomial of at
most 16 terms stays below 2e7 on x in [0, 1], far inside float32's range (3.4e38)."""

X_FLOOR_MIN = 1e-30
"""Smallest ``x_floor`` and ``x_scale``: float32 holds 1e-30 and its reciprocal 1e30 as normal
numbers, so a law evaluated in float32 never takes the log of 0 or divides by 0 (1e-46 would be
0 in float32)."""

EXPONENT_MAX = 100.0
"""Largest magnitude of a power law's exponent (fitted exponents are below 2)."""

Coef = Annotated[float, Field(ge=-LAW_MAX, le=LAW_MAX, allow_inf_nan=False)]
""":data:`LAW_MAX`-bounded coefficient of a law"""
Floor = Annotated[float, Field(ge=X_FLOOR_MIN, le=1, allow_inf_nan=False)]


def _clip(y: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """Clip ``y`` (a fresh array, clipped in place) to [lo, hi] (None: no bound).

    One ``np.clip`` pass with both bounds (a missing one is -inf / +inf): one pass over the array
    instead of two (``np.maximum`` then ``np.minimum``), and numpy's two-sided clip loop is its
    vectorised one.
    """
    if lo is None and hi is None:
        return y
    return np.clip(y, -np.inf if lo is None else lo, np.inf if hi is None else hi, out=y)


def _ftype(x: np.ndarray) -> type:
    """The evaluation dtype: float32 for float32 input, else float64."""
    return np.float32 if x.dtype == np.float32 else np.float64


def _as_eval(x) -> np.ndarray:
    """``x`` as an array of its evaluation dtype (see :func:`_ftype`)."""
    x = np.asarray(x)
    return x.astype(_ftype(x), copy=False)


def _floored(x, floor: float) -> np.ndarray:
    """A new array max(x, floor) of x's evaluation dtype (0-d for a scalar), in one clip pass."""
    x = np.asarray(x)
    dt = _ftype(x)
    return np.clip(x, floor, np.inf, dtype=dt, out=np.empty(x.shape, dt))


#: ``logs`` of ``evaluate``: ln(max(x, floor)) of one x array per floor, filled by the first law
#: that needs it and read by the others evaluated on the same x (they never write to it)
Logs = dict


def _log_floored(x, floor: float, logs: Logs | None) -> np.ndarray:
    """ln(max(x, floor)) in x's evaluation dtype: from ``logs`` when a law of the same x computed
    it already (then shared: read-only), else a new array (kept in ``logs`` when given)."""
    if logs is not None and floor in logs:
        return logs[floor]
    y = _floored(x, floor)
    np.log(y, out=y)
    if logs is not None:
        logs[floor] = y
    return y


class _Clipped(_Strict):
    min: Coef | None = Field(None, description="lower clip bound of the result (null: none)")
    max: Coef | None = Field(None, description="upper clip bound of the result (null: none)")

    @model_validator(mode="after")
    def _bounds(self) -> "_Clipped":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"max: must be >= min = {self.min} (got {self.max})")
        return self


class ConstantFn(_Strict):
    """``f(x) = value``."""

    kind: Literal["constant"] = "constant"
    value: Coef = Field(description="the constant value")

    def evaluate(self, x: np.ndarray, logs: Logs | None = None) -> np.ndarray:
        x = np.asarray(x)
        return np.full(x.shape, self.value, dtype=_ftype(x))


class PolynomialFn(_Clipped):
    """``f(x) = clip(sum_k coeffs[k] * x**k, min, max)`` (coefficients in increasing power)."""

    kind: Literal["polynomial"] = "polynomial"
    coeffs: list[Coef] = Field(min_length=1, max_length=16, description="c0, c1, c2, ... (increasing powers of x)")

    def evaluate(self, x: np.ndarray, logs: Logs | None = None) -> np.ndarray:
        x = _as_eval(x)
        c = self.coeffs
        if len(c) == 1:
            return _clip(np.full(x.shape, c[0], dtype=x.dtype), self.min, self.max)
        # Horner, in place: y = c_n x, then y = (y + c_k) x for k = n - 1 .. 1, then y + c_0
        y = np.multiply(x, c[-1], out=np.empty(x.shape, x.dtype))
        for ck in reversed(c[1:-1]):
            y += ck
            y *= x
        y += c[0]
        return _clip(y, self.min, self.max)


class LogLinearFn(_Clipped):
    """``f(x) = clip(slope * ln(max(x, x_floor)) + intercept, min, max)`` (natural log)."""

    kind: Literal["log_linear"] = "log_linear"
    slope: Coef = Field(description="coefficient of ln(x)")
    intercept: Coef = Field(description="value at x = 1")
    x_floor: Floor = Field(1e-6, description="x is floored here before the log")

    def evaluate(self, x: np.ndarray, logs: Logs | None = None) -> np.ndarray:
        lnx = _log_floored(x, self.x_floor, logs)
        y = np.multiply(lnx, self.slope, out=None if logs is not None else lnx)
        y += self.intercept
        return _clip(y, self.min, self.max)


class PowerFn(_Clipped):
    """``f(x) = clip(coeff * max(x, x_floor)**exponent, min, max)``.

    Evaluated as ``coeff * exp(exponent * ln(max(x, x_floor)))`` with numpy's SIMD exp and log
    (instead of ``np.power``, which has no SIMD loop for float64; within a few float64 ulp of it, a
    relative 1e-14 for |exponent ln x| < 20).
    """

    kind: Literal["power"] = "power"
    coeff: Coef = Field(description="prefactor")
    exponent: Annotated[float, Field(ge=-EXPONENT_MAX, le=EXPONENT_MAX, allow_inf_nan=False)] = Field(description="power of x")
    x_floor: Floor = Field(1e-3, description="x is floored here before the power")

    def evaluate(self, x: np.ndarray, logs: Logs | None = None) -> np.ndarray:
        lnx = _log_floored(x, self.x_floor, logs)
        y = np.multiply(lnx, self.exponent, out=None if logs is not None else lnx)
        np.exp(y, out=y)
        y *= self.coeff
        return _clip(y, self.min, self.max)


class SaturatingExpFn(_Clipped):
    """``f(x) = clip(amplitude * (1 - exp(-x / x_scale)), min, max)``.

    The SONOS charge-trap spreads of Agrawal et al. (IEDM 2022, as CrossSim implements them),
    ``sigma_I = A (1 - exp(-I / B))``, with ``x = I / I_max`` and ``x_scale = B / I_max``.
    """

    kind: Literal["saturating_exp"] = "saturating_exp"
    amplitude: Coef = Field(description="value approached for x >> x_scale")
    x_scale: Annotated[float, Field(ge=X_FLOOR_MIN, le=LAW_MAX, allow_inf_nan=False)] = Field(
        description="x over which 1 - exp(-x / x_scale) rises"
    )

    def evaluate(self, x: np.ndarray, logs: Logs | None = None) -> np.ndarray:
        x = _as_eval(x)
        y = np.multiply(x, -1.0 / self.x_scale, out=np.empty(x.shape, x.dtype))
        np.expm1(y, out=y)
        y *= -self.amplitude
        return _clip(y, self.min, self.max)


class TableFn(_Strict):
    """Piecewise-linear interpolation of ``(x, y)`` pairs; constant beyond the end points."""

    kind: Literal["table"] = "table"
    x: list[Coef] = Field(min_length=2, max_length=4096, description="strictly increasing x")
    y: list[Coef] = Field(min_length=2, max_length=4096, description="value at each x")

    @model_validator(mode="after")
    def _shape(self) -> "TableFn":
        if len(self.x) != len(self.y):
            raise ValueError(f"y: must have as many entries as x (got {len(self.y)} and {len(self.x)})")
        bad = [i for i in range(1, len(self.x)) if self.x[i] <= self.x[i - 1]]
        if bad:
            i = bad[0]
            raise ValueError(f"x: must be strictly increasing (got x[{i - 1}]={self.x[i - 1]}, x[{i}]={self.x[i]})")
        return self

    def evaluate(self, x: np.ndarray, logs: Logs | None = None) -> np.ndarray:
        x = np.asarray(x)
        return np.interp(x, self.x, self.y).astype(_ftype(x), copy=False)


_Leaf = Annotated[
    Union[ConstantFn, PolynomialFn, LogLinearFn, PowerFn, SaturatingExpFn, TableFn], Field(discriminator="kind")
]


class PiecewiseFn(_Strict):
    """``f(x) = below(x)`` for ``x < threshold``, else ``above(x)`` (one level, no nesting)."""

    kind: Literal["piecewise"] = "piecewise"
    threshold: Coef = Field(description="x at which `above` takes over")
    below: _Leaf = Field(description="function used for x < threshold")
    above: _Leaf = Field(description="function used for x >= threshold")

    def evaluate(self, x: np.ndarray, logs: Logs | None = None) -> np.ndarray:
        x = _as_eval(x)
        return np.where(x < self.threshold, self.below.evaluate(x, logs), self.above.evaluate(x, logs))


def _number_is_constant(value: object) -> object:
    """A bare number where a function is expected means ``{kind: constant, value: N}``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"kind": "constant", "value": value}
    return value


_Tagged = Annotated[
    Union[ConstantFn, PolynomialFn, LogLinearFn, PowerFn, SaturatingExpFn, TableFn, PiecewiseFn],
    Field(discriminator="kind"),
]

XFunction = Annotated[
    _Tagged,
    # the JSON Schema says a bare number is accepted too, so editors do not flag `std: 0`
    BeforeValidator(_number_is_constant, json_schema_input_type=Union[float, _Tagged]),
]
