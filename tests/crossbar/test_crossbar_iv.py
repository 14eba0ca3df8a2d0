"""Nonlinear device I-V (``iv.kind: polynomial``): I = G V (1 + a2(x) |V| + a3(x) V^2), per cell."""

from __future__ import annotations

import numpy as np
import pytest

from cimsim.crossbar import program_matrix, tile_mvm
from cimsim.errors import ProfileError
from cimsim.profiles.loader import load_profile

V_READ = 0.3
IV = {"kind": "polynomial", "v_read_v": V_READ, "a2_per_v": {"kind": "constant", "value": 0.4},
      "a3_per_v2": {"kind": "polynomial", "coeffs": [0.5, 2.0]}}  # a3(x) = 0.5 + 2 x


def _current(g: np.ndarray, xin: np.ndarray, g_max: float) -> np.ndarray:
    """Each cell's current per unit of v_read, a2 = 0.4 / V, a3 = 0.5 + 2 x / V^2 (x = G/g_max)."""
    v = xin * V_READ
    return g * xin * (1 + 0.4 * np.abs(v) + (0.5 + 2.0 * g / g_max) * v * v)


def _direct(st, x_norm: np.ndarray, g_max: float) -> np.ndarray:
    """y from the cells' currents: per input tile, column current (G+ minus G-, or G minus the tile's
    reference column) times w_unit times the tile column's scale, summed over the tiles."""
    p = st.profile
    dg = g_max - p.conductance.g_min_us
    w_unit = (1.0 if p.mapping.kind == "differential" else 2.0) / dg
    g_pos, g_neg = st.g_pos.astype(np.float64), st.g_neg[st.neg_row].astype(np.float64)
    y = np.zeros((x_norm.shape[0], st.shape[0]))
    for k in range(st.grid.n_in_tiles):
        k0, k1 = st.grid.in_slice(k)
        xs = x_norm[:, None, k0:k1]
        i_pos = _current(g_pos[None, :, k0:k1], xs, g_max).sum(axis=2)
        i_neg = _current(g_neg[None, :, k0:k1], xs, g_max).sum(axis=2)
        y += (i_pos - i_neg) * w_unit * st.scales[k][None, :]
    return y


@pytest.mark.parametrize("kind", ["differential", "single_reference"])
@pytest.mark.parametrize("sub", ["analog", "digital"])
def test_output_equals_the_cells_currents(kind, sub):
    """Ideal converters, no noise: the chip's output is the sum of every cell's nonlinear current."""
    prof = load_profile("ideal", overrides={"iv": IV, "tile.rows": 128, "tile.cols": 32, "mapping.kind": kind,
                                            "mapping.subtraction": sub, "conductance.g_min_us": 1.0,
                                            "conductance.g_max_us": 20.0})
    rng = np.random.default_rng(0)
    W = rng.standard_normal((70, 300)) * 0.1  # float64 chip; ragged tiles in both directions
    x = rng.standard_normal((5, 300))
    st = program_matrix(W, prof, rng=1)
    y = tile_mvm(x, st, t_s=0.0, rng=2)
    bound = np.abs(x).max(axis=1, keepdims=True)  # the ideal profile's per-vector (dynamic) DAC range
    want = _direct(st, x / bound, 20.0) * bound
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    linear = tile_mvm(x, program_matrix(W, prof.with_overrides({"iv": {"kind": "linear"}}), rng=1), t_s=0.0, rng=2)
    rel = np.abs(y - linear).max() / np.abs(linear).max()
    assert 0.01 < rel < 0.3, rel  # the nonlinearity is there, at the size the coefficients give
    np.testing.assert_allclose(st.drift(0.0, 2).effective_weights(), linear_w := st.effective_weights(0.0, 2))
    assert linear_w.shape == W.shape  # effective_weights: the low-field (linear) part


def test_zero_coefficients_give_the_ohmic_chip():
    prof = load_profile("pcm", overrides={"tile.rows": 64, "tile.cols": 32, "adc.bits": None})
    zero = {"kind": "polynomial", "v_read_v": 0.2, "a2_per_v": {"kind": "constant", "value": 0.0},
            "a3_per_v2": {"kind": "constant", "value": 0.0}}
    rng = np.random.default_rng(1)
    W = (rng.standard_normal((40, 100)) / 10).astype(np.float32)
    x = rng.standard_normal((8, 100)).astype(np.float32)
    y0 = tile_mvm(x, program_matrix(W, prof, rng=3), t_s=3600.0, rng=4)
    y1 = tile_mvm(x, program_matrix(W, prof.with_overrides({"iv": zero}), rng=3), t_s=3600.0, rng=4)
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-6 * np.abs(y0).max())  # same draws; float32 rounding


def test_bit_serial_planes_see_the_conductance_at_v_read():
    """Bit-serial inputs drive every row at 0 or +-v_read: each cell acts as G (1 + a2 v_r + a3 v_r^2)."""
    prof = load_profile("ideal", overrides={"iv": IV, "tile.rows": 32, "tile.cols": 16, "dac.bits": 4,
                                            "dac.bit_serial": True, "dac.range": {"kind": "fixed", "bound": 1.0},
                                            "conductance.g_max_us": 10.0})
    rng = np.random.default_rng(2)
    W = rng.standard_normal((20, 50)) * 0.2
    x = rng.uniform(-1, 1, (6, 50))
    st = program_matrix(W, prof, rng=1)
    y = tile_mvm(x, st, t_s=0.0, rng=2)
    code = np.rint(x * 7)  # 4-bit signed DAC, L = 7
    want = np.zeros_like(y)
    for p in range(3):
        plane = np.sign(code) * ((np.abs(code).astype(int) >> p) & 1)
        want += _direct(st, plane, 10.0) * 2.0**p / 7
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_backends_agree_and_calibration_sees_the_nonlinear_sums():
    prof = load_profile("pcm", overrides={"iv": IV, "tile.rows": 64, "read_noise.per_read_sigma_rel": 0.02,
                                          "adc.range": {"kind": "calibrated", "percentile": 100.0}})
    rng = np.random.default_rng(3)
    W = (rng.standard_normal((30, 100)) / 10).astype(np.float32)
    x = rng.standard_normal((16, 100)).astype(np.float32)
    st = program_matrix(W, prof, rng=1).calibrate(x)
    y1 = tile_mvm(x, st.drift(100.0, 2), rng=3)
    y2 = tile_mvm(x, st.drift(100.0, 2, backend_name="reference"), rng=3, backend_name="reference")
    close = np.isclose(y1, y2, rtol=1e-5, atol=1e-6)
    assert close.mean() > 0.99, close.mean()
    # percentile 100: the bound of each tile column is the largest |noise-free partial sum| over
    # x_ref, the I-V terms included (G at t = 0, no read noise; inputs through the 8-bit DAC)
    g_max = prof.conductance.g_max_us
    x_norm = np.rint(x / np.abs(x).max(axis=1, keepdims=True) * 127) / 127
    for k in range(st.grid.n_in_tiles):
        k0, k1 = st.grid.in_slice(k)
        tile = st.replace(shape=(30, k1 - k0), g_pos=st.g_pos[:, k0:k1], g_neg=st.g_neg[:, k0:k1], scales=np.ones((1, 30)))
        sums = _direct(tile, x_norm[:, k0:k1], g_max)
        np.testing.assert_allclose(st.adc_bound[k], np.abs(sums).max(axis=0), rtol=1e-5)


def test_profile_refuses_iv_with_ir_drop_and_bad_voltages():
    with pytest.raises(ProfileError, match="bit_line_r_ohm"):
        load_profile("pcm", overrides={"iv": IV, "tile.bit_line_r_ohm": 1.0})
    with pytest.raises(ProfileError, match="v_read_v"):
        load_profile("pcm", overrides={"iv": {**IV, "v_read_v": 0.0}})
    assert not load_profile("ideal", overrides={"iv": IV}).is_ideal


def test_a_term_with_a_zero_law_has_no_block_and_no_cost():
    """a2 = 0 (a sinh-like, odd cubic device): no W2 block, one extra GEMM, same output as W2 = 0."""
    cubic = {**IV, "a2_per_v": {"kind": "constant", "value": 0.0}}
    tiny = {**IV, "a2_per_v": {"kind": "constant", "value": 1e-300}}  # a block of zeros in float32
    prof = load_profile("ideal", overrides={"iv": cubic, "tile.rows": 16, "tile.cols": 8})
    rng = np.random.default_rng(5)
    W = rng.standard_normal((10, 40)).astype(np.float32)
    x = rng.standard_normal((3, 40)).astype(np.float32)
    ds = program_matrix(W, prof, rng=1).drift(0.0, 2)
    assert ds.w2 is None and ds.w3 is not None
    ds_zero = program_matrix(W, prof.with_overrides({"iv": tiny}), rng=1).drift(0.0, 2)
    assert ds_zero.w2 is not None and not ds_zero.w2.any()
    np.testing.assert_array_equal(tile_mvm(x, ds, rng=3), tile_mvm(x, ds_zero, rng=3))
