"""The ``cimsim`` command line (click).

Subcommand groups live in their own modules and register here: ``profile`` (profiles.py) and
``train`` / ``drift`` / ``demo`` (run.py).
"""

from __future__ import annotations

import click

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cimsim")
def main() -> None:
    """cimsim: simulate analog compute-in-memory hardware."""


def _register() -> None:
    from importlib import import_module

    for mod in ("profiles", "run"):
        try:
            m = import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:  # a module not written yet
            if exc.name != f"{__name__}.{mod}":
                raise
            continue
        m.register(main)


_register()
