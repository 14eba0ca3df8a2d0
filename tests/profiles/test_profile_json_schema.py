"""The JSON Schema of a profile file (``cimsim profile schema``) accepts every file the loader
accepts (shipped, derived by extends:, resolved dumps of overridden profiles) and still rejects
what the loader rejects field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cimsim.profiles import MODELS_DIR, dump_profile, list_profiles, load_profile
from cimsim.profiles.editor_schema import profile_json_schema

VALIDATOR = jsonschema.Draft202012Validator(profile_json_schema())

# derived files: each loads (checked below), so the schema must accept it
DERIVED: dict[str, str] = {
    "one_field": "extends: pcm\nadc: {bits: 6}\n",
    "no_name_partial_variant": "extends: pcm\ndrift: {t0_s: 30}\nread_noise: {t_read_s: 1.0e-6}\n",
    "kind_change": "extends: fefet\nname: f50\nconductance: {g_min_us: 1.0, g_max_us: 50.0}\n"
                   "drift: {kind: power_law, t0_s: 1, nu: {mean: 0.05, std: 0.01}}\n",
    "number_as_function": "extends: pcm\ndrift: {nu: {std: 0}}\n",
    "function_section": "extends: sonos\nprogramming: {noise: {sigma: {kind: saturating_exp, amplitude: 0.03, x_scale: 0.06}}}\n",
    "plain_kind_and_lists": "extends: rram_neurram\nmapping: {kind: single_reference}\nassumptions: [mine]\n"
                            "citation: {reference: my notes}\n",
    "null_fields": "extends: pcm\ndac: {bits: null}\nadc: {bits: null}\n",
    "path": "extends: base.yaml\ntile: {cols: 64}\n",
}


def _errors(data: Any) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)]


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(profile_json_schema())


@pytest.mark.parametrize("name", list_profiles())
def test_every_shipped_profile_file_is_accepted(name: str) -> None:
    data = yaml.safe_load((MODELS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    assert _errors(data) == []


@pytest.mark.parametrize("name", list(DERIVED))
def test_derived_files_that_load_are_accepted(name: str, tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("extends: pcm\nname: base\ntile: {rows: 128}\n", encoding="utf-8")
    f = tmp_path / f"{name}.yaml"
    f.write_text(DERIVED[name], encoding="utf-8")
    load_profile(f)  # the loader accepts it ...
    assert _errors(yaml.safe_load(DERIVED[name])) == []  # ... so must the schema


@pytest.mark.parametrize("name,overrides", [
    ("pcm", {"adc.bits": 6}),
    ("fefet", {"conductance.g_max_us": 50.0, "drift": {"kind": "power_law", "t0_s": 1.0, "nu": {"mean": 0.1, "std": 0.0}}}),
    ("pcm_rasch2023", {"tile.rows": 256, "name": "r256"}),
])
def test_resolved_dump_of_an_overridden_profile_is_accepted(name: str, overrides: dict[str, Any]) -> None:
    text = dump_profile(load_profile(name, overrides))
    assert "derived_from:" in text
    assert _errors(yaml.safe_load(text)) == []


@pytest.mark.parametrize("data,where", [
    ({"name": "x"}, "'conductance' is a required property"),  # complete profile: conductance needed
    ({"name": "x", "conductance": {"g_max_us": 1.0}, "drift": {"kind": "power_law"}}, "drift"),
    ({"extends": "pcm", "colour": "red"}, "'colour' was unexpected"),
    ({"extends": "pcm", "adc": {"bits": 99}}, "adc.bits"),
    ({"extends": "pcm", "drift": {"kind": "bogus"}}, "drift"),
    ({"extends": "pcm", "tile": {"rows": "many"}}, "tile.rows"),
])
def test_what_the_loader_rejects_field_by_field_the_schema_rejects(data: dict[str, Any], where: str) -> None:
    errors = _errors(data)
    assert errors and any(where in e for e in errors), errors
