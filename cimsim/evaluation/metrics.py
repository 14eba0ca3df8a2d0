"""What a drift study scores: the evaluation data, the batched forward, the metrics.

Data (:func:`as_eval_data` -> :class:`EvalData`), checked once where they enter:

* a :class:`cimsim.data.Dataset` (its test split), or a pair ``(inputs, targets)`` in memory;
  ``inputs`` is a tensor/array of any dtype (integer token ids pass unchanged, floats are not
  cast) or a dict of them (the model is then called as ``model(**batch)``). It is cut into
  batches of ``batch_size`` rows;
* a torch ``DataLoader`` (read batch by batch, in its own batches, every time the data are
  scored: the set is never held whole) or a torch ``Dataset`` (read through a ``DataLoader`` of
  ``batch_size``), yielding ``(inputs, targets)`` pairs or dicts whose ``"labels"`` entry holds
  the targets (HuggingFace style; the other entries are the model's keyword inputs).

Outputs (:func:`select_output`): a tensor is scored as it is; of a tuple/list the first element;
of a dict or a HuggingFace ``ModelOutput`` the ``"logits"`` field. ``output_key`` (a key,
attribute name or index) names another field.

Metrics: a function ``(outputs, targets) -> float`` over the whole evaluation set.
:data:`METRICS` names the built-in ones, means over every target of a per-sample value, with the
classes on the outputs' last dimension (``[n, C]`` against ``[n]``, ``[n, seq, C]`` against
``[n, seq]``) and targets ``-100`` ignored (torch's and HuggingFace's ``ignore_index``); they are
accumulated batch by batch, one number per target. Any other callable is given the scored
outputs and the targets of the whole set, concatenated in order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Dataset
from ..errors import DataError, ParameterError, ShapeError
from .chip import digital_copy

__all__ = [
    "accuracy", "cross_entropy", "METRICS", "IGNORE_INDEX", "MeanMetric", "EvalData", "resolve_metric", "as_eval_data",
    "check_data_fits", "check_output_key", "select_output", "score",
]

Metric = Callable[[torch.Tensor, torch.Tensor], float]
#: one batch of model inputs: a tensor (``model(x)``) or keyword tensors (``model(**x)``)
Inputs = Union[torch.Tensor, dict[str, torch.Tensor]]
#: targets with this value are not scored by the built-in metrics (torch's ``ignore_index``)
IGNORE_INDEX = -100
#: the entry of a dict batch that holds the targets (HuggingFace's convention)
LABELS_KEY = "labels"


# --------------------------------------------------------------------------- metrics
class MeanMetric:
    """A metric that is the mean of ``per_sample(outputs, targets)`` over every scored target;
    a study accumulates it batch by batch (:func:`score`)."""

    def __init__(self, name: str, per_sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.__name__ = self.__qualname__ = name
        self.per_sample = per_sample

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return _mean([self.per_sample(outputs, targets)], self.__name__)


def _class_targets(outputs: torch.Tensor, targets: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``outputs`` as ``[m, C]`` and ``targets`` as ``[m]``, ignored targets left out."""
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise DataError(f"{name} needs integer class targets (got {targets.dtype}); pass metric=fn(outputs, targets) -> float for other targets")
    if outputs.ndim < 1 or tuple(outputs.shape[:-1]) != tuple(targets.shape):
        raise DataError(
            f"{name} needs outputs [..., classes] whose leading shape equals the targets' (got outputs of shape "
            f"{tuple(outputs.shape)} and targets of shape {tuple(targets.shape)}); pick the scored output with "
            f"output_key=... or pass metric=fn(outputs, targets) -> float"
        )
    n_classes = outputs.shape[-1]
    flat_out, flat_t = outputs.reshape(-1, n_classes), targets.reshape(-1)
    keep = flat_t != IGNORE_INDEX
    if not bool(keep.all()):
        flat_out, flat_t = flat_out[keep], flat_t[keep]
    bad = (flat_t < 0) | (flat_t >= n_classes)
    if bool(bad.any()):
        raise DataError(
            f"{name}: target value {int(flat_t[bad][0])} is out of range for {n_classes} classes (the outputs' last "
            f"dimension): targets must be in 0..{n_classes - 1}, or {IGNORE_INDEX} to skip a position "
            f"({int(bad.sum())} of {len(flat_t)} targets are out of range); check the labels, or the model's number of outputs"
        )
    return flat_out, flat_t


def _correct(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    out, t = _class_targets(outputs, targets, "accuracy")
    return (out.argmax(dim=-1) == t).double()


def _nll(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    out, t = _class_targets(outputs, targets, "cross_entropy")
    return F.cross_entropy(out.double(), t, reduction="none")


def _mean(parts: list[torch.Tensor], name: str) -> float:
    values = torch.cat(parts) if len(parts) > 1 else parts[0]
    if values.numel() == 0:
        raise DataError(f"{name}: every target is {IGNORE_INDEX} (ignored), so there is nothing to score")
    # the mean summed as torch's nll_loss sums it: a whole-set cross_entropy keeps the bits it had
    # when it was one F.cross_entropy call (an exact count for accuracy, whatever the order)
    return float(F.nll_loss(-values.double()[:, None], torch.zeros(len(values), dtype=torch.long)).item())


#: top-1 accuracy: fraction of targets whose arg-max class (last dimension) equals the target
accuracy = MeanMetric("accuracy", _correct)
#: mean cross-entropy loss in nats (lower is better)
cross_entropy = MeanMetric("cross_entropy", _nll)

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


# --------------------------------------------------------------------------- outputs
def check_output_key(output_key: Any) -> str | int | None:
    if output_key is None or isinstance(output_key, str) or (isinstance(output_key, (int, np.integer)) and not isinstance(output_key, bool)):
        return output_key if output_key is None or isinstance(output_key, str) else int(output_key)
    raise ParameterError(f"output_key must be a field name (e.g. 'logits'), an index of a tuple output, or None (got {output_key!r})")


def _fields(out: Any) -> str:
    if isinstance(out, Mapping):
        return str(list(out.keys()))
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)}"
    return type(out).__name__


def select_output(out: Any, output_key: str | int | None = None) -> torch.Tensor:
    """The scored tensor of a model's return value ``out`` (see the module docstring)."""
    if output_key is None:
        if isinstance(out, torch.Tensor):
            return out
        if isinstance(out, Mapping) or hasattr(out, "logits"):
            picked = out.get("logits") if isinstance(out, Mapping) else None
            picked = getattr(out, "logits", None) if picked is None else picked
            where = "its 'logits' field"
        elif isinstance(out, (tuple, list)) and len(out) > 0:
            picked, where = out[0], "its first element"
        else:
            picked, where = None, "it"
    else:
        container: Any = out  # a key of a dict/ModelOutput, an index of a tuple/list
        try:
            picked = container[output_key] if isinstance(out, (Mapping, tuple, list)) else getattr(out, str(output_key))
        except (KeyError, IndexError, AttributeError, TypeError):
            picked = None
        if picked is None and isinstance(output_key, str):
            picked = getattr(out, output_key, None)
        where = f"output_key={output_key!r}"
    if not isinstance(picked, torch.Tensor):
        found = "not found" if picked is None else f"a {type(picked).__name__}, not a tensor"
        raise ParameterError(
            f"cannot score the model's output: {where} is {found} in the {type(out).__name__} the model returned "
            f"(fields: {_fields(out)}); name the scored field with output_key=... (a key, attribute or index)"
        )
    return picked


def _call(module: torch.nn.Module, inputs: Inputs) -> Any:
    return module(**inputs) if isinstance(inputs, dict) else module(inputs)


# --------------------------------------------------------------------------- data
def _tensor(v: Any) -> torch.Tensor:
    return v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))


def _as_inputs(x: Any) -> Inputs:
    if isinstance(x, Mapping):
        return {str(k): _tensor(v) for k, v in x.items()}
    return _tensor(x)


def _take(inputs: Inputs, sl: slice) -> Inputs:
    return {k: v[sl] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[sl]


def _tensors(inputs: Inputs) -> list[tuple[str, torch.Tensor]]:
    return sorted(inputs.items()) if isinstance(inputs, dict) else [("", inputs)]


def _shape(inputs: Inputs, lead: int = 1) -> str:
    if isinstance(inputs, dict):
        return str({k: tuple(v.shape[lead:]) for k, v in inputs.items()})
    return str(tuple(inputs.shape[lead:]))


def _check_batch(inputs: Inputs, targets: torch.Tensor, where: str) -> None:
    """Every input holds one row per target; floating inputs are finite."""
    for key, v in _tensors(inputs):
        name = f"inputs[{key!r}]" if key else "inputs"
        if v.ndim < 1 or len(v) != len(targets):
            raise DataError(
                f"{where}: {name} and targets must have the same number of samples (got {len(v) if v.ndim else 0} "
                f"inputs of shape {tuple(v.shape)} and {len(targets)} targets of shape {tuple(targets.shape)})"
            )
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise DataError(f"{where}: {name} contain {int((~torch.isfinite(v)).sum())} NaN/Inf values; clean the data first")


def _bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    try:
        return t.numpy().tobytes()
    except TypeError:  # dtypes numpy lacks (bfloat16)
        return t.view(torch.uint8).numpy().tobytes()


@dataclass
class EvalData:
    """The evaluation set of a study: inputs and targets in memory (cut into batches of
    ``batch_size`` rows), or a ``DataLoader`` read batch by batch (``targets`` is None)."""

    inputs: Any  # Inputs in memory, or a torch DataLoader
    targets: torch.Tensor | None
    batch_size: int | None  # rows per forward call (a loader's own batch size)

    def batches(self) -> Iterator[tuple[Inputs, torch.Tensor]]:
        """``(inputs, targets)`` batch by batch, in order."""
        if self.targets is None:
            for i, batch in enumerate(self.inputs):
                yield _loader_batch(batch, i)
            return
        step = int(self.batch_size or len(self.targets))
        for s in range(0, len(self.targets), step):
            yield _take(self.inputs, slice(s, s + step)), self.targets[s : s + step]

    def first_sample(self) -> Inputs:
        for inputs, _ in self.batches():
            return _take(inputs, slice(0, 1))
        raise DataError("the data loader yielded no batches: evaluate_drift needs at least one sample")

    def digest(self, h: "hashlib._Hash") -> int:
        """Hash the inputs, then the targets, into ``h``; the number of samples."""
        ys: list[torch.Tensor] = []
        for inputs, targets in self.batches():
            for key, v in _tensors(inputs):
                if key:
                    h.update(key.encode())
                h.update(_bytes(v))
            ys.append(targets)
        y = torch.cat(ys) if len(ys) > 1 else ys[0]
        h.update(_bytes(y))
        return len(y)


def _loader_batch(batch: Any, i: int) -> tuple[Inputs, torch.Tensor]:
    if isinstance(batch, Mapping) and LABELS_KEY in batch:
        x: Any = {k: v for k, v in batch.items() if k != LABELS_KEY}
        y = batch[LABELS_KEY]
    elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
        x, y = batch[0], batch[1]
    else:
        raise DataError(
            f"a torch data set / loader for evaluate_drift must yield (inputs, targets) pairs or dicts with a "
            f"{LABELS_KEY!r} entry (batch {i} is a {type(batch).__name__})"
        )
    inputs, targets = _as_inputs(x), _tensor(y)
    _check_batch(inputs, targets, f"batch {i} of the data loader")
    return inputs, targets


def _sequential(loader: torch.utils.data.DataLoader) -> None:
    samplers = (loader.sampler, getattr(loader.batch_sampler, "sampler", None))
    if any(isinstance(s, torch.utils.data.RandomSampler) for s in samplers):
        raise DataError(
            "the DataLoader shuffles (shuffle=True / a RandomSampler): a study scores every chip at every time on the "
            "same samples in the same order; pass a loader built with shuffle=False"
        )


def as_eval_data(data: Any, batch_size: int = 2048) -> EvalData:
    """The evaluation set of ``data`` (see the module docstring), checked."""
    if isinstance(data, torch.utils.data.DataLoader):
        _sequential(data)
        return EvalData(data, None, data.batch_size)
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, Dataset):
        return EvalData(torch.utils.data.DataLoader(data, batch_size=batch_size), None, batch_size)
    if isinstance(data, Dataset):
        x, y = data.x_test, data.y_test
    elif isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        x, y = data
    else:
        raise DataError(
            f"cannot evaluate on data of type {type(data).__name__}: pass a cimsim.data.Dataset (e.g. "
            f"cimsim.data.digits()), a pair (x, y) of tensors (x may be a dict of tensors), or a torch DataLoader "
            f"yielding (x, y) or dicts with a {LABELS_KEY!r} entry"
        )
    inputs, targets = _as_inputs(x), _tensor(y)
    if targets.ndim < 1 or len(targets) == 0:
        raise DataError(f"evaluate_drift needs at least one input sample (got inputs of shape {_shape(inputs, 0)})")
    _check_batch(inputs, targets, "evaluate_drift")
    inputs = {k: v.contiguous() for k, v in inputs.items()} if isinstance(inputs, dict) else inputs.contiguous()
    return EvalData(inputs, targets.contiguous(), int(batch_size))


# --------------------------------------------------------------------------- forward
def score(module: torch.nn.Module, data: EvalData, metric: Metric, output_key: str | int | None = None) -> float:
    """``metric`` of ``module`` on ``data``, forwarded batch by batch. A :class:`MeanMetric` keeps
    one number per target; any other metric gets the outputs and targets of the whole set."""
    per_sample = metric.per_sample if isinstance(metric, MeanMetric) else None
    outs: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    with torch.no_grad():
        for inputs, y in data.batches():
            out = select_output(_call(module, inputs), output_key)
            if per_sample is not None:
                outs.append(per_sample(out, y))
            else:
                outs.append(out)
                targets.append(y)
    if per_sample is not None:
        return _mean(outs, getattr(metric, "__name__", "metric"))
    value = metric(_cat(outs, "outputs"), _cat(targets, "targets"))
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"the metric must return one number (got {type(value).__name__}: {value!r:.80})") from None


def _cat(parts: list[torch.Tensor], what: str) -> torch.Tensor:
    try:
        return torch.cat(parts) if len(parts) > 1 else parts[0]
    except RuntimeError as exc:
        raise DataError(
            f"a custom metric is given the {what} of the whole set at once, but the batches' {what} do not concatenate "
            f"({str(exc).splitlines()[0]}); pad every batch to one shape, or use a built-in metric"
        ) from exc


def check_data_fits(model: torch.nn.Module, data: EvalData, *, digital: torch.nn.Module | None = None) -> None:
    """Run one sample through the float model; a mismatch becomes a :class:`DataError`."""
    probe = digital_copy(model) if digital is None else digital
    sample = data.first_sample()
    try:
        with torch.no_grad():
            _call(probe, sample)
    except (RuntimeError, ShapeError, ValueError, TypeError, IndexError) as exc:
        expected = _expected_input(model)
        hint = f"; the first weight layer expects {expected}" if expected else ""
        if not isinstance(exc, TypeError) and any(not v.is_floating_point() for _, v in _tensors(sample)):
            hint += "; integer inputs reach the model unchanged (token ids): cast them (x.float()) if the model takes features"
        batch = f"batch shape {tuple(sample.shape)}" if isinstance(sample, torch.Tensor) else "keyword inputs"
        raise DataError(
            f"the data do not fit the model: one sample of shape {_shape(sample)} ({batch}) fails in the model's "
            f"forward ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}){hint}. "
            f"Reshape the inputs (e.g. digits(image=True) for a CNN, flat for an MLP) or build the model for this input."
        ) from exc


def _expected_input(model: torch.nn.Module) -> str | None:
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            return f"{m.in_features} input features (nn.Linear)"
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            return f"{m.in_channels} input channels ({type(m).__name__})"
        if isinstance(m, torch.nn.Embedding):
            return f"token ids below {m.num_embeddings} (nn.Embedding)"
    return None
