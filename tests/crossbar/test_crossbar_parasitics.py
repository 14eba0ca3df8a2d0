"""Word- and bit-line IR drop solved as one resistive network per tile (``tile.word_line_r_ohm``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cimsim.crossbar import program_matrix, tile_mvm
from cimsim.crossbar.parasitics import tile_transfer
from cimsim.errors import ProfileError
from cimsim.kernels import NUMBA as K
from cimsim.profiles.loader import load_profile


def _nodal(g: np.ndarray, r_word: float, r_bit: float) -> np.ndarray:
    """M [C, R] from a dense nodal analysis of the tile: word-line nodes a_ij, bit-line nodes
    b_ij, row drivers at the column-0 end, sense amplifiers (virtual ground) below row R - 1."""
    n_r, n_c = g.shape
    n = 2 * n_r * n_c
    a = np.zeros((n, n))
    rhs = np.zeros((n, n_r))
    gw, gb = 1e6 / r_word, 1e6 / r_bit

    def link(p, q, c):  # conductance c between nodes p and q (q None: to a fixed potential)
        a[p, p] += c
        if q is not None:
            a[p, q] -= c

    for i in range(n_r):
        for j in range(n_c):
            wn, bn = i * n_c + j, n_r * n_c + i * n_c + j
            if j == 0:
                link(wn, None, gw)
                rhs[wn, i] += gw  # driver at V_i
            else:
                link(wn, wn - 1, gw)
            if j < n_c - 1:
                link(wn, wn + 1, gw)
            link(wn, bn, g[i, j])
            if i > 0:
                link(bn, bn - n_c, gb)
            link(bn, bn + n_c if i < n_r - 1 else None, gb)  # the last row: to the amplifier
            link(bn, wn, g[i, j])
    volts = np.linalg.solve(a, rhs)
    return gb * volts[n_r * n_c + (n_r - 1) * n_c : n_r * n_c + n_r * n_c]


@pytest.mark.parametrize("shape", [(5, 4), (6, 1), (1, 5), (9, 7)])
def test_tile_transfer_equals_nodal_analysis(shape):
    rng = np.random.default_rng(sum(shape))
    g = rng.uniform(0, 25, shape)
    # the last pairs: bit lines far more resistive than the devices (the rows' Schur complements
    # differ a lot; the solver restarts from a safe guess), and the reverse
    for r_word, r_bit in ((2e3, 3e3), (500.0, 800.0), (3e3, 1e2), (10.0, 1e6), (1e6, 10.0)):
        m = tile_transfer(g, r_word, r_bit)
        want = _nodal(g, r_word, r_bit)
        np.testing.assert_allclose(m, want, rtol=1e-11, atol=1e-11 * np.abs(want).max())
    # one ideal kind of wire: the bit-line kernel (ideal word lines), G times the word-line voltage (ideal bit lines)
    u = np.empty(shape[::-1])
    K.bit_line_transfer(np.ascontiguousarray(g.T), 3e3 * 1e-6, shape[0], u)
    np.testing.assert_allclose(tile_transfer(g, 0.0, 3e3), g.T * u, rtol=1e-11)
    np.testing.assert_allclose(tile_transfer(g, 2e3, 0.0), _nodal(g, 2e3, 1e-9), rtol=1e-8)


@pytest.mark.parametrize("kind", ["differential", "single_reference"])
@pytest.mark.parametrize("sub", ["analog", "digital"])
def test_chip_output_equals_nodal_analysis_of_every_tile(kind, sub):
    r_word, r_bit = 3e4, 3e3  # large against the ideal profile's 1 µS: a drop of some 5-40 %
    prof = load_profile("ideal", overrides={"tile.rows": 6, "tile.cols": 4, "tile.word_line_r_ohm": r_word,
                                            "tile.bit_line_r_ohm": r_bit, "mapping.subtraction": sub,
                                            "mapping.kind": kind, "dac.range": {"kind": "fixed", "bound": 1.0}})
    rng = np.random.default_rng(3)
    W = rng.uniform(-1, 1, (7, 15))  # 3 x 2 tiles, ragged in both directions
    x = rng.uniform(-1, 1, (4, 15))
    st = program_matrix(W, prof, rng=1)
    y = tile_mvm(x, st, t_s=0, rng=2)
    dg = prof.conductance.g_max_us - prof.conductance.g_min_us
    w_unit = (1.0 if kind == "differential" else 2.0) / dg
    want = np.zeros_like(y)
    for k0 in range(0, 15, 6):
        k1 = min(k0 + 6, 15)
        for p, o0 in enumerate(range(0, 7, 4)):
            o1 = min(o0 + 4, 7)
            scale = st.scales[k0 // 6, o0:o1] * w_unit
            if kind == "differential":  # G+ and G-: two arrays, each its own network
                for g, sign in ((st.g_pos, 1.0), (st.g_neg, -1.0)):
                    m = _nodal(g[o0:o1, k0:k1].T.astype(np.float64), r_word, r_bit)
                    want[:, o0:o1] += sign * (x[:, k0:k1] @ m.T) * scale
            else:  # the tile's columns, then its reference column, on the same word lines
                g = np.vstack([st.g_pos[o0:o1, k0:k1], st.g_neg[p, k0:k1]]).T.astype(np.float64)
                m = _nodal(g, r_word, r_bit)
                want[:, o0:o1] += (x[:, k0:k1] @ m[:-1].T - (x[:, k0:k1] @ m[-1])[:, None]) * scale
    np.testing.assert_allclose(y, want, rtol=1e-9, atol=1e-12)
    plain = tile_mvm(x, program_matrix(W, prof.with_overrides({"tile.word_line_r_ohm": 0.0}), rng=1), t_s=0, rng=2)
    assert np.abs(plain - y).max() > 0.02 * np.abs(plain).max()  # the word lines matter at this resistance


def test_per_read_variance_follows_each_cell_and_threads_do_not_change_bits():
    prof = load_profile("pcm", overrides={"tile.rows": 32, "tile.cols": 16, "tile.word_line_r_ohm": 2.0,
                                          "tile.bit_line_r_ohm": 1.0, "mapping.subtraction": "digital",
                                          "read_noise.per_read_sigma_rel": 0.05})
    rng = np.random.default_rng(4)
    W = (rng.standard_normal((40, 70)) / 8).astype(np.float32)
    st = program_matrix(W, prof, rng=1)
    nt = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = st.drift(3600.0, 5)
        torch.set_num_threads(max(2, nt))
        many = st.drift(3600.0, 5)
    finally:
        torch.set_num_threads(nt)
    for a, b in ((one.w, many.w), (one.wn, many.wn), (one.v, many.v)):
        np.testing.assert_array_equal(a, b)
    # digital subtraction keeps G+ and G- apart: each cell's variance is (0.05 w)^2 of its own
    # effective weight w = w_unit M (the share M / G of its current that reaches the amplifier)
    np.testing.assert_allclose(one.v, (0.05 * one.w.astype(np.float64)) ** 2, rtol=2e-6, atol=1e-12)
    np.testing.assert_allclose(one.vn, (0.05 * one.wn.astype(np.float64)) ** 2, rtol=2e-6, atol=1e-12)
    # single_reference: the reference column's own per-read variance (one per tile, drawn apart)
    # is (0.05 w_ref)^2 of its effective weight, which every output row of the tile holds in wn
    ref = program_matrix(W, prof.with_overrides({"mapping.kind": "single_reference"}), rng=1).drift(3600.0, 5)
    for k in range(ref.state.grid.n_in_tiles):
        k0, k1 = ref.state.grid.in_slice(k)
        wn = ref.block(ref.wn, k).astype(np.float64)
        for p, o0 in enumerate(range(0, 40, 16)):
            np.testing.assert_allclose(ref.vref[p, k0:k1], (0.05 * wn[o0]) ** 2, rtol=2e-6, atol=1e-12)


def test_profile_refuses_word_lines_with_a_nonlinear_iv():
    iv = {"kind": "polynomial", "v_read_v": 0.2, "a2_per_v": {"kind": "constant", "value": 0.0},
          "a3_per_v2": {"kind": "constant", "value": 1.0}}
    with pytest.raises(ProfileError, match="nonlinear I-V with IR drop"):
        load_profile("pcm", overrides={"tile.word_line_r_ohm": 1.0, "iv": iv})
    with pytest.raises(ProfileError, match="word_line_r_ohm"):
        load_profile("pcm", overrides={"tile.word_line_r_ohm": -1.0})
