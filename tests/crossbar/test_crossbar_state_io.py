"""Loading a state file checks every array before a kernel sees it, and its checksum."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cimsim.crossbar import ProgrammedState, program_matrix, tile_mvm
from cimsim.errors import StateFormatError
from cimsim.profiles import load_profile


def _state(name="pcm", **over):
    prof = load_profile(name, overrides={"tile.rows": 4, "tile.cols": 4, **over})
    return program_matrix(np.random.default_rng(0).normal(size=(6, 10)).astype(np.float32), prof, rng=1)


def _rewrite(tmp_path, st, **change):
    """Save ``st``, edit its arrays (None deletes one) and write them back without a checksum."""
    good = tmp_path / "good.npz"
    st.save(good)
    data = dict(np.load(good))
    for k, v in change.items():
        if v is None:
            del data[k]
        else:
            data[k] = v
    bad = tmp_path / "bad.npz"
    np.savez(bad, **data)
    return bad


def test_round_trip_and_checksum(tmp_path):
    st = _state()
    st.save(tmp_path / "s.npz")
    assert (tmp_path / "s.npz.sha256").is_file()
    back = ProgrammedState.load(tmp_path / "s.npz")
    assert np.array_equal(back.g_neg, st.g_neg) and back.shape == st.shape
    raw = bytearray((tmp_path / "s.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "s.npz").write_bytes(bytes(raw))
    with pytest.raises(StateFormatError, match=r"s\.npz: sha256 .* does not match"):
        ProgrammedState.load(tmp_path / "s.npz")


@pytest.mark.parametrize(
    "name, edit, match",
    [
        ("g_neg", lambda a: a[:1], r"array g_neg has shape \(1, 10\) dtype float32, expected shape \(6, 10\)"),
        ("nu_pos", lambda a: a[:1], r"array nu_pos has shape \(1, 10\).*expected shape \(6, 10\)"),
        ("g_pos", lambda a: a.astype(np.float16), r"array g_pos has shape \(6, 10\) dtype float16, expected .*float32 or float64"),
        ("g_neg", lambda a: a.astype(np.float64), r"array g_neg .* dtype float64, expected shape \(6, 10\) dtype float32"),
        ("g_pos", lambda a: np.where(a > a.mean(), np.nan, a), r"array g_pos .*NaN/Inf values, expected finite"),
        ("g_pos", lambda a: a - 1e6, r"array g_pos .*minimum.*expected values >= 0"),
        ("scales", lambda a: a[:, :2], r"array scales has shape \(3, 2\).*expected shape \(3, 6\)"),
        ("adc_gain", lambda a: a[0], r"array adc_gain has shape \(3, 6\).*expected shape \(1, 3, 6\)"),
        ("nu_neg", None, r"nu_pos but not the other"),
    ],
)
def test_bad_arrays_are_refused(tmp_path, name, edit, match):
    st = _state()
    bad = _rewrite(tmp_path, st, **{name: None if edit is None else edit(getattr(st, name))})
    with pytest.raises(StateFormatError, match=r"bad\.npz: " + match if not match.startswith("nu_pos") else match):
        ProgrammedState.load(bad)


def test_cut_g_neg_never_reaches_the_kernel(tmp_path):
    # the crash of the issue at a small shape: g_neg cut to one row, then an MVM
    st = _state()
    bad = _rewrite(tmp_path, st, g_neg=np.ascontiguousarray(st.g_neg[:1]))
    with pytest.raises(StateFormatError, match="g_neg"):
        tile_mvm(np.ones(10, np.float32), ProgrammedState.load(bad), t_s=1.0, rng=0)


def test_single_reference_and_faults(tmp_path):
    st = _state(**{"mapping.kind": "single_reference", "faults.stuck_at_g_min_rel": 0.1})
    assert st.g_neg.shape == (2, 10) and st.fault_pos is not None
    assert ProgrammedState.load(_rewrite(tmp_path, st)).g_neg.shape == (2, 10)
    bad = _rewrite(tmp_path, st, g_neg=np.concatenate([st.g_neg] * 3))
    with pytest.raises(StateFormatError, match=r"g_neg has shape \(6, 10\).*expected shape \(2, 10\)"):
        ProgrammedState.load(bad)
    codes = st.fault_pos.copy()
    codes[0, 0] = 3
    with pytest.raises(StateFormatError, match=r"fault_pos .*maximum 3.*values <= 2"):
        ProgrammedState.load(_rewrite(tmp_path, st, fault_pos=codes))
    with pytest.raises(StateFormatError, match=r"fault_neg is missing"):
        ProgrammedState.load(_rewrite(tmp_path, st, fault_neg=None))
    with pytest.raises(StateFormatError, match=r"fault_pos .*dtype int64"):
        ProgrammedState.load(_rewrite(tmp_path, st, fault_pos=st.fault_pos.astype(np.int64)))


def test_arrays_the_profile_does_not_have(tmp_path):
    st = _state()
    extra = _rewrite(tmp_path, st, fault_pos=np.zeros((6, 10), np.int8), fault_neg=np.zeros((6, 10), np.int8))
    if st.fault_pos is None:
        with pytest.raises(StateFormatError, match="has no stuck-at faults"):
            ProgrammedState.load(extra)
    data = dict(np.load(tmp_path / "good.npz"))
    meta = json.loads(str(data["__meta__"]))
    meta["shape"] = [6, 11]
    data["__meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "shape.npz", **data)
    with pytest.raises(StateFormatError, match=r"g_pos has shape \(6, 10\).*expected shape \(6, 11\)"):
        ProgrammedState.load(tmp_path / "shape.npz")


def test_a_save_that_dies_leaves_the_old_file(tmp_path, monkeypatch):
    st = _state()
    path = tmp_path / "s.npz"
    st.save(path)
    before = path.read_bytes()

    def dies_halfway(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        st.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["s.npz", "s.npz.sha256"]
    assert np.array_equal(ProgrammedState.load(path).g_pos, st.g_pos)
