"""``cimsim train`` / ``cimsim drift`` / ``cimsim demo``: the commands over :mod:`cimsim.runs`.

Only argument parsing, output and exit codes live here: a :class:`cimsim.errors.CimsimError`
from the library is printed as ``error: ...`` lines and exits with status 2; a malformed
option is click's usage error. What a run directory holds, and how a study resumes, is
described in :mod:`cimsim.runs`.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..crossbar.compensation import check_compensation
from ..errors import CimsimError, ParameterError
from ..runs import MODEL_NAMES, TRAIN_MODES, demo_run, drift_run, train_run

__all__ = ["train_cmd", "drift_cmd", "demo_cmd", "register"]


def _fail(exc: CimsimError) -> None:
    for line in str(exc).splitlines():
        click.echo(f"error: {line}", err=True)
    raise SystemExit(2)


def _workers_opt(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"use auto, 1 (serial), n processes or -1 (all cores) (got {value!r})", param_hint="--workers") from None


def _hidden_opt(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(h) for h in value.split(",") if h.strip())
    except ValueError:
        raise click.BadParameter(f"--hidden must be comma-separated integers (got {value!r})", param_hint="--hidden") from None


def _compensations_opt(value: str) -> list[str]:
    comps = [c.strip() for c in value.split(",") if c.strip()]
    try:
        return [check_compensation(c) for c in comps or [value]]
    except ParameterError as exc:
        raise click.BadParameter(str(exc), param_hint="--compensation") from None


@click.command("train")
@click.option("--profile", default="pcm", show_default=True, help="device profile: a shipped name (cimsim profile list) or a YAML path")
@click.option("--model", "model_name", type=click.Choice(MODEL_NAMES), default="mlp", show_default=True, help="built-in model")
@click.option("--data", default="digits", show_default=True, help="digits (embedded) or mnist/fashion_mnist/cifar10 under --data-root")
@click.option("--data-root", default=None, help="directory that already holds a torchvision data set (never downloaded)")
@click.option("--mode", type=click.Choice(TRAIN_MODES), default="hardware", show_default=True, help="training mode (float = plain float training)")
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Adam learning rate")
@click.option("--hidden", default="256,256", show_default=True, help="MLP hidden sizes, comma-separated")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="run directory, e.g. runs/NAME")
@click.option("--quiet", is_flag=True, help="no per-epoch lines")
def train_cmd(profile, model_name, data, data_root, mode, epochs, batch_size, lr, hidden, seed, out, quiet):
    """Train a built-in model against a simulated chip and save the run (model, profile, curve)."""
    hid = _hidden_opt(hidden)
    try:
        spec = train_run(
            out, profile=profile, model=model_name, data=data, data_root=data_root, mode=mode, epochs=epochs,
            batch_size=batch_size, lr=lr, seed=seed, hidden=hid, echo=None if quiet else click.echo,
        )
    except CimsimError as exc:
        _fail(exc)
    click.echo(
        f"saved {out}: {spec['model']} on {spec['data']}, profile {spec['profile']}, {spec['mode']} mode, "
        f"test accuracy {100 * spec['test_acc']:.2f} % ({spec['test_acc_note']}), {spec['train_s']:.1f} s"
    )
    click.echo(f"next: cimsim drift {out} --times 1s,1h,1d,1y,10y --repeats 20 --compensation global")


def _written(path: Path, since: float) -> bool:
    """Whether ``path`` was written at or after ``since`` (time.time()), not left by an earlier run."""
    try:
        return path.stat().st_mtime >= since - 1.0  # 1 s: file systems that keep whole seconds
    except OSError:
        return False


@click.command("drift")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--times", default="1s,1h,1d,1y,10y", show_default=True, help="times since programming (units s, min, h, d, w, mo, y)")
@click.option("--repeats", type=click.IntRange(min=1), default=20, show_default=True, help="independently programmed chips")
@click.option("--compensation", default="global", show_default=True, help="none, global, per_column, global_aihwkit, or a comma list of them")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--workers", default="auto", show_default=True, help="auto, 1 (serial), n processes, -1 (all cores)")
@click.option("--profile", default=None, help="deploy on another profile than the one trained on")
@click.option("--no-plot", is_flag=True, help="do not write the PNG plot")
def drift_cmd(run_dir, times, repeats, compensation, seed, workers, profile, no_plot):
    """Accuracy vs time since programming over many chips; writes drift_<comp>.{json,csv,png} into RUN_DIR."""
    comps = _compensations_opt(compensation)  # all of them, before the first study starts
    n_workers = _workers_opt(workers)
    try:
        for comp in comps:
            started = time.time()
            rep = drift_run(run_dir, times=times, repeats=repeats, compensation=comp, seed=seed,
                            workers=n_workers, profile=profile, plot=not no_plot)
            click.echo(rep.to_markdown())
            m = rep.meta
            stem = Path(m["out"]).with_suffix("")
            # the plot is optional (matplotlib): name only the files this study wrote
            png = not no_plot and _written(stem.with_suffix(".png"), started)
            note = "" if no_plot or png else " (no plot: it needs matplotlib, pip install 'cimsim[plot]')"
            click.echo(
                f"{m['points_computed']} points computed, {m['points_resumed']} resumed, {m['workers']} process(es), "
                f"{m['wall_s']:.1f} s; wrote {stem}.{{json,csv{',png' if png else ''}}}{note}\n"
            )
    except CimsimError as exc:
        _fail(exc)


@click.command("demo")
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=float, default=5e-3, show_default=True, help="Adam learning rate")
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--times", default="1s,1h,1d,1mo,1y,10y", show_default=True)
@click.option("--hidden", default="256,256", show_default=True, help="MLP hidden sizes")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--workers", default="auto", show_default=True, help="auto, 1 (serial), n processes, -1 (all cores)")
def demo_cmd(out, epochs, batch_size, lr, repeats, times, hidden, seed, workers):
    """The main job on embedded data: digits MLP on pcm, trained in hardware mode and in float,
    then accuracy vs time on the chip, with and without drift compensation."""
    hid = _hidden_opt(hidden)
    n_workers = _workers_opt(workers)
    try:
        demo_run(out, epochs=epochs, batch_size=batch_size, lr=lr, repeats=repeats, times=times, hidden=hid,
                 seed=seed, workers=n_workers, echo=click.echo)
    except CimsimError as exc:
        _fail(exc)


def register(main: click.Group) -> None:
    """Add ``train``, ``drift`` and ``demo`` to the top-level command."""
    main.add_command(train_cmd)
    main.add_command(drift_cmd)
    main.add_command(demo_cmd)
