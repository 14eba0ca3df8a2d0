"""The resume file (evaluation/points.py): an interrupted study resumes to the same report, a torn
line is ignored, another study's file is refused, and the format and fingerprint stay readable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import cimsim.evaluation.pool as pool_mod
from cimsim.errors import ParameterError, StateFormatError
from cimsim.evaluation import DriftReport, evaluate_drift
from cimsim.evaluation.metrics import as_eval_data
from cimsim.evaluation.points import POINTS_FORMAT, append_point, fingerprint, points_path, read_points, start_points

TIMES = [1.0, 3600.0, 86400.0, 3.15576e7, 3.15576e8]  # 1 s, 1 h, 1 d, 1 y, 10 y


def _interrupt_after(monkeypatch, k: int) -> None:
    """Make the (k+1)-th chip read raise KeyboardInterrupt (after k finished points)."""
    real = pool_mod.score
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > k:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pool_mod, "score", flaky)


@pytest.mark.parametrize("k", [0, 4, 7])
def test_interrupted_study_resumes_to_the_same_report(model, small_data, tmp_path, monkeypatch, k):
    kw = dict(times_s=TIMES, repeats=3, compensation="global", seed=11, workers=1)
    whole = evaluate_drift(model, small_data, **kw, out=tmp_path / "whole.json")
    out = tmp_path / "study.json"
    with monkeypatch.context() as mp:
        _interrupt_after(mp, k)
        with pytest.raises(KeyboardInterrupt):
            evaluate_drift(model, small_data, **kw, out=out)
    assert not out.exists()
    lines = points_path(out).read_text().splitlines()
    assert len(lines) == 1 + k  # header + the k finished points
    resumed = evaluate_drift(model, small_data, **kw, out=out)
    assert resumed.meta["points_resumed"] == k
    assert resumed.meta["points_computed"] == 15 - k
    assert resumed.equals(whole)
    assert DriftReport.from_json(out).equals(whole)
    # a finished study re-run with the same out computes nothing
    again = evaluate_drift(model, small_data, **kw, out=out)
    assert again.meta["points_computed"] == 0 and again.equals(whole)


def test_resume_ignores_torn_line_and_extends(model, small_data, tmp_path):
    kw = dict(repeats=2, compensation="none", seed=2, workers=1)
    out = tmp_path / "s.json"
    first = evaluate_drift(model, small_data, times_s=TIMES[:2], **kw, out=out)
    with open(points_path(out), "a") as f:
        f.write('{"repeat": 0, "chip_seed": 1')  # torn by a crash mid-write
    with pytest.warns(RuntimeWarning, match="dropped 1 line"):
        more = evaluate_drift(model, small_data, times_s=TIMES[:3], repeats=3, compensation="none", seed=2, workers=1, out=out)
    assert more.meta["points_resumed"] == 4 and more.meta["points_computed"] == 5
    np.testing.assert_array_equal(more.scores[:2, :2], first.scores)
    fresh = evaluate_drift(model, small_data, times_s=TIMES[:3], repeats=3, compensation="none", seed=2, workers=1)
    assert more.equals(fresh)


def test_resume_refuses_another_study(model, small_data, tmp_path):
    out = tmp_path / "s.json"
    evaluate_drift(model, small_data, times_s=[1.0], repeats=1, seed=0, workers=1, out=out)
    with pytest.raises(ParameterError, match="different study.*another out path"):
        evaluate_drift(model, small_data, times_s=[1.0], repeats=1, seed=1, workers=1, out=out)
    points_path(tmp_path / "bad.json").write_text("garbage\n")
    with pytest.raises(StateFormatError, match="not a cimsim points file"):
        evaluate_drift(model, small_data, times_s=[1.0], repeats=1, seed=0, workers=1, out=tmp_path / "bad.json")


# --------------------------------------------------------------------------- format
def _tiny():
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.arange(6.0).reshape(2, 3) / 7)
        lin.bias.copy_(torch.tensor([0.5, -0.25]))
    return lin, torch.arange(12.0).reshape(4, 3) / 5, torch.tensor([0, 1, 1, 0])


def test_fingerprint_is_stable():
    """Resume files already written stay readable: the fingerprint of a fixed study is pinned."""
    lin, x, y = _tiny()
    data = as_eval_data((x, y), 2048)
    fp, study = fingerprint(lin, data, 3, "global", "accuracy")
    assert fp == "fbf492fcaf6e6a3b946ea84856b5c34d3c15d6b812fc0ba241c83d492787a20d"
    assert study == {"model": "Linear", "seed": 3, "compensation": "global", "metric": "accuracy", "n_samples": 4, "batch_size": 2048}
    assert fingerprint(lin, data, 4, "global", "accuracy")[0] != fp
    assert fingerprint(lin, data, 3, "global", "accuracy", output_key="logits")[0] != fp


def test_reads_a_points_file_in_the_written_format(tmp_path):
    path = tmp_path / "s.points.jsonl"
    path.write_text(
        json.dumps({"format": "cimsim.drift_points/1", "fingerprint": "abc", "study": {}}) + "\n"
        + '{"repeat": 0, "chip_seed": 12, "t_s": 1.0, "score": 0.5}\n'
        + '{"repeat": 1, "chip_seed": 13, "t_s": 3600.0, "score": NaN}\n'
        + '{"repeat": 1, "chip_seed": 13, "t_s": 1.0, "sco'
    )
    assert POINTS_FORMAT == "cimsim.drift_points/2"  # format 1 (no checksums) is still read
    with pytest.warns(RuntimeWarning, match="dropped 1 line"):
        done = read_points(path, "abc")
    assert done.keys() == {(12, 1.0), (13, 3600.0)} and done[(12, 1.0)] == 0.5 and np.isnan(done[(13, 3600.0)])
    assert path.read_text().endswith("\n")  # the torn line is closed before more points are appended
    with pytest.raises(ParameterError, match="different study"):
        read_points(path, "abd")
    assert points_path(tmp_path / "r.json") == tmp_path / "r.points.jsonl"
    assert points_path(tmp_path / "r") == tmp_path / "r.points.jsonl"


def test_lines_carry_checksums(tmp_path):
    path = tmp_path / "s.points.jsonl"
    start_points(path, "abc", {"seed": 0})
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the header went in whole, no temp file left
    append_point(str(path), {"repeat": 0, "chip_seed": 12, "t_s": 1.0, "score": 0.5})
    append_point(str(path), {"repeat": 0, "chip_seed": 12, "t_s": 3600.0, "score": float("nan")})
    append_point(str(path), {"repeat": 1, "chip_seed": 13, "t_s": 1.0, "score": 0.25})
    head, *points = path.read_text().splitlines()
    assert json.loads(head)["format"] == "cimsim.drift_points/2" and all('"sha256": "' in ln for ln in points)
    done = read_points(path, "abc")
    assert done.keys() == {(12, 1.0), (12, 3600.0), (13, 1.0)} and np.isnan(done[(12, 3600.0)])
    # a damaged score (still valid JSON) fails its checksum: dropped with a warning, recomputed
    path.write_text("\n".join([head, points[0].replace("0.5", "0.9"), *points[1:]]) + "\n")
    with pytest.warns(RuntimeWarning, match="dropped 1 line.*fail their checksum"):
        done = read_points(path, "abc")
    assert done.keys() == {(12, 3600.0), (13, 1.0)}
    # in a format-2 file a line without checksum is not trusted either
    with open(path, "a") as f:
        f.write('{"repeat": 2, "chip_seed": 14, "t_s": 1.0, "score": 1.0}\n')
    with pytest.warns(RuntimeWarning, match="dropped 2 line"):
        assert (14, 1.0) not in read_points(path, "abc")
    path.write_text(head.replace('"abc"', '"abd"') + "\n")
    with pytest.raises(StateFormatError, match="header line fails its checksum"):
        read_points(path, "abd")


def test_a_file_killed_before_its_header_is_restarted(model, small_data, tmp_path):
    out = tmp_path / "s.json"
    points_path(out).write_bytes(b"")  # what a kill between creating the file and writing the header left
    with pytest.warns(RuntimeWarning, match="no complete header line"):
        rep = evaluate_drift(model, small_data, times_s=[1.0], repeats=1, seed=0, workers=1, out=out)
    assert rep.meta["points_computed"] == 1
    again = evaluate_drift(model, small_data, times_s=[1.0], repeats=1, seed=0, workers=1, out=out)
    assert again.meta["points_resumed"] == 1 and again.equals(rep)
