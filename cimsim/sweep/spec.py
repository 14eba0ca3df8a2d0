"""What a sweep is: its configurations, read from Python arguments or a YAML file, checked once.

A configuration is one choice per axis. The axes (``axes=``: the cartesian product of their
values, in the order given, the last axis varying fastest; or ``points=``: an explicit list of
configurations, each a mapping ``{axis: value}``):

* ``profile``: a shipped profile name or a YAML path (Python: also a ``DeviceProfile``);
* ``model``: a name among ``models`` (Python: ``{name: nn.Module or spec}``; YAML: specs,
  ``{run: DIR}`` a saved training run, ``{train: {mode: hardware, epochs: 3, ...}}`` a run trained
  by :func:`cimsim.runs.train_run` the first time and re-used after);
* ``compensation``: ``none``, ``global`` or ``per_column``;
* a dotted profile field (``adc.bits: [4, 6, 8]``): each value is one override of the profile;
* any other name whose values form a mapping ``{label: {dotted field: value, ...}}`` (``tile:
  {128: {tile.rows: 128, tile.cols: 128}, ...}``): several overrides under one label.

Axes not given take their fixed value (``profile=``, ``compensation=``, the single model).
Times, repeats (chips), the study seed, metric and batch size apply to every configuration.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..crossbar.compensation import check_compensation
from ..errors import ParameterError
from ..profiles import DeviceProfile, dump_profile, load_profile, profile_from_yaml

__all__ = ["Config", "SweepSpec", "read_spec_file", "expand", "resolve_profile", "SPEC_KEYS"]

#: the keys of a sweep file (and the keyword arguments of :func:`cimsim.sweep` they fill)
SPEC_KEYS = ("name", "model", "models", "data", "profile", "axes", "points", "times_s", "repeats", "seed", "metric",
             "compensation", "batch_size", "plot")
RESERVED = ("profile", "model", "compensation")


@dataclass(frozen=True)
class Config:
    """One configuration: its axis values (the table's columns) and what they resolve to."""

    values: dict[str, Any]  # {axis: label}
    profile: Any  # name, path or DeviceProfile (None: the models' own profiles)
    overrides: dict[str, Any] = field(default_factory=dict)
    model: str = "model"
    compensation: str = "global"

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items()) or "sweep"


@dataclass
class SweepSpec:
    """A sweep's settings after reading (not yet checked: :func:`expand` does that)."""

    name: str = "sweep"
    models: dict[str, Any] = field(default_factory=dict)
    data: Any = None
    profile: Any = None
    axes: dict[str, Any] = field(default_factory=dict)
    points: list[dict[str, Any]] | None = None
    times_s: Any = "1s,1h,1d,1y"
    repeats: int = 10
    seed: int = 0
    metric: Any = "accuracy"
    compensation: str = "global"
    batch_size: int = 2048
    plot: dict[str, Any] = field(default_factory=dict)
    base_dir: Path | None = None  # relative paths in a YAML file are relative to it


def read_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping of a sweep YAML file (``yaml.safe_load``), its unknown keys refused."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParameterError(f"sweep file {p} does not exist; pass the path of a YAML file (see docs/sweeps.md)") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"sweep file {p} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ParameterError(f"sweep file {p}: expected a mapping of {list(SPEC_KEYS)} (got {type(data).__name__})")
    return data


def make_spec(values: Mapping[str, Any], base_dir: Path | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from a mapping of :data:`SPEC_KEYS` (a YAML file or keyword arguments)."""
    unknown = sorted(set(values) - set(SPEC_KEYS))
    if unknown:
        raise ParameterError(f"unknown sweep setting(s) {unknown}; the settings are {list(SPEC_KEYS)}")
    spec = SweepSpec(base_dir=base_dir)
    if values.get("model") is not None and values.get("models") is not None:
        raise ParameterError("give model= (one model) or models= ({name: model}), not both")
    if values.get("models") is not None:
        if not isinstance(values["models"], Mapping) or not values["models"]:
            raise ParameterError(f"models must be a non-empty mapping {{name: model}} (got {values['models']!r:.80})")
        spec.models = {str(k): v for k, v in values["models"].items()}
    elif values.get("model") is not None:
        spec.models = {"model": values["model"]}
    else:
        raise ParameterError("a sweep needs a model: model=net (or models={'name': net}; in YAML models: {name: {run: DIR}})")
    for key in ("data", "profile", "times_s", "repeats", "seed", "metric", "compensation", "batch_size", "name"):
        if values.get(key) is not None:
            setattr(spec, key, values[key])
    if values.get("axes") is not None:
        if not isinstance(values["axes"], Mapping):
            raise ParameterError(f"axes must be a mapping {{axis: [values]}} (got {type(values['axes']).__name__})")
        spec.axes = {str(k): v for k, v in values["axes"].items()}
    if values.get("points") is not None:
        pts = values["points"]
        if not isinstance(pts, Sequence) or isinstance(pts, (str, bytes)) or not all(isinstance(p, Mapping) for p in pts) or not pts:
            raise ParameterError("points must be a non-empty list of configurations, each a mapping {axis: value}")
        spec.points = [{str(k): v for k, v in p.items()} for p in pts]
    if spec.points is not None and spec.axes:
        raise ParameterError("give axes (a grid) or points (an explicit list of configurations), not both")
    if values.get("plot") is not None:
        if not isinstance(values["plot"], Mapping):
            raise ParameterError(f"plot must be a mapping {{axis: NAME, t_s: TIME}} (got {values['plot']!r:.80})")
        spec.plot = dict(values["plot"])
    return spec


def _axis_values(name: str, values: Any) -> list[tuple[Any, Any]]:
    """``[(label, value), ...]`` of one axis."""
    if isinstance(values, Mapping):
        if name in RESERVED or "." in name:
            raise ParameterError(f"axis {name!r} takes a list of values (got a mapping {dict(values)!r:.80})")
        out = []
        for label, ov in values.items():
            if not isinstance(ov, Mapping) or not all(isinstance(k, str) and "." in k for k in ov):
                raise ParameterError(
                    f"axis {name!r}, value {label!r}: expected a mapping of dotted profile fields to values, e.g. "
                    f"{{tile.rows: 128, tile.cols: 128}} (got {ov!r:.80})"
                )
            out.append((label, dict(ov)))
        return out
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ParameterError(f"axis {name!r} must be a non-empty list of values (got {values!r:.80})")
    if name not in RESERVED and "." not in name:
        raise ParameterError(
            f"unknown axis {name!r}: an axis is one of {list(RESERVED)}, a dotted profile field (e.g. adc.bits: [4, 6, 8]), "
            f"or a name whose values map labels to profile overrides (e.g. tile: {{128: {{tile.rows: 128, tile.cols: 128}}}})"
        )
    return [(_label(v), v) for v in values]


def _point_value(name: str, v: Any) -> tuple[Any, Any]:
    """``(label, value)`` of one entry of an explicit configuration."""
    if isinstance(v, Mapping):
        return _axis_values(name, {", ".join(f"{k}={x}" for k, x in v.items()): v})[0]
    return _axis_values(name, [v])[0]


def _label(v: Any) -> Any:
    if isinstance(v, DeviceProfile):
        return v.name
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


def _config(spec: SweepSpec, choice: Mapping[str, tuple[Any, Any]]) -> Config:
    values = {k: lab for k, (lab, _) in choice.items()}
    overrides: dict[str, Any] = {}
    for k, (_, v) in choice.items():
        if k not in RESERVED:
            overrides.update(v if isinstance(v, dict) else {k: v})
    profile = choice["profile"][1] if "profile" in choice else spec.profile
    model = choice["model"][1] if "model" in choice else next(iter(spec.models))
    if model not in spec.models:
        raise ParameterError(f"model {model!r} is not among the sweep's models {list(spec.models)}")
    comp = check_compensation(choice["compensation"][1] if "compensation" in choice else spec.compensation)
    if profile is None and overrides:
        raise ParameterError(f"profile overrides {sorted(overrides)} need a base profile: give profile='pcm' (or a profile axis)")
    values.setdefault("model", model)
    values.setdefault("compensation", comp)
    return Config(values=values, profile=profile, overrides=overrides, model=str(model), compensation=comp)


def expand(spec: SweepSpec) -> list[Config]:
    """The configurations of ``spec``: the grid of its axes, or its explicit points."""
    if spec.points is not None:
        return [_config(spec, {k: _point_value(k, v) for k, v in p.items()}) for p in spec.points]
    names = list(spec.axes)
    grids = [_axis_values(n, spec.axes[n]) for n in names]
    return [_config(spec, dict(zip(names, combo))) for combo in itertools.product(*grids)]


def resolve_profile(config: Config, base_dir: Path | None = None) -> DeviceProfile | None:
    """The configuration's profile with its overrides applied (None: the models keep their own)."""
    prof = config.profile
    if prof is None:
        return None
    overrides = config.overrides or None
    if isinstance(prof, DeviceProfile):
        return profile_from_yaml(dump_profile(prof), source=prof.name, overrides=overrides) if overrides else prof
    if not isinstance(prof, (str, os.PathLike)):
        raise ParameterError(f"profile must be a name, a YAML path or a DeviceProfile (got {type(prof).__name__})")
    name = str(prof)
    if base_dir is not None and (name.endswith((".yaml", ".yml"))) and not Path(name).is_absolute():
        name = str(base_dir / name)
    return load_profile(name, overrides=overrides)
