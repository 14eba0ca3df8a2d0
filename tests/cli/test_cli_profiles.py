"""``cimsim profile list|show|validate|schema`` through click's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from cimsim.cli import main
from cimsim.profiles import list_profiles, load_profile, profile_from_yaml

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_every_shipped_profile_with_device_and_source() -> None:
    code, out, _ = _run("profile", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DEVICE", "SOURCE"]
    for name in list_profiles():
        row = next(line for line in lines if line.split()[0] == name)
        p = load_profile(name)
        assert p.device in row
    assert "Nandakumar" in next(line for line in lines if line.startswith("pcm "))


def test_show_prints_resolved_profile_that_reloads_equal() -> None:
    code, out, _ = _run("profile", "show", "pcm_rasch2023")
    assert code == 0
    p = profile_from_yaml(out)
    assert p == load_profile("pcm_rasch2023")
    assert p.conductance.g_max_us == 25.0  # inherited from pcm, spelled out


def test_show_file_with_overrides_and_json(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("extends: pcm\nname: mine\n", encoding="utf-8")
    code, out, _ = _run("profile", "show", str(f), "--set", "adc.bits=6", "--set", "dac.bits=null", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["name"] == "mine-derived" and data["adc"]["bits"] == 6 and data["dac"]["bits"] is None
    assert (data["derived_from"], data["changed_fields"]) == ("mine", ["dac.bits", "adc.bits"])


def test_show_errors_exit_1_with_lines() -> None:
    code, out, err = _run("profile", "show", "pcm", "--set", "adc.bits=40")
    assert code == 1 and out == ""
    assert "adc.bits: must be an integer in [2, 16] or null (got 40)" in err
    code, _, err = _run("profile", "show", "pcmm")
    assert code == 1 and "did you mean 'pcm'?" in err
    code, _, err = _run("profile", "show", "pcm", "--set", "adc.bits")
    assert code == 1 and "expected dotted.path=value" in err


def test_validate_ok_and_bad_files(tmp_path: Path) -> None:
    good = ROOT / "device_models" / "pcm.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nconductance: {g_max_us: -1}\n", encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [x\n", encoding="utf-8")
    code, out, _ = _run("profile", "validate", str(good))
    assert code == 0 and "ok:" in out and "(pcm)" in out
    code, out, err = _run("profile", "validate", str(good), str(bad), str(broken))
    assert code == 1
    assert "ok:" in out
    assert f"{bad}: conductance.g_max_us: must be a number in [" in err and "(got -1)" in err
    assert f"{broken}:2:1: YAML syntax error" in err
    assert "2 of 3 profile(s) invalid" in err


def test_validate_needs_a_file() -> None:
    code, _, _ = _run("profile", "validate")
    assert code == 2


def test_schema_is_json_schema_that_names_every_section() -> None:
    code, out, _ = _run("profile", "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["additionalProperties"] is False
    for section in ("conductance", "programming", "drift", "read_noise", "dac", "adc", "tile", "mapping", "extends"):
        assert section in schema["properties"]
    assert set(schema["required"]) == {"name", "conductance"}


def test_shipped_yaml_files_satisfy_required_keys_of_schema() -> None:
    code, out, _ = _run("profile", "schema")
    required = set(json.loads(out)["required"])
    for name in list_profiles():
        data = yaml.safe_load((ROOT / "device_models" / f"{name}.yaml").read_text(encoding="utf-8"))
        assert required <= set(data) or "extends" in data


def test_python_dash_m_cimsim_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cimsim", "profile", "list"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "pcm" in proc.stdout
