"""Running the repeats of a drift study: one job per chip, in this process or in a pool.

A job is one repeat: program chip ``r`` with its seed once, calibrate compensation once, then
score the chip at each of its times (:func:`run_job`). Every point's read noise comes from a
generator keyed by (chip seed, t), so where and in which order a job runs does not change a bit.

Parallel runs
-------------
Repeats are spread over worker processes started by loky (``joblib.externals.loky``): a worker
is a fresh interpreter (fork + exec, safe with torch/OpenMP, the same on Linux, macOS and Windows)
that never imports the user's ``__main__``, so a script without an ``if __name__ == "__main__":``
guard runs a parallel study like any other. The model, data and metric (:class:`Payload`) are
pickled once with cloudpickle (classes and functions of ``__main__``, lambdas and local classes
travel by value) and unpickled once per worker (initializer); each job is one repeat. Each worker
uses one torch/numba thread, and leaves as soon as the process that started it is gone (a thread
polls the parent pid), so killing a study (even with SIGKILL) leaves no workers behind. A worker
that dies (killed, out of memory, a segfault) is seen at once by the pool: the study stops with a
:class:`~cimsim.errors.WorkerError` naming the exit code or signal, never a wait; the points
finished so far stay in the points file. Payloads that cannot be pickled at all (locks, open
files, generators) run serially (``workers=None``) or raise (``workers>1``) saying what to change.
"""

from __future__ import annotations

import copy
import os
import pickle
import threading
import time
import warnings
from concurrent.futures import as_completed
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import cloudpickle
import numba
import numpy as np
import torch
from joblib.externals.loky import ProcessPoolExecutor
from joblib.externals.loky.backend.context import get_context
from joblib.externals.loky.process_executor import BrokenProcessPool

from ..errors import ParameterError, WorkerError
from .chip import Chip, program
from .metrics import EvalData, Metric, score
from .points import append_point

__all__ = ["Payload", "Job", "JobResult", "resolve_workers", "auto_workers", "run_job", "run_serial", "run_pool", "pickle_payload"]

#: ``(repeat, chip seed, times)``: one chip and the times it is read at.
Job = tuple[int, int, list[float]]
#: ``(repeat, [(t, score), ...], seconds spent per stage)``.
JobResult = tuple[int, list[tuple[float, float]], dict[str, float]]

# worker processes start paying off when the remaining serial work is longer than this
_PARALLEL_MIN_S = 20.0


@dataclass
class Payload:
    """What every job needs: pickled once per worker process."""

    model: Any  # an eval-mode copy of the nn.Module (to program), or a Chip (one fixed chip)
    data: EvalData
    compensation: str
    metric: Metric
    output_key: str | int | None
    points_file: str | None

    @classmethod
    def build(cls, model_or_chip: Any, data: EvalData, compensation: str, metric: Metric, output_key: str | int | None,
              points_file: str | None) -> "Payload":
        """A payload that reads a private eval-mode copy of a model (a chip is read as it is)."""
        if not isinstance(model_or_chip, Chip):
            model_or_chip = copy.deepcopy(model_or_chip)
            model_or_chip.eval()
        return cls(model_or_chip, data, compensation, metric, output_key, points_file)


def resolve_workers(workers: Any) -> int | None:
    """``workers`` as a process count, or ``None`` for auto (``None`` or 0)."""
    if workers is None or workers == 0:
        return None
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
        raise ParameterError(f"workers must be an int (1 = serial, n > 1 processes, -1 = all cores) or None for auto (got {workers!r})")
    if workers == -1:
        return os.cpu_count() or 1
    if workers < 1:
        raise ParameterError(f"workers must be >= 1, -1 (all cores) or None (auto) (got {workers})")
    return int(workers)


def auto_workers(first_job_s: float, n_remaining: int) -> int:
    """Processes for the jobs left after one took ``first_job_s`` here: all cores when the rest
    would take longer serially than starting workers costs, else 1."""
    cores = os.cpu_count() or 1
    if n_remaining and cores > 1 and first_job_s * n_remaining > _PARALLEL_MIN_S:
        return min(cores, n_remaining)
    return 1


def run_job(payload: Payload, job: Job) -> JobResult:
    """Program chip ``r`` (seed ``chip_seed``) once, calibrate compensation, score it at each time."""
    r, chip_seed, times = job
    timing = {"program": 0.0, "drift": 0.0, "evaluate": 0.0}
    t0 = time.perf_counter()
    chip = payload.model if isinstance(payload.model, Chip) else program(payload.model, seed=chip_seed)
    comp = chip.compensator(payload.compensation)
    timing["program"] += time.perf_counter() - t0
    out: list[tuple[float, float]] = []
    for t_s in times:
        t1 = time.perf_counter()
        view = chip.at(t_s, compensation=comp)
        t2 = time.perf_counter()
        value = score(view, payload.data, payload.metric, payload.output_key)
        t3 = time.perf_counter()
        timing["drift"] += t2 - t1
        timing["evaluate"] += t3 - t2
        out.append((t_s, value))
        if payload.points_file is not None:
            append_point(payload.points_file, {"repeat": r, "chip_seed": chip_seed, "t_s": t_s, "score": value})
    return r, out, timing


def run_serial(payload: Payload, jobs: Iterable[Job], collect: Callable[[JobResult], None]) -> None:
    """Run ``jobs`` one after the other in this process, handing each result to ``collect``."""
    for job in jobs:
        collect(run_job(payload, job))


def pickle_payload(payload: Payload, *, explicit: bool, stacklevel: int = 2) -> bytes | None:
    """The payload pickled for the workers; if it cannot be: ParameterError when processes were
    asked for (``explicit``), else a warning (attributed ``stacklevel`` frames up: the user's
    call) and ``None`` (the study stays serial)."""
    try:
        return cloudpickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        msg = (
            f"the model, data or metric cannot be sent to worker processes ({exc}); leave out what cannot be "
            f"pickled (locks, open files, generators, ...), or run serially with workers=1"
        )
        if explicit:
            raise ParameterError(msg) from exc
        warnings.warn(msg + " (running serially)", RuntimeWarning, stacklevel=stacklevel)
        return None


def run_pool(payload_bytes: bytes, jobs: list[Job], n_workers: int, collect: Callable[[JobResult], None]) -> None:
    """Run ``jobs`` on ``n_workers`` loky processes, handing results to ``collect`` as they finish.

    A worker that dies is a :class:`WorkerError` (loky notices a dead worker at once and breaks
    the pool); the other workers are killed before it is raised."""
    pool = ProcessPoolExecutor(max_workers=n_workers, context=get_context("loky"), initializer=_init_worker,
                               initargs=(payload_bytes, os.getpid()))
    clean = False
    try:
        futures = [pool.submit(_run_job_in_worker, job) for job in jobs]
        for fut in as_completed(futures):
            collect(fut.result())
        clean = True
    except BrokenProcessPool as exc:
        raise WorkerError(
            f"a worker process of the drift study died ({_cause(exc)}): it was killed (a SIGKILL often comes from the "
            f"kernel's out-of-memory killer) or crashed in native code (a segfault). Points finished so far are kept "
            f"when out= is given: re-run with the same out to resume, with fewer workers if memory is short, or "
            f"with workers=1 to run in this process"
        ) from exc
    finally:
        pool.shutdown(wait=clean, kill_workers=not clean)


def _cause(exc: BaseException) -> str:
    """The exit codes / signals loky reports for a broken pool (e.g. ``{SIGKILL(-9)}``), else its message."""
    text = str(exc).strip()
    marker = "The exit codes of the workers are"
    if marker in text:
        return "exit codes " + text.split(marker, 1)[1].strip().splitlines()[0]
    return text.splitlines()[0] if text else type(exc).__name__


_WORKER: dict[str, Any] = {}


#: how often a worker checks that the process that started it is still alive (seconds)
_PARENT_POLL_S = 0.5


def _exit_with_parent(parent_pid: int) -> None:
    """Leave (``os._exit``) as soon as this worker's parent is gone: a parent killed with SIGKILL
    cannot shut its pool down, and its workers would live on (and keep the resource tracker alive).
    An orphan is adopted by another process, so its parent pid changes."""
    while True:
        time.sleep(_PARENT_POLL_S)
        if os.getppid() != parent_pid:
            os._exit(1)


def _init_worker(payload_bytes: bytes, parent_pid: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="cimsim-parent-watch", daemon=True).start()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    _WORKER["payload"] = pickle.loads(payload_bytes)


def _run_job_in_worker(job: Job) -> JobResult:
    return run_job(_WORKER["payload"], job)
