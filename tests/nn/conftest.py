"""Shared fixtures for the torch-bridge tests (profiles are loaded once per session)."""

from __future__ import annotations

import pytest

from cimsim.profiles.loader import load_profile


@pytest.fixture(scope="session")
def ideal():
    return load_profile("ideal")


@pytest.fixture(scope="session")
def pcm():
    return load_profile("pcm")


@pytest.fixture(scope="session")
def harsh():
    """Small tiles, coarse fixed-range DAC and ADC: inputs clip and tile outputs saturate."""
    return load_profile(
        "pcm",
        overrides={
            "tile.rows": 16,
            "tile.cols": 16,
            "conductance.n_levels": 16,
            "dac.bits": 4,
            "dac.range": {"kind": "fixed", "bound": 1.0},
            "adc.bits": 5,
            "adc.range": {"kind": "fixed", "bound": 1.5},
        },
    )
