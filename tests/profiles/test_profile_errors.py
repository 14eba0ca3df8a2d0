"""Bad profiles get one line per problem: ``FILE: dotted.field: what is allowed (got VALUE)``."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cimsim.errors import CimsimError, ProfileError
from cimsim.profiles import load_profile, profile_from_dict, profile_from_yaml
from cimsim.profiles.loader import MODELS_DIR, parse_override

PCM: dict[str, Any] = yaml.safe_load((MODELS_DIR / "pcm.yaml").read_text(encoding="utf-8"))


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    *head, last = dotted.split(".")
    for h in head:
        d = d.setdefault(h, {})
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value


_DELETE = object()

# (patch over pcm.yaml, regex the message must contain as one full line; FILE is bad.yaml)
BAD: list[tuple[dict[str, Any], str]] = [
    ({"drift.nu.mean": {"kind": "constant", "value": -0.1}},
     r"drift\.nu\.mean: must be >= 0 for every x in \[0, 1\] \(got -0\.1 at x=0\)"),
    ({"drift.t0_s": -1}, r"drift\.t0_s: must be a number in \[1e-12, 4\.35e17\] \(got -1\)"),
    ({"drift.t0_s": ".nan"}, r"drift\.t0_s: must be a number in \[1e-12, 4\.35e17\] \(got nan\)"),
    ({"drift.t0_s": 1e39}, r"drift\.t0_s: must be a number in \[1e-12, 4\.35e17\] \(got 1e\+39\)"),
    ({"read_noise.t_read_s": 1e-46}, r"read_noise\.t_read_s: must be a number in \[1e-12, 4\.35e17\] \(got 1e-46\)"),
    ({"mapping.weight_slices": 2}, r"mapping\.weight_slices: 2 slices need conductance\.n_levels set .* \(got n_levels=None\)"),
    ({"mapping.weight_slices": 2, "conductance.n_levels": 4, "mapping.kind": "single_reference"},
     r"mapping\.weight_slices: bit slicing needs mapping\.kind differential .* \(got kind=single_reference\)"),
    ({"drift": {"kind": "relaxation", "mean_slope_us": -0.089, "sigma_slope_us": 0.04, "sigma_at_1s_us": -0.4}},
     r"drift\.sigma_at_1s_us: must be a number in \[0, 1e6\] \(got -0\.4\)"),
    ({"drift": {"kind": "relaxation", "mean_slope_us": -0.089, "sigma_slope_us": 0.04, "sigma_at_1s_us": 0.4,
                "t_min_s": 0}}, r"drift\.t_min_s: must be a number in \[1e-12, 4\.35e17\] \(got 0\)"),
    ({"conductance.g_max_us": float("inf")}, r"conductance\.g_max_us: must be a number in \[1e-6, 1e6\] \(got inf\)"),
    ({"conductance.g_max_us": 1e39}, r"conductance\.g_max_us: must be a number in \[1e-6, 1e6\] \(got 1e\+39\)"),
    ({"conductance.g_max_us": 1e-46}, r"conductance\.g_max_us: must be a number in \[1e-6, 1e6\] \(got 1e-46\)"),
    ({"conductance.g_min_us": 1e-46},
     r"conductance\.g_min_us: must be 0 or in \[1e-06, 1e\+06\] µS \(got 1e-46\); below 1 pS a device is off: write 0"),
    ({"adc.bits": 17}, r"adc\.bits: must be an integer in \[2, 16\] or null \(got 17\)"),
    ({"adc.bits": 1}, r"adc\.bits: must be an integer in \[2, 16\] or null \(got 1\)"),
    ({"dac.bits": 4.5}, r"dac\.bits: must be an integer in \[2, 16\] or null \(got 4\.5\)"),
    ({"adc.bits": "eight"}, r"adc\.bits: must be an integer in \[2, 16\] or null \(got 'eight'\)"),
    ({"adc.bitz": 6},
     r"adc\.bitz: unknown key \(did you mean 'bits'\?\); valid keys here: bits, bound_management, gain_error_rel, "
     r"noise_lsb, nonlinearity, offset_error_lsb, range, units \(got bitz: 6\)"),
    ({"conductance.g_mx_us": 25}, r"conductance\.g_mx_us: unknown key \(did you mean 'g_max_us'\?\); valid keys here: "
     r"g_max_us, g_min_us, n_levels \(got g_mx_us: 25\)"),
    ({"colour": "red"}, r"colour: unknown key; valid keys here: adc, assumptions, .* \(got colour: 'red'\)"),
    ({"conductance.g_max_us": _DELETE}, r"conductance\.g_max_us: is required: highest programmable conductance, µS.* \(missing\)"),
    ({"drift.kind": "power-law"},
     r"drift\.kind: must be one of 'none', 'power_law', 'relaxation' \(did you mean 'power_law'\?\) \(got 'power-law'\)"),
    ({"drift.kind": _DELETE}, r"drift\.kind: is required, one of 'none', 'power_law', 'relaxation' \(missing\)"),
    ({"mapping.kind": "diferential"},
     r"mapping\.kind: must be one of 'differential' or 'single_reference' \(did you mean 'differential'\?\) \(got 'diferential'\)"),
    ({"mapping.scaling": "per_row"}, r"mapping\.scaling: must be one of 'per_layer', 'per_tile' or 'per_column' \(got 'per_row'\)"),
    ({"faults": {"stuck_at_g_min_rel": 0.6, "stuck_at_g_max_rel": 0.5}},
     r"faults\.stuck_at_g_max_rel: stuck_at_g_min_rel \+ stuck_at_g_max_rel must be <= 1 \(got 0\.6 \+ 0\.5 = 1\.1\)"),
    ({"faults": {"stuck_at_g_min_rel": 1.5}}, r"faults\.stuck_at_g_min_rel: must be a number in \[0, 1\] \(got 1\.5\)"),
    ({"conductance.g_min_us": 30}, r"conductance\.g_max_us: must be > conductance\.g_min_us = 30\.0 \(got 25\.0\)"),
    ({"conductance.n_levels": 1}, r"conductance\.n_levels: must be an integer in \[2, 1048576\] or null \(got 1\)"),
    ({"tile.rows": 0}, r"tile\.rows: must be an integer in \[1, 65536\] \(got 0\)"),
    ({"adc.range": {"kind": "dynamic"}}, r"adc\.range\.kind: must be one of 'fixed', 'calibrated' \(got 'dynamic'\)"),
    ({"dac.range": {"kind": "fixed"}}, r"dac\.range\.bound: is required: .* \(missing\)"),
    ({"programming.noise.sigma.coeffs": []}, r"programming\.noise\.sigma\.coeffs: must have at least 1 items \(got 0\)"),
    ({"programming.noise.sigma.coeffs": [0.26, "x"]}, r"programming\.noise\.sigma\.coeffs\[1\]: must be a number in \[-1e6, 1e6\] \(got 'x'\)"),
    ({"programming.noise.sigma": [1, 2]},
     r"programming\.noise\.sigma: must be a mapping with kind: one of 'constant', 'polynomial', .* \(got \[1, 2\]\)"),
    ({"read_noise.q_s.kind": "powr"}, r"read_noise\.q_s\.kind: must be one of .* \(did you mean 'power'\?\) \(got 'powr'\)"),
    ({"drift.nu.mean.max": 0.01}, r"drift\.nu\.mean\.max: must be >= min = 0\.049 \(got 0\.01\)"),
    ({"drift.nu.std": {"kind": "table", "x": [0, 0.5, 0.4], "y": [1, 2, 3]}},
     r"drift\.nu\.std\.x: must be strictly increasing \(got x\[1\]=0\.5, x\[2\]=0\.4\)"),
    ({"drift.nu.std": {"kind": "table", "x": [0, 1], "y": [1, 2, 3]}},
     r"drift\.nu\.std\.y: must have as many entries as x \(got 3 and 2\)"),
    ({"name": ""}, r"name: must not be empty \(got ''\)"),
    ({"name": "my pcm"}, r"name: must match .* \(got 'my pcm'\)"),
    ({"citation": "Joshi 2020"}, r"citation: must be a mapping with keys doi, figure, reference, url \(got 'Joshi 2020'\)"),
    ({"assumptions": "none"}, r"assumptions: must be a list \(got 'none'\)"),
    ({"drift.absolute": "maybe"}, r"drift\.absolute: must be true or false \(got 'maybe'\)"),
    ({"programming.stochastic_rounding": True},
     r"programming\.stochastic_rounding: true needs conductance\.n_levels \(got n_levels null = continuous\)"),
    ({"adc.bits": None, "adc.noise_lsb": 0.5},
     r"adc\.noise_lsb: must be 0 when adc\.bits is null \(an ideal converter has no LSB\) \(got 0\.5\)"),
    ({"adc.nonlinearity": {"kind": "inl_table", "inl_lsb": [0, 0, 0]}},
     r"adc\.nonlinearity\.inl_lsb: must have 2\^bits - 1 = 255 entries for adc\.bits=8 \(got 3\)"),
    ({"dac.nonlinearity": {"kind": "table", "u": [-2, 1], "v": [-1, 1]}},
     r"dac\.nonlinearity\.u: must lie in \[-1, 1\] \(got -2\.0 \.\. 1\.0\)"),
    ({"training": {"drift_t_min_s": 10}},
     r"training\.drift_t_max_s: must be set together with drift_t_min_s, both or neither \(got min=10\.0, max=None\)"),
    ({"read_noise.q_s": {"kind": "constant", "value": -1}},
     r"read_noise\.q_s: must be >= 0 for every x in \[0, 1\] \(got -1 at x=0\)"),
    ({"read_noise.q_s": {"kind": "power", "coeff": 1e307, "exponent": -0.65}},
     r"read_noise\.q_s\.coeff: must be a number in \[-1e6, 1e6\] \(got 1e\+307\)"),
    ({"programming.noise.sigma": {"kind": "polynomial", "coeffs": [0.2, 1e308, 1e308]}},
     r"programming\.noise\.sigma\.coeffs\[1\]: must be a number in \[-1e6, 1e6\] \(got 1e\+308\)"),
    # finite in float64 (1e180 at x <= 1e-3) but not in float32, where float32 chips evaluate it
    ({"iv": {"kind": "polynomial", "v_read_v": 0.2, "a2_per_v": {"kind": "power", "coeff": 1.0, "exponent": -60},
             "a3_per_v2": 0.0}},
     r"iv\.a2_per_v: must be finite for every x in \[0, 1\] in float32 \(got inf at x=0; check the coefficients' "
     r"magnitude, or bound it with max\)"),
    ({"read_noise.q_s": {"kind": "saturating_exp", "amplitude": 0.01, "x_scale": 1e-40}},
     r"read_noise\.q_s\.x_scale: must be a number in \[1e-30, 1e6\] \(got 1e-40\)"),
    ({"read_noise.q_s": {"kind": "log_linear", "slope": 0, "intercept": 0.01, "x_floor": 1e-300}},
     r"read_noise\.q_s\.x_floor: must be a number in \[1e-30, 1\] \(got 1e-300\)"),
    ({"read_noise.q_s": {"kind": "power", "coeff": 1.0, "exponent": 1e3}},
     r"read_noise\.q_s\.exponent: must be a number in \[-100, 100\] \(got 1000\.0\)"),
    ({"read_noise.q_s": {"kind": "constant", "value": 11}},
     r"read_noise\.q_s: must be <= 10 for every x in \[0, 1\] \(a 1/f amplitude\) \(got 11 at x=0; check the "
     r"coefficients, or bound it with max: 10\)"),
    ({"drift.nu.mean": {"kind": "polynomial", "coeffs": [0.1, 20]}},
     r"drift\.nu\.mean: must be <= 10 for every x in \[0, 1\] \(a drift exponent\) \(got 10\.02 at x=0\.496; check "
     r"the coefficients, or bound it with max: 10\)"),
    ({"drift.nu.std": 11}, r"drift\.nu\.std: must be <= 10 for every x in \[0, 1\] \(a drift-exponent spread\) \(got 11 at x=0;.*"),
    ({"programming.noise": {"kind": "constant", "sigma_us": 30}},
     r"programming\.noise\.sigma_us: must be <= conductance\.g_max_us = 25 µS \(a spread wider than the conductance "
     r"range is no programming model\) \(got 30\.0\)"),
    ({"programming.noise": {"kind": "constant", "sigma_us": 1e39}},
     r"programming\.noise\.sigma_us: must be a number in \[0, 1e6\] \(got 1e\+39\)"),
    ({"programming.noise": {"kind": "relative", "sigma_rel": 2}},
     r"programming\.noise\.sigma_rel: must be a number in \[0, 1\] \(got 2\)"),
    ({"programming.noise.sigma.coeffs": [26.0]},
     r"programming\.noise\.sigma: must be <= g_ref_us = 25 µS for every x in \[0, 1\] \(a spread wider than the "
     r"conductance range is no programming model\) \(got 26 at x=0; check the coefficients, or bound it with max: 25\)"),
    ({"read_noise": {"kind": "gaussian", "sigma": 30}},
     r"read_noise\.sigma: must be <= conductance\.g_max_us = 25 µS for every x in \[0, 1\] \(got 30 at x=0;.*"),
    ({"adc.range": {"kind": "fixed", "bound": 1e7}}, r"adc\.range\.bound: must be a number in \(0, 1e6\] \(got 10000000\.0\)"),
    ({"adc.noise_lsb": 1e9}, r"adc\.noise_lsb: must be a number in \[0, 65536\] \(got 1000000000\.0\)"),
    ({"dac.nonlinearity": {"kind": "polynomial", "coeffs": [0, 1, 1e30]}},
     r"dac\.nonlinearity\.coeffs\[2\]: must be a number in \[-1e6, 1e6\] \(got 1e\+30\)"),
    ({"training": {"drift_t_min_s": 1, "drift_t_max_s": 1e18}},
     r"training\.drift_t_max_s: must be a number in \[0, 4\.35e17\] or null \(got 1e\+18\)"),
    ({"training": {"drift_t_min_s": 1e-300, "drift_t_max_s": 1e9}},
     r"training\.drift_t_min_s: must be 0 or in \[1e-12, 4\.35e\+17\] s \(got 1e-300\); a shorter time is 0 .*"),
    ({"tile.bit_line_r_ohm": 1e12}, r"tile\.bit_line_r_ohm: must be a number in \[0, 1e6\] \(got 1000000000000\.0\)"),
]


@pytest.mark.parametrize(("patch", "pattern"), BAD, ids=[next(iter(p)) for p, _ in BAD])
def test_bad_profile_message(tmp_path: Path, patch: dict[str, Any], pattern: str) -> None:
    data = copy.deepcopy(PCM)
    for k, v in patch.items():
        _set(data, k, v)
    f = tmp_path / "bad.yaml"
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if ".nan" in patch.values():
        text = text.replace("'.nan'", ".nan")
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile(f)
    msg = str(info.value)
    path = re.escape(str(f))
    assert re.search(rf"^{path}: {pattern}$", msg, re.M), msg
    assert msg.splitlines()[-1].endswith("docs/profiles.md)")


def test_error_table_is_large_enough() -> None:
    assert len(BAD) >= 20


def test_several_problems_one_line_each() -> None:
    data = copy.deepcopy(PCM)
    _set(data, "adc.bits", 40)
    _set(data, "tile.rows", -3)
    _set(data, "drift.t0_s", "soon")
    with pytest.raises(ProfileError) as info:
        profile_from_dict(data, source="x.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 4
    assert {line.split(":")[1].strip() for line in lines[:3]} == {"adc.bits", "tile.rows", "drift.t0_s"}


def test_profile_error_is_value_error_and_cimsim_error() -> None:
    with pytest.raises(ValueError):
        profile_from_dict({"name": "x"})
    with pytest.raises(CimsimError):
        profile_from_dict({"name": "x"})


# ------------------------------------------------------------------------ YAML-level problems
YAML_BAD: list[tuple[str, str]] = [
    ("name: x\nconductance:\n  g_max_us: [1, 2\n", r"^bad\.yaml:4:1: YAML syntax error: expected ',' or '\]'"),
    ("name: x\n\tconductance: 1\n", r"^bad\.yaml:2:1: YAML syntax error: found character '\\t'"),
    ("", r"^bad\.yaml: \(top level\): the file is empty: a profile is a mapping with at least name: and conductance:"),
    ("# nothing\n", r"^bad\.yaml: \(top level\): the file is empty"),
    ("- a\n- b\n", r"^bad\.yaml: \(top level\): must be a YAML mapping of profile fields .* \(got a YAML list: not a device profile;"),
    ("just text\n", r"^bad\.yaml: \(top level\): must be a YAML mapping .* \(got a YAML string: not a device profile; see docs/profiles\.md\)$"),
    ("name: x\nconductance: !!python/object/apply:os.system ['echo pwned']\n",
     r"^bad\.yaml:2:14: YAML error: tag !!python/object/apply:os\.system is not allowed: profiles are plain YAML"),
    ("!!python/object:builtins.dict {}\n", r"^bad\.yaml:1:1: YAML error: tag !!python/object:builtins\.dict is not allowed"),
    ("name: x\nconductance:\n  g_max_us: 1\n  g_max_us: 2\n", r"^bad\.yaml:4:3: YAML error: duplicate key 'g_max_us'"),
    ("1: x\n", r"^bad\.yaml: \(top level\): section names must be strings \(got a key of type int\)"),
    ("extends: 3\n", r"^bad\.yaml: extends: must be a profile name or a path to a \.yaml file \(got 3\)"),
    ("extends: pcmm\n", r"^bad\.yaml: extends: pcmm: no shipped profile of that name; did you mean 'pcm'\?"),
    ("extends: missing.yaml\n", r"^bad\.yaml: extends: .*missing\.yaml: no such file"),
]


@pytest.mark.parametrize(("text", "pattern"), YAML_BAD)
def test_bad_yaml_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, pattern: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile("bad.yaml")
    assert re.search(pattern, str(info.value), re.M), str(info.value)


def test_unsafe_tag_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.yaml"
    f.write_text(f"name: x\nconductance: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8")
    with pytest.raises(ProfileError):
        load_profile(f)
    assert not marker.exists()


def test_not_utf8_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "latin.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ProfileError, match=r"latin\.yaml: not UTF-8 text"):
        load_profile(f)
    with pytest.raises(ProfileError, match=r"nope\.yaml: no such file"):
        load_profile(tmp_path / "nope.yaml")


def test_unknown_shipped_name_suggests() -> None:
    with pytest.raises(ProfileError, match=r"^pcmm: no shipped profile of that name; did you mean 'pcm'\? \(shipped: .*pcm"):
        load_profile("pcmm")
    with pytest.raises(ProfileError, match=r"expected a shipped profile name or a path"):
        load_profile("")


# ------------------------------------------------------------------------ extends and overrides
def test_extends_deep_merges_and_replaces_on_kind_change(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("extends: pcm\nadc:\n  bits: 6\ndrift:\n  kind: none\nassumptions: [mine]\n", encoding="utf-8")
    p, base = load_profile(f), load_profile("pcm")
    assert p.name == "mine"  # no name: the file's name
    assert p.adc.bits == 6 and p.adc.range == base.adc.range  # merged key by key
    assert p.drift.kind == "none"  # kind changed: replaced whole
    assert p.read_noise == base.read_noise and p.assumptions == ["mine"]


def test_extends_relative_path_and_chain(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: pcm\nname: a\ntile: {rows: 128}\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("extends: ../a.yaml\nname: b\ntile: {cols: 64}\n", encoding="utf-8")
    p = load_profile(tmp_path / "sub" / "b.yaml")
    assert (p.name, p.tile.rows, p.tile.cols, p.conductance.g_max_us) == ("b", 128, 64, 25.0)


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"extends: circular inheritance \(a\.yaml -> b\.yaml -> a\.yaml\)"):
        load_profile(tmp_path / "a.yaml")


def test_error_in_derived_file_names_it(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text("extends: pcm\nadc: {bits: 99}\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"d\.yaml: adc\.bits: must be an integer in \[2, 16\] or null \(got 99\)"):
        load_profile(f)


def test_overrides_dotted_paths() -> None:
    import numpy as np

    p = load_profile("pcm", {"adc.bits": np.int64(6), "tile.rows": 512, "drift.kind": "none", "dac.bits": None})
    assert (p.adc.bits, p.tile.rows, p.drift.kind, p.dac.bits) == (6, 512, "none", None)
    q = load_profile("pcm", {"drift.nu.std": 0.0})  # a number is a constant function
    assert q.drift.nu.std.kind == "constant"  # type: ignore[union-attr]
    assert load_profile("pcm").with_overrides({"adc.bits": 4}).adc.bits == 4
    r = load_profile("ideal", {"read_noise": {"kind": "gaussian", "sigma_rel": 0.01}})
    assert r.read_noise.kind == "gaussian"


def test_mapping_kind_is_a_plain_field_that_keeps_its_section(tmp_path: Path) -> None:
    """mapping.kind picks a mapping, not a variant with other keys: changing it (override or
    extends) keeps subtraction and scaling, where drift.kind replaces the drift section."""
    base = load_profile("pcm", {"mapping.subtraction": "digital", "mapping.scaling": "per_tile"})
    p = base.with_overrides({"mapping.kind": "single_reference"})
    assert (p.mapping.kind, p.mapping.subtraction, p.mapping.scaling) == ("single_reference", "digital", "per_tile")
    f = tmp_path / "ref.yaml"
    f.write_text("extends: pcm\nmapping: {subtraction: digital}\n", encoding="utf-8")
    g = tmp_path / "ref2.yaml"
    g.write_text(f"extends: {f.name}\nmapping: {{kind: single_reference}}\n", encoding="utf-8")
    q = load_profile(g)
    assert (q.mapping.kind, q.mapping.subtraction) == ("single_reference", "digital")
    assert base.with_overrides({"drift.kind": "none"}).drift.kind == "none"


def test_bad_overrides() -> None:
    with pytest.raises(ProfileError, match=r"\(with overrides\): adc\.bitz: unknown key \(did you mean 'bits'\?\)"):
        load_profile("pcm", {"adc.bitz": 6})
    with pytest.raises(ProfileError, match=r"override adc\.bits\.x: adc\.bits is a value, not a section \(got 8\)"):
        load_profile("pcm", {"adc.bits.x": 1})
    with pytest.raises(ProfileError, match=r"override 'adc\.\.bits': must be a dotted field path"):
        load_profile("pcm", {"adc..bits": 1})
    with pytest.raises(ProfileError, match=r"expected dotted\.path=value"):
        parse_override("adc.bits")
    assert parse_override("adc.bits = null") == ("adc.bits", None)
    assert parse_override("programming.noise.sigma.coeffs=[1, 2]") == ("programming.noise.sigma.coeffs", [1, 2])


def test_profile_from_yaml_and_dict_sources() -> None:
    with pytest.raises(ProfileError, match=r"^<string>: conductance: is required"):
        profile_from_yaml("name: x\n")
    with pytest.raises(ProfileError, match=r"^<dict>: \(top level\): a profile must be a mapping \(got list"):
        profile_from_dict([1, 2])  # type: ignore[arg-type]
    p = profile_from_dict({"extends": "ideal", "name": "i2", "adc": {"bits": 8}})
    assert p.adc.bits == 8 and p.name == "i2"
