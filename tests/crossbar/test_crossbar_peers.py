"""Peripheral conventions of other simulators (issue 19): ADC bounds and noise in raw weight x
input units, iterative bound management, aihwkit's identity-matrix compensation readout."""

import numpy as np
import pytest

from cimsim.crossbar import program_matrix, tile_mvm
from cimsim.crossbar.snapshot import ManagedMvmMasks, MvmMasks
from cimsim.errors import ProfileError
from cimsim.profiles.loader import load_profile

Z = 5.0  # tolerance: 5 standard errors

SIGMA_OUT = 0.06  # aihwkit's default out_noise, raw units


def _adc_profile(units: str, bits: int = 12, bound: float = 12.0, **extra):
    """The ideal chip with one ADC: ``bound`` and output noise SIGMA_OUT in ``units`` (the noise
    given in LSB = bound / L), one 64 x 64 tile, one scale per tile (aihwkit's abs-max mapping)."""
    L = 2 ** (bits - 1) - 1
    adc = {"bits": bits, "range": {"kind": "fixed", "bound": bound}, "units": units,
           "noise_lsb": SIGMA_OUT * L / bound, **extra}
    return load_profile("ideal", overrides={"adc": adc, "tile.rows": 64, "tile.cols": 64,
                                            "mapping.scaling": "per_tile"})


@pytest.mark.parametrize("w_max", [0.05, 0.5, 2.0])
def test_raw_units_adc_noise_is_fixed_in_weight_units(w_max):
    """adc.units raw: the conversion noise is SIGMA_OUT in the units of y = x W^T whatever the
    weights' size (a layer with small weights sees the same absolute noise, so a relatively
    larger one); adc.units normalised: it is SIGMA_OUT s, s = max |W| of the tile."""
    rng = np.random.default_rng(3)
    W = rng.uniform(-1, 1, (64, 64))
    W *= w_max / np.abs(W).max()
    x = rng.uniform(-1, 1, (400, 64))
    x[:, 0] = 1.0  # |x|max = 1: the dynamic DAC range (ideal) leaves x_norm = x
    exact = x @ W.T
    n = exact.size
    for units, want in (("raw", SIGMA_OUT), ("normalised", SIGMA_OUT * w_max)):
        prof = _adc_profile(units, bound=64.0)  # |y| <= 64 s: nothing saturates
        ds = program_matrix(W, prof, rng=0).drift(0.0, 0)
        err = tile_mvm(x, ds, rng=1) - exact
        assert abs(err.mean()) < Z * want / np.sqrt(n)
        # the sample sd of a Gaussian has standard error sd / sqrt(2n); the 12-bit LSB adds
        # (64/2047)^2/12 of variance, 2 % of SIGMA_OUT^2, inside the tolerance
        assert err.std() == pytest.approx(want, rel=Z / np.sqrt(2 * n) + 0.012)


def test_raw_units_bound_saturates_at_the_raw_sum():
    """A raw bound of 1 clips y = x W^T at +-1 in weight units whatever the weight scale: a
    column whose true sum is 3 reads 1 (normalised units would clip at s, here 0.25)."""
    W = np.zeros((2, 64))
    W[0, :12] = 0.25  # s = 0.25, sum 3 for x = 1
    W[1, :2] = 0.25   # sum 0.5, inside the bound
    x = np.ones((1, 64))
    prof = load_profile("ideal", overrides={"adc": {"bits": 9, "range": {"kind": "fixed", "bound": 1.0}, "units": "raw"},
                                            "tile.rows": 64, "mapping.scaling": "per_tile"})
    y = tile_mvm(x, program_matrix(W, prof, rng=0), t_s=0.0, rng=0)
    np.testing.assert_allclose(y[0], [1.0, 0.5], rtol=0, atol=1.0 / 255)


def test_raw_units_need_a_fixed_range():
    with pytest.raises(ProfileError, match=r"units: raw needs range kind fixed"):
        load_profile("ideal", overrides={"adc": {"bits": 8, "range": {"kind": "calibrated"}, "units": "raw"}})


def _bm_profile(max_passes: int | None):
    bm = {"kind": "none"} if max_passes is None else {"kind": "iterative", "max_passes": max_passes}
    return load_profile("ideal", overrides={
        "adc": {"bits": 9, "range": {"kind": "fixed", "bound": 12.0}, "units": "raw", "bound_management": bm},
        "tile.rows": 64, "mapping.scaling": "per_tile"})


def test_iterative_bound_management_converges_and_counts_passes():
    """Column sums 40, 20 and 5 (input rows of 40, 20 and 5 ones on 40 unit weights) against a bound of
    12: iterative bound management halves a row's input scale until nothing saturates, so row
    0 needs 3 passes (40 -> 20 -> 10), row 1 two, row 2 one, and each reads within half an LSB
    of its kept pass (12 2^(p-1) / 255 / 2) of the exact sum.  Without it rows 0 and 1 clip at
    12; with max_passes 2, row 0 keeps pass 2, clipped at 24 and still flagged saturated."""
    W = np.zeros((3, 64))
    W[0, :40], W[1, :20], W[2, :5] = 1.0, 1.0, 1.0
    x = np.zeros((3, 64))
    x[0, :40], x[1, :20], x[2, :5] = 1.0, 1.0, 1.0  # abs-max 1 each: the ADC sees these sums
    cases = {None: ([12.0, 12.0, 5.0], [1, 1, 1], [True, True, False]),
             6: ([40.0, 20.0, 5.0], [3, 2, 1], [False, False, False]),
             2: ([24.0, 20.0, 5.0], [2, 2, 1], [True, False, False])}
    for max_passes, (col0, passes, sat0) in cases.items():
        st = program_matrix(W, _bm_profile(max_passes), rng=0)
        y, m = tile_mvm(x, st, t_s=0.0, rng=0, return_masks=True)
        np.testing.assert_allclose(y[:, 0], col0, rtol=0, atol=12 * 4 / 255 / 2)
        if max_passes is None:  # one read per row: the plain masks, as before bound management existed
            assert type(m) is MvmMasks
        else:
            assert isinstance(m, ManagedMvmMasks)
            np.testing.assert_array_equal(m.adc_passes, passes)
        np.testing.assert_array_equal(m.adc_sat[:, 0, 0], sat0)


def test_iterative_bound_management_needs_adc_bits():
    with pytest.raises(ProfileError, match=r"bound_management: kind iterative needs adc.bits"):
        load_profile("ideal", overrides={"adc.bound_management": {"kind": "iterative", "max_passes": 6}})


YEAR = 365.25 * 86400


def test_identity_readout_is_mean_abs_weight():
    """aihwkit's readout (kind global_aihwkit): the identity matrix through the chip, mean |y|.
    On a chip without read noise and an ideal ADC it is mean |W_eff| (each one-hot row reads one
    column of weights), and the factor at t is mean |W_eff(0)| / mean |W_eff(t)|."""
    from cimsim.crossbar import IdentityDriftCompensation

    rng = np.random.default_rng(0)
    W = rng.uniform(-1, 1, (20, 300))
    prof = load_profile("pcm", overrides={"read_noise": {"kind": "none"}, "adc.bits": None, "dac.bits": None})
    st = program_matrix(W, prof, rng=1)
    comp = IdentityDriftCompensation.from_state(st, 2)
    np.testing.assert_array_equal(comp.x_ref, np.eye(300))
    w0 = st.effective_weights(0.0, 0).astype(np.float64)
    assert float(comp.readout0) == pytest.approx(np.abs(w0).mean(), rel=1e-12)
    ds = st.drift(YEAR, 3)
    wt = ds.effective_weights().astype(np.float64)
    assert float(comp.factor(ds, 4)) == pytest.approx(np.abs(w0).mean() / np.abs(wt).mean(), rel=1e-12)


def test_identity_readout_is_blind_where_output_noise_dominates():
    """Small weights (max 0.05) under aihwkit's raw-unit output noise (0.06, 9-bit ADC, bound 12):
    each one-hot read is mostly noise, which does not drift, so the identity readout's factor
    at 10 years stays far below the true decay that cimsim's readout tracks (within 10 %)."""
    from cimsim.crossbar import GlobalDriftCompensation, IdentityDriftCompensation

    rng = np.random.default_rng(0)
    W = rng.uniform(-0.05, 0.05, (128, 256)).astype(np.float32)
    prof = load_profile("pcm", overrides={"adc": {"bits": 9, "range": {"kind": "fixed", "bound": 12.0},
                                                  "units": "raw", "noise_lsb": SIGMA_OUT * 255 / 12},
                                          "mapping.scaling": "per_tile"})
    st = program_matrix(W, prof, rng=1)
    ds = st.drift(10 * YEAR, 3)
    w0 = st.effective_weights(0.0, 0).astype(np.float64)
    true = np.abs(w0).sum() / np.abs(ds.effective_weights().astype(np.float64)).sum()
    f_id = float(IdentityDriftCompensation.from_state(st, 2).factor(ds, 4))
    f_cs = float(GlobalDriftCompensation.from_state(st, 2).factor(ds, 4))
    assert true > 1.8
    assert abs(f_cs / true - 1) < 0.10, (f_cs, true)
    assert f_id - 1 < 0.5 * (true - 1), (f_id, true)
