"""Converted models on disk: :func:`save` / :func:`load`, with their chip settings and nothing pickled.

``save(model, path)`` writes one file (atomically, with the sha256 sidecar ``path.sha256`` of
:mod:`cimsim._io`): ``torch.save`` of a plain dict holding

* ``"meta"``: a JSON string: the format, the cimsim and torch versions, the architecture of a
  built-in model (``cimsim.models``: ``{"name": "mlp", "kwargs": {...}}``, found by rebuilding
  it; ``null`` for user models), the train/eval flag, and per analog layer (``analog_layers``
  order) its name, analog and float class names, its whole config (the *resolved* profile as
  data, its sha256, mode, eval mode, backward weights, learnable input range, seed) and
  ``eval_t_s``;
* ``"state_dict"``: the model's weights (exactly the float model's keys);
* ``"rng"``: every analog layer's generator position (:func:`~cimsim.nn.convert.rng_state`);
* ``"calibration"``: the calibrated converter ranges of every calibrated layer
  (:func:`~cimsim.nn.calibration.calibrate`), ``"<layer>/<matrix>/dac"`` and ``".../adc"``.

``load(path)`` reads it with ``torch.load(weights_only=True)`` (tensors, strings and containers
only: no code runs) after checking the bytes against the sidecar (a mismatch is a
``StateFormatError`` naming the file). The architecture is user code, so ``load(path,
model=m)`` takes the model: the float model (it is converted layer by layer with the saved
configs) or one converted the same way (same analog layer names, classes and configs, else a
``StateFormatError`` naming the layer and the field); a built-in model needs no ``model=``. The
loaded model gives the same outputs as the saved one, bit for bit, in any process.
"""

from __future__ import annotations

import copy
import dataclasses
import glob
import importlib.metadata
import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import models
from .._io import atomic_save, read_verified
from ..errors import ParameterError, StateFormatError
from ..profiles.loader import profile_sha256
from ..profiles.schema import DeviceProfile
from .config import AnalogConfig, NoiseSpec
from .convert import analog_layers, convert, rng_state, set_rng_state, to_digital
from .modules import AnalogLayer, LayerCalibration

__all__ = ["save", "load", "MODEL_FORMAT"]

MODEL_FORMAT = "cimsim.model/1"
_CONFIG_FIELDS = ("mode", "eval_mode", "backward_weights", "learn_input_range", "seed", "noise", "noise_grad",
                  "adc_backward", "adc_sigma_lsb", "smoothing_noise", "smoothing_curvature")


def _config_value(cfg: AnalogConfig, field: str) -> Any:
    """A config field as JSON data (the NoiseSpec as its dict)."""
    v = getattr(cfg, field)
    return dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v


def _version() -> str:
    try:
        return importlib.metadata.version("cimsim")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _profile_record(p: DeviceProfile) -> tuple[dict[str, Any], str]:
    return p.model_dump(mode="json"), profile_sha256(p)


def _layer_record(name: str, layer: AnalogLayer) -> dict[str, Any]:
    cfg = layer.analog_config
    prof, digest = _profile_record(cfg.profile)
    return {
        "name": name,
        "class": type(layer).__name__,
        "float_class": layer._FLOAT_CLS.__name__,
        "config": {"profile": prof, "profile_sha256": digest, **{f: _config_value(cfg, f) for f in _CONFIG_FIELDS}},
        "eval_t_s": float(layer.eval_t_s),
        "deployed": _deployed_record(layer),
        "calibrated": _calibration_count(layer),
    }


def _deployed_record(layer: AnalogLayer) -> dict[str, Any] | None:
    """The eval-mode chip's seed and time, if it is still the one the weights and config give."""
    dep = layer._deployed
    if dep is None or not dep.matches((layer.analog_config, dep.key[1]), layer.weight_matrices(), layer.calibration):
        return None
    return {"seed": dep.seed, "t_s": dep.key[1]}


# ---------------------------------------------------------------------------- built-in models
def _mlp_kwargs(m: nn.Module) -> dict[str, Any] | None:
    if not isinstance(m, nn.Sequential) or len(m) < 2:
        return None
    lins = [c for c in m.children() if isinstance(c, nn.Linear)]
    if not lins:
        return None
    act = type(m[2]).__name__ if len(lins) > 1 else "ReLU"
    return {"in_features": lins[0].in_features, "hidden": [c.out_features for c in lins[:-1]],
            "n_classes": lins[-1].out_features, "activation": act}


def _lenet_kwargs(m: nn.Module) -> dict[str, Any] | None:
    if not isinstance(m, nn.Sequential) or len(m) < 9:
        return None
    convs = [c for c in m.children() if isinstance(c, nn.Conv2d)]
    lins = [c for c in m.children() if isinstance(c, nn.Linear)]
    if len(convs) != 2 or not lins:
        return None
    c1, c2 = convs
    for size in range(8, 1025):  # the one image side whose feature count the head expects
        k = 3 if size < 16 else 5
        pad1 = 1 if size < 16 else (2 if size < 32 else 0)
        pad2 = 1 if size < 16 else 0
        s = ((size + 2 * pad1 - k + 1) // 2 + 2 * pad2 - k + 1) // 2
        if s >= 1 and c2.out_channels * s * s == lins[0].in_features and c1.kernel_size == (k, k):
            return {"in_channels": c1.in_channels, "n_classes": lins[-1].out_features, "input_size": size,
                    "channels": [c1.out_channels, c2.out_channels], "hidden": [c.out_features for c in lins[:-1]]}
    return None


_BUILTIN = {"mlp": _mlp_kwargs, "lenet": _lenet_kwargs}


def _build(name: str, kwargs: Mapping[str, Any]) -> nn.Module:
    kw = dict(kwargs)
    if "activation" in kw:
        act = getattr(nn, str(kw["activation"]), None)
        if not (isinstance(act, type) and issubclass(act, nn.Module)):
            raise StateFormatError(f"built-in model activation {kw['activation']!r} is not a torch.nn module")
        kw["activation"] = act
    return getattr(models, name)(**kw)


def _builtin_arch(model: nn.Module) -> dict[str, Any] | None:
    """``{"name", "kwargs"}`` of the ``cimsim.models`` builder that rebuilds ``model``'s structure."""
    float_model = _float_structure(model)
    shape = repr(float_model)
    for name, kwargs_of in _BUILTIN.items():
        kw = kwargs_of(float_model)
        if kw is None:
            continue
        try:
            if repr(_build(name, kw)) == shape:
                return {"name": name, "kwargs": kw}
        except Exception:  # noqa: BLE001 - not this builder's structure
            continue
    return None


def _float_structure(model: nn.Module) -> nn.Module:
    """A float module tree of ``model``'s structure (analog layers back to their float classes)."""
    return to_digital(model)


# ---------------------------------------------------------------------------- save
def save(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write a converted ``model`` to the file ``path`` (see the module docstring); returns the path."""
    if not isinstance(model, nn.Module):
        raise ParameterError(f"save: model must be a torch nn.Module (got {type(model).__name__})")
    layers = analog_layers(model)
    if not layers:
        raise ParameterError(
            f"save: {type(model).__name__} has no analog layers; convert it first (model = cimsim.convert(model, 'pcm')), "
            "or save a float model with torch.save(model.state_dict(), path)"
        )
    meta = {
        "format": MODEL_FORMAT,
        "versions": {"cimsim": _version(), "torch": torch.__version__},
        "arch": _builtin_arch(model),
        "training": bool(model.training),
        "layers": [_layer_record(n, m) for n, m in layers],
    }
    payload = {
        "meta": json.dumps(meta),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "rng": rng_state(model),
        "calibration": _calibration_tensors(layers),
    }
    p = Path(path)
    atomic_save(p, lambda f: torch.save(payload, f))
    return p


def _calibration_tensors(layers: list[tuple[str, AnalogLayer]]) -> dict[str, torch.Tensor]:
    out = {}
    for name, layer in layers:
        if _calibration_count(layer) is None:
            continue
        assert layer.calibration is not None
        for g, (dac, adc) in enumerate(layer.calibration.bounds):
            if dac is not None:
                out[f"{name}/{g}/dac"] = torch.tensor(float(dac), dtype=torch.float64)
            if adc is not None:
                out[f"{name}/{g}/adc"] = torch.from_numpy(np.array(adc, dtype=np.float64))
    return out


def _calibration_count(layer: AnalogLayer) -> int | None:
    """Matrices of the layer's calibration, if it has one computed for its current profile."""
    cal = layer.calibration
    return None if cal is None or cal.profile != layer.profile else len(cal.bounds)


# ---------------------------------------------------------------------------- load
def _read(p: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    raw = read_verified(p)
    try:
        payload = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
        meta = json.loads(payload["meta"])
        if not isinstance(meta, dict) or not isinstance(payload.get("state_dict"), dict):
            raise TypeError("not a dict")
    except Exception as exc:  # noqa: BLE001 - any reader failure is a format problem
        raise StateFormatError(f"{p}: not a model saved by cimsim.save ({type(exc).__name__}: {exc})") from None
    if meta.get("format") != MODEL_FORMAT:
        raise StateFormatError(f"{p}: format {meta.get('format')!r}, expected {MODEL_FORMAT!r}; save the model again")
    return meta, payload


def _saved_config(p: Path, rec: Mapping[str, Any]) -> AnalogConfig:
    c = rec["config"]
    try:
        prof = DeviceProfile.model_validate(c["profile"])
        kw = {f: c[f] for f in _CONFIG_FIELDS if f in c}  # (files from before a field existed: its default)
        if isinstance(kw.get("noise"), Mapping):
            kw["noise"] = NoiseSpec(**kw["noise"])
        return AnalogConfig(prof, **kw)
    except Exception as exc:  # noqa: BLE001
        raise StateFormatError(f"{p}: layer {rec.get('name')!r}: unreadable config ({exc}); save the model again") from None


def _check_same(p: Path, model: nn.Module, saved: list[dict[str, Any]]) -> None:
    """StateFormatError unless ``model``'s analog layers are the saved ones, converted the same way."""
    have = analog_layers(model)
    names, want = [n for n, _ in have], [r["name"] for r in saved]
    if names != want:
        raise StateFormatError(
            f"{p}: the model's analog layers {names} are not the saved model's {want}; pass the float model "
            f"(load(path, model=float_model)) or one converted the same way"
        )
    for (name, layer), rec in zip(have, saved):
        mine = _layer_record(name, layer)
        for key in ("class", "float_class"):  # (the deployed chip is not part of the conversion)
            if mine[key] != rec[key]:
                raise StateFormatError(f"{p}: layer {name!r} is a {mine[key]} in the model, a {rec[key]} in the saved model")
        for key in ("profile_sha256", *_CONFIG_FIELDS):
            if key in rec["config"] and mine["config"][key] != rec["config"][key]:
                what = "profile (resolved, as data)" if key == "profile_sha256" else key
                a = layer.profile.name if key == "profile_sha256" else mine["config"][key]
                b = rec["config"]["profile"].get("name") if key == "profile_sha256" else rec["config"][key]
                raise StateFormatError(
                    f"{p}: layer {name!r} was converted differently: its {what} is {a!r} in the model and {b!r} "
                    f"in the saved model; pass the float model (load(path, model=float_model)) to convert it as saved"
                )


def load(path: str | os.PathLike, *, model: nn.Module | None = None,
         conversion_map: Mapping[type, Any] | None = None) -> nn.Module:
    """The model :func:`save` wrote to ``path``: its weights, configs, generator positions,
    calibration and train/eval flag (``model`` is not changed; a copy is returned).

    ``model``: the architecture (the float model, or one converted the same way); not needed for
    a built-in ``cimsim.models`` model. ``conversion_map``: as given to ``convert`` when the model
    was converted, if it was given one.
    """
    p = Path(path)
    meta, payload = _read(p)
    saved = meta.get("layers")
    if not isinstance(saved, list) or not saved:
        raise StateFormatError(f"{p}: no analog layers recorded; save the model again")
    if model is None:
        arch = meta.get("arch")
        if not isinstance(arch, dict) or arch.get("name") not in _BUILTIN:
            raise ParameterError(
                f"load({str(p)!r}) needs the model's architecture: load(path, model=build_model()) with the float "
                f"model (or one converted the same way); only cimsim.models' built-in models are rebuilt by name"
            )
        model = _build(arch["name"], arch.get("kwargs") or {})
    elif not isinstance(model, nn.Module):
        raise ParameterError(f"load(path, model=...) needs a torch nn.Module (got {type(model).__name__})")
    configs = [_saved_config(p, r) for r in saved]
    dtypes = {v.dtype for v in payload["state_dict"].values() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    if model is not None and len(dtypes) == 1:
        model = copy.deepcopy(model).to(dtypes.pop())  # a rebuilt model in the saved precision, bit for bit
    if analog_layers(model):
        net = copy.deepcopy(model)
    else:  # the float model: convert exactly the saved layers with their saved configs
        names = {r["name"] for r in saved}
        overrides = {glob.escape(r["name"]): {"profile": c.profile, **{f: getattr(c, f) for f in _CONFIG_FIELDS}}
                     for r, c in zip(saved, configs)}
        with warnings.catch_warnings():  # what stays digital was reported when it was converted
            warnings.simplefilter("ignore")
            net = convert(model, configs[0], filter=lambda m, n: n in names, overrides=overrides,
                          conversion_map=conversion_map)
    _check_same(p, net, saved)
    try:
        net.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, KeyError) as exc:
        raise StateFormatError(f"{p}: the saved weights do not fit the model ({exc})") from None
    rng = payload.get("rng")
    if not isinstance(rng, dict):
        raise StateFormatError(f"{p}: no generator states recorded; save the model again")
    try:
        set_rng_state(net, rng)
    except ParameterError as exc:
        raise StateFormatError(f"{p}: {exc}") from None
    for (_, layer), cfg in zip(analog_layers(net), configs):
        layer.analog_config = cfg
    calib = payload.get("calibration")
    _set_calibration(p, net, saved, calib if isinstance(calib, dict) else {})
    for (_, layer), rec, cfg in zip(analog_layers(net), saved, configs):
        layer.analog_config = cfg
        layer.eval_t_s = float(rec["eval_t_s"])
        dep = rec.get("deployed")
        if isinstance(dep, dict):  # the eval-mode chip the saved model was reading: programmed again
            with torch.no_grad():
                layer._deployed_snaps(layer.weight_matrices(), int(dep["seed"]), float(dep["t_s"]))
    net.train(bool(meta.get("training", False)))
    return net


def _set_calibration(p: Path, net: nn.Module, saved: list[dict[str, Any]], tensors: Mapping[str, Any]) -> None:
    for (name, layer), rec in zip(analog_layers(net), saved):
        n = rec.get("calibrated")
        if n is None:
            continue
        bounds = []
        for g in range(int(n)):
            dac, adc = tensors.get(f"{name}/{g}/dac"), tensors.get(f"{name}/{g}/adc")
            for t in (dac, adc):
                if t is not None and (not isinstance(t, torch.Tensor) or not bool(torch.isfinite(t).all())
                                      or not bool((t > 0).all())):
                    raise StateFormatError(f"{p}: layer {name!r}: calibrated ranges must be positive finite tensors; "
                                           f"calibrate and save the model again")
            if adc is not None and adc.dim() != 2:
                raise StateFormatError(f"{p}: layer {name!r}: ADC bounds must be [n_in_tiles, out] (got {tuple(adc.shape)})")
            bounds.append((None if dac is None else float(dac), None if adc is None else adc.numpy().copy()))
        layer.calibration = LayerCalibration(layer.profile, tuple(bounds))
