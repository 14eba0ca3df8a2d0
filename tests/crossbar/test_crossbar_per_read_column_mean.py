"""read_noise.per_read_variance: column_mean, the explicit approximation of the per-read variance
(no second GEMM): var_k[b, o] = (sum_{i in k} x[b, i]^2) mean_{i in k} V_k[o, i]."""

import math

import numpy as np
import pytest

from cimsim.crossbar import program_matrix, tile_mvm
from cimsim.crossbar.gemm import VarianceGemm
from cimsim.crossbar.mvm import mvm_plan
from cimsim.errors import ProfileError
from cimsim.kernels import engine
from cimsim.profiles.loader import load_profile

Z = 5.0  # tolerance: 5 standard errors


def _column_mean_f64(ds, x: np.ndarray) -> np.ndarray:
    """[T, B, O] float64: the approximation written out with einsum, apart from the module's helpers."""
    g = ds.state.grid
    out = []
    for k in range(g.n_in_tiles):
        i0, i1 = g.in_slice(k)
        xk = x[:, i0:i1].astype(np.float64)
        vk = ds.block(ds.v, k).astype(np.float64)
        out.append(np.einsum("bi,bi->b", xk, xk)[:, None] * (vk.sum(axis=1) / (i1 - i0))[None, :])
    return np.stack(out)


def _exact_f64(ds, x: np.ndarray) -> np.ndarray:
    g = ds.state.grid
    return np.stack([(x[:, slice(*g.in_slice(k))].astype(np.float64) ** 2) @ ds.block(ds.v, k).astype(np.float64).T
                     for k in range(g.n_in_tiles)])


def _variances(ds, x: np.ndarray, backend_name: str) -> np.ndarray:
    """The variance operand the engine hands the ADC kernel, all tiles in one group."""
    pl = mvm_plan(ds, engine(backend_name))
    n_t = ds.state.grid.n_in_tiles
    part = np.empty((n_t, x.shape[0], ds.state.grid.n_out), x.dtype)
    ops = pl.gemm.plane(x, (None, None), part)
    var, var16 = pl.gemm.group(ops, pl.streams[0], 0, n_t)
    assert var16.size == 0
    return np.array(var)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_mean_variance_formula_and_engines_bitwise(dtype):
    """Both engines hand the ADC the same bits, equal to the formula in float64 up to the chip
    dtype's rounding (a ragged last tile included), and no variance GEMM is planned."""
    prof = load_profile("pcm", overrides={"read_noise.per_read_sigma_rel": 0.05, "tile.rows": 64,
                                          "read_noise.per_read_variance": "column_mean"})
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((70, 150)) / 10).astype(dtype)
    x = np.maximum(rng.standard_normal((9, 150)), 0).astype(dtype)
    ds = program_matrix(W, prof, rng=0).drift(100.0, 1)
    assert ds.state.grid.n_in_tiles == 3
    got = {b: _variances(ds, x, b) for b in ("numba", "reference")}
    for b in got:
        assert mvm_plan(ds, engine(b)).gemm.var is VarianceGemm.COLUMN_MEAN
        assert got[b].dtype == dtype
    np.testing.assert_array_equal(got["numba"], got["reference"])
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(got["numba"], _column_mean_f64(ds, x), rtol=4 * eps, atol=0)
    # and it is an approximation: on these ReLU-like inputs some outputs differ from the exact sum
    ex = _exact_f64(ds, x)
    assert np.abs(got["numba"] / ex - 1).max() > 0.05


def test_column_mean_exact_when_a_column_has_one_variance():
    """Equal device variances along every tile column (gaussian read noise with sigma in µS,
    constant in x_P): the approximation equals the exact x^2 @ V^T."""
    prof = load_profile("ideal", overrides={"read_noise": {"kind": "gaussian", "sigma": {"kind": "constant", "value": 0.3},
                                                           "per_read_variance": "column_mean"},
                                            "tile.rows": 16})
    rng = np.random.default_rng(1)
    W = rng.uniform(-1, 1, (5, 40))
    x = rng.standard_normal((7, 40))
    ds = program_matrix(W, prof, rng=0).drift(0.0, 1)
    v = np.asarray(ds.v)
    assert np.ptp(v) == 0 and v[0] > 0  # one variance for every device
    np.testing.assert_allclose(_variances(ds, x, "numba"), _exact_f64(ds, x), rtol=1e-12)


def test_column_mean_output_variance_follows_the_approximation():
    """Repeated reads: var(y) matches (sum x^2) mean(V) within the sampling error (chi-square:
    relative standard error sqrt(2 / (n - 1))), and the exact sum is far outside it, so the
    test tells the two apart."""
    sig = 0.05
    prof = load_profile("ideal", overrides={"read_noise": {"kind": "gaussian", "sigma_rel": sig,
                                                           "per_read_variance": "column_mean"},
                                            "tile.rows": 8})
    W = np.array([[1.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 1.0]])
    x = np.array([[1.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]])
    st = program_matrix(W, prof, rng=0)
    ds = st.drift(0.0, 1)
    n = 20000
    y = tile_mvm(np.repeat(x, n, axis=0), ds, rng=4)
    # ideal converters: y's variance is the column's, times its weight scale squared
    sc2 = np.asarray(st.scales, np.float64).reshape(-1) ** 2
    want = sc2 * _column_mean_f64(ds, x)[0, 0]
    exact = sc2 * _exact_f64(ds, x)[0, 0]
    ratio = y.var(0, ddof=1) / want
    tol = Z * math.sqrt(2.0 / (n - 1))
    assert np.all(np.abs(ratio - 1) < tol), ratio
    assert np.all(np.abs(y.var(0, ddof=1) / exact - 1) > 10 * tol), exact / want


def test_per_read_variance_bad_value_names_field_and_choices():
    with pytest.raises(ProfileError) as e:
        load_profile("pcm", overrides={"read_noise.per_read_variance": "mean"})
    msg = str(e.value)
    assert "per_read_variance" in msg and "column_mean" in msg and "mean" in msg


def test_column_mean_is_opt_in():
    prof = load_profile("pcm", overrides={"read_noise.per_read_sigma_rel": 0.02})
    assert prof.read_noise.per_read_variance == "exact"
    W = np.random.default_rng(0).standard_normal((8, 300)).astype(np.float32)
    ds = program_matrix(W, prof, rng=0).drift(10.0, 1)
    assert mvm_plan(ds, engine("numba")).gemm.var in (VarianceGemm.BF16, VarianceGemm.BF16_AS_FP32)


_CUBIC = {"kind": "polynomial", "v_read_v": 0.2, "a2_per_v": {"kind": "constant", "value": 0.0},
          "a3_per_v2": {"kind": "constant", "value": 2.5}}


@pytest.mark.parametrize("ov", [{"mapping.subtraction": "digital"}, {"mapping.kind": "single_reference"},
                                {"mapping.kind": "single_reference", "mapping.subtraction": "digital"},
                                {"dac.bit_serial": True}, {"tile.bit_line_r_ohm": 20.0}, {"iv": _CUBIC},
                                {"conductance.n_levels": 4, "mapping.weight_slices": 2},
                                {"adc.bound_management": {"kind": "iterative", "max_passes": 3}}])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_mean_with_every_mvm_feature_engines_agree(ov, dtype):
    """column_mean through the streams, reference columns, bit planes, IR drop, I-V terms, weight
    slices and bound management: the Numba and reference kernel sets give the same reads (up to
    GEMM summation order) and the noise is there."""
    prof = load_profile("pcm", overrides={"read_noise.per_read_sigma_rel": 0.03, "tile.rows": 64, "tile.cols": 32,
                                          "read_noise.per_read_variance": "column_mean", **ov})
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((70, 150)) / 8).astype(dtype)
    x = rng.standard_normal((9, 150)).astype(dtype)
    st = program_matrix(W, prof, rng=1)
    ds = st.drift(10.0, 2)
    assert mvm_plan(ds, engine("numba")).gemm.var is VarianceGemm.COLUMN_MEAN
    y1 = tile_mvm(x, ds, rng=3)
    y2 = tile_mvm(x, st.drift(10.0, 2, backend_name="reference"), rng=3, backend_name="reference")
    assert np.isclose(y1, y2, rtol=1e-5, atol=1e-6).mean() > 0.99
    assert np.abs(y1 - y2).max() < 0.05 * np.abs(y1).max()
    assert not np.array_equal(y1, tile_mvm(x, ds, rng=4))
