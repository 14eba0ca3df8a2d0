"""kill -9 in the middle of every save path: what is on disk afterwards loads as the old or the
new version, bit for bit, or is refused by name; an interrupted training run resumes bit for bit.

Each test runs a writer in a child process that saves in a loop (A, B, A, ...) over one path,
kills it with SIGKILL at several moments, and loads what is left in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cimsim.errors import StateFormatError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

STATES = """
import numpy as np
from cimsim import load_profile, program_matrix
p = load_profile("pcm")
rng = np.random.default_rng(0)
A = program_matrix(rng.standard_normal((64, 300)).astype(np.float32), p, rng=1)
B = program_matrix(rng.standard_normal((64, 300)).astype(np.float32), p, rng=2)
"""

CHIPS = """
import torch
from cimsim import convert, program
from cimsim.models import mlp
torch.manual_seed(0)
model = convert(mlp(64, (48,), 10), "pcm", seed=0)
A = program(model, seed=1)
B = program(model, seed=2)
"""


def _kill_while_saving(setup: str, save: str, target: Path, delays_s: list[float]) -> list[float]:
    """Start a child that saves A then loops saving B, A, B ... to ``target``; SIGKILL it
    ``delay`` seconds after its first save, once per delay (a fresh child each time)."""
    script = textwrap.dedent(setup) + textwrap.dedent(f"""
        import sys
        target = sys.argv[1]
        A_save = lambda: {save.format(obj="A")}
        B_save = lambda: {save.format(obj="B")}
        A_save()
        print("ready", flush=True)
        i = 0
        while True:
            (B_save if i % 2 == 0 else A_save)()
            i += 1
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for delay in delays_s:
        proc = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, env=env, cwd=ROOT)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"ready", line
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        yield delay


def _same_state(a, b) -> bool:
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in ("g_pos", "g_neg", "nu_pos", "scales"))


@pytest.mark.slow
def test_kill9_during_state_save(tmp_path):
    from cimsim.crossbar import ProgrammedState

    ns: dict = {}
    exec(STATES, ns)  # the same A and B as the child's
    target = tmp_path / "chip.npz"
    outcomes = []
    for _ in _kill_while_saving(STATES, "{obj}.save(target)", target, [0.05, 0.3, 0.6]):
        st = ProgrammedState.load(target)  # never torn: the old or the new file, whole
        outcomes.append("A" if _same_state(st, ns["A"]) else "B" if _same_state(st, ns["B"]) else "?")
    assert "?" not in outcomes, outcomes


@pytest.mark.slow
def test_kill9_during_chip_save(tmp_path):
    from cimsim.evaluation import Chip

    ns: dict = {}
    exec(CHIPS, ns)
    target = tmp_path / "chip"
    outcomes = []
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(3))
    for _ in _kill_while_saving(CHIPS, "{obj}.save(target)", target, [0.1, 0.4, 0.8]):
        try:
            chip = Chip.load(target, model=ns["model"])
        except StateFormatError as exc:  # a directory caught between two layer files: refused by name
            assert str(target) in str(exc) and "checksum" in str(exc), exc
            outcomes.append("refused")
            continue
        y = chip.forward(x, t_s=10.0)
        ya, yb = (c.forward(x, t_s=10.0) for c in (ns["A"], ns["B"]))
        outcomes.append("A" if torch.equal(y, ya) else "B" if torch.equal(y, yb) else "?")
    assert "?" not in outcomes, outcomes


@pytest.mark.slow
def test_kill9_during_training_resumes_bit_for_bit(tmp_path):
    from cimsim.runs import train_run

    kw = dict(profile="pcm", model="mlp", data="digits", mode="hardware", epochs=3, hidden=(16,), seed=4)
    train_run(tmp_path / "whole", **kw)
    # torch's float GEMMs round with its thread count (docs/user_guide.md section 5): the child
    # trains on as many torch threads as this process
    script = textwrap.dedent(f"""
        import sys
        import torch
        torch.set_num_threads({torch.get_num_threads()})
        from cimsim.runs import train_run
        def echo(line):
            print(line, flush=True)
        train_run(sys.argv[1], echo=echo, **{kw!r})
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run_dir = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-c", script, str(run_dir)], stdout=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stdout is not None
    for raw in proc.stdout:  # kill -9 as soon as epoch 2 is reported (its checkpoint is being written or done)
        if raw.startswith(b"epoch   2"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "model.pt").exists()
    lines: list[str] = []
    train_run(run_dir, echo=lines.append, **kw)
    assert lines[0].startswith("resuming from"), lines[:2]
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(run_dir / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "whole" / "curve.csv").read_text() == (run_dir / "curve.csv").read_text()


_STUDY = """
import sys
import torch
from cimsim.data import digits
from cimsim.evaluation import evaluate_drift
from cimsim.models import mlp
from cimsim.nn import convert

torch.manual_seed(0)
net = convert(mlp(64, (32,), 10), "pcm", seed=0)
ds = digits(seed=0)
evaluate_drift(net, (ds.x_test, ds.y_test), times_s=[1.0, 3600.0, 3.15576e8], repeats=60, seed=0,
               workers=2, out=sys.argv[1], progress=False)
"""


@pytest.mark.slow
def test_kill9_during_parallel_study_then_resume(tmp_path):
    """kill -9 of a study on two workers (no main guard) while it writes points; the rerun in
    this process resumes from the points file and equals an uninterrupted run bit for bit."""
    from cimsim.data import digits
    from cimsim.evaluation import evaluate_drift
    from cimsim.evaluation.points import points_path
    from cimsim.models import mlp
    from cimsim.nn import convert

    out = tmp_path / "study.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _STUDY, str(out)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pts = points_path(out)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if pts.exists() and len(pts.read_bytes().splitlines()) > 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the study ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    n_done = len(pts.read_bytes().splitlines())
    torch.manual_seed(0)
    net = convert(mlp(64, (32,), 10), "pcm", seed=0)
    ds = digits(seed=0)
    kw = dict(times_s=[1.0, 3600.0, 3.15576e8], repeats=60, seed=0, workers=1, progress=False)
    resumed = evaluate_drift(net, (ds.x_test, ds.y_test), out=out, **kw)
    whole = evaluate_drift(net, (ds.x_test, ds.y_test), **kw)
    assert 4 < n_done < 1 + 3 * 60  # it was killed in the middle
    assert resumed.meta["points_resumed"] >= n_done - 2  # the header line, and a line the kill may have cut
    assert resumed.scores.tobytes() == whole.scores.tobytes()
