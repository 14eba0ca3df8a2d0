"""simulate_measurements: the table's shape and order, seeds, and its statistics against the
profile's laws (tolerances from the sample size: 5 standard errors)."""

import math

import numpy as np
import pytest

from cimsim import load_profile, simulate_measurements
from cimsim.errors import ParameterError
from cimsim.fitting import MeasurementTable, read_table


def test_table_layout_and_seed():
    t = simulate_measurements("pcm", [5.0, 20.0], [1.0, 100.0, 1e4], devices_per_target=3, reads=2, seed=7)
    assert isinstance(t, MeasurementTable)
    assert len(t) == 2 * 3 * 3 * 2
    assert t.n_devices == 6
    np.testing.assert_array_equal(t.device[:6], [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(t.t_s[:6], [1, 1, 100, 100, 1e4, 1e4])
    np.testing.assert_array_equal(t.read[:4], [0, 1, 0, 1])
    np.testing.assert_array_equal(t.g_target_us[:18], 5.0)
    assert np.all(t.g_us >= 0)
    u = simulate_measurements("pcm", [5.0, 20.0], [1.0, 100.0, 1e4], devices_per_target=3, reads=2, seed=7)
    np.testing.assert_array_equal(t.g_us, u.g_us)
    v = simulate_measurements("pcm", [5.0, 20.0], [1.0, 100.0, 1e4], devices_per_target=3, reads=2, seed=8)
    assert not np.array_equal(t.g_us, v.g_us)


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_save_and_read_round_trip(tmp_path, suffix):
    t = simulate_measurements("pcm", [5.0, 20.0], [1.0, 100.0, 1e4], devices_per_target=10, reads=2, seed=1)
    back = read_table(t.save(tmp_path / f"m{suffix}"))
    for k, v in t.columns().items():
        np.testing.assert_array_equal(back.columns()[k], v)
    assert back.source == f"m{suffix}" and len(back.sha256) == 64


def test_programming_spread_and_drift_exponent_match_the_laws():
    p = load_profile("pcm").with_overrides({"read_noise": {"kind": "none"}})
    n = 4000
    g_t = 10.0
    t = simulate_measurements(p, [g_t], [1e-9, 1e4], devices_per_target=n, seed=3)
    g0 = t.g_us[t.t_s < 1]
    g1 = t.g_us[t.t_s > 1]
    x = g_t / 25.0
    sigma = float(p.programming.noise.sigma.evaluate(np.array([x]))[0])
    assert abs(np.std(g0) - sigma) < 5 * sigma / math.sqrt(2 * n)
    assert abs(np.mean(g0) - g_t) < 5 * sigma / math.sqrt(n)
    nu = -np.log(g1 / g0) / math.log((1e4 + 20.0) / 20.0)
    mu = float(p.drift.nu.mean.evaluate(np.array([x]))[0])
    sd = float(p.drift.nu.std.evaluate(np.array([x]))[0])
    assert abs(np.mean(nu) - mu) < 5 * sd / math.sqrt(n)
    assert abs(np.std(nu) - sd) < 5 * sd / math.sqrt(2 * n)


def test_one_over_f_reads_and_relaxation_match_the_laws():
    p = load_profile("pcm").with_overrides({"programming.noise": {"kind": "none"}, "drift": {"kind": "none"}})
    n, g_t, t_s = 3000, 12.5, 1e3
    t = simulate_measurements(p, [g_t], [t_s], devices_per_target=n, reads=2, seed=4)
    g = t.g_us.reshape(n, 2)
    q = float(p.read_noise.q_s.evaluate(np.array([0.5]))[0])
    c2 = math.log((t_s + 20.0 + 250e-9) / (2 * 250e-9))
    rel = np.std(g, axis=0) / g_t  # every read an independent draw of the 1/f term
    assert np.all(np.abs(rel - q * math.sqrt(c2)) < 5 * q * math.sqrt(c2) / math.sqrt(2 * n))
    # the relaxation law alone (reram_cmo without its log10 read noise and its clamp)
    r = load_profile("reram_cmo").with_overrides({"programming.noise": {"kind": "none"}, "read_noise": {"kind": "none"},
                                                  "drift.clamp": False})
    t = simulate_measurements(r, [50.0], [10.0, 1e5], devices_per_target=n, reads=2, seed=5)
    g = t.g_us.reshape(n, 2, 2)
    np.testing.assert_array_equal(g[:, :, 0], g[:, :, 1])  # relaxation: one realisation per time, no read noise
    for j, tt in enumerate((10.0, 1e5)):
        mu, sig = -0.089 * math.log(tt), 0.042 * math.log(tt) + 0.4118
        assert abs(np.mean(g[:, j, 0]) - 50.0 - mu) < 5 * sig / math.sqrt(n)
        assert abs(np.std(g[:, j, 0]) - sig) < 5 * sig / math.sqrt(2 * n)


@pytest.mark.parametrize("kw, match", [
    ({"devices_per_target": 0}, "devices_per_target"),
    ({"reads": 1.5}, "reads"),
    ({"times_s": [0.0, 1.0]}, "times_s"),
    ({"targets_us": [-1.0]}, "targets_us"),
])
def test_bad_arguments(kw, match):
    args = {"targets_us": [1.0], "times_s": [1.0], "devices_per_target": 2, "reads": 1, **kw}
    with pytest.raises(ParameterError, match=match):
        simulate_measurements("pcm", args.pop("targets_us"), args.pop("times_s"), seed=0, **args)


def test_pandas_dataframe_in_and_out():
    pd = pytest.importorskip("pandas")  # the optional extra cimsim[fit]
    t = simulate_measurements("pcm", [5.0, 20.0], [1.0, 100.0, 1e4], devices_per_target=12, reads=2, seed=1)
    df = t.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["device", "g_target_us", "t_s", "g_us", "read"]
    from cimsim import fit_profile

    a = fit_profile(df, t0_s=20.0)
    b = fit_profile(t, t0_s=20.0)
    assert a.profile.drift == b.profile.drift and a.profile.programming == b.profile.programming


def test_log_one_over_f_reads_follow_the_relaxed_conductance_and_the_clamp_holds():
    """reram_cmo as shipped: read noise K |log10 G(t)| sqrt(ln((t + t_read)/(2 t_read))) on the
    relaxed G(t) (two reads of a device differ by it), and every read clamped to [g_min, g_max]."""
    p = load_profile("reram_cmo").with_overrides({"programming.noise": {"kind": "none"}})
    n, t_s = 4000, 1e4
    t = simulate_measurements(p, [50.0, 90.0], [t_s], devices_per_target=n, reads=2, seed=6)
    g = t.g_us.reshape(2, n, 2)
    k, tr = p.read_noise.coeff_us, p.read_noise.t_read_s
    c = math.sqrt(math.log((t_s + tr) / (2 * tr)))
    d = (g[0, :, 0] - g[0, :, 1]) / math.sqrt(2)  # the relaxation cancels; the read noise stays
    want = k * abs(math.log10(50.0)) * c
    assert abs(np.std(d) - want) < 5 * want / math.sqrt(2 * n) + 0.01 * want  # G(t) spreads |log10 G| by ~1 %
    assert g.min() >= p.conductance.g_min_us and g.max() <= p.conductance.g_max_us
    # at g_max: relaxation (mean -0.82 uS, sd 0.80 uS at 1e4 s) pushes about 15 % of reads above it
    assert np.mean(g[1] == p.conductance.g_max_us) > 0.1
