"""cimsim.sweep in this process and on local processes: grids, explicit points, YAML files, the
point cache shared between sweeps, the tidy table and its files, errors."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import yaml

import cimsim
from cimsim.errors import ParameterError
from cimsim.evaluation import evaluate_drift
from cimsim.nn import convert
from cimsim.rng import chip_seeds
from cimsim.sweep import MissingDependencyError

TIMES = [1.0, 86400.0]
BASE = dict(profile="pcm", times_s=TIMES, repeats=2, seed=3)


def test_a_configuration_scores_what_evaluate_drift_scores(net, data):
    res = cimsim.sweep(model=net, data=data, axes={"adc.bits": [4, 8], "compensation": ["none", "global"]}, **BASE)
    assert [c.values for c in res.configs][:2] == [
        {"adc.bits": 4, "compensation": "none", "model": "model"}, {"adc.bits": 4, "compensation": "global", "model": "model"}]
    model = convert(net, cimsim.load_profile("pcm", overrides={"adc.bits": 4}), mode="hardware", seed=0)
    ref = evaluate_drift(model, data, times_s=TIMES, repeats=2, seed=3, compensation="global", workers=1, progress=False)
    assert res.reports[1].scores.tobytes() == ref.scores.tobytes()
    assert res.reports[1].digital_score == ref.digital_score
    # chips are drawn from the same seeds in every configuration (paired comparisons)
    assert all(rep.chip_seeds == chip_seeds(3, 2) for rep in res.reports)
    assert not np.array_equal(res.reports[0].scores, res.reports[2].scores)  # 4-bit vs 8-bit ADC differ


@pytest.mark.slow
def test_local_processes_equal_serial(net, data):
    kw = dict(model=net, data=data, axes={"adc.bits": [4, 8]}, **BASE)
    serial = cimsim.sweep(**kw)
    par = cimsim.sweep(workers=2, **kw)
    assert par.meta["executor"] == "processes" and par.meta["workers"] == 2
    assert par.scores.tobytes() == serial.scores.tobytes()


def test_two_sweeps_sharing_a_cache_share_points(net, data, tmp_path):
    cache = tmp_path / "cache"
    a = cimsim.sweep(model=net, data=data, axes={"adc.bits": [4, 6]}, cache=cache, **BASE)
    b = cimsim.sweep(model=net, data=data, axes={"adc.bits": [6, 8]}, cache=cache, **BASE)
    assert a.meta["points_computed"] == 8
    assert b.meta["points_cached"] == 4 and b.meta["points_computed"] == 4  # adc.bits=6 came from sweep a
    assert b.reports[0].scores.tobytes() == a.reports[1].scores.tobytes()
    # another metric or another model is another key: nothing is wrongly re-used
    c = cimsim.sweep(model=net, data=data, axes={"adc.bits": [6]}, cache=cache, metric="cross_entropy", **BASE)
    assert c.meta["points_computed"] == 4
    d = cimsim.sweep(model=net, data=(data[0][:50], data[1][:50]), axes={"adc.bits": [6]}, cache=cache, **BASE)
    assert d.meta["points_computed"] == 4


def test_a_torn_cache_line_is_computed_again(net, data, tmp_path):
    res = cimsim.sweep(model=net, data=data, out=tmp_path, **BASE)
    (pfile,) = (tmp_path / "cache").rglob("*.points.jsonl")
    lines = pfile.read_bytes().splitlines(keepends=True)
    pfile.write_bytes(b"".join(lines[:-1]) + lines[-1][:20])  # a client killed in the middle of a write
    with pytest.warns(RuntimeWarning, match="torn"):
        again = cimsim.sweep(model=net, data=data, out=tmp_path, **BASE)
    assert again.meta["points_computed"] == 1
    assert again.scores.tobytes() == res.scores.tobytes()


def test_yaml_file_with_override_groups_and_files_written(net, data, tmp_path):
    spec = {
        "name": "tiles",
        "profile": "pcm",
        "data": {"name": "digits", "n_test": 100},
        "axes": {"tile": {"small": {"tile.rows": 32, "tile.cols": 32}, "large": {"tile.rows": 256, "tile.cols": 256}},
                 "compensation": ["global"]},
        "times_s": "1s,1d",
        "repeats": 2,
        "seed": 3,
        "plot": {"axis": "tile", "t_s": "1d"},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    res = cimsim.sweep(path, model=net, out=tmp_path / "out")
    assert [c.values["tile"] for c in res.configs] == ["small", "large"]
    assert [c.overrides for c in res.configs][0] == {"tile.rows": 32, "tile.cols": 32}
    out = tmp_path / "out"
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2 and rows[0]["tile"] == "small" and rows[0]["metric"] == "accuracy"
    assert float(rows[0]["score"]) == res.rows[0]["score"]  # repr round-trips floats exactly
    assert len({r["profile_hash"] for r in rows}) == 2
    summary = (out / "summary.md").read_text()
    assert "| small | global | model | 1d |" in summary
    record = json.loads((out / "sweep.json").read_text())
    assert record["meta"]["points_computed"] == 8 and record["axes"] == ["tile", "compensation", "model"]
    pytest.importorskip("matplotlib")
    assert (out / "score_vs_time.png").stat().st_size > 1000 and (out / "score_vs_tile.png").stat().st_size > 1000
    if "pyarrow" in sys.modules or _has("pyarrow"):
        import pyarrow.parquet as pq

        assert pq.read_table(out / "results.parquet").num_rows == 8


def _has(mod: str) -> bool:
    try:
        __import__(mod)
    except ImportError:
        return False
    return True


def test_explicit_points_and_table(net, data):
    pts = [{"adc.bits": 4, "compensation": "none"}, {"adc.bits": 8, "compensation": "global"}]
    res = cimsim.sweep(model=net, data=data, points=pts, **BASE)
    assert [(c.values["adc.bits"], c.compensation) for c in res.configs] == [(4, "none"), (8, "global")]
    table = res.table
    n = len(table)
    assert n == 2 * 2 * 2
    summary = res.summary()
    assert len(summary) == 4 and {"mean", "std", "ci95_low", "ci95_high", "n"} <= set(summary[0])
    grid = cimsim.sweep(model=net, data=data, axes={"adc.bits": [4, 8], "compensation": ["none", "global"]}, **BASE)
    assert res.reports[1].scores.tobytes() == grid.reports[3].scores.tobytes()


def test_a_model_axis(net, data):
    import copy

    other = copy.deepcopy(net)
    with __import__("torch").no_grad():
        other[1].weight.mul_(0.5)
    res = cimsim.sweep(models={"a": net, "b": other}, data=data, axes={"model": ["a", "b"]}, **BASE)
    assert [r["model"] for r in res.rows[::4]] == ["a", "b"]
    assert res.keys[0] != res.keys[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(axes={"bits": [4, 8]}), "unknown axis 'bits'.*dotted profile field"),
        (dict(axes={"adc.bits": []}), "axis 'adc.bits' must be a non-empty list"),
        (dict(axes={"compensation": ["sometimes"]}), "sometimes"),
        (dict(axes={"model": ["nope"]}), "model 'nope' is not among the sweep's models"),
        (dict(axes={"adc.bits": [4]}, points=[{"adc.bits": 4}]), "not both"),
        (dict(repeats=0), "repeats must be an integer >= 1"),
        (dict(workers=2, executor=object()), "give one of executor=, workers= and scheduler="),
        (dict(colour="red"), r"unknown sweep setting\(s\) \['colour'\]"),
        (dict(axes={"adc.bits": [3.5]}), "adc.bits"),
    ],
)
def test_errors_name_the_value_and_the_fix(net, data, kwargs, message):
    kw = dict(model=net, data=data, **BASE)
    kw.update(kwargs)
    with pytest.raises((ParameterError, cimsim.ProfileError), match=message):
        cimsim.sweep(**kw)


def test_a_scheduler_without_distributed_says_what_to_install(net, data, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if cimsim[dask] were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'cimsim\[dask\]'"):
        cimsim.sweep(model=net, data=data, scheduler="tcp://127.0.0.1:8786", **BASE)


@pytest.mark.slow
def test_a_model_trained_by_the_sweep_is_trained_once(tmp_path):
    spec = {"models": {"hw": {"train": {"mode": "hardware", "epochs": 1, "hidden": [16], "profile": "pcm", "seed": 0}}},
            "profile": "pcm", "data": {"name": "digits", "n_test": 60}, "axes": {"adc.bits": [6]},
            "times_s": [1.0], "repeats": 1}
    first = cimsim.sweep(spec, out=tmp_path)
    (run_dir,) = (tmp_path / "cache" / "runs").iterdir()
    stamp = (run_dir / "model.pt").stat().st_mtime_ns
    again = cimsim.sweep(spec, out=tmp_path)
    assert (run_dir / "model.pt").stat().st_mtime_ns == stamp and again.meta["points_computed"] == 0
    assert again.scores.tobytes() == first.scores.tobytes() and first.rows[0]["model"] == "hw"


def test_without_pandas_pyarrow_matplotlib_the_table_is_rows_and_csv(net, data, tmp_path, monkeypatch):
    for mod in ("pandas", "pyarrow", "pyarrow.parquet", "matplotlib"):
        monkeypatch.setitem(sys.modules, mod, None)  # as on a base install
    res = cimsim.sweep(model=net, data=data, out=tmp_path, **BASE)
    assert isinstance(res.table, list) and res.table == res.rows and len(res.rows) == 4
    files = sorted(p.name for p in tmp_path.iterdir() if p.is_file() and not p.name.endswith(".sha256"))
    assert files == ["results.csv", "summary.csv", "summary.md", "sweep.json"]


@pytest.mark.slow
def test_a_process_pool_gets_each_blob_about_once_per_worker(net, data):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    kw = dict(model=net, data=data, axes={"adc.bits": [4, 8]}, **dict(BASE, repeats=8, times_s=[1.0]))
    serial = cimsim.sweep(**kw)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        res = cimsim.sweep(executor=ex, **kw)
    assert res.scores.tobytes() == serial.scores.tobytes()
    # 16 jobs, each reading a model blob (one per ADC setting) and the data blob: sent with every
    # job that would be 32 copies; sent with the first 2 jobs of each blob plus the jobs that found
    # a process without it, a few
    assert res.meta["jobs"] == 16 and 3 <= res.meta["blob_copies_sent"] <= 16


@pytest.mark.slow
def test_a_saved_run_as_model_with_its_data_and_a_relative_path(tmp_path):
    from cimsim.runs import load_run, train_run

    train_run(tmp_path / "runs" / "f", mode="float", epochs=1, hidden=(16,), seed=0)
    spec = {"models": {"f": {"run": "runs/f"}}, "profile": "pcm", "axes": {"compensation": ["none"]},
            "times_s": [1.0], "repeats": 2, "seed": 3}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    res = cimsim.sweep(tmp_path / "sweep.yaml")  # the run's path is relative to the file; its test split is the data
    net, _, ds = load_run(tmp_path / "runs" / "f")
    ref = evaluate_drift(convert(net, "pcm", mode="hardware", seed=0), ds, times_s=[1.0], repeats=2, seed=3,
                         compensation="none", workers=1, progress=False)
    assert res.reports[0].scores.tobytes() == ref.scores.tobytes() and res.rows[0]["model"] == "f"
