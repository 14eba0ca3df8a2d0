"""Sweeps on a real Dask LocalCluster (2 worker processes): the serial bits, through a lost worker,
a killed client and a grown grid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cimsim

pytestmark = pytest.mark.slow

# 2 profiles x 2 compensations x 3 times x 4 repeats = 48 points, 16 jobs (one per configuration and chip)
GRID = dict(profile="pcm", axes={"profile": ["pcm", "rram_taox"], "compensation": ["none", "global"]},
            times_s=[1.0, 3600.0, 86400.0], repeats=4, seed=7)


@pytest.fixture(scope="module")
def serial(net, data):
    return cimsim.sweep(model=net, data=data, **GRID)


def test_dask_sweep_equals_serial(net, data, serial, dask_client, tmp_path):
    res = cimsim.sweep(model=net, data=data, executor=dask_client, out=tmp_path, **GRID)
    assert res.meta["executor"] == "Client" and res.meta["workers"] == 2 and res.meta["points_computed"] == 48
    assert res.scores.shape == (4, 4, 3)
    assert res.scores.tobytes() == serial.scores.tobytes()
    rows = res.rows
    assert len(rows) == 48 and {"profile", "compensation", "model", "chip_seed", "t_s", "score", "profile_hash"} <= set(rows[0])
    assert len({r["profile_hash"] for r in rows}) == 2
    # the same grid through the client's concurrent.futures executor
    again = cimsim.sweep(model=net, data=data, executor=dask_client.get_executor(), **GRID)
    assert again.scores.tobytes() == serial.scores.tobytes()


def test_a_worker_killed_mid_sweep_changes_no_bit(net, data, serial, dask_client):
    pids = dask_client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed: list[int] = []

    def kill_once(done: int, total: int) -> None:
        if not killed:  # the first job is back, the others are queued or running on both workers
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    res = cimsim.sweep(model=net, data=data, executor=dask_client, progress=kill_once, **GRID)
    assert killed and killed[0] < 48
    assert res.meta["points_computed"] == 48
    assert res.scores.tobytes() == serial.scores.tobytes()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the nanny brings a fresh worker back
        now = dask_client.run(os.getpid)
        if len(now) == 2:
            break
        time.sleep(0.5)
    assert victim not in dask_client.run(os.getpid).values()


def test_blobs_lost_with_a_worker_are_scattered_again(net, data, serial, dask_client, monkeypatch):
    """Every blob's only copy on one worker, killed after the first result: the jobs that needed
    them are cancelled by the scheduler, scattered and run again, and the scores keep every bit."""
    pids = dask_client.run(os.getpid)
    victim_addr, victim = sorted(pids.items(), key=lambda kv: kv[1])[0]
    scatter = dask_client.scatter
    first: set[bytes] = set()

    def scatter_to_victim(data, **kw):  # the first copy of each blob on the victim alone
        if data in first:
            return scatter(data, **kw)
        first.add(data)
        return scatter(data, workers=[victim_addr], broadcast=False, hash=False)

    monkeypatch.setattr(dask_client, "scatter", scatter_to_victim)
    killed: list[int] = []

    def kill_once(done: int, total: int) -> None:
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    res = cimsim.sweep(model=net, data=data, executor=dask_client, progress=kill_once, **GRID)
    assert killed and killed[0] < 48
    assert res.meta["points_computed"] == 48
    assert res.meta["blob_copies_sent"] > 3 * 2  # the first scatter's copies and the second's
    assert res.scores.tobytes() == serial.scores.tobytes()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(dask_client.run(os.getpid)) < 2:  # the nanny's fresh worker
        time.sleep(0.5)


_CLIENT = """
import json, sys, time
import distributed, torch, cimsim
from cimsim.data import digits
from cimsim.models import mlp

address, weights, cache, grid = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
net = mlp(64, (16,), 10)
net.load_state_dict(torch.load(weights, weights_only=True))
ds = digits(seed=0)
with distributed.Client(address) as client:
    cimsim.sweep(model=net.eval(), data=(ds.x_test[:100], ds.y_test[:100]), executor=client, cache=cache,
                 progress=lambda done, total: time.sleep(0.4), **grid)
print("finished")
"""


def _stored_points(cache: Path) -> int:
    """Complete point lines (a header line first in each file) in the cache."""
    return sum(max(0, p.read_bytes().count(b"\n") - 1) for p in cache.rglob("*.points.jsonl"))


def test_a_killed_client_loses_only_the_points_in_flight(net, data, serial, dask_client, tmp_path):
    weights, cache = tmp_path / "net.pt", tmp_path / "cache"
    torch.save(net.state_dict(), weights)
    grid = dict(GRID)
    proc = subprocess.Popen([sys.executable, "-c", _CLIENT, dask_client.scheduler.address, str(weights), str(cache), json.dumps(grid)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while _stored_points(cache) < 9 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # mid-sweep: the client paces itself (0.4 s per job)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stored = _stored_points(cache)
    assert 9 <= stored < 48, (stored, proc.stderr.read().decode()[-2000:] if proc.stderr else "")
    res = cimsim.sweep(model=net, data=data, executor=dask_client, cache=cache, **GRID)
    assert res.meta["points_cached"] == stored and res.meta["points_computed"] == 48 - stored
    assert res.scores.tobytes() == serial.scores.tobytes()


def test_a_grown_grid_computes_only_the_new_points(net, data, serial, dask_client, tmp_path):
    small = dict(GRID, axes={"profile": ["pcm", "rram_taox"], "compensation": ["none"]}, times_s=[1.0, 3600.0], repeats=2)
    first = cimsim.sweep(model=net, data=data, executor=dask_client, out=tmp_path, **small)
    assert first.meta["points_computed"] == 2 * 1 * 2 * 2
    grown = cimsim.sweep(model=net, data=data, executor=dask_client, out=tmp_path, **GRID)
    assert grown.meta["points_cached"] == 8 and grown.meta["points_computed"] == 40
    assert grown.scores.tobytes() == serial.scores.tobytes()


def test_a_cluster_without_workers_is_an_error_not_a_hang(net, data, monkeypatch, local_cluster):
    import distributed

    from cimsim.errors import WorkerError
    from cimsim.evaluation import executor as ex_mod

    monkeypatch.setattr(ex_mod, "WAIT_FOR_WORKERS_S", 1.0)
    with local_cluster(0) as cluster, distributed.Client(cluster) as client:
        with pytest.raises(WorkerError, match="no Dask worker joined the scheduler tcp://127.0.0.1.*within 1 s"):
            cimsim.sweep(model=net, data=data, executor=client, **dict(GRID, repeats=1))
