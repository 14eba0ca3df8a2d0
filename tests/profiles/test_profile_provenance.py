"""Derived profiles (extends: or overrides) say what they derive from and what they changed, and
never present the parent's name, description, citation or assumptions as their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from cimsim.profiles import dump_profile, list_profiles, load_profile, profile_from_dict, profile_from_yaml
from cimsim.profiles.schema import Citation

FEFET_50US = "extends: fefet\nconductance: {g_min_us: 1.0, g_max_us: 50.0}\ndrift: {kind: power_law, t0_s: 1, nu: {mean: 0.05, std: 0.01}}\n"


def test_made_up_fefet_does_not_claim_jerry_et_al(tmp_path: Path) -> None:
    """The issue's case: a 1-50 uS FeFET with drift, extending fefet, gives no source of its own."""
    f = tmp_path / "my_fefet.yaml"
    f.write_text(FEFET_50US, encoding="utf-8")
    p, base = load_profile(f), load_profile("fefet")
    assert p.name == "my_fefet" and p.derived_from == "fefet"
    assert p.changed_fields == ["conductance.g_min_us", "conductance.g_max_us", "drift"]
    assert base.citation is not None and p.citation is not None and p.citation != base.citation
    assert p.citation.reference.startswith("derived from fefet (M. Jerry et al.")
    assert "conductance.g_min_us, conductance.g_max_us, drift changed, not from that source" in p.citation.reference
    assert (p.citation.doi, p.citation.url, p.citation.figure) == (None, None, None)
    assert p.description.startswith("Derived from fefet with conductance.g_min_us, conductance.g_max_us, drift changed.")
    assert p.assumptions[0].startswith("Derived from fefet: conductance.g_min_us")
    assert p.assumptions[1:] == [f"as fefet: {a}" for a in base.assumptions]
    # the physics is the child's: only text fields differ from a plain merge
    assert (p.conductance.g_max_us, p.drift.kind, p.programming) == (50.0, "power_law", base.programming)


def test_own_provenance_is_kept(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text(
        FEFET_50US + "name: hzo_50\ndescription: my device\ncitation: {reference: my lab notebook 2026}\nassumptions: [guessed]\n",
        encoding="utf-8",
    )
    p = load_profile(f)
    assert (p.name, p.description, p.citation, p.assumptions) == (
        "hzo_50", "my device", Citation(reference="my lab notebook 2026"), ["guessed"]
    )
    assert p.derived_from == "fefet" and "drift" in p.changed_fields


def test_overrides_give_a_derived_name_and_list_the_changes() -> None:
    base = load_profile("pcm")
    p = load_profile("pcm", {"adc.bits": 6, "tile.rows": 512})
    assert (p.name, p.derived_from, p.changed_fields) == ("pcm-derived", "pcm", ["adc.bits", "tile.rows"])
    assert p.citation is not None and p.citation.reference.startswith("derived from pcm (S. R. Nandakumar")
    q = base.with_overrides({"adc.bits": 6, "name": "pcm6"})
    assert (q.name, q.derived_from, q.changed_fields) == ("pcm6", "pcm", ["adc.bits"])
    # a value equal to the parent's is no change; the suffix is not stacked
    r = p.with_overrides({"adc.bits": 6, "dac.bits": 4})
    assert (r.name, r.derived_from, r.changed_fields) == ("pcm-derived", "pcm-derived", ["dac.bits"])
    assert base.with_overrides({"mapping.kind": "single_reference"}).changed_fields == ["mapping.kind"]


def test_derived_dict_without_name_and_chains(tmp_path: Path) -> None:
    assert profile_from_dict({"extends": "ideal", "adc": {"bits": 8}}).name == "ideal-derived"
    (tmp_path / "a.yaml").write_text("extends: pcm\nname: a\ntile: {rows: 128}\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\ntile: {cols: 64}\n", encoding="utf-8")
    b = load_profile(tmp_path / "b.yaml")
    assert (b.derived_from, b.changed_fields) == ("a", ["tile.cols"])  # relative to its direct parent
    assert b.citation is not None and b.citation.reference.startswith("derived from a (derived from pcm (")


def test_provenance_round_trips_and_plain_profiles_dump_as_before() -> None:
    p = load_profile("fefet", {"conductance.g_max_us": 50.0})
    assert profile_from_yaml(dump_profile(p)) == p
    assert profile_from_dict(p.model_dump()) == p
    text = dump_profile(load_profile("pcm"))
    assert "derived_from" not in text and "changed_fields" not in text
    assert "derived_from: fefet\nchanged_fields:\n- conductance.g_max_us\n" in dump_profile(p)


@pytest.mark.parametrize("name", [n for n in list_profiles() if n in {"sonos_1day", "sonos_5day", "rram_neurram_1day", "pcm_rasch2023"}])
def test_shipped_derived_profiles_cite_their_own_source(name: str) -> None:
    p = load_profile(name)
    assert p.derived_from and p.changed_fields and p.name == name
    assert p.citation is not None and not p.citation.reference.startswith("derived from")
