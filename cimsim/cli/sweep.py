"""``cimsim sweep SWEEP.yaml --out DIR``: a design sweep (:func:`cimsim.sweep`) from the command line.

The jobs run in this process (default), on ``--workers N`` local processes, or on the Dask
scheduler at ``--scheduler tcp://HOST:8786`` (``pip install 'cimsim[dask]'``). A progress bar
counts points; at the end the summary at the last time, where the points came from (computed or
found in the cache) and the files written are printed. Re-running the same command computes only
the points missing from the cache (``DIR/cache`` unless ``--cache``).
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CimsimError
from ..sweep import sweep
from ..times import format_time

__all__ = ["sweep_cmd", "register"]


@click.command("sweep")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="folder for results.csv/.parquet, summary.csv/.md, sweep.json, plots (and the cache)")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://HOST:8786 (needs cimsim[dask])")
@click.option("--workers", type=click.IntRange(min=-1), default=None, help="local processes (-1: all cores); default: this process")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="point cache folder (default OUT/cache); sweeps sharing it share their points")
def sweep_cmd(spec: Path, out: Path, scheduler: str | None, workers: int | None, cache: Path | None) -> None:
    """Run the design sweep described by the YAML file SPEC (see docs/sweeps.md)."""
    if scheduler is not None and workers is not None:
        raise click.UsageError("give --scheduler (a Dask cluster) or --workers (local processes), not both")
    try:
        res = sweep(spec, out=out, cache=cache, scheduler=scheduler, workers=None if workers in (None, 0) else workers,
                    progress=True)
    except CimsimError as exc:
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        raise SystemExit(2) from None
    m = res.meta
    t_last = res.reports[0].times_s[-1]
    click.echo(f"{m['name']}: {len(res.configs)} configurations x {len(res.seeds)} chips x {len(res.reports[0].times_s)} times "
               f"= {m['points_total']} points ({m['points_computed']} computed, {m['points_cached']} from the cache) "
               f"in {m['wall_s']:.1f} s ({m['executor']}, workers: {m['workers']})")
    click.echo(f"\nat t = {format_time(t_last)}:\n")
    click.echo(res.to_markdown(t_last))
    click.echo(f"written to {out}: " + ", ".join(sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.endswith(".sha256"))))


def register(group: click.Group) -> None:
    group.add_command(sweep_cmd)
