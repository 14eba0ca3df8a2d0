"""The ``cimsim`` command line (click).

Subcommand groups live in their own modules and register here: ``profile`` (profiles.py) and
``train`` / ``drift`` / ``demo`` (run.py, over :mod:`cimsim.runs`), ``sweep`` (sweep.py, over
:mod:`cimsim.sweep`).
"""

from __future__ import annotations

import click

from . import profiles, run, sweep

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cimsim")
def main() -> None:
    """cimsim: simulate analog compute-in-memory hardware."""


profiles.register(main)
run.register(main)
sweep.register(main)
