"""The pcm profile's mean conductance drift factor: simulator vs closed form (docs/pcm_drift.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cimsim.errors import ParameterError
from cimsim.evaluation.drift_factor import closed_form_mean_drift_factor, drift_factor_table, simulated_mean_drift_factor
from cimsim.profiles import load_profile

HOUR, DAY, YEAR = 3600.0, 86400.0, 3.15576e7


@pytest.fixture(scope="module")
def pcm():
    return load_profile("pcm")


@pytest.mark.parametrize("x", [1.0, 0.25, 0.1])
@pytest.mark.parametrize("t", [HOUR, DAY, YEAR])
def test_simulated_mean_factor_matches_closed_form(pcm, x, t):
    sim, se = simulated_mean_drift_factor(pcm, x, t, n=128, seed=1)
    cf = closed_form_mean_drift_factor(pcm, x, t)
    # 16383 devices: within 5 standard errors, plus float32 rounding of the weights
    assert abs(sim - cf) < 5 * se + 2e-6, (sim, se, cf)


def test_closed_form_against_direct_monte_carlo(pcm):
    rng = np.random.default_rng(0)
    for x, t in ((1.0, YEAR), (0.1, DAY), (0.02, YEAR)):
        xs = np.array([x])
        mu, sd = float(pcm.drift.nu.mean.evaluate(xs)[0]), float(pcm.drift.nu.std.evaluate(xs)[0])
        nu = np.abs(rng.normal(mu, sd, 400_000))
        f = ((t + 20.0) / 20.0) ** (-nu)
        assert abs(f.mean() - closed_form_mean_drift_factor(pcm, x, t)) < 5 * f.std() / math.sqrt(f.size)


def test_published_magnitudes(pcm):
    """Joshi et al. 2020 / Nandakumar 2019 model: high-G devices keep about 78 % after 1 h, 67 % after
    1 day and 50 % after 1 year (nu about 0.05, t0 = 20 s)."""
    assert closed_form_mean_drift_factor(pcm, 1.0, HOUR) == pytest.approx(0.7758, abs=1e-4)
    assert closed_form_mean_drift_factor(pcm, 1.0, DAY) == pytest.approx(0.6650, abs=1e-4)
    assert closed_form_mean_drift_factor(pcm, 1.0, YEAR) == pytest.approx(0.5002, abs=1e-4)
    # low-conductance devices drift faster
    assert closed_form_mean_drift_factor(pcm, 0.1, YEAR) < closed_form_mean_drift_factor(pcm, 1.0, YEAR)


def test_table_and_errors(pcm):
    table = drift_factor_table(pcm, xs=(1.0,), times=(("1 h", HOUR),), n=32)
    assert table.count("\n") == 3 and "| 1 | 0.0490 | 0.0080 | 1 h |" in table
    with pytest.raises(ParameterError, match="no power-law drift"):
        closed_form_mean_drift_factor(load_profile("ideal"), 1.0, HOUR)
    with pytest.raises(ParameterError, match=r"must be in \(0, 1\]"):
        simulated_mean_drift_factor(pcm, 0.0, HOUR)
