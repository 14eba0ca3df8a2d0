"""Running a study's jobs (evaluation/pool.py): parallel == serial bit for bit, auto workers, pickling."""

from __future__ import annotations

import pytest

import cimsim.evaluation.pool as pool_mod
from cimsim.errors import ParameterError
from cimsim.evaluation import evaluate_drift

TIMES = [1.0, 3600.0, 86400.0, 3.15576e7, 3.15576e8]  # 1 s, 1 h, 1 d, 1 y, 10 y


def test_parallel_equals_serial(model, small_data):
    serial = evaluate_drift(model, small_data, times_s=TIMES, repeats=4, seed=5, workers=1)
    parallel = evaluate_drift(model, small_data, times_s=TIMES, repeats=4, seed=5, workers=2)
    assert parallel.meta["workers"] == 2
    assert parallel.equals(serial)
    assert parallel.scores.tobytes() == serial.scores.tobytes()


def test_auto_workers_switch_to_processes_after_the_first_chip(model, small_data, monkeypatch):
    serial = evaluate_drift(model, small_data, times_s=TIMES[:2], repeats=3, seed=6, workers=1)
    auto = evaluate_drift(model, small_data, times_s=TIMES[:2], repeats=3, seed=6, workers=None)
    assert auto.meta["workers"] == 1 and auto.equals(serial)  # a short study stays in-process
    monkeypatch.setattr(pool_mod, "_PARALLEL_MIN_S", 0.0)  # pretend the study is long
    switched = evaluate_drift(model, small_data, times_s=TIMES[:2], repeats=3, seed=6, workers=None)
    assert switched.meta["workers"] == 2 and switched.equals(serial)


def test_unpicklable_metric_with_explicit_workers(model, small_data):
    with pytest.raises(ParameterError, match="cannot be sent to worker processes.*workers=1"):
        evaluate_drift(model, small_data, times_s=[1.0], repeats=2, seed=0, workers=2, metric=lambda o, t: 0.0)
