"""``cimsim profile fit DATA``: fit a device profile to a measurement table."""

from __future__ import annotations

from pathlib import Path

import click

from .._io import atomic_write_text
from ..errors import CimsimError
from ..fitting import fit_profile

__all__ = ["fit_cmd", "register"]


def _levels(value: str) -> int | None | str:
    if value in ("auto", "continuous"):
        return None if value == "continuous" else "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"must be auto, continuous or an int >= 2 (got {value!r})") from None


@click.command("fit")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--base", default="pcm", show_default=True, help="profile (name or YAML) the peripherals come from")
@click.option("--name", default=None, help="name of the fitted profile (default: the data file's stem)")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write the profile YAML here (default: stdout)")
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="write the markdown fit report here")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="write the figure (PNG, PDF, SVG) here")
@click.option("--t0-s", "t0_s", type=float, default=None, help="drift reference time t0, s (default: fitted)")
@click.option("--g-range-us", nargs=2, type=float, default=None, metavar="G_MIN G_MAX",
              help="conductance range, µS (default: the lowest and highest target)")
@click.option("--levels", default="auto", show_default=True,
              help="n_levels: auto (the targets when they form the whole grid), continuous, or an int")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the bootstrap of the standard errors")
def fit_cmd(data: str, base: str, name: str | None, out: str | None, report: str | None, plot: str | None,
            t0_s: float | None, g_range_us: tuple[float, float] | None, levels: str, seed: int) -> None:
    """Fit a device profile to the measurement table DATA (.csv, .npz or .parquet).

    \b
    DATA has one row per read: device, g_target_us, t_s, g_us (+ read for repeated reads).
    e.g.  cimsim profile fit meas.csv --base pcm --name my_device --out my_device.yaml \\
              --report fit.md --plot fit.png
    """
    try:
        res = fit_profile(data, base=base, name=name, t0_s=t0_s, seed=seed, g_range_us=g_range_us,
                          n_levels=_levels(levels))
        written: list[tuple[str, str]] = []
        if out is not None:
            atomic_write_text(Path(out), res.to_yaml(), checksum=False)
            written.append(("profile", out))
        if report is not None:
            atomic_write_text(Path(report), res.report, checksum=False)
            written.append(("report", report))
        if plot is not None:
            res.plot(plot)
            written.append(("figure", plot))
    except CimsimError as exc:
        for line in str(exc).splitlines():
            click.echo(line, err=True)
        raise SystemExit(1) from None
    p = res.profile
    if out is None:
        click.echo(res.to_yaml(), nl=False)
    summary = (f"fitted {p.name}: programming {p.programming.noise.kind}, drift {p.drift.kind}, "
               f"read noise {p.read_noise.kind} ({res.cells.n_dev} devices, {len(res.table)} reads)")
    click.echo(summary, err=out is None)
    for what, path in written:
        if Path(path).is_file():  # never claim a file that is not there
            click.echo(f"wrote {what} {path}", err=out is None)


def register(group: click.Group) -> None:
    """Add ``fit`` to the ``profile`` group."""
    group.add_command(fit_cmd)
