"""Hostile inputs to the loader: paths that are not files, shared-reference bombs, extends
targets that are not profiles.  Each must fail fast with a ProfileError naming the problem."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cimsim.errors import ProfileError
from cimsim.profiles import load_profile, profile_from_dict, profile_from_yaml
from cimsim.profiles.loader import MAX_PROFILE_BYTES, MAX_PROFILE_VALUES, MODELS_DIR

PCM_TEXT = (MODELS_DIR / "pcm.yaml").read_text(encoding="utf-8")


def _fails_within(seconds: float, fn, *args, **kwargs) -> str:
    """Run ``fn`` in a daemon thread; its ProfileError message, failing the test if it takes longer."""
    out: dict[str, BaseException | None] = {}

    def target() -> None:
        try:
            fn(*args, **kwargs)
            out["exc"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            out["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} still running after {seconds} s"
    exc = out["exc"]
    assert isinstance(exc, ProfileError), f"expected ProfileError, got {exc!r}"
    return str(exc)


# ------------------------------------------------------------------------ item 7: not a regular file
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_opening(tmp_path: Path) -> None:
    fifo = tmp_path / "x.yaml"
    os.mkfifo(fifo)
    msg = _fails_within(5, load_profile, fifo)
    assert "x.yaml: a FIFO (named pipe), not a profile file" in msg
    assert f"at most {MAX_PROFILE_BYTES} bytes" in msg
    base = tmp_path / "d.yaml"
    base.write_text("extends: x.yaml\n", encoding="utf-8")
    msg = _fails_within(5, load_profile, base)
    assert "d.yaml: extends: " in msg and "x.yaml: a FIFO (named pipe), not a profile file" in msg


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_is_refused_without_reading() -> None:
    msg = _fails_within(5, load_profile, "/dev/zero")
    assert msg.startswith("/dev/zero: a character device, not a profile file (profiles are regular files of at most 16777216 bytes")
    msg = _fails_within(5, profile_from_dict, {"extends": "/dev/zero", "name": "x"})
    assert "extends: /dev/zero: a character device, not a profile file" in msg


def test_directory_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "dir.yaml"
    d.mkdir()
    with pytest.raises(ProfileError, match=r"dir\.yaml: a directory, not a profile file"):
        load_profile(d)


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:  # sparse: costs no disk
        f.truncate(MAX_PROFILE_BYTES + 1)
    msg = _fails_within(5, load_profile, big)
    assert f"big.yaml: {MAX_PROFILE_BYTES + 1} bytes, not a profile file" in msg
    assert f"at most {MAX_PROFILE_BYTES} bytes (16 MiB)" in msg


def test_symlink_to_a_profile_still_loads(tmp_path: Path) -> None:
    link = tmp_path / "link.yaml"
    link.symlink_to(MODELS_DIR / "pcm.yaml")
    assert load_profile(link) == load_profile("pcm")


# ------------------------------------------------------------------------ item 8: shared-reference bombs
def _bomb(levels: int = 9, width: int = 9):
    x: object = 1.0
    for _ in range(levels):
        x = [x] * width  # 9^9 = 387 million leaves, 9 lists in memory
    return x


@pytest.mark.parametrize("where", ["assumptions", "dac.nonlinearity", "adc"])
def test_shared_list_bomb_in_dict_fails_fast(where: str) -> None:
    data: dict = {"name": "x", "conductance": {"g_max_us": 1.0}}
    if where == "assumptions":
        data["assumptions"] = _bomb()
    elif where == "dac.nonlinearity":
        data["dac"] = {"nonlinearity": {"kind": "table", "u": _bomb(), "v": [0, 1]}}
    else:
        data["adc"] = {"x": {"y": _bomb()}}
    t0 = time.perf_counter()
    msg = _fails_within(30, profile_from_dict, data, source="bomb.yaml")
    assert time.perf_counter() - t0 < 0.5
    assert msg.startswith(f"bomb.yaml: {where}") and f": holds more than {MAX_PROFILE_VALUES} values once shared parts" in msg


def test_shared_dict_bomb_in_overrides_fails_fast() -> None:
    x: object = {"k": 1}
    for _ in range(9):
        x = {f"k{i}": x for i in range(9)}
    t0 = time.perf_counter()
    msg = _fails_within(30, load_profile, "pcm", {"assumptions": _bomb(), "adc.range": x})
    assert time.perf_counter() - t0 < 0.5
    assert f"pcm.yaml (with overrides): assumptions[8][8]: holds more than {MAX_PROFILE_VALUES} values" in msg


def test_numpy_array_counts_its_elements() -> None:
    huge = np.broadcast_to(np.float64(0.5), (MAX_PROFILE_VALUES + 1,))  # no memory behind it
    msg = _fails_within(5, load_profile, "pcm", {"dac.nonlinearity.coeffs": huge})
    assert f"holds more than {MAX_PROFILE_VALUES} values" in msg


def test_yaml_billion_laughs_fails_fast() -> None:
    lines = ["name: x", "conductance: {g_max_us: 1}", "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    lines.append("assumptions: *a9")
    t0 = time.perf_counter()
    msg = _fails_within(30, profile_from_yaml, "\n".join(lines), source="laughs.yaml")
    assert time.perf_counter() - t0 < 0.5
    assert re.match(rf"laughs\.yaml: (assumptions|a\d)(\[8\])*: holds more than {MAX_PROFILE_VALUES} values", msg), msg


def test_shared_but_small_structures_still_load() -> None:
    row = [0.0, 1.0]
    p = load_profile("pcm", {"assumptions": ["a"] * 1000, "dac.nonlinearity": {"kind": "table", "u": [-1, 1], "v": row}})
    assert len(p.assumptions) == 1000 and p.dac.nonlinearity.v == row  # type: ignore[union-attr]


# ------------------------------------------------------------------------ item 9: extends never echoes a file
SECRET = "root:x:0:0:s3cr3t-first-line:/root:/bin/bash"


@pytest.mark.parametrize(
    "content",
    [
        f"{SECRET}\nd4emon:x:1:1::/usr/sbin:/usr/sbin/nologin\n",
        f"- {SECRET}\n- b\n",
        f"{SECRET}: 1\nother: 2\n",
        f"token = {SECRET}\n",
        f"name: x\n{SECRET}: 1\n",
    ],
    ids=["passwd", "list", "mapping", "ini", "one_unknown_key"],
)
def test_extends_never_echoes_a_file_that_is_not_a_profile(tmp_path: Path, content: str) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(content, encoding="utf-8")
    (tmp_path / "p").mkdir()
    f = tmp_path / "p" / "mine.yaml"
    f.write_text("extends: ../etc/passwd\nname: x\n", encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile(f)
    msg = str(info.value)
    assert "s3cr3t" not in msg and "d4emon" not in msg and "/bin/bash" not in msg, msg
    assert "mine.yaml: extends: " in msg and "passwd" in msg
    assert "not a device profile" in msg and "YAML mapping" in msg
    # loaded directly, a file that is not a YAML mapping is not echoed either
    if not content.startswith(("name:", SECRET + ": 1")):
        with pytest.raises(ProfileError) as direct:
            load_profile(tmp_path / "etc" / "passwd")
        assert "s3cr3t" not in str(direct.value)


def test_extends_target_with_a_typo_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("extends: pcm\ncondutance: {g_max_us: 3}\n", encoding="utf-8")
    (tmp_path / "d.yaml").write_text("extends: base.yaml\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"d\.yaml: extends: .*base\.yaml: \(top level\): unknown keys 'condutance' \(did you mean 'conductance'\?\)"):
        load_profile(tmp_path / "d.yaml")


def test_extends_binary_file_is_not_echoed(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe s3cr3t \x00\x01")
    f = tmp_path / "mine.yaml"
    f.write_text("extends: ./blob.bin\n", encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile(f)
    assert "s3cr3t" not in str(info.value) and "not UTF-8 text" in str(info.value)


def test_python_version_has_mkfifo_or_skips() -> None:
    assert sys.platform == "win32" or hasattr(os, "mkfifo")
