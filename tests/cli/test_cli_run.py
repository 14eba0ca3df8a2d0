"""`cimsim train`, `cimsim drift`, `cimsim demo` (cli/run.py) through click's CliRunner, on tiny settings."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml
from click.testing import CliRunner

from cimsim.cli import main
from cimsim.runs import load_run
from cimsim.evaluation import DriftReport


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    res = CliRunner().invoke(
        main,
        ["train", "--profile", "pcm", "--model", "mlp", "--data", "digits", "--mode", "hardware",
         "--epochs", "2", "--hidden", "32", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    return out


def test_train_saves_model_profile_and_curve(run_dir):
    for name in ("run.json", "model.pt", "profile.yaml", "curve.csv"):
        assert (run_dir / name).is_file(), name
    spec = json.loads((run_dir / "run.json").read_text())
    assert spec["model"] == "mlp" and spec["mode"] == "hardware" and spec["profile"] == "pcm" and spec["hidden"] == [32]
    rows = list(csv.DictReader(open(run_dir / "curve.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    prof = yaml.safe_load((run_dir / "profile.yaml").read_text())
    assert prof["name"] == "pcm" and prof["drift"]["kind"] == "power_law"
    net, spec2, ds = load_run(run_dir)
    sd = torch.load(run_dir / "model.pt", weights_only=True)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in sd.items())
    assert ds.input_shape == (64,)


def test_drift_without_matplotlib_never_claims_a_png(run_dir, monkeypatch):
    """Was: 'wrote .../drift_none.{json,csv,png}' with no .png written."""
    import sys

    for mod in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, mod, None)  # import matplotlib.pyplot now raises ImportError
    args = ["drift", str(run_dir), "--times", "1s", "--repeats", "1", "--compensation", "none", "--workers", "1"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert not (run_dir / "drift_none.png").exists()
    assert "drift_none.{json,csv} (no plot: it needs matplotlib" in res.output and ",png}" not in res.output
    assert (run_dir / "drift_none.json").is_file() and (run_dir / "drift_none.csv").is_file()


def test_drift_prints_table_and_writes_files(run_dir):
    args = ["drift", str(run_dir), "--times", "1s,1d,10y", "--repeats", "2", "--compensation", "global", "--workers", "1"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "| time | mean (%) | std | 95 % CI | min | max |" in res.output
    assert "| 10y |" in res.output and "6 points computed, 0 resumed" in res.output
    assert "drift_global.{json,csv,png}" in res.output
    for ext in ("json", "csv", "png"):
        assert (run_dir / f"drift_global.{ext}").is_file(), ext
    rep = DriftReport.from_json(run_dir / "drift_global.json")
    assert rep.repeats == 2 and rep.times_s == [1.0, 86400.0, 315576000.0] and rep.compensation == "global"
    # the same command again resumes everything from the saved points
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 points computed, 6 resumed" in again.output


@pytest.mark.parametrize(
    "args, match",
    [
        (["--times", "1h,1s"], "strictly increasing"),
        (["--compensation", "sideways"], "compensation must be one of ['none', 'global', 'per_column', 'global_aihwkit'] (got 'sideways')"),
        (["--compensation", "global,sideways"], "(got 'sideways')"),
        (["--workers", "many"], "use auto, 1 (serial)"),
        (["--repeats", "0"], "0 is not in the range"),
    ],
)
def test_drift_bad_input(run_dir, args, match):
    res = CliRunner().invoke(main, ["drift", str(run_dir), *args])
    assert res.exit_code != 0
    assert match in res.output


def test_drift_on_missing_run(tmp_path):
    res = CliRunner().invoke(main, ["drift", str(tmp_path)])
    assert res.exit_code == 2 and "no run.json" in res.output


def test_train_bad_profile(tmp_path):
    res = CliRunner().invoke(main, ["train", "--profile", "no_such_chip", "--epochs", "1", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "no_such_chip" in res.output


def test_demo_tiny(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(
        main, ["demo", "--out", str(out), "--epochs", "1", "--repeats", "2", "--times", "1s,1y", "--hidden", "16", "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "| time | hardware-trained, no comp. | hardware-trained, global comp. | float-trained, no comp. | float-trained, global comp. |" in res.output
    assert "| digital |" in res.output and "| 1y |" in res.output
    for f in ("demo.md", "demo.png", "hardware/run.json", "float/run.json", "hardware/drift_none.json", "float/drift_global.csv"):
        assert (out / f).is_file(), f
    assert json.loads((out / "float" / "run.json").read_text())["mode"] == "ideal"
    # a second demo with other settings into the same folder retrains, so the old studies go
    res = CliRunner().invoke(
        main, ["demo", "--out", str(out), "--epochs", "1", "--repeats", "2", "--times", "1s,1y", "--hidden", "8", "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "holds points of a different study" not in res.output
    assert DriftReport.from_json(out / "hardware" / "drift_none.json").repeats == 2


def _copy_run(run_dir, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("drift_*"))
    return dst


def _rewrite_spec(run, **change):
    """Edit run.json and write its checksum file again (as if cimsim had written the edit)."""
    import hashlib

    spec = json.loads((run / "run.json").read_text())
    spec.update(change)
    text = json.dumps(spec)
    (run / "run.json").write_text(text)
    (run / "run.json.sha256").write_text(hashlib.sha256(text.encode()).hexdigest() + "  run.json\n")


def _drift_fails(run, match):
    res = CliRunner().invoke(main, ["drift", str(run), "--repeats", "1", "--times", "1s", "--workers", "1", "--no-plot"])
    assert res.exit_code == 2, res.output
    assert "Aborted" not in res.output and "Traceback" not in res.output
    assert "error: " in res.output and match in res.output, res.output
    return res.output


def test_drift_on_malformed_runs(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    for f in ("run.json", "model.pt", "profile.yaml", "curve.csv"):
        assert (run / f"{f}.sha256").is_file(), f
    good = (run / "model.pt").read_bytes()
    (run / "model.pt").write_bytes(b"")
    _drift_fails(run, "model.pt: sha256")
    (run / "model.pt").write_bytes(good)
    _rewrite_spec(run, seed="abc")
    _drift_fails(run, "run.json: seed must be an int in [0, 2^63 - 1] (got 'abc')")
    _rewrite_spec(run, seed=0, mode="turbo")
    _drift_fails(run, "run.json: mode must be one of")
    (run / "run.json").write_text("{not json")
    _drift_fails(run, "run.json: sha256")
    (run / "run.json.sha256").unlink()
    _drift_fails(run, "run.json is not valid JSON")


def test_drift_on_legacy_run_with_empty_model(run_dir, tmp_path):
    """A run of format 1 (no checksums) is still read; an empty model.pt is named, not 'Aborted!'."""
    run = _copy_run(run_dir, tmp_path)
    spec = json.loads((run / "run.json").read_text())
    spec["format"] = "cimsim.run/1"
    del spec["sha256"]
    (run / "run.json").write_text(json.dumps(spec))
    for f in run.glob("*.sha256"):
        f.unlink()
    assert load_run(run)[1]["format"] == "cimsim.run/1"
    (run / "model.pt").write_bytes(b"")
    _drift_fails(run, "model.pt: not a torch state_dict")
