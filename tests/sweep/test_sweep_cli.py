"""``cimsim sweep SWEEP.yaml --out DIR`` through click's CliRunner."""

from __future__ import annotations

import sys

import pytest
import yaml
from click.testing import CliRunner

from cimsim.cli import main

SPEC = {
    "name": "cli",
    "models": {"float": {"train": {"mode": "float", "epochs": 1, "hidden": [16], "seed": 0}}},
    "profile": "pcm",
    "data": {"name": "digits", "n_test": 60},
    "axes": {"adc.bits": [4, 8], "compensation": ["none", "global"]},
    "times_s": "1s,1d",
    "repeats": 2,
}


@pytest.mark.slow
def test_sweep_command_runs_resumes_and_summarises(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    out = tmp_path / "out"
    first = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out), "--workers", "1"])
    assert first.exit_code == 0, first.output
    assert "cli: 4 configurations x 2 chips x 2 times = 16 points (16 computed, 0 from the cache)" in first.stdout
    assert "at t = 1d:" in first.stdout and "| 8 | global | float | 1d |" in first.stdout
    assert "results.csv" in first.stdout and (out / "summary.md").exists()
    again = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "(0 computed, 16 from the cache)" in again.stdout


def test_sweep_command_errors(tmp_path, monkeypatch):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "axes": {"bits": [4]}}))
    res = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "error: unknown axis 'bits'" in res.stderr
    both = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o"), "--workers", "2", "--scheduler", "tcp://x:1"])
    assert both.exit_code == 2 and "not both" in both.output
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if cimsim[dask] were not installed
    spec.write_text(yaml.safe_dump(SPEC))
    res = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:8786"])
    assert res.exit_code == 2 and "pip install 'cimsim[dask]'" in res.stderr
