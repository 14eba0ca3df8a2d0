"""Every shipped profile loads, validates, round-trips, cites its source; PCM laws match devices.md."""

from __future__ import annotations

import numpy as np
import pytest

from cimsim.profiles import (
    DeviceProfile,
    dump_profile,
    list_profiles,
    load_profile,
    profile_from_dict,
    profile_from_yaml,
)
from cimsim.profiles.schema import DriftPowerLaw, ProgNoiseFunction, ReadNoiseOneOverF

SHIPPED = list_profiles()
REQUIRED = {"ideal", "pcm", "pcm_hermes", "rram_neurram", "reram_cmo", "fefet", "rram_taox", "sram_cim", "sonos", "rram_milo",
            "rram_alox", "rram_agsi", "pcmo", "pcm_gst", "epiram", "ecram"}


def test_required_profiles_are_shipped() -> None:
    assert REQUIRED <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_and_round_trips(name: str) -> None:
    p = load_profile(name)
    assert isinstance(p, DeviceProfile)
    assert p.name == name
    text = dump_profile(p)
    assert text == p.to_yaml()
    assert profile_from_yaml(text) == p
    assert profile_from_dict(p.model_dump(mode="json")) == p
    assert load_profile(name) == p  # deterministic


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_cites_and_assumes(name: str) -> None:
    p = load_profile(name)
    assert p.citation is not None and p.citation.reference
    assert p.assumptions, "a shipped profile lists what is not from the source"
    assert p.device and p.description
    if name != "ideal":
        assert p.citation.doi or p.citation.url or p.citation.figure
        assert p.dac.bits is not None and p.adc.bits is not None, "practitioner DAC/ADC choices"


def test_ideal_has_every_nonideality_off() -> None:
    p = load_profile("ideal")
    assert p.is_ideal
    assert not load_profile("pcm").is_ideal


# closed-form table of shared/reference/devices.md (x, sigma_prog, mu_nu, sigma_nu, Q_s)
PCM_TABLE = [
    (1.00, 1.0554, 0.0490, 0.0080, 0.0088),
    (0.50, 0.9527, 0.0490, 0.0080, 0.0138),
    (0.10, 0.4482, 0.0601, 0.0229, 0.0393),
    (0.01, 0.2830, 0.0958, 0.0450, 0.1756),
]


def test_pcm_functions_reproduce_devices_md_table() -> None:
    p = load_profile("pcm")
    assert p.conductance.g_min_us == 0 and p.conductance.g_max_us == 25 and p.conductance.n_levels is None
    noise, drift, read = p.programming.noise, p.drift, p.read_noise
    assert isinstance(noise, ProgNoiseFunction) and noise.g_ref_us == 25
    assert isinstance(drift, DriftPowerLaw) and drift.t0_s == 20 and drift.absolute
    assert isinstance(read, ReadNoiseOneOverF) and read.t_read_s == pytest.approx(250e-9)
    x = np.array([row[0] for row in PCM_TABLE])
    want = np.array([row[1:] for row in PCM_TABLE])
    got = np.stack(
        [noise.sigma.evaluate(x), drift.nu.mean.evaluate(x), drift.nu.std.evaluate(x), read.q_s.evaluate(x)], axis=1
    )
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_pcm_functions_are_finite_and_capped_at_x_zero() -> None:
    p = load_profile("pcm")
    x = np.array([0.0, 1e-9])
    assert isinstance(p.drift, DriftPowerLaw) and isinstance(p.read_noise, ReadNoiseOneOverF)
    np.testing.assert_allclose(p.drift.nu.mean.evaluate(x), 0.1)
    np.testing.assert_allclose(p.drift.nu.std.evaluate(x), 0.045)
    np.testing.assert_allclose(p.read_noise.q_s.evaluate(x), 0.2)
    assert isinstance(p.programming.noise, ProgNoiseFunction)
    np.testing.assert_allclose(p.programming.noise.sigma.evaluate(x), 0.26348, atol=1e-6)


def test_pcm_rasch2023_extends_pcm() -> None:
    base, p = load_profile("pcm"), load_profile("pcm_rasch2023")
    assert p.tile.rows == 512 and p.adc.noise_lsb > 0
    assert p.drift == base.drift and p.programming == base.programming and p.read_noise == base.read_noise
    assert p.citation is not None and base.citation is not None and p.citation.url is None  # replaced whole
    assert p.adc.noise_lsb == pytest.approx(0.04 / (p.adc.range.bound / 127), abs=1e-3)  # type: ignore[union-attr]


def test_reram_cmo_law_converted_from_absolute_g() -> None:
    p = load_profile("reram_cmo")
    noise = p.programming.noise
    assert isinstance(noise, ProgNoiseFunction)
    g = np.array([8.0, 30.0, 90.0])
    sigma = noise.sigma.evaluate(g / p.conductance.g_max_us) * p.conductance.g_max_us / noise.g_ref_us
    np.testing.assert_allclose(sigma, 0.000811 + 0.00106879 * g, rtol=1e-6)


def test_rram_milo_and_sonos_laws_match_devices_md() -> None:
    p = load_profile("rram_milo")
    noise = p.programming.noise
    g = np.array([50.0, 120.0, 225.0])
    sigma = noise.sigma.evaluate(g / p.conductance.g_max_us) * p.conductance.g_max_us / noise.g_ref_us
    np.testing.assert_allclose(sigma, -0.009107 * g + 4.782, rtol=1e-12)
    i_na = np.array([0.0, 100.0, 800.0, 3200.0])  # SONOS: currents at a 1 V read, nA -> uS / 1000
    for name, a, b in (("sonos", 19.89, 176.3), ("sonos_1day", 25.59, 186.86), ("sonos_5day", 34.58, 207.34)):
        q = load_profile(name)
        got = q.programming.noise.sigma.evaluate(i_na / 3200) * 1000
        np.testing.assert_allclose(got, a * (1 - np.exp(-i_na / b)), rtol=1e-9, atol=1e-12)
        read = q.read_noise.sigma.evaluate(i_na / 3200) * 1000
        np.testing.assert_allclose(read, 12.58 * (1 - np.exp(-i_na / 215.4)), rtol=1e-9, atol=1e-12)


def test_pcm_hermes_piecewise_laws_join_near_thresholds() -> None:
    p = load_profile("pcm_hermes")
    assert isinstance(p.drift, DriftPowerLaw) and isinstance(p.read_noise, ReadNoiseOneOverF)
    for fn in (p.drift.nu.mean, p.drift.nu.std, p.read_noise.q_s):
        t = fn.threshold  # type: ignore[union-attr]
        lo, hi = fn.evaluate(np.array([t - 1e-9, t]))
        assert abs(lo - hi) < 2e-3


#: NeuroSim V3.0 Table II (devices.md): profile, R_on (Ohm), on/off, levels, cycle-to-cycle spread
#: as a fraction of the conductance range (the table's "< x" taken as x, ECRAM's "-" as 0)
NEUROSIM_TABLE = [
    ("rram_taox", 100e3, 10.0, 128, 0.037),
    ("rram_alox", 16.9e3, 4.43, 40, 0.05),
    ("rram_agsi", 26e6, 12.5, 97, 0.035),
    ("pcmo", 23e6, 6.84, 50, 0.01),
    ("pcm_gst", 4.71e3, 19.8, 100, 0.015),
    ("epiram", 81e3, 50.2, 64, 0.02),
    ("fefet", 559e3, 45.0, 32, 0.005),
    ("ecram", 500e6, 40.0, 16, 0.0),
]


@pytest.mark.parametrize("name,r_on_ohm,on_off,levels,c2c_rel", NEUROSIM_TABLE, ids=[r[0] for r in NEUROSIM_TABLE])
def test_pulse_programmed_devices_follow_the_neurosim_table(name, r_on_ohm, on_off, levels, c2c_rel) -> None:
    p = load_profile(name)
    c = p.conductance
    assert c.g_max_us == pytest.approx(1e6 / r_on_ohm, rel=1e-3)
    assert c.g_max_us / c.g_min_us == pytest.approx(on_off, rel=2e-3)  # fefet: g_min rounded to 0.0398
    assert c.n_levels == levels
    sigma = getattr(p.programming.noise, "sigma_us", 0.0)
    assert sigma == pytest.approx(c2c_rel * (c.g_max_us - c.g_min_us), rel=1e-3, abs=1e-12)
    assert p.drift.kind == "none" and p.read_noise.kind == "none"  # the table gives neither
    assert "NeuroSim" in p.citation.reference