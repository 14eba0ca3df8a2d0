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
