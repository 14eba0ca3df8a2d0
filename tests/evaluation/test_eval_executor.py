"""evaluate_drift(..., executor=): any concurrent.futures executor or a Dask client gives the serial bits."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from cimsim.errors import ParameterError
from cimsim.evaluation import evaluate_drift
from cimsim.evaluation.points import points_path

TIMES = [1.0, 3600.0, 86400.0]
KW = dict(times_s=TIMES, repeats=3, seed=5, progress=False)


@pytest.fixture(scope="module")
def dask_client(local_cluster):
    """A real Dask cluster on this machine: 2 worker processes, localhost only, no dashboard."""
    import distributed

    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def serial(model, small_data):
    return evaluate_drift(model, small_data, workers=1, **KW)


def test_thread_pool_equals_serial_and_writes_the_points_file(model, small_data, serial, tmp_path):
    out = tmp_path / "r.json"
    with ThreadPoolExecutor(2) as ex:
        rep = evaluate_drift(model, small_data, executor=ex, out=out, **KW)
    assert rep.scores.tobytes() == serial.scores.tobytes()
    assert rep.meta["executor"] == "ThreadPoolExecutor" and rep.meta["workers"] == 2
    # the points came back to this process and were written here: a re-run computes nothing
    assert len(points_path(out).read_text().splitlines()) == 1 + 3 * len(TIMES)
    again = evaluate_drift(model, small_data, workers=1, out=out, **KW)
    assert again.meta["points_computed"] == 0 and again.equals(serial)


@pytest.mark.slow
def test_process_pool_executor_equals_serial(model, small_data, serial):
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        rep = evaluate_drift(model, small_data, executor=ex, **KW)
    assert rep.scores.tobytes() == serial.scores.tobytes()


def test_executor_argument_errors(model, small_data):
    with pytest.raises(ParameterError, match="not both"), ThreadPoolExecutor(1) as ex:
        evaluate_drift(model, small_data, executor=ex, workers=2, **KW)
    with pytest.raises(ParameterError, match="concurrent.futures.Executor.*got str"):
        evaluate_drift(model, small_data, executor="dask", **KW)


@pytest.mark.slow
def test_dask_client_and_its_executor_equal_serial(model, small_data, serial, dask_client):
    from cimsim.evaluation import executor as ex_mod

    ex_mod_name = ex_mod.__name__
    for executor in (dask_client, dask_client.get_executor()):
        rep = evaluate_drift(model, small_data, executor=executor, **KW)
        assert rep.scores.tobytes() == serial.scores.tobytes()
        assert rep.meta["workers"] == 2

    def cached() -> list[str]:
        import sys

        return sorted(sys.modules[ex_mod_name]._CACHE)

    # the model and the data+metric reached each worker as blobs, unpickled once and kept there
    per_worker = dask_client.run(cached)
    assert len(per_worker) == 2 and all(len(keys) >= 2 for keys in per_worker.values())
