"""``cimsim profile list|show|validate|schema|init`` through click's CliRunner."""

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
    full, derived = schema["$defs"]["DeviceProfile"], schema["$defs"]["PartialDeviceProfile"]
    assert schema["if"] == {"required": ["extends"]}
    assert schema["then"]["$ref"].endswith("/PartialDeviceProfile") and schema["else"]["$ref"].endswith("/DeviceProfile")
    assert full["additionalProperties"] is False and derived["additionalProperties"] is False
    for section in ("conductance", "programming", "drift", "read_noise", "dac", "adc", "tile", "mapping"):
        assert section in full["properties"] and section in derived["properties"]
    assert set(full["required"]) == {"name", "conductance"} and derived["required"] == ["extends"]


def test_schema_accepts_every_shipped_file() -> None:
    """Was: 4 of the 20 shipped profiles (the extends: ones) failed the schema's required keys."""
    import jsonschema

    code, out, _ = _run("profile", "schema")
    validator = jsonschema.Draft202012Validator(json.loads(out))
    for name in list_profiles():
        data = yaml.safe_load((ROOT / "device_models" / f"{name}.yaml").read_text(encoding="utf-8"))
        assert list(validator.iter_errors(data)) == [], name


def test_schema_to_a_file(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    code, out, _ = _run("profile", "schema", "-o", str(f))
    assert code == 0 and f"wrote {f}" in out
    assert "PartialDeviceProfile" in json.loads(f.read_text(encoding="utf-8"))["$defs"]


def test_init_writes_a_derived_profile_with_the_schema_header_that_loads(tmp_path: Path) -> None:
    import jsonschema

    f = tmp_path / "my_fefet.yaml"
    code, out, err = _run("profile", "init", "--extends", "fefet", "-o", str(f))
    assert code == 0, err
    text = f.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=cimsim-profile.schema.json"
    schema = json.loads((tmp_path / "cimsim-profile.schema.json").read_text(encoding="utf-8"))  # written beside it
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(text))) == []
    p = load_profile(f)
    assert (p.name, p.derived_from, p.changed_fields) == ("my_fefet", "fefet", [])
    assert p.conductance == load_profile("fefet").conductance
    assert "# conductance:\n#   g_min_us: 0.0398\n#   g_max_us: 1.789\n" in text  # the parent's values, to edit
    # uncommenting a section makes a change the loader records
    g = tmp_path / "edited.yaml"
    g.write_text(text.replace("# conductance:\n#   g_min_us: 0.0398\n#   g_max_us: 1.789",
                              "conductance:\n  g_min_us: 1.0\n  g_max_us: 50.0"), encoding="utf-8")
    assert load_profile(g).changed_fields == ["conductance.g_min_us", "conductance.g_max_us"]
    code, _, err = _run("profile", "init", "--extends", "fefet", "-o", str(f))
    assert code != 0 and "exists" in err  # never overwrites without --force


def test_init_for_every_shipped_profile_and_from_a_file(tmp_path: Path) -> None:
    for name in list_profiles():
        code, out, err = _run("profile", "init", "--extends", name)
        assert code == 0, err
        p = profile_from_yaml(out)
        assert p.derived_from == name and p.name == f"my_{name}"
    (tmp_path / "sub").mkdir()
    base = tmp_path / "base.yaml"
    base.write_text("extends: pcm\nname: base\ntile: {rows: 128}\n", encoding="utf-8")
    f = tmp_path / "sub" / "child.yaml"
    code, _, err = _run("profile", "init", "--extends", str(base), "-o", str(f), "--schema", "https://example.org/s.json")
    assert code == 0, err
    assert "extends: ../base.yaml" in f.read_text(encoding="utf-8")  # relative to the new file
    assert not (tmp_path / "sub" / "cimsim-profile.schema.json").exists()  # a URL: nothing written
    assert load_profile(f).tile.rows == 128
    code, _, err = _run("profile", "init", "--extends", "pcmm")
    assert code == 1 and "did you mean 'pcm'" in err


def test_python_dash_m_cimsim_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cimsim", "profile", "list"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "pcm" in proc.stdout
