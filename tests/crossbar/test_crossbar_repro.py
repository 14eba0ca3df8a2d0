"""Same seed -> same bits (1 thread vs all threads, numba vs fresh run); save -> load -> same bits."""

import dataclasses

import numba
import numpy as np
import pytest

from cimsim.crossbar import GlobalDriftCompensation, ProgrammedState, program_drifted, program_matrix, tile_mvm
from cimsim.errors import ParameterError
from cimsim.profiles.loader import load_profile

NOISY = {"read_noise.per_read_sigma_rel": 0.02, "adc.noise_lsb": 0.3, "adc.gain_error_rel": 0.01,
         "adc.offset_error_lsb": 0.5, "dac.noise_lsb": 0.2, "faults.stuck_at_g_min_rel": 0.01,
         "variability.g_max_spread_rel": 0.05, "tile.rows": 64, "tile.cols": 32}


def _run(prof, shape=(70, 150)):
    rng = np.random.default_rng(5)
    W = rng.standard_normal(shape).astype(np.float32)
    x = rng.standard_normal((9, shape[1])).astype(np.float32)
    st = program_matrix(W, prof, rng=11)
    y, m = tile_mvm(x, st, t_s=3600.0, rng=12, return_masks=True)
    return st, y, m, x


@pytest.mark.parametrize("sub", ["analog", "digital"])
def test_threads_bitwise(sub, monkeypatch):
    """Numba and torch on one thread with the chunk pool on one worker, the default threading, and
    torch on four threads (more than the cores here) all give the same bits."""
    import torch

    import cimsim._threads

    prof = load_profile("pcm", overrides={**NOISY, "mapping.subtraction": sub, "tile.bit_line_r_ohm": 100.0})
    if sub == "digital":  # relaxation instead of power-law drift (its draws in the chunk children)
        prof = prof.with_overrides({**RELAX, "mapping.kind": "single_reference"})
    shape = (300, 400)  # several row chunks
    n, n_torch = numba.get_num_threads(), torch.get_num_threads()
    runs = []
    try:
        numba.set_num_threads(1)
        torch.set_num_threads(1)
        with monkeypatch.context() as mp:
            mp.setattr(cimsim._threads, "n_workers", lambda: 1)
            runs.append(_run(prof, shape))
        numba.set_num_threads(n)
        torch.set_num_threads(n_torch)
        runs.append(_run(prof, shape))
        torch.set_num_threads(4)
        runs.append(_run(prof, shape))
    finally:
        numba.set_num_threads(n)
        torch.set_num_threads(n_torch)
    st1, y1, m1, _ = runs[0]
    for st2, y2, m2, _ in runs[1:]:
        np.testing.assert_array_equal(st1.g_pos, st2.g_pos)
        if st1.nu_neg is not None:
            np.testing.assert_array_equal(st1.nu_neg, st2.nu_neg)
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(m1.adc_sat, m2.adc_sat)
        np.testing.assert_array_equal(m1.x_q, m2.x_q)


def test_different_seed_differs_and_drifted_reuse():
    prof = load_profile("pcm", overrides=NOISY)
    st, y, _, x = _run(prof)
    # another programming seed: other devices, another output
    rng = np.random.default_rng(5)
    W = rng.standard_normal((70, 150)).astype(np.float32)
    st_b = program_matrix(W, prof, rng=13)
    assert not np.array_equal(st.g_pos, st_b.g_pos)
    assert not np.array_equal(tile_mvm(x, st_b, t_s=3600.0, rng=12), y)
    # same chip, another read seed: other drift 1/f noise and read noise, same programmed devices
    y_read_b = tile_mvm(x, st, t_s=3600.0, rng=14)
    assert not np.array_equal(y_read_b, y)
    # the differences are noise, not a different matrix: both reads agree to the noise level
    assert np.abs(y_read_b - y).max() < 0.2 * np.abs(y).max()
    # tile_mvm on a ProgrammedState == drift then tile_mvm on the snapshot with the same generator
    g = np.random.default_rng(12)
    ds2 = st.drift(3600.0, g)
    np.testing.assert_array_equal(tile_mvm(x, ds2, rng=g), y)
    # a drifted snapshot is reused: two reads of it with the same seed agree, other seeds differ
    ds = st.drift(3600.0, 12)
    y_a = tile_mvm(x, ds, rng=21)
    np.testing.assert_array_equal(tile_mvm(x, ds, rng=21), y_a)
    assert not np.array_equal(tile_mvm(x, ds, rng=22), y_a)


def test_save_load_bitwise(tmp_path):
    prof = load_profile("pcm", overrides={**NOISY, "adc.range": {"kind": "calibrated", "percentile": 99.0},
                                          "dac.range": {"kind": "calibrated"}})
    rng = np.random.default_rng(0)
    W = rng.standard_normal((40, 100)).astype(np.float32)
    x = rng.standard_normal((6, 100)).astype(np.float32)
    st = program_matrix(W, prof, rng=3).calibrate(x)
    path = tmp_path / "chip.npz"
    st.save(path)
    st2 = ProgrammedState.load(path)
    assert st2.profile == st.profile and st2.seed == 3 and st2.dac_bound == st.dac_bound
    np.testing.assert_array_equal(tile_mvm(x, st, t_s=1e5, rng=7), tile_mvm(x, st2, t_s=1e5, rng=7))
    for name in ("g_pos", "g_neg", "nu_pos", "fault_pos", "scales", "adc_gain", "adc_bound"):
        a, b = getattr(st, name), getattr(st2, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert st2.nbytes == st.nbytes
    c1 = GlobalDriftCompensation.from_state(st, 1)
    np.testing.assert_array_equal(tile_mvm(x, st, t_s=1e5, rng=7, compensation=c1),
                                  tile_mvm(x, st2, t_s=1e5, rng=7, compensation=GlobalDriftCompensation.from_state(st2, 1)))


def test_state_is_immutable():
    st, *_ = _run(load_profile("pcm"))
    with pytest.raises(ValueError):
        st.g_pos[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.seed = 3


def test_with_drift_false_is_the_same_chip_at_t0():
    """Skipping the drift exponents changes no other bit; such a chip refuses t > 0."""
    prof = load_profile("pcm")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((300, 200)).astype(np.float32)
    x = rng.standard_normal((5, 200)).astype(np.float32)
    full = program_matrix(W, prof, rng=4)
    lean = program_matrix(W, prof, rng=4, with_drift=False)
    assert lean.nu_pos is None and full.nu_pos is not None and lean.nbytes < full.nbytes
    np.testing.assert_array_equal(full.g_pos, lean.g_pos)
    np.testing.assert_array_equal(full.g_neg, lean.g_neg)
    np.testing.assert_array_equal(tile_mvm(x, full, t_s=0, rng=1), tile_mvm(x, lean, t_s=0, rng=1))
    with pytest.raises(ParameterError, match="with_drift=False"):
        lean.drift(10.0, 1)


RELAX = {"drift": {"kind": "relaxation", "mean_slope_us": -0.089, "sigma_slope_us": 0.042, "sigma_at_1s_us": 0.41},
         "conductance.g_min_us": 2.0, "faults.stuck_at_g_min_rel": 0.01}


@pytest.mark.parametrize("ov", [{}, {"mapping.kind": "single_reference"}, {"mapping.subtraction": "digital"},
                                {"read_noise.per_read_sigma_rel": 0.02, "faults.stuck_at_g_max_rel": 0.01},
                                RELAX, {**RELAX, "mapping.kind": "single_reference"},
                                {"mapping.kind": "single_reference", "read_noise.per_read_sigma_rel": 0.02,
                                 "mapping.subtraction": "digital", "tile.bit_line_r_ohm": 300.0},
                                {"tile.bit_line_r_ohm": 300.0, "read_noise.per_read_sigma_rel": 0.02},
                                {"conductance.n_levels": 4, "mapping.weight_slices": 2, "adc.noise_lsb": 0.5}])
@pytest.mark.parametrize("t_s", [0.0, 3.6e3])
def test_program_drifted_equals_program_then_drift(ov, t_s, tmp_path):
    """The fused chunk-by-chunk path gives the very snapshot of program_matrix(...).drift(...)."""
    prof = load_profile("pcm", overrides=ov)
    rng = np.random.default_rng(1)
    W = rng.standard_normal((700, 300)).astype(np.float32)  # several row chunks, ragged tiles
    x = rng.standard_normal((4, 300)).astype(np.float32)
    ref = program_matrix(W, prof, rng=5).drift(t_s, 6)
    got = program_drifted(W, prof, rng=5, t_s=t_s, read_rng=6)
    for name in ("w", "wn", "v", "vn"):
        a, b = getattr(ref, name), getattr(got, name)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ref.state.adc_gain, got.state.adc_gain)
    np.testing.assert_array_equal(tile_mvm(x, ref, rng=2), tile_mvm(x, got, rng=2))
    assert not got.state.devices_kept and got.state.nbytes < ref.state.nbytes
    with pytest.raises(ParameterError, match="not kept"):
        got.state.drift(1.0, 0)
    with pytest.raises(ParameterError, match="not kept"):
        got.state.save(tmp_path / "x.npz")


def test_wide_rows_on_the_pool_same_bits(monkeypatch):
    """Chunks of one very wide row draw > 65536 normals each: on pool threads the serial fast path
    runs (never a parallel Numba kernel from two threads), on the main thread the parallel one."""
    import cimsim._threads

    prof = load_profile("pcm")
    W = np.random.default_rng(0).standard_normal((3, 40_000)).astype(np.float32)
    a = program_matrix(W, prof, rng=2)
    with monkeypatch.context() as mp:
        mp.setattr(cimsim._threads, "n_workers", lambda: 1)
        b = program_matrix(W, prof, rng=2)
    for name in ("g_pos", "g_neg", "nu_pos", "nu_neg"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


_CALIBRATED = """
import sys, hashlib, numpy as np
from cimsim import load_profile, program_matrix, tile_mvm
p = load_profile("pcm", {"adc.range": {"kind": "calibrated", "percentile": 99.0}, "dac.range": {"kind": "calibrated"},
                         "tile.rows": 256})
rng = np.random.default_rng(11)
W = (rng.standard_normal((300, 520)) * 0.1).astype(np.float32)
x = rng.standard_normal((17, 520)).astype(np.float32)
st = program_matrix(W, p, rng=5).calibrate(x)
y = tile_mvm(x, st, t_s=3600.0, rng=7)
print(hashlib.sha256(np.asarray(st.adc_bound).tobytes() + y.tobytes()).hexdigest())
"""


def test_calibration_does_not_depend_on_blas_threads():
    """A calibrated chip is the same with OMP_NUM_THREADS=1 (one BLAS thread) as with the default:
    the calibration's products run on torch's GEMM (numpy's float32 matmul rounds differently with
    its thread count)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    outs = []
    for omp in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": omp, "OPENBLAS_NUM_THREADS": omp}
        outs.append(subprocess.run([sys.executable, "-c", _CALIBRATED], env=env, capture_output=True, text=True,
                                   check=True, timeout=300).stdout.strip())
    assert len(outs[0]) == 64 and outs[0] == outs[1]
