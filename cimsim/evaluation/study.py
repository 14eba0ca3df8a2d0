"""Monte-Carlo drift studies: :func:`evaluate_drift`.

Semantics
---------
* Repeat ``r`` is an independent chip programmed with ``chip_seeds[r]``, an integer drawn from the
  ``r``-th child of ``numpy.random.SeedSequence(seed)`` (:func:`cimsim.rng.chip_seeds`): its
  programming noise, faults, drift exponents and static converter errors are drawn anew.
* The chip is programmed once; drift compensation (if any) is calibrated once, right after
  programming. Every time ``t`` re-uses that programmed state, drifted to ``t`` with the 1/f
  read noise realised at ``t``: one row of scores is one chip ageing.
* The read noise at ``t`` comes from a generator keyed by ``(chip seed, t)`` alone
  (:meth:`Chip.read_rng`), so a point's score does not depend on which other points were
  computed, in which order, or in which process. Hence parallel == serial, bit for bit
  (:mod:`.pool`), and an interrupted study resumes with exactly the scores an uninterrupted one
  gets (:mod:`.points`). At the end the report is written to ``out`` (JSON).

The driver validates every argument once, here, then decides once how the jobs run: serially,
or on a process pool (in auto mode after timing the first chip in this process), or on the
executor the caller passes (a Dask cluster, any ``concurrent.futures.Executor``: :mod:`.executor`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..crossbar.compensation import check_compensation
from ..errors import ParameterError
from ..profiles import profile_sha256
from ..rng import check_seed, chip_seeds
from ..times import parse_times
from .chip import Chip, analog_layers, digital_copy
from .metrics import as_eval_data, check_data_fits, check_output_key, resolve_metric, score
from .executor import check_executor, executor_workers, run_payload
from .points import append_point, fingerprint, points_path, start_points
from .pool import Job, JobResult, Payload, auto_workers, pickle_payload, resolve_workers, run_job, run_pool, run_serial
from .report import DriftReport

__all__ = ["evaluate_drift"]


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
    output_key: str | int | None = None,
    executor: Any = None,
) -> DriftReport:
    """Score a converted model (or one programmed chip) at times after programming, over repeats.

    Args:
        model_or_chip: a model with analog layers (``cimsim.nn.convert``) or a :class:`Chip`
            (then the study is that one chip; ``repeats`` must be 1).
        data: a :class:`cimsim.data.Dataset` (its test split is used), a pair ``(x, y)`` (``x`` a tensor
            of any dtype, e.g. integer token ids, or a dict of tensors: ``model(**batch)``), or a torch
            ``DataLoader`` (not shuffling) yielding ``(x, y)`` or dicts with a ``"labels"`` entry, read
            batch by batch (see :mod:`.metrics`).
        times_s: strictly increasing times since programming, seconds >= 0 (or ``"1s,1h,1d"``).
        repeats: number of independently programmed chips (default 10; 1 for a chip).
        compensation: ``"none"``, ``"global"``, ``"per_column"`` or ``"global_aihwkit"`` (aihwkit's identity readout) drift compensation, calibrated
            once per chip right after programming.
        seed: study seed; chip ``r`` gets ``chip_seeds(seed, repeats)[r]``.
        metric: ``"accuracy"`` (top-1, default), ``"cross_entropy"`` (classes on the last dimension,
            targets -100 ignored), or ``fn(outputs, targets) -> float`` given the whole set's outputs.
        workers: ``None`` auto (processes when the study is long enough), 1 serial, n processes,
            -1 all cores. Results do not depend on it.
        out: report path (JSON); finished points go to ``<out>.points.jsonl`` and a re-run resumes.
        batch_size: inputs per forward call (a ``DataLoader`` is read in its own batches).
        progress: tqdm progress bar (default: on for interactive terminals).
        label: a name for the report (plots, tables).
        output_key: the field of the model's return value that is scored (a key, attribute or
            index, e.g. ``"logits"``); default: a tensor itself, a tuple's first element, a dict's
            or ``ModelOutput``'s ``"logits"``.
        executor: run the chips' jobs on this ``concurrent.futures.Executor`` or Dask
            ``distributed.Client`` (or ``client.get_executor()``) instead of cimsim's own pool
            (:mod:`.executor`); leave ``workers`` unset. Results do not depend on it; finished points are
            written to the points file by this process as they come back.
    """
    # every argument is checked here, where it enters; the code below trusts them
    times = parse_times(times_s)
    is_chip = isinstance(model_or_chip, Chip)
    repeats = _check_repeats(repeats, is_chip)
    seed = check_seed(seed, example="evaluate_drift(..., seed=0)")
    comp_kind = check_compensation(compensation)
    metric_name, metric_fn = resolve_metric(metric)
    output_key = check_output_key(output_key)
    n_workers = resolve_workers(workers)
    if executor is not None:
        check_executor(executor)
        if n_workers is not None:
            raise ParameterError(f"pass workers= or executor=, not both (got workers={workers!r} and an executor); the executor's workers run the jobs")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ParameterError(f"batch_size must be an integer >= 1 (got {batch_size!r}), e.g. batch_size=256")
    model = model_or_chip.model if is_chip else model_or_chip
    layers = _check_model(model, model_or_chip)
    eval_data = as_eval_data(data, int(batch_size))
    digital = digital_copy(model)
    check_data_fits(model, eval_data, digital=digital)

    # digital reference: the same metric on the float weights
    digital_score = score(digital, eval_data, metric_fn, output_key)
    del digital

    seeds = [model_or_chip.seed] if is_chip else chip_seeds(seed, repeats)
    fp, study = fingerprint(model_or_chip, eval_data, seed, comp_kind, metric_name, output_key)
    out = _report_path(out)
    pfile = None if out is None else points_path(out)
    done = {} if pfile is None else start_points(pfile, fp, study)

    jobs: list[Job] = [(r, s, todo) for r, s in enumerate(seeds) if (todo := [t for t in times if (s, t) not in done])]
    n_points = sum(len(j[2]) for j in jobs)
    worker_pfile = None if pfile is None or executor is not None else str(pfile)  # remote workers may not see this disk
    payload = Payload.build(model_or_chip, eval_data, comp_kind, metric_fn, output_key, worker_pfile)
    timing = {"program": 0.0, "drift": 0.0, "evaluate": 0.0}
    results: dict[tuple[int, float], float] = dict(done)
    t_start = time.perf_counter()

    with tqdm(total=n_points, desc=label or "drift study", unit="pt", disable=(not progress) if progress is not None else None, leave=False) as bar:

        def collect(res: JobResult) -> None:
            r, pts, tim = res
            for t_s, score in pts:
                results[(seeds[r], t_s)] = score
                if pfile is not None and worker_pfile is None:
                    append_point(str(pfile), {"repeat": r, "chip_seed": seeds[r], "t_s": t_s, "score": score})
            for k in timing:
                timing[k] += tim[k]
            bar.update(len(pts))

        if executor is None:
            n_workers = _run_jobs(payload, jobs, n_workers, collect, explicit=workers not in (None, 0))
        else:
            run_payload(executor, payload, jobs, collect)
            n_workers = executor_workers(executor)

    scores = np.array([[results[(s, t)] for t in times] for s in seeds], dtype=np.float64)
    profiles = sorted({getattr(getattr(layer, "profile", None), "name", "?") for _, layer in layers})
    # the resolved profiles themselves, by hash: a name alone does not say what was simulated
    # (a derived profile, overrides, a file edited since)
    resolved = {n: layer.profile for n, layer in layers if getattr(layer, "profile", None) is not None}
    by_hash = {profile_sha256(p): p for p in resolved.values()}
    report = DriftReport(
        times_s=times,
        scores=scores,
        metric=metric_name,
        digital_score=digital_score,
        profile=",".join(profiles),
        seed=None if is_chip else seed,
        chip_seeds=seeds,
        compensation=comp_kind,
        label=label,
        meta={
            "model": type(model).__name__,
            "n_samples": int(study["n_samples"]),
            "analog_layers": [n for n, _ in layers],
            "layer_profiles": {n: profile_sha256(p) for n, p in resolved.items()},
            "profiles": {h: p.model_dump(mode="json") for h, p in by_hash.items()},
            "points_computed": n_points,
            "points_resumed": len(seeds) * len(times) - n_points,
            "workers": n_workers,
            "executor": "cimsim" if executor is None else type(executor).__name__,
            "wall_s": time.perf_counter() - t_start,
            "timing_s": timing,
        },
    )
    if out is not None:
        report.meta["out"] = str(out)
        report.to_json(out)
    return report


def _run_jobs(payload: Payload, jobs: list[Job], n_workers: int | None, collect: Callable[[JobResult], None], *, explicit: bool) -> int:
    """Run every job, serially or on a pool of ``n_workers`` (``None``: auto); the processes used.

    The choice is made once: in auto mode after the first chip ran here and was timed, else
    up front. A payload that cannot be pickled keeps an auto study serial.
    """
    remaining = list(jobs)
    if n_workers is None:
        n_workers = 1
        if remaining:
            t_job = time.perf_counter()
            collect(run_job(payload, remaining.pop(0)))
            n_workers = auto_workers(time.perf_counter() - t_job, len(remaining))
    n_workers = min(n_workers, len(remaining))
    payload_bytes = pickle_payload(payload, explicit=explicit, stacklevel=4) if n_workers > 1 else None
    if payload_bytes is None:
        run_serial(payload, remaining, collect)
        return 1
    run_pool(payload_bytes, remaining, n_workers, collect)
    return n_workers


def _report_path(out: str | Path | None) -> Path | None:
    """The report file of ``out`` (a directory gets ``drift_report.json``), its folder created."""
    if out is None:
        return None
    out = Path(out)
    if out.is_dir():
        out = out / "drift_report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _check_repeats(repeats: Any, is_chip: bool) -> int:
    if repeats is None:
        return 1 if is_chip else 10
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ParameterError(f"repeats must be an integer >= 1 (got {repeats!r}); use e.g. repeats=20 chips")
    if is_chip and repeats != 1:
        raise ParameterError(
            f"a Chip is one programmed realisation, so repeats must be 1 (got {repeats}); pass the model instead "
            f"to program {repeats} independent chips"
        )
    return int(repeats)


def _check_model(model: Any, model_or_chip: Any) -> list:
    """The analog layers of ``model``: it must be an nn.Module with at least one."""
    if not isinstance(model, torch.nn.Module):
        raise ParameterError(f"model_or_chip must be a torch nn.Module with analog layers or a cimsim Chip (got {type(model_or_chip).__name__})")
    layers = analog_layers(model)
    if not layers:
        raise ParameterError(
            f"the model ({type(model).__name__}) has no analog layers, so there is no chip to drift: convert it first, "
            f"e.g. model = cimsim.nn.convert(model, cimsim.load_profile('pcm'))"
        )
    return layers
