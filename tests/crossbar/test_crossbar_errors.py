"""Bad input raises a named error that says what is allowed."""

import dataclasses
import re

import numpy as np
import pytest

from cimsim.crossbar import ProgrammedState, program_matrix, tile_mvm
from cimsim.errors import CalibrationError, NonFiniteError, ParameterError, ShapeError, StateFormatError
from cimsim.profiles.loader import load_profile


@pytest.fixture(scope="module")
def state():
    return program_matrix(np.ones((4, 6), np.float32), load_profile("pcm"), rng=0)


@pytest.mark.parametrize("W,err,msg", [
    (np.array([[1.0, np.nan]]), NonFiniteError, r"W has 1 NaN/Inf.*\(0, 1\)"),
    (np.array([[np.inf, 1.0]]), NonFiniteError, r"NaN/Inf"),
    (np.ones(3), ShapeError, r"2-D \[out, in\].*\(3,\)"),
    (np.ones((0, 3)), ShapeError, r"out >= 1"),
])
def test_bad_w(W, err, msg):
    with pytest.raises(err, match=msg):
        program_matrix(W, load_profile("ideal"), rng=0)


def test_bad_x_and_time(state):
    with pytest.raises(ShapeError, match=r"x has shape \(2, 5\).*\(4, 6\).*\[batch, 6\]"):
        tile_mvm(np.ones((2, 5)), state, t_s=0, rng=0)
    with pytest.raises(NonFiniteError, match=r"x has 1 NaN/Inf"):
        tile_mvm(np.array([1, 2, 3, 4, 5, np.inf]), state, t_s=0, rng=0)
    for bad in (-1.0, float("nan"), float("inf"), "1"):
        with pytest.raises(ParameterError, match=r"t_s must be a finite number of seconds >= 0"):
            tile_mvm(np.ones(6), state, t_s=bad, rng=0)
    with pytest.raises(ParameterError, match=r"needs t_s"):
        tile_mvm(np.ones(6), state, rng=0)
    with pytest.raises(ParameterError, match=r"DriftedState at t_s=10.0; got t_s=5"):
        tile_mvm(np.ones(6), state.drift(10.0, 0), t_s=5, rng=0)
    with pytest.raises(ParameterError, match=r"seed must be a non-negative"):
        tile_mvm(np.ones(6), state, t_s=0, rng=-3)
    with pytest.raises(ParameterError, match=r"t_s must be"):
        state.drift(-5, 0)


def test_profile_that_is_not_a_device_profile():
    with pytest.raises(ParameterError, match=r"DeviceProfile \(got str: 'pcm'\); load it first: cimsim.load_profile\('pcm'\)"):
        program_matrix(np.ones((2, 2)), "pcm", rng=0)
    with pytest.raises(ParameterError, match=r"DeviceProfile \(got dict: \{\}\)$"):
        program_matrix(np.ones((2, 2)), {}, rng=0)


def test_lsb_without_bits_and_calibration():
    ideal = load_profile("ideal")
    bad = ideal.model_copy(update={"adc": ideal.adc.model_copy(update={"noise_lsb": 0.5})})  # bypasses validation
    with pytest.raises(ParameterError, match=r"adc.offset_error_lsb / adc.noise_lsb are in LSB and need adc.bits"):
        program_matrix(np.ones((2, 2)), bad, rng=0)
    prof = load_profile("pcm", overrides={"adc.range": {"kind": "calibrated"}})
    st = program_matrix(np.ones((2, 2)), prof, rng=0)
    with pytest.raises(CalibrationError, match=r"calibrate\(x_ref\)"):
        tile_mvm(np.ones(2), st, t_s=0, rng=0)


def test_bad_state_files(tmp_path, state):
    with pytest.raises(StateFormatError, match="no such file"):
        ProgrammedState.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(StateFormatError, match="not a cimsim state file"):
        ProgrammedState.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.ones(3))
    with pytest.raises(StateFormatError, match="__meta__"):
        ProgrammedState.load(other)
    good = tmp_path / "good.npz"
    state.save(good)
    data = dict(np.load(good))
    import json
    meta = json.loads(str(data["__meta__"]))
    meta["format"] = "cimsim.ProgrammedState/999"
    data["__meta__"] = np.array(json.dumps(meta))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **data)
    with pytest.raises(StateFormatError, match="/999"):
        ProgrammedState.load(bad)
    data = dict(np.load(good))
    del data["g_neg"]
    np.savez(bad, **data)
    with pytest.raises(StateFormatError, match="incomplete"):
        ProgrammedState.load(bad)


# ---------------------------------------------------------------- non-finite values, by stage
def test_overflowing_products_name_the_gemm_stage():
    # finite inputs whose products overflow float32: the first bad stage is the GEMM + ADC
    st = program_matrix(np.ones((3, 8), np.float32), load_profile("ideal"), rng=0)
    with pytest.raises(NonFiniteError, match=r"after the GEMM \+ ADC .*overflow float32 \(max \|x\| = 3e\+38\)"):
        tile_mvm(np.full((2, 8), 3e38, np.float32), st, t_s=0.0, rng=0)
    y = tile_mvm(np.full((2, 8), 1e30, np.float32), st, t_s=0.0, rng=0)  # no overflow: no error
    assert np.isfinite(y).all()


def test_nonfinite_state_names_programming_then_drift(state):
    g = state.g_pos.copy()
    g.reshape(-1)[3] = np.nan
    bad = state.replace(g_pos=g)
    with pytest.raises(NonFiniteError, match=r"values are NaN/Inf after the programming .*stage \(profile 'pcm'"):
        tile_mvm(np.ones(6), bad, t_s=10.0, rng=0)
    # a drifted snapshot whose weights hold a NaN (the state itself finite): the drift stage.
    # (An Inf would be clipped by pcm's ADC into a finite, saturated reading.)
    ds = state.drift(10.0, 0)
    w = ds.w.copy()
    w[0] = np.nan
    with pytest.raises(NonFiniteError, match=r"after the drift \(the weights read at t_s=10 s\) stage"):
        tile_mvm(np.ones(6), dataclasses.replace(ds, w=w), rng=0)


# ---------------------------------------------------------------- API edges: tensors in the numpy API
def test_tensors_with_grad_meta_and_complex():
    torch = pytest.importorskip("torch")
    p = load_profile("pcm")
    W = torch.randn(4, 6, requires_grad=True)
    st = program_matrix(W, p, rng=0)  # detached, not a raw "Can't call numpy()" error
    assert np.array_equal(st.g_pos, program_matrix(W.detach().numpy(), p, rng=0).g_pos)
    x = torch.randn(2, 6, requires_grad=True)
    assert np.array_equal(tile_mvm(x, st, t_s=0.0, rng=1), tile_mvm(x.detach().numpy(), st, t_s=0.0, rng=1))
    with pytest.raises(ParameterError, match=r"W is a tensor on the 'meta' device.*to_empty"):
        program_matrix(torch.ones(4, 6, device="meta"), p, rng=0)
    with pytest.raises(ParameterError, match=r"x is a tensor on the 'meta' device"):
        tile_mvm(torch.ones(2, 6, device="meta"), st, t_s=0.0, rng=1)
    with pytest.raises(ParameterError, match=r"x must be a real numeric array \(got dtype complex64\)"):
        tile_mvm(torch.ones(2, 6, dtype=torch.complex64), st, t_s=0.0, rng=1)


@pytest.mark.parametrize("dtype", ["complex64", "bool", "timedelta64[s]", "datetime64[s]", "U3", "object"])
def test_arrays_that_are_not_real_numbers_are_refused_by_name(dtype):
    """W and x must be real numbers (float, signed or unsigned int); numpy counts timedelta64 as
    an integer type, which is no weight or input either."""
    p = load_profile("pcm")
    st = program_matrix(np.ones((4, 6), np.float32), p, rng=0)
    bad = np.zeros((4, 6)).astype(dtype)
    with pytest.raises(ParameterError, match=rf"W must be a real numeric array \(got dtype {re.escape(str(bad.dtype))}\)"):
        program_matrix(bad, p, rng=0)
    with pytest.raises(ParameterError, match=rf"x must be a real numeric array \(got dtype {re.escape(str(bad.dtype))}\)"):
        tile_mvm(bad[:2], st, t_s=0.0, rng=1)
    for ok in ("float16", "int8", "uint16", "int64"):  # real numbers stay accepted
        assert tile_mvm(np.ones((2, 6), dtype=ok), st, t_s=0.0, rng=1).shape == (2, 4)
