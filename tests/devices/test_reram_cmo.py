"""The IBM CMO/HfOx ReRAM laws (issue 19 item 5) against their closed forms: programming noise
at 0.2 % and 2 % acceptance, the log10 read noise of aihwkit's code, the clamp to [g_min, g_max]."""

import math

import numpy as np
import pytest

from cimsim.crossbar import program_matrix
from cimsim.profiles.loader import load_profile

Z = 5.0  # tolerance: 5 standard errors
N_OUT, N_IN = 200, 500  # 1e5 devices
YEAR = 365.25 * 86400


@pytest.mark.parametrize("name,a,b", [("reram_cmo", 0.000811, 0.00106879), ("reram_cmo_2pct", 0.0112185391, 0.01129027418)])
def test_programming_noise_at_both_acceptance_ranges(name, a, b):
    """G = G_T + (a + b G_T) z µS (Falcone et al. 2025 / aihwkit coeff_dict), at G_T = 90 µS
    (weights at +max) and G_T = 49 µS (weights 0, single device against the mid-range reference)."""
    W = np.ones((N_OUT, N_IN), np.float64)
    W[N_OUT // 2:] = 0.0
    W[N_OUT // 2:, 0] = 1.0  # keep each row's scale at 1
    st = program_matrix(W, load_profile(name), rng=0)
    for g_t, rows in ((90.0, slice(0, N_OUT // 2)), (49.0, slice(N_OUT // 2, None))):
        g = st.g_pos[rows, 1:].astype(np.float64)
        want = a + b * g_t
        assert abs(g.mean() - g_t) < Z * want / math.sqrt(g.size)
        assert g.std() == pytest.approx(want, rel=Z / math.sqrt(2 * g.size))


def _sigma_read(g_us: float, t_s: float) -> float:
    """aihwkit ReRamCMONoiseModel: K log10(G) sqrt(ln((t + t_read) / (2 t_read))), µS."""
    return 0.0277316483 * math.log10(g_us) * math.sqrt(math.log((t_s + 1e-6) / 2e-6))


@pytest.mark.parametrize("t_s", [1.0, 10 * YEAR])
def test_read_noise_is_the_log10_law(t_s):
    """Relaxation and programming noise off, differential pairs at (90, 8) µS: G+ - G- at t has
    the variance sigma(90)^2 + sigma(8)^2 of the closed form, and no read noise at t = 0."""
    prof = load_profile("reram_cmo", overrides={
        "programming.noise": {"kind": "none"}, "mapping.kind": "differential",
        "drift": {"kind": "relaxation", "mean_slope_us": 0.0, "sigma_slope_us": 0.0, "sigma_at_1s_us": 0.0,
                  "clamp": False}})  # unclamped: the devices sit at the range ends
    W = np.ones((N_OUT, N_IN), np.float64)
    st = program_matrix(W, prof, rng=0)
    dg = 90.0 - 8.0
    d = st.drift(t_s, 1).effective_weights().astype(np.float64) * dg  # G+(t) - G-(t), µS
    want = math.hypot(_sigma_read(90.0, t_s), _sigma_read(8.0, t_s))
    assert abs(d.mean() - dg) < Z * want / math.sqrt(d.size)
    assert d.std() == pytest.approx(want, rel=Z / math.sqrt(2 * d.size))
    np.testing.assert_array_equal(st.drift(0.0, 1).effective_weights(), st.effective_weights(0.0, 1))


@pytest.mark.parametrize("clamp", [True, False])
def test_relaxed_conductances_are_clamped_to_the_range(clamp):
    """A relaxation shift of +200 µS: clamped, G+ and G- both sit at g_max = 90 µS, so every
    weight reads 0; unclamped they keep their difference (90 - 8 µS: the weight)."""
    prof = load_profile("reram_cmo", overrides={
        "programming.noise": {"kind": "none"}, "mapping.kind": "differential", "read_noise": {"kind": "none"},
        "drift": {"kind": "relaxation", "mean_slope_us": 0.0, "mean_at_1s_us": 200.0, "sigma_slope_us": 0.0,
                  "sigma_at_1s_us": 0.0, "clamp": clamp}})
    W = np.ones((4, 8), np.float64)
    w = program_matrix(W, prof, rng=0).drift(1.0, 1).effective_weights()
    np.testing.assert_allclose(w, 0.0 if clamp else 1.0, atol=1e-12)
