"""Inference under drift: programmed chips, drift compensation, Monte-Carlo drift studies, reports.

* :func:`program` ``(model, seed=s) -> Chip``: program every analog layer once; read it at any time.
* :func:`evaluate_drift` ``(model_or_chip, data, times_s=..., repeats=..., compensation=..., seed=...)``
  ``-> DriftReport``: independent chips, each ageing over the given times.
* :class:`DriftReport`: per-repeat scores, mean/std/95 % CI per time, markdown/CSV/JSON/plot.
"""

from ..crossbar.compensation import COMPENSATIONS
from .chip import Chip, analog_layers, digital_copy, program
from .metrics import METRICS
from .report import DriftReport, plot_reports
from .study import evaluate_drift

__all__ = [
    "Chip",
    "COMPENSATIONS",
    "DriftReport",
    "METRICS",
    "analog_layers",
    "digital_copy",
    "evaluate_drift",
    "plot_reports",
    "program",
]
