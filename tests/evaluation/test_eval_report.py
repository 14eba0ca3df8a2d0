"""DriftReport statistics, text/JSON/CSV output, plot, and the time notation."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from cimsim.errors import CimsimError, ParameterError, StateFormatError
from cimsim.evaluation.report import DriftReport, plot_reports, t_quantile
from cimsim.times import format_time, parse_time, parse_times


def _report(repeats: int = 5, seed: int = 0) -> DriftReport:
    rng = np.random.default_rng(seed)
    times = [1.0, 3600.0, 86400.0, 3.15576e7]
    scores = 0.95 - 0.02 * np.arange(4)[None, :] + 0.01 * rng.standard_normal((repeats, 4))
    return DriftReport(
        times_s=times, scores=scores, metric="accuracy", digital_score=0.97, profile="pcm", seed=3,
        chip_seeds=list(range(100, 100 + repeats)), compensation="global", meta={"note": "x"},
    )


@pytest.mark.parametrize(
    "text, seconds",
    [("1s", 1.0), ("1h", 3600.0), ("1d", 86400.0), ("1y", 365.25 * 86400), ("10y", 3652.5 * 86400),
     ("0", 0.0), ("2.5min", 150.0), ("250ns", 2.5e-7), ("3 days", 3 * 86400.0), ("1e3", 1000.0), (7, 7.0)],
)
def test_parse_time(text, seconds):
    assert parse_time(text) == pytest.approx(seconds, rel=1e-12)


def test_parse_times_cli_string():
    assert parse_times("1s,1h,1d,1y,10y") == [1.0, 3600.0, 86400.0, 31557600.0, 315576000.0]


@pytest.mark.parametrize(
    "text, match",
    [("1h,1s", r"strictly increasing.*3600 followed by 1"), ("1s,1s", r"strictly increasing"),
     ("1parsec", r"cannot read the time '1parsec'.*unit"), ("-1s", r"cannot read the time"), ("", r"empty")],
)
def test_parse_times_errors(text, match):
    with pytest.raises(ParameterError, match=match):
        parse_times(text)


def test_format_time():
    assert [format_time(t) for t in parse_times("0,1s,1min,1h,1d,1mo,1y,10y")] == ["0", "1s", "1min", "1h", "1d", "1mo", "1y", "10y"]


@pytest.mark.parametrize("df", [1, 2, 4, 9, 19, 30, 100])
def test_t_quantile_matches_tables(df):
    table = {1: 12.706204736, 2: 4.302652730, 4: 2.776445105, 9: 2.262157163, 19: 2.093024054, 30: 2.042272456, 100: 1.983971519}
    assert t_quantile(0.975, df) == pytest.approx(table[df], abs=1e-8)
    assert t_quantile(0.025, df) == pytest.approx(-table[df], abs=1e-8)


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1.5, 3, 7, 50):
        for p in (0.6, 0.9, 0.995):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), abs=1e-8)


def test_statistics():
    rep = _report(repeats=8)
    s = rep.scores
    np.testing.assert_allclose(rep.mean, s.mean(0))
    np.testing.assert_allclose(rep.std, s.std(0, ddof=1))
    half = t_quantile(0.975, 7) * s.std(0, ddof=1) / math.sqrt(8)
    np.testing.assert_allclose(rep.ci_high - rep.mean, half)
    np.testing.assert_allclose(rep.mean - rep.ci_low, half)
    assert rep.repeats == 8


def test_single_repeat_has_no_spread():
    rep = _report(repeats=1)
    assert np.isnan(rep.std).all() and np.isnan(rep.ci_low).all()
    back = DriftReport.from_json(rep.to_json())
    assert back.equals(rep)
    assert "| 1s |" in rep.to_markdown()


def test_json_round_trip_is_bit_exact(tmp_path):
    rep = _report()
    path = tmp_path / "r.json"
    rep.to_json(path)
    back = DriftReport.from_json(path)
    assert back.equals(rep)
    assert back.scores.tobytes() == rep.scores.tobytes()
    assert back.meta == rep.meta and back.times_s == rep.times_s
    d = json.loads(path.read_text())
    assert d["format"] == "cimsim.drift_report/1" and len(d["summary"]) == 4


def test_from_json_errors(tmp_path):
    with pytest.raises(StateFormatError, match="no drift report"):
        DriftReport.from_json(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"format": "something"}')
    with pytest.raises(StateFormatError, match="format"):
        DriftReport.from_json(tmp_path / "other.json")


def test_bad_shape():
    with pytest.raises(ParameterError, match=r"\[repeats, n_times\]"):
        DriftReport(times_s=[1.0, 2.0], scores=np.zeros((3, 3)))


def test_csv(tmp_path):
    rep = _report(repeats=3)
    rep.to_csv(tmp_path / "r.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert [float(r["t_s"]) for r in rows] == rep.times_s
    np.testing.assert_array_equal([[float(r[f"r{k}"]) for r in rows] for k in range(3)], rep.scores)
    np.testing.assert_array_equal([float(r["mean"]) for r in rows], rep.mean)
    assert float(rows[0]["digital"]) == 0.97


def test_markdown():
    md = _report().to_markdown()
    assert "| time | mean (%) | std | 95 % CI | min | max |" in md
    assert "digital reference 97.00 (%)" in md and "`pcm`" in md
    assert md.count("\n| ") == 5  # header + 4 times


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    rep = _report()
    rep.plot(tmp_path / "a.png")
    plot_reports([rep, _report(seed=1)], tmp_path / "b.png", labels=["one", "two"])
    assert (tmp_path / "a.png").stat().st_size > 1000 and (tmp_path / "b.png").stat().st_size > 1000


def test_errors_are_cimsim_errors():
    assert issubclass(ParameterError, CimsimError)


def test_report_carries_the_resolved_profiles_and_their_hashes(model, small_data):
    """Reports name what was simulated, not only a profile's name: two models on profiles that
    share a name but differ in one field get different hashes and carry the full profiles."""
    import copy

    from cimsim.evaluation import evaluate_drift
    from cimsim.profiles import load_profile, profile_sha256

    other = copy.deepcopy(model)
    adc6 = load_profile("pcm", {"adc.bits": 6})
    for layer in other.modules():
        if hasattr(layer, "analog_config"):
            layer.analog_config = layer.analog_config.updated({"profile": adc6})
    kw = dict(times_s=[1.0], repeats=1, seed=0, workers=1)
    a = evaluate_drift(model, small_data, **kw)
    b = evaluate_drift(other, small_data, **kw)
    ha, hb = set(a.meta["layer_profiles"].values()), set(b.meta["layer_profiles"].values())
    assert ha == {profile_sha256(load_profile("pcm"))} and hb == {profile_sha256(adc6)} and ha != hb
    (h,) = hb
    assert b.meta["profiles"][h]["adc"]["bits"] == 6
    assert f"sha256 {h[:12]}" in b.to_markdown()
    back = type(b).from_json(b.to_json())
    assert back.meta["profiles"] == b.meta["profiles"]
