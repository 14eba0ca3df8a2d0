"""Monte-Carlo drift studies: :func:`evaluate_drift`.

Semantics
---------
* Repeat ``r`` is an independent chip programmed with ``chip_seeds[r]``, an integer drawn from the
  ``r``-th child of ``numpy.random.SeedSequence(seed)`` (:func:`cimsim.rng.spawn_seeds`): its
  programming noise, faults, drift exponents and static converter errors are drawn anew.
* The chip is programmed once; drift compensation (if any) is calibrated once, right after
  programming. Every time ``t`` re-uses that programmed state, drifted to ``t`` with the 1/f
  read noise realised at ``t``: one row of scores is one chip ageing.
* The read noise at ``t`` comes from a generator keyed by ``(chip seed, t)`` alone
  (:meth:`Chip.read_rng`), so a point's score does not depend on which other points were
  computed, in which order, or in which process. Hence parallel == serial, bit for bit, and an
  interrupted study resumes with exactly the scores an uninterrupted one gets.

Parallel runs
-------------
Repeats are spread over worker processes (``concurrent.futures.ProcessPoolExecutor`` with the
``spawn`` start method: safe with torch/OpenMP, and the same on Linux, macOS and Windows). The
model, data and metric are pickled once per worker (initializer), each job is one repeat. Each
worker uses one torch/numba thread. Scripts that call ``evaluate_drift(workers>1)`` at import
level need the usual ``if __name__ == "__main__":`` guard; unpicklable models or metrics
(lambdas, classes defined inside functions) run serially (``workers=None``) or raise
(``workers>1``) with a message saying what to change.

Resume
------
With ``out=PATH`` every finished point is appended to ``PATH`` with the suffix
``.points.jsonl`` (one JSON line per point, flushed immediately; a first line fingerprints the
model, profile, data, seed, compensation and metric). Re-running with the same ``out`` reads the
points already there and computes only the missing ones; points are keyed by (chip seed, t), so
adding times or repeats to a finished study also re-uses what was computed. At the end the
report is written to ``PATH`` (JSON).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..data import Dataset
from ..errors import DataError, ParameterError, ShapeError, StateFormatError
from ..rng import chip_seeds
from .chip import Chip, analog_layers, digital_copy, program
from .compensation import COMPENSATIONS
from ..times import parse_times
from .report import DriftReport

__all__ = ["evaluate_drift", "resolve_metric", "as_eval_data", "points_path", "METRICS"]

POINTS_FORMAT = "cimsim.drift_points/1"

# worker processes start paying off when the remaining serial work is longer than this
_PARALLEL_MIN_S = 20.0


# --------------------------------------------------------------------------- metrics
def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy: fraction of rows whose arg-max equals the target class."""
    return float((outputs.argmax(dim=1) == targets).double().mean().item())


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy loss (lower is better)."""
    return float(torch.nn.functional.cross_entropy(outputs.double(), targets).item())


METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "accuracy": accuracy,
    "cross_entropy": cross_entropy,
}


def resolve_metric(metric: str | Callable) -> tuple[str, Callable[[torch.Tensor, torch.Tensor], float]]:
    """``(name, fn)`` for a metric name in :data:`METRICS` or a callable ``(outputs, targets) -> float``."""
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ParameterError(f"unknown metric {metric!r}; use one of {sorted(METRICS)} or a callable (outputs, targets) -> float")
        return metric, METRICS[metric]
    if not callable(metric):
        raise ParameterError(f"metric must be a name in {sorted(METRICS)} or a callable (outputs, targets) -> float (got {metric!r})")
    name = getattr(metric, "__qualname__", None) or getattr(metric, "__name__", None) or type(metric).__name__
    return str(name), metric


# --------------------------------------------------------------------------- data
def as_eval_data(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets as tensors from: a :class:`cimsim.data.Dataset` (its test split), a pair
    ``(x, y)`` of tensors/arrays, or a torch ``Dataset``/``DataLoader`` yielding ``(x, y)``."""
    if isinstance(data, Dataset):
        x, y = data.x_test, data.y_test
    elif isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        x, y = data
    elif isinstance(data, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        loader = data if isinstance(data, torch.utils.data.DataLoader) else torch.utils.data.DataLoader(data, batch_size=1024)
        xs, ys = [], []
        for batch in loader:
            if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
                raise DataError("a torch data set / loader for evaluate_drift must yield (inputs, targets) pairs")
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
        if not xs:
            raise DataError("the data loader yielded no batches: evaluate_drift needs at least one sample")
        x, y = torch.cat(xs), torch.cat(ys)
    else:
        raise DataError(
            f"cannot evaluate on data of type {type(data).__name__}: pass a cimsim.data.Dataset (e.g. "
            f"cimsim.data.digits()), a pair (x, y) of tensors, or a torch DataLoader yielding (x, y)"
        )
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if not torch.is_floating_point(x):
        x = x.float()
    if x.ndim < 1 or len(x) == 0:
        raise DataError(f"evaluate_drift needs at least one input sample (got inputs of shape {tuple(x.shape)})")
    if len(y) != len(x):
        raise DataError(
            f"inputs and targets must have the same number of samples (got {len(x)} inputs of shape "
            f"{tuple(x.shape)} and {len(y)} targets of shape {tuple(y.shape)})"
        )
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"inputs contain {int((~torch.isfinite(x)).sum())} NaN/Inf values; clean the data first")
    return x.contiguous(), y.contiguous()


def check_data_fits(model: torch.nn.Module, x: torch.Tensor, *, digital: torch.nn.Module | None = None) -> None:
    """Run one sample through the float model; a shape mismatch becomes a :class:`DataError`."""
    probe = digital_copy(model) if digital is None else digital
    try:
        with torch.no_grad():
            probe(x[:1])
    except (RuntimeError, ShapeError, ValueError) as exc:
        expected = _expected_input(model)
        hint = f"; the first analog layer expects {expected}" if expected else ""
        raise DataError(
            f"the data do not fit the model: one sample of shape {tuple(x.shape[1:])} (batch shape "
            f"{tuple(x.shape)}) fails in the model's forward ({str(exc).splitlines()[0]}){hint}. "
            f"Reshape the inputs (e.g. digits(image=True) for a CNN, flat for an MLP) or build the model for this input."
        ) from exc


def _expected_input(model: torch.nn.Module) -> str | None:
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            return f"{m.in_features} input features (nn.Linear)"
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            return f"{m.in_channels} input channels ({type(m).__name__})"
    return None


# --------------------------------------------------------------------------- one repeat
@dataclass
class _Payload:
    """What every worker needs once: pickled when sent to a worker process."""

    model: Any  # nn.Module (to program) or a Chip (one fixed chip)
    x: torch.Tensor
    y: torch.Tensor
    compensation: str
    metric: Callable
    batch_size: int
    points_file: str | None


_WORKER: dict[str, Any] = {}


def _init_worker(payload_bytes: bytes) -> None:
    torch.set_num_threads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:  # pragma: no cover - numba missing or already fixed
        pass
    _WORKER["payload"] = pickle.loads(payload_bytes)


def _run_job_in_worker(job: tuple[int, int, list[float]]) -> tuple[int, list[tuple[float, float]], dict[str, float]]:
    return _run_job(_WORKER["payload"], job)


def _run_job(payload: _Payload, job: tuple[int, int, list[float]]) -> tuple[int, list[tuple[float, float]], dict[str, float]]:
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
        outputs = _forward_all(view, payload.x, payload.batch_size)
        score = float(payload.metric(outputs, payload.y))
        t3 = time.perf_counter()
        timing["drift"] += t2 - t1
        timing["evaluate"] += t3 - t2
        out.append((t_s, score))
        if payload.points_file is not None:
            _append_point(payload.points_file, {"repeat": r, "chip_seed": chip_seed, "t_s": t_s, "score": score})
    return r, out, timing


def _forward_all(module: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([module(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


# --------------------------------------------------------------------------- points file
def points_path(out: str | Path) -> Path:
    """The file of finished points that belongs to the report path ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".points.jsonl") if out.suffix != ".json" else out.with_suffix(".points.jsonl")


def _append_point(path: str, rec: dict[str, Any]) -> None:
    line = (json.dumps(rec, allow_nan=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write per line: atomic append, also with several processes
    finally:
        os.close(fd)


def _read_points(path: Path, fingerprint: str) -> dict[tuple[int, float], float]:
    """Points already computed: ``{(chip_seed, t_s): score}``. A torn last line is ignored."""
    if not path.exists():
        return {}
    raw_bytes = path.read_bytes()
    lines = raw_bytes.split(b"\n")
    try:
        header = json.loads(lines[0])
    except (json.JSONDecodeError, IndexError):
        raise StateFormatError(f"{path} is not a cimsim points file (unreadable first line); delete it or pass another out path")
    if header.get("format") != POINTS_FORMAT:
        raise StateFormatError(f"{path} is not a cimsim points file (format {header.get('format')!r}); delete it or pass another out path")
    if header.get("fingerprint") != fingerprint:
        raise ParameterError(
            f"{path} holds points of a different study (another model, profile, data set, seed, compensation or "
            f"metric: {header.get('study')}); pass another out path to start a new study, or delete the file"
        )
    if not raw_bytes.endswith(b"\n"):
        with open(path, "ab") as f:  # close a line torn by an interruption before appending more
            f.write(b"\n")
    done: dict[tuple[int, float], float] = {}
    for raw in lines[1:]:
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            done[(int(rec["chip_seed"]), float(rec["t_s"]))] = float(rec["score"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # a line torn by the interruption: that point is recomputed
    return done


def _fingerprint(model: Any, x: torch.Tensor, y: torch.Tensor, seed: int, compensation: str, metric: str, batch_size: int) -> tuple[str, dict]:
    h = hashlib.sha256()
    if isinstance(model, Chip):
        h.update(model.fingerprint().encode())
        kind = "chip"
    else:
        for k, v in model.state_dict().items():
            h.update(k.encode())
            if isinstance(v, torch.Tensor):
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(repr(model).encode())

        for name, layer in analog_layers(model):
            h.update(name.encode())
            h.update(_profile_yaml(layer).encode())
        kind = type(model).__name__
    h.update(x.numpy().tobytes())
    h.update(y.numpy().tobytes())
    study = {"model": kind, "seed": seed, "compensation": compensation, "metric": metric, "n_samples": len(x), "batch_size": batch_size}
    h.update(json.dumps(study, sort_keys=True).encode())
    return h.hexdigest(), study


def _profile_yaml(layer: Any) -> str:
    prof = getattr(layer, "profile", None)
    if prof is None:
        return ""
    to_yaml = getattr(prof, "to_yaml", None)
    return to_yaml() if callable(to_yaml) else prof.model_dump_json()


# --------------------------------------------------------------------------- the study
def _resolve_workers(workers: int | None) -> int | None:
    if workers is None or workers == 0:
        return None
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
        raise ParameterError(f"workers must be an int (1 = serial, n > 1 processes, -1 = all cores) or None for auto (got {workers!r})")
    if workers == -1:
        return os.cpu_count() or 1
    if workers < 1:
        raise ParameterError(f"workers must be >= 1, -1 (all cores) or None (auto) (got {workers})")
    return int(workers)


def evaluate_drift(
    model_or_chip: Any,
    data: Any,
    *,
    times_s: Sequence[float] | str,
    repeats: int | None = None,
    compensation: str = "global",
    seed: int = 0,
    metric: str | Callable[[torch.Tensor, torch.Tensor], float] = "accuracy",
    workers: int | None = None,
    out: str | Path | None = None,
    batch_size: int = 2048,
    progress: bool | None = None,
    label: str | None = None,
) -> DriftReport:
    """Score a converted model (or one programmed chip) at times after programming, over repeats.

    Args:
        model_or_chip: a model with analog layers (``cimsim.nn.convert``) or a :class:`Chip`
            (then the study is that one chip; ``repeats`` must be 1).
        data: a :class:`cimsim.data.Dataset` (its test split is used), a pair ``(x, y)``, or a torch
            ``DataLoader`` yielding ``(x, y)``.
        times_s: strictly increasing times since programming, seconds >= 0 (or ``"1s,1h,1d"``).
        repeats: number of independently programmed chips (default 10; 1 for a chip).
        compensation: ``"none"``, ``"global"`` or ``"per_column"`` drift compensation, calibrated
            once per chip right after programming.
        seed: study seed; chip ``r`` gets ``chip_seeds(seed, repeats)[r]``.
        metric: ``"accuracy"`` (top-1, default), ``"cross_entropy"``, or ``fn(outputs, targets) -> float``.
        workers: ``None`` auto (processes when the study is long enough), 1 serial, n processes,
            -1 all cores. Results do not depend on it.
        out: report path (JSON); finished points go to ``<out>.points.jsonl`` and a re-run resumes.
        batch_size: inputs per forward call.
        progress: tqdm progress bar (default: on for interactive terminals).
        label: a name for the report (plots, tables).
    """
    times = parse_times(times_s)
    is_chip = isinstance(model_or_chip, Chip)
    if repeats is None:
        repeats = 1 if is_chip else 10
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ParameterError(f"repeats must be an integer >= 1 (got {repeats!r}); use e.g. repeats=20 chips")
    if is_chip and repeats != 1:
        raise ParameterError(
            f"a Chip is one programmed realisation, so repeats must be 1 (got {repeats}); pass the model instead "
            f"to program {repeats} independent chips"
        )
    comp_kind = _check_compensation(compensation)
    metric_name, metric_fn = resolve_metric(metric)
    n_workers = _resolve_workers(workers)
    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1 (got {batch_size})")

    model = model_or_chip.model if is_chip else model_or_chip
    if not isinstance(model, torch.nn.Module):
        raise ParameterError(f"model_or_chip must be a torch nn.Module with analog layers or a cimsim Chip (got {type(model_or_chip).__name__})")
    layers = analog_layers(model)
    if not layers:
        raise ParameterError(
            f"the model ({type(model).__name__}) has no analog layers, so there is no chip to drift: convert it first, "
            f"e.g. model = cimsim.nn.convert(model, cimsim.load_profile('pcm'))"
        )
    x, y = as_eval_data(data)
    digital = digital_copy(model)
    check_data_fits(model, x, digital=digital)

    # digital reference: the same metric on the float weights
    with torch.no_grad():
        digital_score = float(metric_fn(_forward_all(digital, x, batch_size), y))
    del digital

    seeds = [model_or_chip.seed] if is_chip else chip_seeds(seed, repeats)
    fp, study = _fingerprint(model_or_chip, x, y, int(seed), comp_kind, metric_name, int(batch_size))
    pfile: Path | None = None
    done: dict[tuple[int, float], float] = {}
    if out is not None:
        out = Path(out)
        if out.is_dir():
            out = out / "drift_report.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        pfile = points_path(out)
        done = _read_points(pfile, fp)
        if not pfile.exists():
            pfile.write_text(json.dumps({"format": POINTS_FORMAT, "fingerprint": fp, "study": study}) + "\n")

    jobs = []
    for r, s in enumerate(seeds):
        todo = [t for t in times if (s, t) not in done]
        if todo:
            jobs.append((r, s, todo))
    n_points = sum(len(j[2]) for j in jobs)
    payload = _Payload(
        model_or_chip if is_chip else _eval_copy(model),
        x,
        y,
        comp_kind,
        metric_fn,
        int(batch_size),
        None if pfile is None else str(pfile),
    )
    timing = {"program": 0.0, "drift": 0.0, "evaluate": 0.0}
    results: dict[tuple[int, float], float] = dict(done)
    used_workers = 1
    t_start = time.perf_counter()

    from tqdm.auto import tqdm

    with tqdm(total=n_points, desc=label or "drift study", unit="pt", disable=(not progress) if progress is not None else None, leave=False) as bar:

        def collect(res: tuple[int, list[tuple[float, float]], dict[str, float]]) -> None:
            r, pts, tim = res
            for t_s, score in pts:
                results[(seeds[r], t_s)] = score
            for k in timing:
                timing[k] += tim[k]
            bar.update(len(pts))

        remaining = list(jobs)
        if remaining and (n_workers is None or n_workers == 1 or len(remaining) == 1):
            # auto mode: time the first chip here, then decide whether processes pay off
            while remaining:
                t_job = time.perf_counter()
                collect(_run_job(payload, remaining.pop(0)))
                elapsed = time.perf_counter() - t_job
                if n_workers is None and remaining and (os.cpu_count() or 1) > 1 and elapsed * len(remaining) > _PARALLEL_MIN_S:
                    n_workers = min(os.cpu_count() or 1, len(remaining))
                    break
        if remaining:
            payload_bytes = _pickle_payload(payload, explicit=workers not in (None, 0))
            if payload_bytes is None:  # auto mode, unpicklable: stay serial
                for job in remaining:
                    collect(_run_job(payload, job))
            else:
                used_workers = max(1, min(int(n_workers or 1), len(remaining)))
                import multiprocessing as mp

                with ProcessPoolExecutor(
                    max_workers=used_workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(payload_bytes,)
                ) as pool:
                    futures = [pool.submit(_run_job_in_worker, job) for job in remaining]
                    try:
                        for fut in as_completed(futures):
                            collect(fut.result())
                    except BaseException:
                        for f in futures:
                            f.cancel()
                        raise

    scores = np.array([[results[(s, t)] for t in times] for s in seeds], dtype=np.float64)
    profiles = sorted({getattr(getattr(l, "profile", None), "name", "?") for _, l in layers})
    report = DriftReport(
        times_s=times,
        scores=scores,
        metric=metric_name,
        digital_score=digital_score,
        profile=",".join(profiles),
        seed=None if is_chip else int(seed),
        chip_seeds=seeds,
        compensation=comp_kind,
        label=label,
        meta={
            "model": type(model).__name__,
            "n_samples": int(len(x)),
            "analog_layers": [n for n, _ in layers],
            "points_computed": n_points,
            "points_resumed": len(seeds) * len(times) - n_points,
            "workers": used_workers,
            "wall_s": time.perf_counter() - t_start,
            "timing_s": timing,
        },
    )
    if out is not None:
        report.meta["out"] = str(out)
        report.to_json(out)
    return report


def _check_compensation(compensation: str) -> str:
    if not isinstance(compensation, str) or compensation not in COMPENSATIONS:
        raise ParameterError(f"compensation must be one of {list(COMPENSATIONS)} (got {compensation!r})")
    return compensation


def _eval_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    m = copy.deepcopy(model)
    m.eval()
    return m


def _pickle_payload(payload: _Payload, *, explicit: bool) -> bytes | None:
    try:
        buf = io.BytesIO()
        pickle.dump(payload, buf, protocol=pickle.HIGHEST_PROTOCOL)
        return buf.getvalue()
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        msg = (
            f"the model, data or metric cannot be sent to worker processes ({exc}); define the model class and "
            f"metric function at module level (no lambdas or local classes), or run serially with workers=1"
        )
        if explicit:
            raise ParameterError(msg) from exc
        warnings.warn(msg + " (running serially)", RuntimeWarning, stacklevel=3)
        return None
