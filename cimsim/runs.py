"""Runs: train a built-in model against a chip, save it, rebuild it, and age it.

A run directory (``runs/NAME``) holds everything needed to rebuild the trained model:

* ``run.json``: the model spec (built-in model, sizes, data set), profile, mode, seed, training
  settings and final accuracy;
* ``model.pt``: the weights (a plain ``state_dict``: loaded with ``weights_only=True``);
* ``profile.yaml``: the resolved device profile (inheritance and overrides applied);
* ``curve.csv`` (+ ``curve.png``): loss and accuracy per epoch;
* while training, ``checkpoint.pt`` after every epoch (weights, optimizer, every generator
  position, curve), the one before it kept as ``checkpoint.prev.pt``: an interrupted
  :func:`train_run` re-run with the same arguments resumes from the last checkpoint that passes
  its checksum and ends with the same bits as an uninterrupted run; both are deleted when the
  run is saved.

Every file is written atomically (temporary name, fsync, rename) with its sha256 in a
``<file>.sha256`` file beside it (:mod:`cimsim._io`); ``run.json`` also records the sha256 of
``model.pt`` and ``profile.yaml``. :func:`load_run` checks them all and every field of
``run.json``: a damaged or foreign file raises StateFormatError naming the file and the fix.
Runs of the format ``cimsim.run/1`` (no checksums) are still read.

:func:`load_run` rebuilds the model from these files; :func:`drift_run` runs a drift study of it
and writes ``drift_<compensation>.{json,csv,png}`` next to them (plus ``.points.jsonl``: an
interrupted study re-run with the same arguments resumes from there). :func:`demo_run` is the
main job on embedded data (``cimsim demo``). The ``cimsim train`` / ``drift`` / ``demo``
commands (:mod:`cimsim.cli.run`) are these functions plus argument parsing.

This module sits above :mod:`cimsim.nn` and :mod:`cimsim.evaluation`: a run spans training and
evaluation, so neither of them owns it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import models
from ._io import atomic_save, atomic_write_text, read_verified, sidecar_path
from .data import load_dataset
from .errors import ParameterError, StateFormatError
from .evaluation import DriftReport, evaluate_drift, plot_reports
from .nn import MODES, convert, rng_state, set_rng_state
from .profiles import dump_profile, load_profile
from .rng import check_seed
from .run_files import CHECKPOINT_FORMAT, MODEL_NAMES, RUN_FORMAT, checkpoints, load_checkpoint, read_spec, save_checkpoint
from .times import format_time

__all__ = [
    "train_run",
    "load_run",
    "drift_run",
    "demo_run",
    "comparison_table",
    "build_model",
    "RUN_FORMAT",
    "MODEL_NAMES",
    "TRAIN_MODES",
]

#: the layers' modes, plus ``float``: plain float training (the layers in ``ideal`` mode)
TRAIN_MODES = (*MODES, "float")


# --------------------------------------------------------------------------- model + data
def build_model(spec: dict[str, Any]) -> torch.nn.Module:
    """The float built-in model of a run spec (``model``, ``input_shape``, ``n_classes``, ``hidden``)."""
    name = _check_model_name(spec["model"])
    shape = list(spec["input_shape"])
    if name == "mlp":
        return models.mlp(math.prod(shape), tuple(spec.get("hidden") or (256, 256)), spec["n_classes"])
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ParameterError(f"lenet needs square images [C, H, H] (got input shape {shape}); use --model mlp")
    return models.lenet(shape[0], spec["n_classes"], input_size=shape[1])


def _check_model_name(name: Any) -> str:
    if name not in MODEL_NAMES:
        raise ParameterError(f"unknown model {name!r}; built-in models: {list(MODEL_NAMES)}")
    return name


def _dataset(spec: dict[str, Any]):
    return load_dataset(spec["data"], root=spec.get("data_root"), image=spec["model"] == "lenet", seed=spec.get("data_seed", 0))


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> float:
    model.eval()
    correct = sum(int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(x)


# --------------------------------------------------------------------------- train
def train_run(
    out: str | Path,
    *,
    profile: str = "pcm",
    model: str = "mlp",
    data: str = "digits",
    data_root: str | None = None,
    mode: str = "hardware",
    epochs: int = 12,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    hidden: tuple[int, ...] = (256, 256),
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a built-in model against the chip of ``profile`` and save the run to ``out``.

    ``mode``: ``hardware`` (extended STE on the chip), ``noise_injection``, or ``ideal``/``float``
    (plain float training; the chip is only used at evaluation). Returns the run spec.
    Training into an existing run folder replaces its model and deletes its drift studies
    (``drift_*`` files), which belonged to the old weights.  After every epoch the full
    training state goes to ``out/checkpoint.pt``; a call with the same settings finding one
    resumes after its epoch, bit for bit (same torch thread count assumed, see
    docs/user_guide.md), and a checkpoint of other settings is discarded.
    """
    if mode not in TRAIN_MODES:
        raise ParameterError(f"mode must be one of {list(TRAIN_MODES)} (got {mode!r})")
    _check_model_name(model)  # before the data set is loaded
    seed = check_seed(seed, example="train_run(out, seed=0)")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ParameterError(f"epochs and batch size must be >= 1 and lr > 0 (got epochs={epochs}, batch_size={batch_size}, lr={lr})")
    nn_mode = "ideal" if mode == "float" else mode
    prof = load_profile(profile)
    spec: dict[str, Any] = {
        "format": RUN_FORMAT,
        "model": model,
        "hidden": list(hidden) if model == "mlp" else None,
        "data": data,
        "data_root": None if data_root is None else str(data_root),
        "data_seed": 0,
        "profile": prof.name,
        "mode": nn_mode,
        "seed": int(seed),
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "lr": float(lr),
    }
    ds = _dataset(spec)
    spec["input_shape"] = list(ds.input_shape)
    spec["n_classes"] = int(ds.n_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(spec)
    net = convert(net, prof, mode=nn_mode, seed=int(seed))

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(int(seed))
    x, y = ds.x_train, ds.y_train
    curve: list[dict[str, float]] = []
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    start, done_s = 1, 0.0
    prof_yaml = dump_profile(prof)
    ck = load_checkpoint(ckpt_path, spec, prof_yaml, echo)
    if ck is not None:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        set_rng_state(net, ck["layer_generators"])
        g.set_state(ck["data_generator"])
        curve, start, done_s = list(ck["curve"]), int(ck["epoch"]) + 1, float(ck["train_s"])
    t0 = time.perf_counter() - done_s
    for epoch in range(start, epochs + 1):
        net.train()
        perm = torch.randperm(len(x), generator=g)
        total, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            logits = net(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        test_acc = _accuracy(net, ds.x_test, ds.y_test)
        row = {"epoch": epoch, "train_loss": total / len(x), "train_acc": correct / len(x), "test_acc": test_acc}
        curve.append(row)
        save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT, "spec": spec, "profile": prof_yaml, "epoch": epoch, "model": net.state_dict(),
            "optimizer": opt.state_dict(), "layer_generators": rng_state(net), "data_generator": g.get_state(),
            "curve": curve, "train_s": time.perf_counter() - t0,
        })
        if echo:
            echo(f"epoch {epoch:3d}  loss {row['train_loss']:.4f}  train {100 * row['train_acc']:.2f} %  test {100 * test_acc:.2f} %")
    spec["train_s"] = time.perf_counter() - t0
    spec["test_acc"] = curve[-1]["test_acc"]
    spec["test_acc_note"] = (
        "on the chip at t = 0 (fresh chip per batch)" if nn_mode == "hardware" else f"{nn_mode} forward (no chip)"
    )

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("drift_*"):  # studies of the weights this run replaces (else a rerun refuses them)
        if stale.is_file():
            stale.unlink()
    sd = net.state_dict()
    spec["sha256"] = {
        "model.pt": atomic_save(out / "model.pt", lambda f: torch.save(sd, f)),
        "profile.yaml": atomic_write_text(out / "profile.yaml", prof_yaml),
    }
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(curve[0]), lineterminator="\r\n")
    w.writeheader()
    w.writerows(curve)
    atomic_write_text(out / "curve.csv", buf.getvalue())
    atomic_write_text(out / "run.json", json.dumps(spec, indent=1) + "\n")
    _plot_curve(curve, out / "curve.png", f"{model} on {data}, {prof.name}, {nn_mode} mode")
    for ck_file in checkpoints(ckpt_path):
        ck_file.unlink(missing_ok=True)
        sidecar_path(ck_file).unlink(missing_ok=True)
    return spec


def _plot_curve(curve: list[dict[str, float]], path: Path, title: str) -> None:
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is optional
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ep = [r["epoch"] for r in curve]
    ax.plot(ep, [100 * r["train_acc"] for r in curve], label="train")
    ax.plot(ep, [100 * r["test_acc"] for r in curve], label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax2 = ax.twinx()
    ax2.plot(ep, [r["train_loss"] for r in curve], color="gray", ls=":", label="loss")
    ax2.set_ylabel("train loss")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def load_run(run_dir: str | Path, *, profile: str | None = None) -> tuple[torch.nn.Module, dict[str, Any], Any]:
    """``(model, spec, dataset)`` of a run saved by :func:`train_run`.

    The model is rebuilt from ``run.json``, converted with the saved ``profile.yaml`` (or with
    ``profile``, a name or YAML path, to deploy the trained weights on another chip) and gets the
    saved weights.
    """
    run_dir = Path(run_dir)
    spec = read_spec(run_dir)
    sums = spec.get("sha256") or {}
    ppath = run_dir / "profile.yaml"
    if profile is None:
        read_verified(ppath, required=bool(sums), expected=sums.get("profile.yaml"))
    prof = load_profile(profile) if profile is not None else load_profile(ppath)
    net = convert(build_model(spec), prof, mode=spec["mode"], seed=spec["seed"])
    mpath = run_dir / "model.pt"
    raw = read_verified(mpath, required=bool(sums), expected=sums.get("model.pt"))
    try:
        weights = torch.load(io.BytesIO(raw), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - empty, truncated or foreign file
        raise StateFormatError(
            f"{mpath}: not a torch state_dict ({type(exc).__name__}: {exc or 'empty file'}); train the run again "
            f"(cimsim train --out {run_dir})"
        ) from None
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise StateFormatError(f"{mpath}: the weights do not fit the model of {run_dir / 'run.json'} ({exc})") from None
    net.eval()
    return net, spec, _dataset(spec)


def drift_run(
    run_dir: str | Path,
    *,
    times: str = "1s,1h,1d,1y,10y",
    repeats: int = 20,
    compensation: str = "global",
    seed: int = 0,
    workers: int | None = None,
    profile: str | None = None,
    progress: bool | None = None,
    plot: bool = True,
    label: str | None = None,
) -> DriftReport:
    """Drift study of a saved run; writes ``drift_<comp>[_<profile>][_seed<s>].{json,csv,png}`` into the run.

    Re-running with the same compensation, profile and seed resumes (and extends) that study.
    """
    run_dir = Path(run_dir)
    seed = check_seed(seed, example="drift_run(run_dir, seed=0)")
    net, spec, ds = load_run(run_dir, profile=profile)
    stem = f"drift_{compensation}" + ("" if profile is None else f"_{load_profile(profile).name}") + (f"_seed{seed}" if seed else "")
    rep = evaluate_drift(
        net, ds, times_s=times, repeats=repeats, compensation=compensation, seed=seed, workers=workers,
        out=run_dir / f"{stem}.json", progress=progress, label=label or f"{run_dir.name} ({spec['mode']}-trained), {compensation}",
    )
    rep.to_csv(run_dir / f"{stem}.csv")
    if plot:
        try:
            rep.plot(run_dir / f"{stem}.png")
        except ParameterError:  # matplotlib missing: the plot is optional
            pass
    return rep


def demo_run(
    out: str | Path = "runs/demo",
    *,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 5e-3,
    repeats: int = 10,
    times: str = "1s,1h,1d,1mo,1y,10y",
    hidden: tuple[int, ...] = (256, 256),
    seed: int = 0,
    workers: int | None = None,
    echo: Callable[[str], None] = print,
) -> str:
    """The main job on embedded data: the digits MLP on ``pcm``, trained in hardware mode and in
    float, then accuracy vs time on the chip, with and without drift compensation.

    Writes ``out/{hardware,float}/`` (runs and their studies), ``out/demo.md`` (the table) and
    ``out/demo.png``; says what it does through ``echo``. Returns the table (markdown).
    """
    t_start = time.perf_counter()
    out = Path(out)
    reports, labels = [], []
    for mode, name in (("hardware", "hardware"), ("float", "float")):
        t0 = time.perf_counter()
        spec = train_run(out / name, profile="pcm", model="mlp", data="digits", mode=mode, epochs=epochs,
                         batch_size=batch_size, lr=lr, seed=seed, hidden=hidden)
        echo(f"trained {name:8s} ({spec['mode']} mode, {epochs} epochs) in {time.perf_counter() - t0:.1f} s: "
             f"test accuracy {100 * spec['test_acc']:.2f} % ({spec['test_acc_note']})")
        for comp in ("none", "global"):
            t0 = time.perf_counter()
            rep = drift_run(out / name, times=times, repeats=repeats, compensation=comp, seed=seed,
                            workers=workers, plot=False, label=f"{name}-trained, {comp}")
            echo(f"  drift study {comp:6s}: {repeats} chips x {len(rep.times_s)} times in {time.perf_counter() - t0:.1f} s")
            reports.append(rep)
            labels.append(f"{name}-trained, {'no comp.' if comp == 'none' else comp + ' comp.'}")
    table = comparison_table(reports, labels)
    head = (
        f"Digits MLP {'-'.join(['64', *map(str, hidden), '10'])} on `pcm`: test accuracy (%) vs time since programming, "
        f"mean ± 95 % CI over {repeats} chips (digital: the float weights without a chip)\n\n"
    )
    atomic_write_text(out / "demo.md", head + table)
    echo("\n" + head + table)
    try:
        plot_reports(reports, out / "demo.png", labels=labels, colors=["C0", "C0", "C3", "C3"],
                     linestyles=[":", "-", ":", "-"],
                     title=f"digits MLP on pcm, {repeats} chips (band: 95 % CI; dashed: digital)")
        fig_note = f", plot {out / 'demo.png'}"
    except ParameterError:  # matplotlib missing: the plot is optional
        fig_note = ""
    echo(f"wrote {out / 'demo.md'}{fig_note}; total {time.perf_counter() - t_start:.1f} s")
    return head + table


def comparison_table(reports: list[DriftReport], labels: list[str]) -> str:
    """Markdown table: one column per study (mean ± 95 % CI half-width, in %), the digital reference first."""
    lines = ["| time | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines.append("| digital | " + " | ".join("-" if r.digital_score is None else f"{100 * r.digital_score:.2f}" for r in reports) + " |")
    for i, t in enumerate(reports[0].times_s):
        cells = []
        for r in reports:
            half = r.ci_high[i] - r.mean[i]
            cells.append(f"{100 * r.mean[i]:.2f} ± {100 * half:.2f}" if math.isfinite(half) else f"{100 * r.mean[i]:.2f}")
        lines.append(f"| {format_time(t)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
