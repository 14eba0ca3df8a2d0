"""Drift-study jobs on any ``concurrent.futures.Executor`` or a Dask cluster.

A task is one job of :mod:`.pool` (program chip ``r`` once, calibrate compensation, score it at
its times) plus the keys of the two blobs it reads: the model (or chip) and the environment
``(data, metric, output_key)``. A blob is an object pickled once with cloudpickle; its key is the
sha256 of those bytes. A worker unpickles a blob once and keeps it in a small per-process cache
keyed by that hash (:func:`_cached`), so the heavy part of a job is read once per worker, not
once per job, and a sweep of many configurations re-uses the data blob they share.

How the bytes reach the workers (:func:`run_tasks`):

* a Dask ``distributed.Client`` (or its ``client.get_executor()``): each blob is scattered once
  to every worker (``client.scatter(..., broadcast=True)``); a task names the scattered future,
  so only the key travels per job. A worker that dies (killed, out of memory) loses its running
  tasks, and the scheduler runs them again on another worker (up to
  ``distributed.scheduler.allowed-failures`` times, default 3); since a job's result depends on
  its inputs alone (the read noise is keyed by chip seed and time), the re-run gives the same
  bits, and a duplicate result is harmless (results are keyed by chip seed and time).
* cimsim's own local pool (:func:`local_executor`: loky processes that leave with the process
  that started them, as :func:`.pool.run_pool`'s) and
* any other executor (``concurrent.futures.ProcessPoolExecutor``, ``ThreadPoolExecutor``, ...),
  which offers no way to reach a worker but a task: a blob goes with the first few tasks that
  use it (as many as the executor has workers); later tasks carry its key only, and a task that
  lands on a process without the blob comes back at once as :class:`Missing` and is sent again
  with it. At most 2 x workers tasks are in flight, so the blobs are in place before most
  tasks arrive: about one copy per worker, never more than one per task.

Each worker process runs torch and Numba on one thread (set when a process other than the one
that submitted the tasks loads its first blob): results do not depend on thread counts, and a
worker per core is what the pool sizes assume.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import cloudpickle
import numba
import torch
from joblib.externals.loky import ProcessPoolExecutor
from joblib.externals.loky.backend.context import get_context
from joblib.externals.loky.process_executor import BrokenProcessPool

from ..errors import ParameterError, WorkerError
from .pool import Job, JobResult, Payload, _exit_with_parent, run_job

__all__ = ["Task", "Missing", "pack", "run_tasks", "run_payload", "local_executor", "dask_client", "check_executor", "executor_workers"]

#: blobs a worker keeps unpickled (least recently used dropped first)
_CACHE_MAX = 16
#: how long a Dask client with no workers waits for the first one (a cluster still starting)
WAIT_FOR_WORKERS_S = 300.0
#: times a Dask job whose scattered inputs were lost with a worker is run again before the sweep stops
MAX_RESUBMITS = 3


@dataclass(frozen=True)
class Task:
    """One job and the keys of the blobs it reads; ``tag`` is the caller's (e.g. a configuration)."""

    model: str
    env: str
    compensation: str
    job: Job
    tag: Any = None


def pack(obj: Any, what: str) -> tuple[str, bytes]:
    """``(sha256 hex, bytes)`` of ``obj`` pickled with cloudpickle; ParameterError if it cannot be."""
    try:
        data = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise ParameterError(
            f"the {what} cannot be sent to workers ({exc}); leave out what cannot be pickled (locks, open files, "
            f"generators, ...), or run in this process (workers=1, no executor)"
        ) from exc
    return hashlib.sha256(data).hexdigest(), data


def dask_client(executor: Any) -> Any:
    """The ``distributed.Client`` behind ``executor`` (a Client or ``client.get_executor()``), else None."""
    if not (type(executor).__module__ or "").startswith("distributed"):
        return None
    if callable(getattr(executor, "scatter", None)):
        return executor
    return getattr(executor, "_client", None)


def check_executor(executor: Any) -> None:
    """ParameterError unless ``executor`` can take jobs (an Executor, a Dask Client)."""
    if isinstance(executor, cf.Executor) or dask_client(executor) is not None:
        return
    raise ParameterError(
        f"executor must be a concurrent.futures.Executor (e.g. ProcessPoolExecutor(4)) or a Dask "
        f"distributed.Client / client.get_executor() (got {type(executor).__name__})"
    )


def executor_workers(executor: Any) -> int | None:
    """How many workers ``executor`` has, when it says (Dask: those connected now)."""
    client = dask_client(executor)
    if client is not None:
        return len(client.scheduler_info().get("workers", {}))
    n = getattr(executor, "_max_workers", None)
    return int(n) if isinstance(n, int) else None


def run_payload(executor: Any, payload: Payload, jobs: list[Job], collect: Callable[[JobResult], None]) -> None:
    """The jobs of one study (one payload) on ``executor``."""
    model_key, model_blob = pack(payload.model, "model")
    env_key, env_blob = pack((payload.data, payload.metric, payload.output_key), "data or metric")
    tasks = [Task(model_key, env_key, payload.compensation, job) for job in jobs]
    run_tasks(executor, {model_key: model_blob, env_key: env_blob}, tasks, lambda _task, res: collect(res))


def run_tasks(executor: Any, blobs: dict[str, bytes], tasks: list[Task], collect: Callable[[Task, JobResult], None]) -> int:
    """Run ``tasks`` on ``executor`` (see the module docstring), handing each result to ``collect``
    as it comes back (in this thread); returns how many blob copies were sent. A dead worker that
    the executor cannot recover from (a broken process pool; a task that killed Dask workers too
    often) is a :class:`WorkerError`."""
    if not tasks:
        return 0
    client = dask_client(executor)
    if client is not None:
        return _run_dask(client, blobs, tasks, collect)
    n_workers = executor_workers(executor) or 4
    pid = os.getpid()
    sent: dict[str, int] = {}
    queue = list(reversed(tasks))
    futures: dict[cf.Future, Task] = {}

    def submit(task: Task, missing: tuple[str, ...] = ()) -> None:
        # a blob goes with its first n_workers tasks (about one per worker) and with a task that
        # came back missing it; every other task carries its keys only
        attach = {k: blobs[k] for k in (task.model, task.env)
                  if k in missing or sent.get(k, 0) < n_workers}
        for k in attach:
            sent[k] = sent.get(k, 0) + 1
        fut = executor.submit(_run_task, task.model, attach.get(task.model), task.env, attach.get(task.env),
                              task.compensation, task.job, pid)
        futures[fut] = task

    try:
        while queue or futures:
            while queue and len(futures) < 2 * n_workers:  # a window: later tasks find the blobs in place
                submit(queue.pop())
            finished, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                task = futures.pop(fut)
                res = fut.result()
                if isinstance(res, Missing):
                    submit(task, res.keys)
                else:
                    collect(task, res)
    except (cf.BrokenExecutor, BrokenProcessPool) as exc:
        raise WorkerError(
            f"a worker process died ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}): "
            f"killed (often by the out-of-memory killer) or crashed. Finished points are kept when out= is given: "
            f"re-run to resume, or use a Dask cluster, which re-runs a lost worker's jobs elsewhere"
        ) from exc
    finally:
        for fut in futures:
            fut.cancel()
    return sum(sent.values())


def _run_dask(client: Any, blobs: dict[str, bytes], tasks: list[Task], collect: Callable[[Task, JobResult], None]) -> int:
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    if not client.scheduler_info().get("workers"):
        try:  # a cluster still starting (e.g. SLURM jobs in the queue)
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
        except (TimeoutError, OSError) as exc:
            raise WorkerError(
                f"no Dask worker joined the scheduler {client.scheduler.address} within {WAIT_FOR_WORKERS_S:g} s; "
                f"start workers (dask worker {client.scheduler.address} --nthreads 1) or scale the cluster "
                f"(cluster.scale(n)), then run again"
            ) from exc
    needed = sorted({t.model for t in tasks} | {t.env for t in tasks})
    handles = {k: client.scatter(blobs[k], broadcast=True, hash=False) for k in needed}
    pid = os.getpid()

    def submit(t: Task) -> Any:
        return client.submit(_run_task, t.model, handles[t.model], t.env, handles[t.env], t.compensation, t.job, pid,
                             pure=False)

    futures = {submit(t): t for t in tasks}
    n_workers = len(client.scheduler_info().get("workers", {}))
    n_copies = len(handles) * n_workers
    resubmitted: dict[int, int] = {}
    done = as_completed(list(futures))
    try:
        for fut in done:
            task = futures.pop(fut)
            try:
                res = fut.result()
            except cf.CancelledError as exc:
                # a worker died holding the only copy of a scattered blob this job needs (a
                # broadcast does not make sure another worker holds one): the scheduler forgets
                # the blob and cancels its dependents. Scatter the lost blobs again and re-run
                # the job (its result does not depend on where or how often it runs). A job
                # can also finish first and lose its result with that worker before it is read
                n = resubmitted[id(task)] = resubmitted.get(id(task), 0) + 1
                if n > MAX_RESUBMITS:
                    raise WorkerError(
                        f"a drift job was cancelled {n} times, its model or data lost with the workers that held them; "
                        f"check that the Dask workers stay up (memory limits, preemption), then run again. "
                        f"Finished points are kept when out= is given"
                    ) from exc
                for k in (task.model, task.env):
                    if handles[k].status != "finished" or n > 1:
                        handles[k] = client.scatter(blobs[k], broadcast=True, hash=False)
                        n_copies += n_workers
                again = submit(task)
                futures[again] = task
                done.add(again)
                continue
            collect(task, res)
    except KilledWorker as exc:
        raise WorkerError(
            f"a drift job killed Dask workers too often ({exc}); the scheduler stops re-running a task after "
            f"distributed.scheduler.allowed-failures attempts. Finished points are kept when out= is given"
        ) from exc
    finally:
        client.cancel(list(futures) + list(handles.values()))
    return n_copies


def local_executor(n_workers: int) -> Any:
    """A loky pool of ``n_workers`` processes that run torch/Numba on one thread and leave when
    this process is gone (as :func:`.pool.run_pool`'s). Shut it down after use."""
    return ProcessPoolExecutor(max_workers=n_workers, context=get_context("loky"), initializer=_init_worker,
                               initargs=(os.getpid(),))


# --------------------------------------------------------------------------- worker side
_CACHE: OrderedDict[str, Any] = OrderedDict()
_ABSENT = object()
_LOCK = threading.Lock()
_THREADS_SET = [False]


def _init_worker(parent_pid: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="cimsim-parent-watch", daemon=True).start()
    _one_thread()


def _one_thread() -> None:
    if not _THREADS_SET[0]:
        torch.set_num_threads(1)
        numba.set_num_threads(1)
        _THREADS_SET[0] = True


def _cached(key: str, data: bytes | None) -> Any:
    """The object of blob ``key``, unpickled once per process; ``_ABSENT`` when it is not here and
    ``data`` is None."""
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    if data is None:
        return _ABSENT
    obj = pickle.loads(data)
    with _LOCK:
        _CACHE[key] = obj
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)
    return obj


@dataclass(frozen=True)
class Missing:
    """A task's answer when this process lacks some of its blobs: send them with it again."""

    keys: tuple[str, ...]


def _run_task(model_key: str, model_blob: bytes | None, env_key: str, env_blob: bytes | None, compensation: str,
              job: Job, driver_pid: int) -> JobResult | Missing:
    if os.getpid() != driver_pid:
        _one_thread()
    model = _cached(model_key, model_blob)
    env = _cached(env_key, env_blob)
    missing = tuple(k for k, v in ((model_key, model), (env_key, env)) if v is _ABSENT)
    if missing:
        return Missing(missing)
    data, metric, output_key = env
    return run_job(Payload(model, data, compensation, metric, output_key, None), job)
