"""`cimsim profile fit`: the profile, report and figure it writes, and its errors."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from cimsim import load_profile, profile_from_yaml, simulate_measurements
from cimsim.cli import main


def _data(tmp_path, suffix=".csv"):
    t = simulate_measurements("rram_neurram", np.linspace(1.0, 40.0, 5), [1.0, 60.0, 3600.0], devices_per_target=20,
                              reads=2, seed=0)
    return t.save(tmp_path / f"meas{suffix}")


def test_fit_writes_profile_report_and_figure(tmp_path):
    data = _data(tmp_path)
    out, rep, fig = tmp_path / "my_device.yaml", tmp_path / "fit.md", tmp_path / "fit.png"
    r = CliRunner().invoke(main, ["profile", "fit", str(data), "--base", "pcm", "--name", "my_device", "--out", str(out),
                                  "--report", str(rep), "--plot", str(fig)])
    assert r.exit_code == 0, r.output
    p = load_profile(out)
    assert p.name == "my_device" and p.dac == load_profile("pcm").dac
    assert "meas.csv" in p.citation.reference and "100 devices" in p.citation.reference
    assert rep.read_text().startswith("# Fit report: my_device")
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for line in (f"wrote profile {out}", f"wrote report {rep}", f"wrote figure {fig}"):
        assert line in r.output


def test_fit_to_stdout(tmp_path):
    data = _data(tmp_path, ".npz")
    r = CliRunner().invoke(main, ["profile", "fit", str(data), "--levels", "continuous", "--t0-s", "20"])
    assert r.exit_code == 0, r.output
    text = r.stdout
    p = profile_from_yaml(text)
    assert p.name == "meas" and p.conductance.n_levels is None
    assert "wrote" not in r.output


def test_fit_bad_data_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("device,g_target_us,t_min,g_us\n0,10,1,9.9\n")
    r = CliRunner().invoke(main, ["profile", "fit", str(bad), "--out", str(tmp_path / "x.yaml")])
    assert r.exit_code == 1
    assert "column 't_min' holds time in min" in r.output and "t_s = t_min * 60" in r.output
    assert not (tmp_path / "x.yaml").exists()
