"""Statistics of the simulated chip against the profile; tolerances from the sample size."""

import math

import numpy as np
import pytest

from cimsim.crossbar import program_matrix, tile_mvm
from cimsim.profiles.loader import load_profile

Z = 5.0  # tolerance: 5 standard errors


def _sd_se(n):  # standard error of a sample standard deviation (normal data)
    return 1.0 / math.sqrt(2 * (n - 1))


def test_programming_noise_sigma_vs_target():
    prof = load_profile("pcm", overrides={"mapping.scaling": "per_layer"})
    x_t = np.array([1.0, 0.5, 0.1])
    W = np.repeat(x_t[:, None], 40000, axis=1).astype(np.float32)
    W[:, 0] = 1.0  # per-column scale = 1 -> targets x_t * 25 µS
    st = program_matrix(W, prof, rng=0)
    g = st.g_pos[:, 1:].astype(np.float64)
    table = {1.0: 1.0554, 0.5: 0.9527, 0.1: 0.4482}  # devices.md closed-form checks
    for i, x in enumerate(x_t):
        n = g.shape[1]
        sd = g[i].std(ddof=1)
        assert abs(sd / table[x] - 1) < Z * _sd_se(n), (x, sd)
        assert abs(g[i].mean() - 25 * x) < Z * table[x] / math.sqrt(n)
    # unused device: target 0 + N(0, 0.26348) clipped at 0 -> half of them exactly 0
    frac0 = np.mean(st.g_neg == 0)
    n = st.g_neg.size
    assert abs(frac0 - 0.5) < Z * math.sqrt(0.25 / n)


def test_nu_statistics_and_drift_slope():
    prof = load_profile("pcm", overrides={"read_noise": {"kind": "none"}, "programming.noise": {"kind": "none"}})
    W = np.ones((4, 50000), np.float32)
    st = program_matrix(W, prof, rng=1)
    nu = st.nu_pos.astype(np.float64).ravel()
    # x = 1: nu = |N(0.049, 0.008)| (folding negligible at 6 sigma)
    assert abs(nu.mean() - 0.049) < Z * 0.008 / math.sqrt(nu.size)
    assert abs(nu.std(ddof=1) / 0.008 - 1) < Z * _sd_se(nu.size)
    # drift with noise off: log G vs log((t+t0)/t0) has slope exactly -nu
    t0 = 20.0
    ts = np.array([0.0, 100.0, 1e4, 1e7])
    ws = np.stack([st.effective_weights(t, 0) for t in ts]).astype(np.float64)
    lr = np.log((ts + t0) / t0)
    slope = (np.log(ws[-1]) - np.log(ws[1])) / (lr[-1] - lr[1])
    np.testing.assert_allclose(-slope, st.nu_pos, rtol=2e-4, atol=1e-6)
    np.testing.assert_array_equal(ws[0], W)


@pytest.mark.parametrize("t", [0.0, 3600.0, 3.15e7])
def test_one_over_f_sigma(t):
    prof = load_profile("pcm", overrides={"programming.noise": {"kind": "none"}, "drift": {"kind": "none"},
                                          "mapping.scaling": "per_layer"})
    W = np.full((2, 50000), 0.5, np.float32)
    W[:, 0] = 1.0
    st = program_matrix(W, prof, rng=2)
    w = st.effective_weights(t, 3)[:, 1:].astype(np.float64).ravel()
    x = 0.5
    qs = min(0.0088 / x**0.65, 0.2)
    sd = x * qs * math.sqrt(math.log((t + 20 + 2.5e-7) / (2 * 2.5e-7)))  # relative to w_max = 1
    assert abs(w.std(ddof=1) / sd - 1) < Z * _sd_se(w.size)
    assert abs(w.mean() - x) < Z * sd / math.sqrt(w.size)


RELAX = {"kind": "relaxation", "mean_slope_us": -0.089, "mean_at_1s_us": 0.03, "sigma_slope_us": 0.042,
         "sigma_at_1s_us": 0.4118, "t_min_s": 1.0}


@pytest.mark.parametrize("t", [0.0, 0.25, 3600.0, 3.15e7])
def test_relaxation_shift_and_spread(t):
    """G(t) - G_prog ~ N(mu(t), sigma(t)) per device (Falcone et al. 2025 law), none at t = 0,
    the law read at t_min_s below it; stuck devices keep G_prog; both devices of a pair relax."""
    prof = load_profile("pcm", overrides={"drift": RELAX, "read_noise": {"kind": "none"}, "programming.noise": {"kind": "none"},
                                          "conductance.g_min_us": 5.0, "mapping.scaling": "per_layer",
                                          "mapping.subtraction": "digital", "faults.stuck_at_g_max_rel": 0.02})
    W = np.full((400, 250), 0.5, np.float32)  # one input tile: the blocks are [out, in]
    W[:, 0] = 1.0
    st = program_matrix(W, prof, rng=4)
    d0 = st.drift(0.0, 1)
    dt = st.drift(t, 1)
    dg = 25.0 - 5.0
    te = max(t, 1.0)
    mu = -0.089 * math.log(te) + 0.03 if t > 0 else 0.0
    sd = 0.042 * math.log(te) + 0.4118 if t > 0 else 0.0
    for name, fault in (("w", st.fault_pos), ("wn", st.fault_neg)):
        delta = (getattr(dt, name) - getattr(d0, name)).astype(np.float64).reshape(W.shape) * dg  # µS
        assert np.all(delta[fault != 0] == 0)  # stuck devices do not relax
        ok = delta[fault == 0]
        if t == 0:
            assert np.all(ok == 0)
            continue
        assert abs(ok.mean() - mu) < Z * sd / math.sqrt(ok.size), (name, ok.mean(), mu)
        assert abs(ok.std(ddof=1) / sd - 1) < Z * _sd_se(ok.size) + 1e-5, (name, ok.std(), sd)


def test_per_read_noise_output_variance():
    sig = 0.05
    prof = load_profile("ideal", overrides={"read_noise": {"kind": "gaussian", "sigma_rel": sig}, "tile.rows": 8})
    rng = np.random.default_rng(3)
    W = rng.uniform(-1, 1, (3, 20))
    W[:, 0] = 1.0
    x = rng.uniform(-1, 1, (1, 20))
    x[0, 0] = 1.0  # dynamic DAC bound = 1
    st = program_matrix(W, prof, rng=0)
    xs = np.repeat(x, 20000, axis=0)
    y = tile_mvm(xs, st, t_s=0, rng=4)
    # G+ and G- per weight (g_min = 0): w = G+ - G-, var = sum_j x_j^2 sig^2 (G+^2 + G-^2) = sig^2 sum x^2 w^2
    var = sig**2 * (x**2 @ (W**2).T)[0]
    n = xs.shape[0]
    np.testing.assert_allclose(y.mean(0), (x @ W.T)[0], atol=float(Z * np.sqrt(var.max() / n)))
    ratio = y.var(0, ddof=1) / var
    assert np.all(np.abs(ratio - 1) < Z * _sd_se(n)), ratio


@pytest.mark.parametrize("sub", ["analog", "digital"])
def test_per_read_noise_of_a_shared_reference_column(sub):
    """single_reference: one reference column per output tile, read once per input vector, so
    its per-read noise is common to the tile's outputs: the output covariance of two columns of
    one tile is its variance sum_j x_j^2 sig_ref_j^2, of two tiles 0; each column's variance
    adds its own devices'."""
    sig, cols = 0.05, 4
    prof = load_profile("ideal", overrides={"read_noise": {"kind": "gaussian", "sigma_rel": sig}, "tile.rows": 16,
                                            "tile.cols": cols, "mapping.kind": "single_reference",
                                            "mapping.subtraction": sub})
    rng = np.random.default_rng(3)
    W = rng.uniform(-1, 1, (10, 16))  # 3 output tiles, the last ragged
    W[:, 0] = 1.0
    x = rng.uniform(-1, 1, (1, 16))
    x[0, 0] = 1.0  # dynamic DAC bound = 1
    st = program_matrix(W, prof, rng=0)
    n = 40000
    y = tile_mvm(np.repeat(x, n, axis=0), st, t_s=0, rng=4).astype(np.float64)
    # w = s 2 (G - G_ref)/dg with s = 1 (per-column max-abs, every column holds a 1): noise in
    # weight units = (2/dg) sum_j x_j (n_oj - n_ref_j), n ~ N(0, (sig G)^2)
    c2 = (2.0 / (prof.conductance.g_max_us - prof.conductance.g_min_us)) ** 2 * sig**2
    own = c2 * (x**2 @ (st.g_pos.astype(np.float64) ** 2).T)[0]
    ref = c2 * (x**2 @ (st.g_neg.astype(np.float64) ** 2).T)[0]  # per output tile
    tile = np.arange(W.shape[0]) // cols
    cov = np.cov(y, rowvar=False)
    sd = np.sqrt(own + ref[tile])
    for o in range(W.shape[0]):
        for p in range(W.shape[0]):
            want = own[o] + ref[tile[o]] if o == p else (ref[tile[o]] if tile[o] == tile[p] else 0.0)
            se = sd[o] * sd[p] * math.sqrt((1 + (want / (sd[o] * sd[p])) ** 2) / (n - 1))
            assert abs(cov[o, p] - want) < Z * se, (o, p, cov[o, p], want)
    assert ref.min() > 0.5 * own.max() / 16  # the shared part is not negligible here


def test_single_reference_digital_has_one_reference_converter_per_tile():
    """Digital subtraction with a reference column: the reference of an output tile is converted
    once (one ADC: one gain and offset error, one conversion noise draw) and subtracted from
    every column of the tile, so two equal columns of one tile differ by their own conversions
    only (variance 2 v) and of two tiles by the references' too (4 v)."""
    cols = 4
    prof = load_profile("ideal", overrides={"mapping.kind": "single_reference", "mapping.subtraction": "digital",
                                            "tile.rows": 16, "tile.cols": cols, "adc.bits": 8,
                                            "adc.range": {"kind": "fixed", "bound": 8.0}, "adc.noise_lsb": 2.0,
                                            "adc.gain_error_rel": 0.01, "adc.offset_error_lsb": 0.5})
    rng = np.random.default_rng(6)
    W = np.tile(rng.uniform(-1, 1, (1, 16)), (8, 1))  # every column the same weights; 2 output tiles
    W[:, 0] = 1.0
    st = program_matrix(W, prof, rng=1)
    g1 = st.adc_gain[1]
    assert np.all(g1[:, :cols] == g1[:, :1]) and np.all(g1[:, cols:] == g1[:, cols : cols + 1])
    assert np.all(g1[:, 0] != g1[:, cols]) and np.all(st.adc_offset_lsb[1][:, 1] == st.adc_offset_lsb[1][:, 0])
    assert len(np.unique(st.adc_gain[0])) == st.adc_gain[0].size  # each column's own converter differs
    x = rng.uniform(-1, 1, (1, 16))
    x[0, 0] = 1.0
    n = 40000
    y = tile_mvm(np.repeat(x, n, axis=0), st, t_s=0, rng=2).astype(np.float64)
    same = np.var(y[:, 0] - y[:, 1], ddof=1)
    other = np.var(y[:, 0] - y[:, cols], ddof=1)
    assert abs(other / same - 2.0) < 0.1, (same, other)


def test_level_count_and_stochastic_rounding():
    prof = load_profile("ideal", overrides={"conductance.n_levels": 5})
    W = np.linspace(-1, 1, 1001)[None, :]
    st = program_matrix(W, prof, rng=0)
    assert np.unique(st.g_pos).size == 5 and np.unique(st.g_neg).size == 5
    np.testing.assert_allclose(np.unique(st.g_pos), np.linspace(0, 1, 5), atol=1e-7)
    prof = load_profile("ideal", overrides={"conductance.n_levels": 5, "programming.stochastic_rounding": True,
                                            "mapping.scaling": "per_layer"})
    W = np.full((1, 100000), 0.1)
    W[0, 0] = 1.0
    g = program_matrix(W, prof, rng=1).g_pos[0, 1:]
    assert set(np.unique(g)) == {0.0, 0.25}
    p_up = 0.1 / 0.25
    assert abs(np.mean(g == 0.25) - p_up) < Z * math.sqrt(p_up * (1 - p_up) / g.size)
    assert abs(g.mean() - 0.1) < Z * 0.25 * math.sqrt(p_up * (1 - p_up) / g.size)


def test_fault_rates_and_variability():
    prof = load_profile("pcm", overrides={"faults.stuck_at_g_min_rel": 0.02, "faults.stuck_at_g_max_rel": 0.05,
                                          "variability.g_max_spread_rel": 0.1, "programming.noise": {"kind": "none"},
                                          "mapping.scaling": "per_layer"})
    W = np.full((10, 20000), 0.5, np.float32)
    W[:, 0] = 1.0
    st = program_matrix(W, prof, rng=0)
    codes = np.concatenate([st.fault_pos.ravel(), st.fault_neg.ravel()])
    n = codes.size
    for c, p in ((1, 0.02), (2, 0.05)):
        assert abs(np.mean(codes == c) - p) < Z * math.sqrt(p * (1 - p) / n)
    assert np.all(st.g_pos[st.fault_pos == 2] == 25.0) and np.all(st.g_pos[st.fault_pos == 1] == 0.0)
    assert np.all(st.nu_pos[st.fault_pos != 0] == 0)  # stuck devices never drift
    ok = st.g_pos[:, 1:][st.fault_pos[:, 1:] == 0].astype(np.float64)
    assert abs(ok.std(ddof=1) / (12.5 * 0.1) - 1) < Z * _sd_se(ok.size)
    w_late = st.effective_weights(1e7, 0)
    stuck = st.fault_pos == 2
    # stuck-at-g_max G+ keeps its value; with 1/f noise the mean over many stays at 25 µS
    assert abs(w_late[stuck & (st.fault_neg == 0)].mean() - 1.0) < 0.05


def test_adc_codes_and_saturation():
    bits = 4
    prof = load_profile("ideal", overrides={"adc.bits": bits, "adc.range": {"kind": "fixed", "bound": 2.0},
                                            "dac.range": {"kind": "fixed", "bound": 1.0}, "tile.rows": 4})
    W = np.ones((1, 4))
    x = np.linspace(-1, 1, 4001)[:, None] * np.ones((1, 4))
    st = program_matrix(W, prof, rng=0)
    y, m = tile_mvm(x, st, t_s=0, rng=0, return_masks=True)
    L = 2 ** (bits - 1) - 1
    codes = np.unique(np.round(y[:, 0] / 2.0 * L, 6))
    assert codes.size == 2 * L + 1 and codes.min() == -L and codes.max() == L
    pre = x.sum(1)
    np.testing.assert_array_equal(m.adc_sat[:, 0, 0], np.abs(pre) > 2.0)
    assert np.all(np.abs(y[:, 0]) <= 2.0 + 1e-12)


def test_dac_clipping_fixed_range():
    prof = load_profile("ideal", overrides={"dac.bits": 8, "dac.range": {"kind": "fixed", "bound": 1.0}})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 50))
    st = program_matrix(np.eye(50), prof, rng=0)
    y, m = tile_mvm(x, st, t_s=0, rng=0, return_masks=True)
    np.testing.assert_array_equal(m.dac_clip, np.abs(x) > 1.0)
    np.testing.assert_allclose(m.x_q, np.round(np.clip(x, -1, 1) * 127) / 127, atol=1e-12)
    np.testing.assert_allclose(y, m.x_q, atol=1e-12)


def test_conversion_noise_and_static_errors():
    prof = load_profile("ideal", overrides={"adc.bits": 8, "adc.range": {"kind": "fixed", "bound": 1.0},
                                            "adc.noise_lsb": 2.0, "tile.rows": 4})
    W = np.array([[0.5, 0, 0, 0]])
    W[0, 0] = 0.5
    st = program_matrix(np.array([[1.0, 0, 0, 0]]), prof, rng=0)
    x = np.tile([[0.3, 0, 0, 0]], (40000, 1))
    x[:, 1] = 1.0  # bound 1
    y = tile_mvm(x, st, t_s=0, rng=1)[:, 0]
    lsb = 1.0 / 127
    sd = y.std(ddof=1) / lsb
    expect = math.sqrt(4.0 + 1 / 12)  # Gaussian noise + rounding (dithered)
    assert abs(sd / expect - 1) < Z * _sd_se(y.size) + 0.01
    prof = load_profile("ideal", overrides={"adc.bits": 8, "adc.gain_error_rel": 0.1, "adc.offset_error_lsb": 3.0,
                                            "tile.rows": 4})
    st = program_matrix(np.ones((5000, 4)), prof, rng=2)
    g = st.adc_gain.ravel()
    o = st.adc_offset_lsb.ravel()
    assert abs(g.std(ddof=1) / 0.1 - 1) < Z * _sd_se(g.size)
    assert abs(o.std(ddof=1) / 3.0 - 1) < Z * _sd_se(o.size)


def test_calibrated_ranges():
    prof = load_profile("pcm", overrides={"adc.range": {"kind": "calibrated", "percentile": 100.0},
                                          "dac.range": {"kind": "calibrated", "percentile": 100.0}})
    rng = np.random.default_rng(0)
    W = rng.standard_normal((8, 300)).astype(np.float32)
    x = rng.standard_normal((50, 300)).astype(np.float32)
    st = program_matrix(W, prof, rng=0).calibrate(x)
    assert st.dac_bound == pytest.approx(np.abs(x).max())
    assert st.adc_bound.shape == (2, 8)
    y, m = tile_mvm(x, st, t_s=0, rng=1, return_masks=True)
    assert not m.dac_clip.any()
    assert m.adc_sat.mean() < 0.05  # only read noise can push a column past its calibrated 100th percentile


def test_bit_serial_inputs_convert_every_plane():
    """Bit-serial DAC: each bit plane of the input code is converted by the ADC on its own and
    weighed by 2^p / L. With an ideal ADC that is exactly the bit-parallel product; the ADC
    conversion noise of plane p enters with weight 2^p / L, so the output variance is
    sum_p (2^p / L)^2 times one conversion's (about a third of the bit-parallel one)."""
    base = {"dac.bits": 6, "dac.range": {"kind": "fixed", "bound": 1.0}, "tile.rows": 32, "mapping.scaling": "per_layer"}
    rng = np.random.default_rng(9)
    W = rng.uniform(-1, 1, (5, 32))
    W[0, 0] = 1.0
    x = rng.uniform(-1, 1, (1, 32))
    ideal = load_profile("ideal", overrides=base)
    serial = ideal.with_overrides({"dac.bit_serial": True})
    y_par = tile_mvm(x, program_matrix(W, ideal, rng=1), t_s=0, rng=2)
    y_ser = tile_mvm(x, program_matrix(W, serial, rng=1), t_s=0, rng=2)
    np.testing.assert_allclose(y_ser, y_par, rtol=1e-12, atol=1e-12)
    L = 31
    noisy = {"adc.bits": 12, "adc.range": {"kind": "fixed", "bound": 8.0}, "adc.noise_lsb": 3.0}
    n = 20000
    xs = np.repeat(x, n, axis=0)
    var = {}
    for name, prof in (("parallel", ideal), ("serial", serial)):
        p = prof.with_overrides(noisy)
        var[name] = tile_mvm(xs, program_matrix(W, p, rng=1), t_s=0, rng=3).astype(np.float64).var(0, ddof=1)
    lsb = 8.0 / 2047  # one ADC LSB in normalised column units (per_layer scale 1, DAC bound 1)
    one = (3.0**2 + 1.0 / 12) * lsb**2  # one conversion: noise plus (dithered) rounding
    want = {"parallel": one, "serial": one * sum((2.0**p / L) ** 2 for p in range(5))}
    for name in var:
        assert np.all(np.abs(var[name] / want[name] - 1) < Z * _sd_se(n) + 0.02), (name, var[name], want[name])


def test_bit_serial_calibrated_adc_bound_is_the_planes_percentile():
    """A calibrated ADC range on a bit-serial chip is set from what the ADC converts: the column
    sums of the input's bit planes (here the 100th percentile: their largest magnitude)."""
    prof = load_profile("ideal", overrides={"dac.bits": 4, "dac.range": {"kind": "fixed", "bound": 1.0},
                                            "dac.bit_serial": True, "adc.bits": 8, "tile.rows": 8,
                                            "adc.range": {"kind": "calibrated", "percentile": 100.0},
                                            "mapping.scaling": "per_layer"})
    rng = np.random.default_rng(2)
    W = rng.uniform(-1, 1, (3, 12))
    W[0, 0] = 1.0
    x = rng.uniform(-1, 1, (50, 12))
    st = program_matrix(W, prof, rng=0).calibrate(x)
    code = np.rint(np.clip(x, -1, 1) * 7).astype(int)
    planes = [np.sign(code) * ((np.abs(code) >> p) & 1) for p in range(3)]
    for k, (k0, k1) in enumerate([(0, 8), (8, 12)]):
        want = np.max([np.abs(pl[:, k0:k1] @ W[:, k0:k1].T).max(axis=0) for pl in planes], axis=0)
        np.testing.assert_allclose(st.adc_bound[k], want, rtol=1e-12)


def test_sonos_programming_spread_and_read_noise_laws():
    """sonos: programming spread sigma_I = 19.89 (1 - exp(-I / 176.3)) nA and per-MVM read noise
    sigma_I = 12.58 (1 - exp(-I / 215.4)) nA (Agrawal et al. 2022; 1 V read: nA -> 1e-3 uS)."""
    prof = load_profile("sonos", overrides={"mapping.scaling": "per_layer", "read_noise.sigma": None})
    targets_na = np.array([3200.0, 800.0, 100.0])
    W = np.repeat((targets_na / 3200)[:, None], 30000, axis=1).astype(np.float32)
    W[:, 0] = 1.0
    st = program_matrix(W, prof, rng=0)
    for i, i_na in enumerate(targets_na):
        g = st.g_pos[i, 1:].astype(np.float64)
        want = 19.89 * (1 - math.exp(-i_na / 176.3)) * 1e-3
        assert abs(g.std(ddof=1) / want - 1) < Z * _sd_se(g.size), (i_na, g.std(), want)
    # read noise: output variance sum_j x_j^2 (sigma(G+_j)^2 + sigma(G-_j)^2) w_unit^2, sigma of the
    # programmed G (devices at g_min = 0 add nothing: sigma(0) = 0)
    quiet = load_profile("sonos", overrides={"programming.noise": {"kind": "none"}, "dac.bits": None,
                                             "adc.bits": None, "mapping.scaling": "per_layer", "tile.rows": 64})
    rng = np.random.default_rng(1)
    W2 = rng.uniform(-1, 1, (4, 64))
    W2[0, 0] = 1.0
    x = rng.uniform(-1, 1, (1, 64))
    x[0, 0] = 1.0
    st2 = program_matrix(W2, quiet, rng=0)
    n = 20000
    y = tile_mvm(np.repeat(x, n, axis=0), st2, t_s=0, rng=3).astype(np.float64)

    def sig(g_us):
        return 12.58e-3 * (1 - np.exp(-g_us * 1000 / 215.4))

    var = (x**2 @ (sig(st2.g_pos) ** 2 + sig(st2.g_neg) ** 2).T)[0] / 3.2**2
    assert np.all(np.abs(y.var(0, ddof=1) / var - 1) < Z * _sd_se(n)), (y.var(0), var)
