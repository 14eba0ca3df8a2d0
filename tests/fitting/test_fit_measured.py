"""The measured RRAM sample shipped in examples/data fits, and its citation names the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cimsim import fit_profile, profile_from_yaml

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "rram_relaxation_levy2021_techC.csv"


def test_measured_rram_sample_fits_to_relaxation():
    res = fit_profile(DATA, base="reram_cmo", name="rram_levy2021_techC")
    p = res.profile
    assert profile_from_yaml(res.to_yaml()) == p
    assert p.drift.kind == "relaxation"  # over power law and no drift, by BIC
    bic = {k: v[1] for k, v in res.laws["drift.choice"].items()}
    assert bic["relaxation"] < min(bic["power_law"], bic["none"])
    assert p.drift.mean_slope_us < 0 < p.drift.sigma_slope_us  # conductances fall, the spread widens
    sha = hashlib.sha256(DATA.read_bytes()).hexdigest()
    assert f"{DATA.name}, sha256 {sha}, 640 devices, 2560 reads" in p.citation.reference
    assert p.read_noise.kind == "none" and any("no repeated reads" in a for a in p.assumptions)
    assert p.conductance.g_min_us == 0.625 and p.conductance.g_max_us == 38.125
