"""The sweep driver: :func:`sweep`.

Every configuration (:mod:`.spec`) is a drift study of one model deployed on one resolved
profile, with one compensation, over the same chip seeds (``chip_seeds(seed, repeats)``: every
configuration is read on chips drawn from the same seeds, so differences between configurations
are paired, not noise between unrelated chips) and the same times. The driver

1. resolves each model (a module, a saved run, or a run trained once) and the data, and each
   configuration's profile; converts the model's float weights onto it;
2. opens each configuration's points in the cache (:mod:`.cache`) and makes one job per
   (configuration, chip) with the times still missing: a re-run, a grown grid or another sweep
   sharing configurations computes only what no one has computed;
3. runs the jobs in this process, on cimsim's local pool (``workers``), on a Dask cluster
   (``scheduler`` or a ``Client``) or any executor (``executor``), all at once, storing each
   job's points as it comes back (a killed client or worker loses at most the jobs in flight);
4. assembles the tidy table and the per-configuration reports (:mod:`.result`).

A point's score depends only on its cache key's parts, never on where or in which order it
ran (:mod:`cimsim.evaluation.pool`): serial, 2 processes and a cluster give the same bits.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ParameterError
from ..evaluation.chip import Chip, analog_layers, digital_copy
from ..evaluation.executor import Task, check_executor, executor_workers, local_executor, pack, run_tasks
from ..evaluation.metrics import METRICS, as_eval_data, check_data_fits, check_output_key, resolve_metric, score
from ..evaluation.pool import Job, JobResult, Payload, resolve_workers, run_job
from ..evaluation.report import DriftReport
from ..nn import convert
from ..rng import check_seed, chip_seeds
from ..times import parse_times
from .cache import PointStore, config_key, data_hash, metric_id, model_hash, profile_hash
from .result import SweepResult
from .spec import SPEC_KEYS, SweepSpec, expand, make_spec, read_spec_file, resolve_profile

__all__ = ["sweep", "MissingDependencyError"]


class MissingDependencyError(ParameterError, ImportError):
    """An optional dependency a sweep setting needs is not installed; the message says what to install."""


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            "a Dask scheduler needs the distributed package: pip install 'cimsim[dask]' (or pip install 'dask[distributed]')"
        ) from None
    return distributed


def sweep(
    spec: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    executor: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool | Callable[[int, int], None] | None = None,
    output_key: str | int | None = None,
    **settings: Any,
) -> SweepResult:
    """Run a design sweep: drift studies over the cartesian product of named axes.

    Args:
        spec: a sweep YAML file (``yaml.safe_load``; relative paths in it are relative to it) or a
            mapping of the same keys; keyword ``settings`` given here win over it. The keys
            (see docs/sweeps.md): ``model`` (an nn.Module or a spec) or ``models`` ({name: ...}),
            ``data`` (what ``evaluate_drift`` takes, or ``{name: digits, n_test: 100}``),
            ``profile`` (the base), ``axes`` ({axis: values}) or ``points`` ([{axis: value}]),
            ``times_s``, ``repeats``, ``seed``, ``metric``, ``compensation``, ``batch_size``,
            ``name``, ``plot`` ({axis: NAME, t_s: TIME}: the accuracy-vs-axis plot).
        out: a folder for ``results.csv`` (+ ``.parquet`` with pyarrow), ``summary.csv``/``.md``,
            ``sweep.json``, plots (with matplotlib) and, by default, the cache.
        cache: the point cache folder (default ``<out>/cache``; none without ``out``); two sweeps given
            the same folder share every point they have in common.
        executor: a ``concurrent.futures.Executor`` or a Dask ``distributed.Client`` (or its executor).
        workers: local processes (cimsim's pool; 1 or None: this process; -1: all cores).
        scheduler: the address of a Dask scheduler (``tcp://HOST:8786``); needs ``cimsim[dask]``.
        progress: a tqdm bar (default: on for terminals), or ``fn(points_done, points_total)``.
        output_key: the field of the model's output that is scored (as in ``evaluate_drift``).
    """
    values: dict[str, Any] = {}
    base_dir = None
    if isinstance(spec, (str, os.PathLike)):
        values.update(read_spec_file(spec))
        base_dir = Path(spec).resolve().parent
    elif isinstance(spec, Mapping):
        values.update(spec)
    elif spec is not None:
        raise ParameterError(f"spec must be a YAML path or a mapping of {list(SPEC_KEYS)} (got {type(spec).__name__})")
    values.update({k: v for k, v in settings.items() if v is not None})
    sp = make_spec(values, base_dir)
    return _run(sp, out=out, cache=cache, executor=executor, workers=workers, scheduler=scheduler, progress=progress,
                output_key=check_output_key(output_key))


def _run(sp: SweepSpec, *, out: Any, cache: Any, executor: Any, workers: Any, scheduler: str | None,
         progress: bool | Callable[[int, int], None] | None, output_key: str | int | None) -> SweepResult:
    t_start = time.perf_counter()
    # ---- every setting checked before any work
    configs = expand(sp)
    times = parse_times(sp.times_s)
    if isinstance(sp.repeats, bool) or not isinstance(sp.repeats, int) or sp.repeats < 1:
        raise ParameterError(f"repeats must be an integer >= 1 (got {sp.repeats!r})")
    seed = check_seed(sp.seed, example="sweep(..., seed=0)")
    if isinstance(sp.batch_size, bool) or not isinstance(sp.batch_size, int) or sp.batch_size < 1:
        raise ParameterError(f"batch_size must be an integer >= 1 (got {sp.batch_size!r})")
    metric_name, metric_fn = resolve_metric(sp.metric)
    n_workers = resolve_workers(workers)
    if sum(x is not None for x in (executor, n_workers, scheduler)) > 1:
        raise ParameterError("give one of executor=, workers= and scheduler= (they all say where the jobs run)")
    if executor is not None:
        check_executor(executor)
    if scheduler is not None:
        _dask()
    out_dir = None if out is None else Path(out)
    store = None
    if cache is not None or out_dir is not None:
        store = PointStore(Path(cache) if cache is not None else out_dir / "cache")  # type: ignore[operator]

    # ---- models, data, resolved profiles
    models, default_data = _models(sp, out_dir, cache)
    data_arg = _data(sp.data, sp.base_dir) if sp.data is not None else default_data
    if data_arg is None:
        raise ParameterError("a sweep needs data: data=(x, y), a cimsim Dataset, or in YAML data: {name: digits, n_test: 200}")
    eval_data = as_eval_data(data_arg, sp.batch_size)
    dhash = data_hash(eval_data)
    mid = metric_id(metric_name, metric_fn, isinstance(sp.metric, str) and sp.metric in METRICS)
    seeds = chip_seeds(seed, sp.repeats)

    deployed: dict[tuple[str, str], tuple[torch.nn.Module, str, str, float]] = {}  # (model, profile hash) -> ...
    prepared = []
    digital_scores: dict[str, float] = {}
    for cfg in configs:
        prof = resolve_profile(cfg, sp.base_dir)
        net = models[cfg.model]
        phash = profile_hash(prof, net) if prof is not None else profile_hash(None, _check_analog(net, cfg.model))
        if (cfg.model, phash) not in deployed:
            model = convert(digital_copy(net), prof, mode="hardware", seed=0) if prof is not None else net
            if cfg.model not in digital_scores:  # the float weights: one reference per model
                check_data_fits(model, eval_data)
                digital_scores[cfg.model] = score(digital_copy(model), eval_data, metric_fn, output_key)
            digital = digital_scores[cfg.model]
            deployed[(cfg.model, phash)] = (Payload.build(model, eval_data, "none", metric_fn, output_key, None).model,
                                            model_hash(net), ",".join(sorted({layer.profile.name for _, layer in analog_layers(model)})),
                                            digital)
        model, mhash, pname, digital = deployed[(cfg.model, phash)]
        parts = {"model": mhash, "profile": phash, "data": dhash, "metric": mid, "output_key": output_key,
                 "compensation": cfg.compensation}
        prepared.append((cfg, (cfg.model, phash), config_key(parts), parts, pname, digital))

    # ---- what is already known
    results: dict[tuple[str, int, float], float] = {}
    for _, _, key, parts, _, _ in prepared:
        if store is not None:
            for (s, t), v in store.open(key, parts).items():
                results[(key, s, t)] = v
    jobs: list[tuple[int, Job]] = []
    for ci, (_, _, key, _, _, _) in enumerate(prepared):
        for r, s in enumerate(seeds):
            todo = [t for t in times if (key, s, t) not in results]
            if todo:
                jobs.append((ci, (r, s, todo)))
    jobs = _dedupe(jobs, prepared)  # two configurations with one key are one computation
    n_total = len(configs) * len(seeds) * len(times)
    n_todo = sum(len(j[2]) for _, j in jobs)

    # ---- run what is missing
    done = [n_total - n_todo]
    compute = [0.0]  # seconds the jobs spent programming, drifting and scoring, wherever they ran
    bar = tqdm(total=n_total, initial=done[0], desc=sp.name, unit="pt", leave=False,
               disable=(not progress) if isinstance(progress, bool) else (None if progress is None else True))

    def collect(ci: int, res: JobResult) -> None:
        key = prepared[ci][2]
        r, pts, timing = res
        compute[0] += sum(timing.values())
        for t_s, value in pts:
            if (key, seeds[r], t_s) in results:
                continue  # a job re-run after a lost worker: the same bits, stored once
            results[(key, seeds[r], t_s)] = value
            if store is not None:
                store.add(key, r, seeds[r], t_s, value)
            done[0] += 1
        bar.update(len(pts))
        if callable(progress) and not isinstance(progress, bool):
            progress(done[0], n_total)

    try:
        where, n_used, n_sent = _execute(jobs, prepared, deployed, eval_data, metric_fn, output_key, collect,
                                         executor=executor, n_workers=n_workers, scheduler=scheduler)
    finally:
        bar.close()

    # ---- the results
    reports = []
    for cfg, _, key, _, pname, digital in prepared:
        scores = np.array([[results[(key, s, t)] for t in times] for s in seeds], dtype=np.float64)
        reports.append(DriftReport(times_s=times, scores=scores, metric=metric_name, digital_score=digital, profile=pname,
                                   seed=seed, chip_seeds=seeds, compensation=cfg.compensation, label=cfg.label))
    meta = {
        "name": sp.name, "points_total": n_total, "points_computed": n_todo, "points_cached": n_total - n_todo,
        "jobs": len(jobs), "executor": where, "workers": n_used, "wall_s": time.perf_counter() - t_start, "compute_s": compute[0], "blob_copies_sent": n_sent,
        "cache": None if store is None else str(store.root),
    }
    result = SweepResult(configs=[p[0] for p in prepared], reports=reports, keys=[p[2] for p in prepared],
                         parts=[p[3] for p in prepared], seeds=seeds, meta=meta, plot=sp.plot)
    if out_dir is not None:
        result.save(out_dir)
    return result


def _dedupe(jobs: list[tuple[int, Job]], prepared: list) -> list[tuple[int, Job]]:
    seen: set[tuple[str, int]] = set()
    out = []
    for ci, job in jobs:
        k = (prepared[ci][2], job[1])
        if k not in seen:
            seen.add(k)
            out.append((ci, job))
    return out


def _execute(jobs: list[tuple[int, Job]], prepared: list, deployed: dict, eval_data: Any, metric_fn: Any,
             output_key: Any, collect: Callable[[int, JobResult], None], *, executor: Any, n_workers: int | None,
             scheduler: str | None) -> tuple[str, int | None, int]:
    """Run ``jobs``; ``(where they ran, workers, copies of model/data blobs sent to workers)``."""
    if not jobs:
        return "none", 0, 0
    if executor is None and scheduler is None and (n_workers is None or n_workers == 1):
        for ci, job in jobs:
            cfg, dkey = prepared[ci][0], prepared[ci][1]
            collect(ci, run_job(Payload(deployed[dkey][0], eval_data, cfg.compensation, metric_fn, output_key, None), job))
        return "serial", 1, 0
    blobs: dict[str, bytes] = {}
    model_keys: dict[tuple[str, str], str] = {}
    for ci, _ in jobs:
        dkey = prepared[ci][1]
        if dkey not in model_keys:
            k, b = pack(deployed[dkey][0], "model")
            model_keys[dkey], blobs[k] = k, b
    env_key, blobs[env_key] = pack((eval_data, metric_fn, output_key), "data or metric")
    tasks = [Task(model_keys[prepared[ci][1]], env_key, prepared[ci][0].compensation, job, tag=ci) for ci, job in jobs]

    def on_result(task: Task, res: JobResult) -> None:
        collect(task.tag, res)

    if executor is not None:
        sent = run_tasks(executor, blobs, tasks, on_result)
        return type(executor).__name__, executor_workers(executor), sent
    if scheduler is not None:
        distributed = _dask()
        with distributed.Client(scheduler) as client:
            sent = run_tasks(client, blobs, tasks, on_result)
            return f"dask {scheduler}", executor_workers(client), sent
    n = min(int(n_workers or 1), len(tasks))
    pool = local_executor(n)
    clean = False
    try:
        sent = run_tasks(pool, blobs, tasks, on_result)
        clean = True
    finally:
        pool.shutdown(wait=clean, kill_workers=not clean)
    return "processes", n, sent


def _check_analog(net: torch.nn.Module, name: str) -> torch.nn.Module:
    if not analog_layers(net):
        raise ParameterError(
            f"model {name!r} has no analog layers and the sweep names no profile: give profile='pcm' (or a profile axis), "
            f"or convert the model first (cimsim.convert(net, 'pcm'))"
        )
    return net


# --------------------------------------------------------------------------- models and data
def _models(sp: SweepSpec, out_dir: Path | None, cache: Any) -> tuple[dict[str, torch.nn.Module], Any]:
    """``({name: nn.Module}, the data set of the first run model or None)``."""
    from .. import runs

    models: dict[str, torch.nn.Module] = {}
    default_data = None
    for name, m in sp.models.items():
        if isinstance(m, Chip):
            raise ParameterError(f"model {name!r} is a Chip; a sweep programs its own chips: pass the converted model (chip.model)")
        if isinstance(m, torch.nn.Module):
            models[name] = m
            continue
        if not isinstance(m, Mapping) or len(m) != 1 or next(iter(m)) not in ("run", "train"):
            raise ParameterError(
                f"model {name!r}: expected an nn.Module, {{run: DIR}} (a saved training run) or {{train: {{mode: hardware, "
                f"epochs: 3, ...}}}} (got {m!r:.80})"
            )
        kind, arg = next(iter(m.items()))
        if kind == "run":
            run_dir = Path(arg) if sp.base_dir is None or Path(arg).is_absolute() else sp.base_dir / arg
        else:
            if not isinstance(arg, Mapping):
                raise ParameterError(f"model {name!r}: train takes the settings of cimsim.runs.train_run (got {arg!r:.80})")
            settings: dict[str, Any] = {str(k): (tuple(v) if isinstance(v, list) else v) for k, v in arg.items()}
            tag = hashlib.sha256(json.dumps(arg, sort_keys=True, default=str).encode()).hexdigest()[:12]
            root = Path(cache) if cache is not None else (out_dir / "cache" if out_dir is not None else None)
            if root is None:
                raise ParameterError(f"model {name!r} is trained by the sweep: give out= (or cache=) to keep the run")
            run_dir = root / "runs" / f"{name}-{tag}"
            if not (run_dir / "run.json").exists():
                try:
                    runs.train_run(run_dir, **settings)
                except TypeError as exc:
                    raise ParameterError(f"model {name!r}: bad train settings {dict(arg)} ({exc})") from None
        net, _, ds = runs.load_run(run_dir)
        models[name] = net
        if default_data is None:
            default_data = ds
    return models, default_data


def _data(data: Any, base_dir: Path | None) -> Any:
    """A YAML data mapping ``{name, n_test, image, root, seed}`` as ``(x, y)``; anything else as is."""
    if not isinstance(data, Mapping):
        return data
    from ..data import load_dataset

    unknown = sorted(set(data) - {"name", "n_test", "image", "root", "seed"})
    if unknown or "name" not in data:
        raise ParameterError(f"data: expected {{name: digits, n_test: N, image: false, root: DIR, seed: 0}} (got {dict(data)!r:.120})")
    root = data.get("root")
    if root is not None and base_dir is not None and not Path(root).is_absolute():
        root = base_dir / root
    ds = load_dataset(str(data["name"]), root=root, image=bool(data.get("image", False)), seed=int(data.get("seed", 0)))
    n = data.get("n_test")
    return (ds.x_test, ds.y_test) if n is None else (ds.x_test[: int(n)], ds.y_test[: int(n)])
