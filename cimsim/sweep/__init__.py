"""Design sweeps: drift studies over grids of devices, models and compensations, on any executor.

* :func:`sweep` ``(spec_or_yaml, out=..., workers=... | scheduler=... | executor=...) -> SweepResult``
* :class:`SweepResult`: the tidy table (one row per configuration x chip x time), the summary per
  configuration and time, CSV/Parquet/markdown files and plots.
* :class:`MissingDependencyError`: an optional package a setting needs (``cimsim[dask]``) is missing.

See docs/sweeps.md.
"""

from .result import SweepResult
from .run import MissingDependencyError, sweep

__all__ = ["sweep", "SweepResult", "MissingDependencyError"]
