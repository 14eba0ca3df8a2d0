"""Valid profiles never yield NaN silently: program, drift, read and train one step on fuzzed ones.

The cases come from ``scripts/fuzz_profiles.py`` (shipped profiles with one to three numeric
fields set to extreme values); the script runs >= 10,000 of them, this test a bounded sample.
"""

from __future__ import annotations

import collections
import importlib.util
import sys
import warnings
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz_profiles.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_profiles", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_fuzzed_profiles_give_finite_numbers_or_named_errors(fuzz):
    kinds: collections.Counter[str] = collections.Counter()
    failures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow notes; the outcome is what counts
        for seed in range(1500):
            out, name, changes = fuzz.run_case(seed)
            kinds[out.kind] += 1
            if out.kind in ("silent", "raw"):
                failures.append(f"seed {seed} ({name}; {'; '.join(changes)}): {out.detail}")
    assert not failures, "\n".join(failures[:5])
    # the sample exercised the physics, not only the schema: a good share loaded and ran
    assert kinds["finite"] + kinds["named"] >= 150, kinds


def test_fuzz_detects_a_silent_nan(fuzz, monkeypatch):
    # the harness itself can fail: a read that returns NaN without an error is reported as "silent"
    import numpy as np

    import cimsim

    real = cimsim.tile_mvm
    monkeypatch.setattr(cimsim, "tile_mvm", lambda *a, **k: np.full_like(real(*a, **k), np.nan))
    kinds = collections.Counter(fuzz.run_case(seed)[0].kind for seed in range(40))
    assert kinds["silent"] >= 1 and kinds["finite"] == 0, kinds
