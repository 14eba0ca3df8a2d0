"""Running a study's jobs (evaluation/pool.py): parallel == serial bit for bit, auto workers, pickling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import cimsim
import cimsim.evaluation.pool as pool_mod
from cimsim.errors import ParameterError, WorkerError
from cimsim.evaluation import evaluate_drift
from cimsim.evaluation.metrics import accuracy
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


class _HoldsLock:
    """A metric no pickler can send to another process (it holds a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, outputs, targets) -> float:
        return 0.0


def test_unpicklable_metric_with_explicit_workers(model, small_data):
    with pytest.raises(ParameterError, match="cannot be sent to worker processes.*workers=1"):
        evaluate_drift(model, small_data, times_s=[1.0], repeats=2, seed=0, workers=2, metric=_HoldsLock())


# A script as users write them: no `if __name__ == "__main__":` guard, a model class and a lambda
# metric defined in __main__, a parallel study at import level. Workers must not re-run it.
_NO_GUARD = """
import sys
import torch
from torch import nn
from cimsim.data import digits
from cimsim.evaluation import evaluate_drift
from cimsim.nn import convert

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x)

torch.manual_seed(0)
ds = digits(seed=0)
net = convert(Net(), "pcm", seed=0)
data = (ds.x_test[:60], ds.y_test[:60])
kw = dict(times_s=[1.0, 86400.0], repeats=3, seed=0, progress=False,
          metric=lambda o, t: float((o.argmax(1) == t).double().mean()))
parallel = evaluate_drift(net, data, workers=2, **kw)
serial = evaluate_drift(net, data, workers=1, **kw)
print("WORKERS", parallel.meta["workers"], "SAME_BITS", parallel.scores.tobytes() == serial.scores.tobytes())
"""


def test_script_without_main_guard_runs_a_parallel_study(tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(_NO_GUARD)
    env = {**os.environ, "PYTHONPATH": str(Path(cimsim.__file__).parent.parent)}
    try:
        done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("a parallel study in a script without a main guard did not finish in 120 s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WORKERS 2 SAME_BITS True" in done.stdout


class _DieInWorker:
    """Accuracy, except in a worker process: there it notes the time and sends itself ``sig``."""

    def __init__(self, stamp: Path, sig: int) -> None:
        self.parent, self.stamp, self.sig = os.getpid(), str(stamp), sig

    def __call__(self, outputs, targets) -> float:
        if os.getpid() != self.parent:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from the SIGSEGV
            # written whole, then renamed: both workers die this way, and the test may read the
            # stamp while the other one writes it
            tmp = Path(f"{self.stamp}.{os.getpid()}")
            tmp.write_text(repr(time.time()))
            os.replace(tmp, self.stamp)
            os.kill(os.getpid(), self.sig)
        return accuracy(outputs, targets)


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals")
@pytest.mark.parametrize("sig, name", [(signal.SIGKILL, "SIGKILL"), (signal.SIGSEGV, "SIGSEGV")])
def test_a_dying_worker_is_a_named_error_within_seconds(model, small_data, tmp_path, sig, name):
    stamp = tmp_path / "killed_at"
    with pytest.raises(WorkerError, match=rf"worker process of the drift study died \(exit codes .*{name}.*workers=1") as err:
        evaluate_drift(model, small_data, times_s=[1.0], repeats=2, seed=0, workers=2, metric=_DieInWorker(stamp, sig))
    assert time.time() - float(stamp.read_text()) < 10, "the study waited on a dead worker"
    assert isinstance(err.value, cimsim.CimsimError)


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
