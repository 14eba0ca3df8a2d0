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
    SaturatingExpFn,
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_polynomial_is_horner_in_the_input_dtype_bit_for_bit(n, dtype) -> None:
    """The documented order, y = (((c_n x + c_(n-1)) x + ...) x + c_0), each step rounded to the
    input's dtype: what the saved reference hashes (scripts/bits_hash.py) assume."""
    rng = np.random.default_rng(n)
    coeffs = list(rng.standard_normal(n))
    x = rng.uniform(-2, 2, 5000).astype(dtype)
    y = np.full(x.shape, coeffs[-1], dtype=dtype)
    for c in reversed(coeffs[:-1]):
        y = (y * x + dtype(c)).astype(dtype)
    got = PolynomialFn(coeffs=coeffs).evaluate(x)
    assert got.dtype == dtype and got.tobytes() == y.tobytes()
    assert PolynomialFn(coeffs=coeffs).evaluate(dtype(0.5)).shape == ()


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


def test_saturating_exp_is_the_sonos_law() -> None:
    # sigma_I = A (1 - exp(-I / B)) nA (Agrawal et al. 2022) with x = I / 3200 nA
    f = SaturatingExpFn(amplitude=19.89, x_scale=176.3 / 3200, max=19.0)
    i = X * 3200
    # (1 - exp) as expm1: exact near x = 0, where 1 - exp(-u) loses digits
    np.testing.assert_allclose(f.evaluate(X), np.minimum(-19.89 * np.expm1(-i / 176.3), 19.0), rtol=1e-14, atol=0)
    assert f.evaluate(np.array([1e-9], np.float32)).dtype == np.float32 and float(f.evaluate(np.float64(0.0))) == 0.0


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
        {"kind": "saturating_exp", "amplitude": 1.0, "x_scale": 0.0},
        {"kind": "spline"},
        True,
    ],
)
def test_bad_functions_rejected(bad: object) -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(bad)


@pytest.mark.parametrize(
    "fn",
    [
        ConstantFn(value=0.3),
        PolynomialFn(coeffs=[0.26348, 1.9650, -1.1731], min=0.0),
        LogLinearFn(slope=-0.0155, intercept=0.0244, min=0.049, max=0.1),
        PowerFn(coeff=0.0088, exponent=-0.65, max=0.2),
        TableFn(x=[0.0, 0.5, 1.0], y=[1.0, 3.0, 2.0]),
        PiecewiseFn(threshold=0.3, below=PowerFn(coeff=0.01, exponent=-0.5), above=LogLinearFn(slope=0.1, intercept=0.2)),
    ],
    ids=lambda f: f.kind,
)
def test_float32_input_is_evaluated_in_float32_within_its_precision(fn) -> None:
    """float32 x (float32 chips) -> float32 result within a few float32 ulp of the float64 value
    (the laws are fitted to a few percent); anything else -> float64; scalars -> 0-d."""
    x64 = np.concatenate([[0.0, 1e-7, 1e-3], np.linspace(0.0, 1.2, 997)])
    x32 = x64.astype(np.float32)
    y32 = fn.evaluate(x32)
    assert y32.dtype == np.float32 and y32.shape == x32.shape
    y64 = fn.evaluate(x32.astype(np.float64))  # the same inputs, evaluated in float64
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y32, y64, rtol=8 * np.finfo(np.float32).eps, atol=1e-12)
    assert fn.evaluate([0.1, 0.2]).dtype == np.float64 and np.shape(fn.evaluate(0.25)) == ()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_laws_of_one_x_share_their_log_per_floor(dtype):
    """With one ``logs`` dict, laws of the same x compute ln(max(x, floor)) once per floor, leave it
    as it was, and give the same bits as each law alone (piecewise pieces included)."""
    x = np.random.default_rng(3).uniform(0, 1.5, 10_001).astype(dtype)
    laws = [
        LogLinearFn(slope=-0.0155, intercept=0.0244, min=0.049, max=0.1),
        LogLinearFn(slope=-0.0125, intercept=-0.0059, min=0.008, max=0.045),
        PowerFn(coeff=0.0088, exponent=-0.65, max=0.2, x_floor=1e-6),
        PowerFn(coeff=0.5, exponent=0.3, x_floor=1e-3),
        PolynomialFn(coeffs=[0.26, 1.97, -1.17]),
        PiecewiseFn(threshold=0.5, below=LogLinearFn(slope=1.0, intercept=0.0), above=PowerFn(coeff=1.0, exponent=2.0)),
    ]
    logs: dict = {}
    shared = [law.evaluate(x, logs) for law in laws]
    assert sorted(logs) == [1e-6, 1e-3]
    for floor, lnx in logs.items():
        np.testing.assert_array_equal(lnx, np.log(np.maximum(x, dtype(floor))))
        assert lnx.dtype == dtype
    for law, y in zip(laws, shared):
        np.testing.assert_array_equal(y, law.evaluate(x))
        assert not any(np.shares_memory(y, lnx) for lnx in logs.values())
