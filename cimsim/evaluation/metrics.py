"""What a drift study scores: the metrics, the evaluation data, and the batched forward.

A metric is a function ``(outputs, targets) -> float`` over the whole evaluation set: the
outputs of every sample (forwarded in batches of ``batch_size``, concatenated in order) against
every target. :data:`METRICS` names the built-in ones; any callable of that form is accepted.
The data are checked once where they enter (:func:`as_eval_data`, :func:`check_data_fits`), so
the study below trusts them.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..data import Dataset
from ..errors import DataError, ParameterError, ShapeError
from .chip import digital_copy

__all__ = ["accuracy", "cross_entropy", "METRICS", "resolve_metric", "as_eval_data", "check_data_fits", "forward_all"]

Metric = Callable[[torch.Tensor, torch.Tensor], float]


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy: fraction of rows whose arg-max equals the target class."""
    return float((outputs.argmax(dim=1) == targets).double().mean().item())


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy loss (lower is better)."""
    return float(torch.nn.functional.cross_entropy(outputs.double(), targets).item())


METRICS: dict[str, Metric] = {
    "accuracy": accuracy,
    "cross_entropy": cross_entropy,
}


def resolve_metric(metric: str | Callable) -> tuple[str, Metric]:
    """``(name, fn)`` for a metric name in :data:`METRICS` or a callable ``(outputs, targets) -> float``."""
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ParameterError(f"unknown metric {metric!r}; use one of {sorted(METRICS)} or a callable (outputs, targets) -> float")
        return metric, METRICS[metric]
    if not callable(metric):
        raise ParameterError(f"metric must be a name in {sorted(METRICS)} or a callable (outputs, targets) -> float (got {metric!r})")
    name = getattr(metric, "__qualname__", None) or getattr(metric, "__name__", None) or type(metric).__name__
    return str(name), metric


def forward_all(module: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``module`` applied to ``x`` in batches of ``batch_size`` rows, outputs concatenated in order."""
    with torch.no_grad():
        return torch.cat([module(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def as_eval_data(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets as tensors from: a :class:`cimsim.data.Dataset` (its test split), a pair
    ``(x, y)`` of tensors/arrays, or a torch ``Dataset``/``DataLoader`` yielding ``(x, y)``."""
    if isinstance(data, Dataset):
        x, y = data.x_test, data.y_test
    elif isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        x, y = data
    elif isinstance(data, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        loader = data if isinstance(data, torch.utils.data.DataLoader) else torch.utils.data.DataLoader(data, batch_size=1024)
        xs, ys = [], []
        for batch in loader:
            if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
                raise DataError("a torch data set / loader for evaluate_drift must yield (inputs, targets) pairs")
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
        if not xs:
            raise DataError("the data loader yielded no batches: evaluate_drift needs at least one sample")
        x, y = torch.cat(xs), torch.cat(ys)
    else:
        raise DataError(
            f"cannot evaluate on data of type {type(data).__name__}: pass a cimsim.data.Dataset (e.g. "
            f"cimsim.data.digits()), a pair (x, y) of tensors, or a torch DataLoader yielding (x, y)"
        )
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if not torch.is_floating_point(x):
        x = x.float()
    if x.ndim < 1 or len(x) == 0:
        raise DataError(f"evaluate_drift needs at least one input sample (got inputs of shape {tuple(x.shape)})")
    if len(y) != len(x):
        raise DataError(
            f"inputs and targets must have the same number of samples (got {len(x)} inputs of shape "
            f"{tuple(x.shape)} and {len(y)} targets of shape {tuple(y.shape)})"
        )
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"inputs contain {int((~torch.isfinite(x)).sum())} NaN/Inf values; clean the data first")
    return x.contiguous(), y.contiguous()


def check_data_fits(model: torch.nn.Module, x: torch.Tensor, *, digital: torch.nn.Module | None = None) -> None:
    """Run one sample through the float model; a shape mismatch becomes a :class:`DataError`."""
    probe = digital_copy(model) if digital is None else digital
    try:
        with torch.no_grad():
            probe(x[:1])
    except (RuntimeError, ShapeError, ValueError) as exc:
        expected = _expected_input(model)
        hint = f"; the first analog layer expects {expected}" if expected else ""
        raise DataError(
            f"the data do not fit the model: one sample of shape {tuple(x.shape[1:])} (batch shape "
            f"{tuple(x.shape)}) fails in the model's forward ({str(exc).splitlines()[0]}){hint}. "
            f"Reshape the inputs (e.g. digits(image=True) for a CNN, flat for an MLP) or build the model for this input."
        ) from exc


def _expected_input(model: torch.nn.Module) -> str | None:
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            return f"{m.in_features} input features (nn.Linear)"
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            return f"{m.in_channels} input channels ({type(m).__name__})"
    return None
