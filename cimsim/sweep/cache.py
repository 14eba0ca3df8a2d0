"""The sweep's point cache: each point's score stored under what determines it.

A point is one chip of one configuration read at one time. Its score is determined by

* ``model``: sha256 of the float model's weights (``state_dict``, in order) and its structure (``repr``);
* ``profile``: sha256 of the resolved profile's YAML (``dump_profile``: inheritance and overrides
  applied), or of every analog layer's profile when the model keeps its own;
* ``data``: sha256 of the evaluation inputs and targets (:meth:`EvalData.digest`) and ``batch_size``
  (the per-read noise advances batch by batch);
* ``metric`` (a built-in's name, or ``callable:<sha256 of the pickled function>``), ``output_key``;
* ``compensation``; the chip seed; the time ``t``; and ``format`` (:data:`CACHE_FORMAT`, changed
  whenever cimsim's numbers change on purpose).

All but the last two form the *configuration key* ``sha256(json(parts, sort_keys))``; the points of
one configuration live in ``<cache>/<key[:2]>/<key>.points.jsonl``, a points file of
:mod:`cimsim.evaluation.points` whose header holds the key and its parts: one checksummed JSON line
per point ``{repeat, chip_seed, t_s, score}``, appended with one ``write`` (atomic), read back keyed
by ``(chip seed, t)``. A point is therefore found again by any sweep, grid or study that asks for
the same parts, whatever the other axes, its worker count or its seed order; a torn last line
(a killed client) fails its checksum and is computed again.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import cloudpickle
import torch

from ..evaluation.chip import analog_layers, digital_copy
from ..evaluation.metrics import EvalData, Metric
from ..evaluation.points import append_point, start_points
from ..profiles import DeviceProfile, dump_profile

__all__ = ["CACHE_FORMAT", "model_hash", "profile_hash", "data_hash", "metric_id", "config_key", "PointStore"]

CACHE_FORMAT = "cimsim.sweep_point/1"


def _sha(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def model_hash(model: torch.nn.Module) -> str:
    """sha256 of the float model's weights and structure (the digital copy of a converted model)."""
    net = digital_copy(model)
    h = hashlib.sha256()
    for k, v in net.state_dict().items():
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            h.update(str(v.dtype).encode())
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(repr(net).encode())
    return h.hexdigest()


def profile_hash(profile: DeviceProfile | None, model: torch.nn.Module) -> str:
    """sha256 of the resolved profile's YAML (None: of each analog layer's own profile, by layer)."""
    if profile is not None:
        return _sha(dump_profile(profile).encode())
    return _sha(*(f"{name}\n{dump_profile(layer.profile)}".encode() for name, layer in analog_layers(model)))


def data_hash(data: EvalData) -> str:
    h = hashlib.sha256()
    n = data.digest(h)
    h.update(json.dumps({"n_samples": n, "batch_size": data.batch_size}).encode())
    return h.hexdigest()


def metric_id(name: str, fn: Metric, builtin: bool) -> str:
    """A built-in metric's name; a callable's pickled bytes hashed (two lambdas never share points)."""
    if builtin:
        return name
    try:
        return "callable:" + _sha(cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL))
    except (pickle.PicklingError, AttributeError, TypeError):
        return f"callable:{name}:{id(fn)}"  # not picklable: cached for this process only


def config_key(parts: dict[str, Any]) -> str:
    return _sha(json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True).encode())


class PointStore:
    """The points of every configuration under one cache folder (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.points.jsonl"

    def open(self, key: str, parts: dict[str, Any]) -> dict[tuple[int, float], float]:
        """The points stored for configuration ``key`` (``{(chip seed, t): score}``); the file is
        created with its header if new."""
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        return start_points(p, key, {"format": CACHE_FORMAT, **parts})

    def add(self, key: str, repeat: int, chip_seed: int, t_s: float, score: float) -> None:
        append_point(str(self.path(key)), {"repeat": repeat, "chip_seed": chip_seed, "t_s": t_s, "score": score})
