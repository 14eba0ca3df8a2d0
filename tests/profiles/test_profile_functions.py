"""Functions of x: each kind evaluates as its docstring says; bad definitions are rejected."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from cimsim.profiles.functions import (
    ConstantFn,
    LogLinearFn,
    PiecewiseFn,
    PolynomialFn,
    PowerFn,
    TableFn,
    XFunction,
)

X = np.array([0.0, 1e-7, 0.01, 0.25, 0.5, 1.0])
ADAPTER: TypeAdapter[object] = TypeAdapter(XFunction)


def test_constant_and_bare_number() -> None:
    np.testing.assert_array_equal(ConstantFn(value=0.3).evaluate(X), np.full(X.shape, 0.3))
    assert ADAPTER.validate_python(0.3) == ConstantFn(value=0.3)


def test_polynomial_horner_and_clip() -> None:
    f = PolynomialFn(coeffs=[1.0, -2.0, 3.0], min=0.5, max=2.0)
    np.testing.assert_allclose(f.evaluate(X), np.clip(1 - 2 * X + 3 * X**2, 0.5, 2.0))


def test_log_linear_floor_and_clip() -> None:
    f = LogLinearFn(slope=-0.0155, intercept=0.0244, x_floor=1e-6)
    np.testing.assert_allclose(f.evaluate(X), -0.0155 * np.log(np.maximum(X, 1e-6)) + 0.0244)
    assert np.isfinite(f.evaluate(np.array([0.0]))).all()


def test_power_floor_and_cap() -> None:
    f = PowerFn(coeff=0.0088, exponent=-0.65, max=0.2)
    # exp(e ln x) instead of x**e: a few float64 ulp apart (rtol 1e-14, documented on PowerFn)
    np.testing.assert_allclose(f.evaluate(X), np.minimum(0.0088 * np.maximum(X, 1e-3) ** -0.65, 0.2), rtol=1e-14, atol=0)
    g = PowerFn(coeff=1.5, exponent=2.7, x_floor=1e-6)
    x = np.geomspace(1e-6, 1.0, 1001)
    np.testing.assert_allclose(g.evaluate(x), 1.5 * x**2.7, rtol=1e-14, atol=0)


def test_table_interpolates_and_holds_ends() -> None:
    f = TableFn(x=[0.1, 0.5, 1.0], y=[1.0, 3.0, 2.0])
    np.testing.assert_allclose(f.evaluate(np.array([0.0, 0.3, 0.75, 2.0])), [1.0, 2.0, 2.5, 2.0])


def test_piecewise_switches_at_threshold() -> None:
    f = PiecewiseFn(threshold=0.5, below=ConstantFn(value=1.0), above=PolynomialFn(coeffs=[0.0, 2.0]))
    np.testing.assert_allclose(f.evaluate(np.array([0.49, 0.5, 1.0])), [1.0, 1.0, 2.0])


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "polynomial", "coeffs": []},
        {"kind": "polynomial", "coeffs": [1.0], "min": 2.0, "max": 1.0},
        {"kind": "table", "x": [0.0, 0.0], "y": [1.0, 2.0]},
        {"kind": "table", "x": [0.0, 1.0], "y": [1.0]},
        {"kind": "log_linear", "slope": 1.0, "intercept": 0.0, "x_floor": 0.0},
        {"kind": "power", "coeff": float("nan"), "exponent": 1.0},
        {"kind": "piecewise", "threshold": 0.5, "below": {"kind": "piecewise"}, "above": 1.0},
        {"kind": "spline"},
        True,
    ],
)
def test_bad_functions_rejected(bad: object) -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(bad)
