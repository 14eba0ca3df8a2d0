"""The ideal profile makes tile_mvm equal x @ W.T; the mapping has an exact inverse."""

import numpy as np
import pytest

from cimsim.crossbar import program_matrix, tile_mvm
from cimsim.profiles.loader import load_profile

SHAPES = [(1, 1), (7, 300), (256, 256), (300, 513), (33, 17)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("scaling", ["per_column", "per_tile", "per_layer"])
def test_ideal_equals_matmul(shape, batch, dtype, rtol, scaling):
    prof = load_profile("ideal", overrides={"tile.rows": 64, "tile.cols": 32, "mapping.scaling": scaling})
    rng = np.random.default_rng(0)
    W = rng.standard_normal(shape).astype(dtype)
    x = rng.standard_normal((batch, shape[1])).astype(dtype)
    st = program_matrix(W, prof, rng=1)
    y = tile_mvm(x, st, t_s=0, rng=2)
    ref = x.astype(np.float64) @ W.T.astype(np.float64)
    assert y.dtype == dtype and y.shape == (batch, shape[0])
    # tolerance: rtol of sum_j |x_j w_ij| (float rounding of the rescaling and the sums)
    scale = np.abs(x).astype(np.float64) @ np.abs(W.T).astype(np.float64)
    assert np.all(np.abs(y - ref) <= rtol * scale + 1e-30)
    np.testing.assert_allclose(st.effective_weights(0, 3), W, rtol=rtol, atol=0)


def test_ideal_zeros_large_and_1d():
    prof = load_profile("ideal")
    rng = np.random.default_rng(1)
    W = rng.standard_normal((40, 300)).astype(np.float32)
    st = program_matrix(W, prof, rng=1)
    assert np.all(tile_mvm(np.zeros((3, 300), np.float32), st, t_s=0, rng=0) == 0)
    x = (rng.standard_normal((4, 300)) * 1e6).astype(np.float32)
    y = tile_mvm(x, st, t_s=100.0, rng=0)
    np.testing.assert_allclose(y, x.astype(np.float64) @ W.T, rtol=2e-5 * 300 ** 0.5, atol=1e-3 * 1e6)
    y1 = tile_mvm(x[0], st, t_s=0, rng=0)
    assert y1.shape == (40,)
    np.testing.assert_array_equal(y1, tile_mvm(x[:1], st, t_s=0, rng=0)[0])
    Wz = np.zeros((3, 5), np.float32)
    assert np.all(tile_mvm(np.ones(5, np.float32), program_matrix(Wz, prof, rng=0), t_s=0, rng=0) == 0)


@pytest.mark.parametrize("kind", ["differential", "single_reference"])
@pytest.mark.parametrize("sub", ["analog", "digital"])
def test_mapping_round_trip(kind, sub):
    prof = load_profile("ideal", overrides={"mapping.kind": kind, "mapping.subtraction": sub, "tile.rows": 16,
                                            "tile.cols": 8, "conductance.g_min_us": 2.0, "conductance.g_max_us": 30.0})
    rng = np.random.default_rng(2)
    W = rng.standard_normal((20, 37))
    st = program_matrix(W, prof, rng=0)
    np.testing.assert_allclose(st.effective_weights(0, 0), W, rtol=1e-12, atol=1e-12)
    x = rng.standard_normal((3, 37))
    np.testing.assert_allclose(tile_mvm(x, st, t_s=0, rng=0), x @ W.T, rtol=1e-10, atol=1e-10)
    if kind == "differential":
        assert np.all(np.minimum(st.g_pos, st.g_neg) == 2.0)  # the unused device sits at g_min
    else:
        assert st.g_neg.shape == (3, 37) and np.all(st.g_neg == 16.0)  # one mid-range reference per tile row


def test_percentile_clipping():
    prof = load_profile("ideal", overrides={"mapping.clip_percentile": 50.0, "mapping.scaling": "per_layer"})
    W = np.arange(1, 11, dtype=np.float64)[None, :]
    st = program_matrix(W, prof, rng=0)
    s = np.percentile(np.abs(W), 50)
    np.testing.assert_allclose(st.effective_weights(0, 0), np.minimum(W, s))


def _column_current(g_us: np.ndarray, v: np.ndarray, r_ohm: float) -> float:
    """Current (µA for µS x V) into a virtual ground from one bit line, by dense nodal analysis:
    cell j drives g_j (v_j - node_j); wires of r_ohm join neighbours and the last node to ground."""
    n = g_us.size
    g = g_us * 1e-6
    M = np.diag(g + 1.0 / r_ohm + np.r_[0.0, np.full(n - 1, 1.0 / r_ohm)])
    M -= np.diag(np.full(n - 1, 1.0 / r_ohm), 1) + np.diag(np.full(n - 1, 1.0 / r_ohm), -1)
    node = np.linalg.solve(M, g * v)
    return node[-1] / r_ohm * 1e6


@pytest.mark.parametrize("kind", ["differential", "single_reference"])
def test_bit_line_ir_drop_equals_nodal_analysis(kind):
    """With ideal converters the chip's output equals a circuit solution of every bit line (cell 0
    of a tile farthest from the amplifier), the scales and the subtraction applied digitally."""
    r_ohm = 3000.0  # large against the ideal profile's 1 µS so that the drop is some 5-25 %
    prof = load_profile("ideal", overrides={"tile.rows": 16, "tile.cols": 4, "tile.bit_line_r_ohm": r_ohm,
                                            "mapping.kind": kind, "dac.range": {"kind": "fixed", "bound": 1.0}})
    rng = np.random.default_rng(7)
    W = rng.uniform(-1, 1, (6, 40))  # 3 input tiles (the last 8 rows), 2 output tiles (the last ragged)
    x = rng.uniform(-1, 1, (3, 40))
    st = program_matrix(W, prof, rng=1)
    y = tile_mvm(x, st, t_s=0, rng=2)
    dg = prof.conductance.g_max_us - prof.conductance.g_min_us
    w_unit = 1.0 / dg if kind == "differential" else 2.0 / dg
    want = np.zeros_like(y)
    for b in range(x.shape[0]):
        for o in range(W.shape[0]):
            neg = st.g_neg[o] if kind == "differential" else st.g_neg[o // 4]
            for k, k0 in enumerate(range(0, 40, 16)):
                sl = slice(k0, min(k0 + 16, 40))
                i_pos = _column_current(st.g_pos[o, sl], x[b, sl], r_ohm)
                i_neg = _column_current(neg[sl], x[b, sl], r_ohm)
                want[b, o] += st.scales[k, o] * w_unit * (i_pos - i_neg)
    np.testing.assert_allclose(y, want, rtol=1e-9, atol=1e-12)
    plain = tile_mvm(x, program_matrix(W, prof.with_overrides({"tile.bit_line_r_ohm": 0.0}), rng=1), t_s=0, rng=2)
    drop = np.abs(plain - y).max() / np.abs(plain).max()
    assert 0.02 < drop < 0.5, drop  # the drop is there, and the test's resistance is in a sane range
    # along one bit line the farther cell loses more: with positive weights (G+ carries them, G-
    # at g_min = 0 carries nothing) each weight keeps its cell's transfer, rising towards the amplifier
    if kind == "differential":
        W2 = rng.uniform(0.1, 1, (6, 16))
        ratio = program_matrix(W2, prof, rng=1).effective_weights(0, 0) / W2
        assert np.all(np.diff(ratio, axis=1) > 0) and np.all(ratio < 1) and ratio[:, -1].min() > 0.95


@pytest.mark.parametrize("sub", ["analog", "digital"])
@pytest.mark.parametrize("t_s", [0.0, 3600.0])
def test_bit_sliced_weights(sub, t_s):
    """mapping.weight_slices: S slice columns of base-n digits per weight, summed digitally, give
    the weight quantised to n^S magnitudes (exact with ideal converters and devices); the slices
    are separate devices (their own drift) and separate ADC conversions (their own saturation)."""
    n, S = 4, 3
    M = n**S - 1
    ov = {"conductance.n_levels": n, "mapping.weight_slices": S, "mapping.subtraction": sub, "tile.rows": 16,
          "tile.cols": 6, "mapping.scaling": "per_layer"}
    prof = load_profile("ideal", overrides=ov)
    rng = np.random.default_rng(4)
    W = rng.uniform(-1, 1, (7, 20))
    W[0, 0] = 1.0  # per-layer scale 1
    x = rng.uniform(-1, 1, (5, 20))
    st = program_matrix(W, prof, rng=0)
    assert st.shape == (7 * S, 20) and st.weight_shape == (7, 20)
    wq = np.sign(W) * np.rint(np.abs(W) * M) / M
    np.testing.assert_allclose(st.effective_weights(t_s, 1), wq, rtol=0, atol=1e-12)
    y, m = tile_mvm(x, st, t_s=t_s, rng=2, return_masks=True)
    np.testing.assert_allclose(y, x @ wq.T, rtol=1e-12, atol=1e-12)
    assert m.adc_sat.shape == (5, 2, 7)
    # 2 slices of base 4 cannot hold what 3 do: the coarser chip is further from W
    st2 = program_matrix(W, prof.with_overrides({"mapping.weight_slices": 2}), rng=0)
    assert np.abs(st2.effective_weights(0, 1) - W).max() > np.abs(wq - W).max()
    # the most significant slice saturates an 8-bit ADC with a small bound first; a saturated
    # slice marks its weight's tile output
    sat_prof = prof.with_overrides({"adc.bits": 8, "adc.range": {"kind": "fixed", "bound": 0.5}})
    _, m2 = tile_mvm(x, program_matrix(W, sat_prof, rng=0), t_s=0, rng=2, return_masks=True)
    assert m2.adc_sat.shape == (5, 2, 7) and m2.adc_sat.any()


def test_bit_sliced_pcm_slices_drift_on_their_own():
    """With PCM drift each slice device draws its own nu, so the weight's decay is the digit-weighted
    mix of its slices' decays (not one factor per weight)."""
    prof = load_profile("pcm", overrides={"conductance.n_levels": 4, "mapping.weight_slices": 2,
                                          "read_noise": {"kind": "none"}, "programming.noise": {"kind": "none"}})
    W = np.random.default_rng(1).uniform(-1, 1, (4, 30)).astype(np.float32)
    st = program_matrix(W, prof, rng=3)
    assert st.nu_pos.shape == (8, 30)
    w0, w1 = st.effective_weights(0, 0), st.effective_weights(3.15e7, 0)
    assert np.all(np.abs(w1) <= np.abs(w0) + 1e-6) and np.abs(w1).sum() < 0.8 * np.abs(w0).sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 300), (300, 513), (33, 17), (64, 64)])
def test_per_column_scales_are_each_tile_columns_max_abs(shape, dtype):
    """weight_scales (per_column): s[k, o] = max_{i in tile k} |W[o, i]| exactly (1 for an all-zero
    column), whatever the tile count and the ragged last tile; NaN/Inf rows give 1 and Inf."""
    from cimsim.crossbar.mapping import weight_scales
    from cimsim.crossbar.tiling import TileGrid

    prof = load_profile("ideal", overrides={"tile.rows": 64, "tile.cols": 32, "mapping.scaling": "per_column"})
    rng = np.random.default_rng(3)
    W = rng.standard_normal(shape).astype(dtype)
    W[0] = 0.0
    W[1, ::2] = -0.0
    W[2 % shape[0], -1] = -np.inf
    W[3 % shape[0], 0] = np.nan
    grid = TileGrid(shape[0], shape[1], 64, 32)
    s = weight_scales(W, prof.mapping, grid)
    ref = np.empty((grid.n_in_tiles, shape[0]))
    for k in range(grid.n_in_tiles):
        k0, k1 = grid.in_slice(k)
        with np.errstate(invalid="ignore"):
            ref[k] = np.max(np.abs(W[:, k0:k1]), axis=1)
    ref[~(ref > 0)] = 1.0
    assert s.dtype == np.float64 and s.tobytes() == ref.tobytes()
