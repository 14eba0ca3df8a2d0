"""Running a study's jobs (evaluation/pool.py): parallel == serial bit for bit, auto workers, pickling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cimsim
import cimsim.evaluation.pool as pool_mod
from cimsim.errors import ParameterError
from cimsim.evaluation import evaluate_drift
from cimsim.evaluation.points import points_path

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


_STUDY = """
import sys
from cimsim.data import digits
from cimsim.evaluation import evaluate_drift
from cimsim.models import mlp
from cimsim.nn import convert

if __name__ == "__main__":
    ds = digits(seed=0)
    net = convert(mlp(64, (64,), 10), "pcm")
    evaluate_drift(net, (ds.x_test, ds.y_test), times_s=[1.0, 3600.0, 86400.0], repeats=400, seed=0,
                   workers=2, out=sys.argv[1], progress=False)
"""


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_leave_when_the_study_is_killed(tmp_path):
    script = tmp_path / "study.py"
    script.write_text(_STUDY)
    out = tmp_path / "s.json"
    env = {**os.environ, "PYTHONPATH": str(Path(cimsim.__file__).parent.parent)}
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pts = points_path(out)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if pts.exists() and len(pts.read_bytes().splitlines()) > 2:  # the workers are scoring chips
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the study ended before it could be killed"
        kids = _children(proc.pid)  # the two workers and the resource tracker
        assert len(kids) >= 2
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.2)
    assert not [k for k in kids if _alive(k)], "worker processes outlived their killed parent"
