"""Swap the Linear/Conv layers of any ``nn.Module`` tree for analog ones, and back.

``convert(model, profile)`` walks the tree (nested modules, ``Sequential``, ``ModuleList``,
``ModuleDict``, plain attributes), replaces every ``nn.Linear``, ``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d``, ``nn.LSTM``, ``nn.GRU``, ``nn.RNN``
and ``nn.MultiheadAttention``
(exact types; subclasses such as attention's ``out_proj`` are left alone) that ``filter``
accepts with its analog twin sharing the same Parameter objects, and gives layer number ``i``
(in ``named_modules`` order, counting converted layers) the generator seed ``seed + i``.
A module reached under two names (weight sharing) becomes one analog module.
``to_digital(model)`` turns every analog layer back into its float class.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ParameterError
from .attention import AnalogMultiheadAttention
from .modules import MODES, AnalogConv1d, AnalogConv2d, AnalogConv3d, AnalogLayer, AnalogLinear, resolve_profile
from .recurrent import AnalogGRU, AnalogLSTM, AnalogRNN
from .transposed import AnalogConvTranspose1d, AnalogConvTranspose2d, AnalogConvTranspose3d

__all__ = ["convert", "to_digital", "set_mode", "analog_layers", "rng_state", "set_rng_state"]

_ANALOG_OF: dict[type, type] = {nn.Linear: AnalogLinear, nn.Conv1d: AnalogConv1d, nn.Conv2d: AnalogConv2d,
                                 nn.Conv3d: AnalogConv3d, nn.LSTM: AnalogLSTM,
                                 nn.GRU: AnalogGRU, nn.RNN: AnalogRNN, nn.ConvTranspose1d: AnalogConvTranspose1d,
                                 nn.ConvTranspose2d: AnalogConvTranspose2d, nn.ConvTranspose3d: AnalogConvTranspose3d,
                                 nn.MultiheadAttention: AnalogMultiheadAttention}
_OVERRIDE_KEYS = ("profile", "mode", "backward_weights", "eval_mode", "learn_input_range", "seed")


def _layer_settings(name: str, base: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Settings for layer ``name``: the base ones updated by every matching override, in order."""
    out = dict(base)
    if not overrides:
        return out
    for pattern, value in overrides.items():
        if not (name == pattern or fnmatch.fnmatchcase(name, pattern)):
            continue
        if not isinstance(value, Mapping):  # a profile (object, preset name or path)
            out["profile"] = resolve_profile(value)
            continue
        unknown = [k for k in value if k not in _OVERRIDE_KEYS]
        if unknown:
            raise ParameterError(
                f"convert: overrides[{pattern!r}] has unknown key(s) {unknown}; allowed: {list(_OVERRIDE_KEYS)}, "
                f"e.g. overrides={{{pattern!r}: {{'mode': 'ideal', 'profile': {{'adc.bits': 6}}}}}}"
            )
        for key, v in value.items():
            if key == "profile":
                if isinstance(v, Mapping):  # dotted-path overrides on top of this layer's profile
                    from ..profiles.loader import profile_from_dict

                    prof = out["profile"]
                    v = profile_from_dict(prof.model_dump(mode="json"), source=f"convert overrides[{pattern!r}]",
                                          overrides=v)
                else:
                    v = resolve_profile(v)
            out[key] = v
    return out


def convert(
    model: nn.Module,
    profile,
    *,
    mode: str = "hardware",
    filter: Callable[[nn.Module, str], bool] | None = None,
    seed: int = 0,
    inplace: bool = False,
    overrides: Mapping[str, Any] | None = None,
    backward_weights: str = "float",
    eval_mode: str | None = None,
    learn_input_range: bool = False,
) -> nn.Module:
    """Return ``model`` with its Linear, Conv, ConvTranspose, LSTM/GRU/RNN and MultiheadAttention layers
    replaced by analog ones.

    ``profile``: a ``DeviceProfile`` or a preset name (``"pcm"``). ``mode``: ``"hardware"``,
    ``"noise_injection"`` or ``"ideal"``. ``filter(module, name) -> bool`` selects layers
    (default: all). ``seed``: layer ``i`` gets ``seed + i``. ``inplace=False`` converts a deep
    copy and leaves ``model`` untouched. ``overrides`` maps a layer name or glob pattern
    (``"classifier"``, ``"features.*"``) to a profile, or to a dict with any of ``profile``
    (a profile, or a dict of dotted overrides such as ``{"adc.bits": 6}`` applied on top),
    ``mode``, ``backward_weights``, ``eval_mode``, ``learn_input_range``, ``seed``; later
    patterns win. ``learn_input_range=True`` gives each layer a learnable DAC input range
    (a Parameter ``input_range``; needs a fixed-range DAC in the profile).

    Example: ``convert(net, "pcm", overrides={"fc3": {"mode": "ideal"}})``.
    """
    if mode not in MODES:
        raise ParameterError(f"convert: mode must be one of {MODES} (got {mode!r}); e.g. convert(model, profile, mode='hardware')")
    if not isinstance(model, nn.Module):
        raise ParameterError(f"convert: model must be a torch.nn.Module (got {type(model).__name__})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"convert: seed must be a non-negative int (got {seed!r})")
    base = dict(profile=resolve_profile(profile), mode=mode, backward_weights=backward_weights, eval_mode=eval_mode,
                learn_input_range=learn_input_range)
    if not inplace:
        model = copy.deepcopy(model)

    counter = [0]
    memo: dict[int, nn.Module] = {}
    produced: set[int] = set()
    visited: set[int] = set()

    def swap(module: nn.Module, name: str) -> nn.Module | None:
        if id(module) in memo:
            return memo[id(module)]
        if id(module) in produced:
            return module
        if isinstance(module, AnalogLayer):
            float_cls = module._FLOAT_CLS
        else:
            float_cls = type(module)
        cls = _ANALOG_OF.get(float_cls) if (isinstance(module, AnalogLayer) or type(module) in _ANALOG_OF) else None
        if cls is None or (filter is not None and not filter(module, name)):
            return None
        cfg = _layer_settings(name, base, overrides)
        layer_seed = cfg.pop("seed", None)
        if layer_seed is None:
            layer_seed = seed + counter[0]
        counter[0] += 1
        new = cls.from_float(module, cfg.pop("profile"), seed=int(layer_seed), **cfg)
        memo[id(module)] = new
        produced.add(id(new))
        return new

    root = swap(model, "")
    if root is not None:
        return root

    def visit(parent: nn.Module, prefix: str) -> None:
        for child_name, child in list(parent.named_children()):
            full = f"{prefix}.{child_name}" if prefix else child_name
            new = swap(child, full)
            if new is not None:
                if new is not child:
                    setattr(parent, child_name, new)
            elif id(child) not in visited:  # a container shared under two names is walked once
                visited.add(id(child))
                visit(child, full)

    visit(model, "")
    return model


def to_digital(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Replace every analog layer of ``model`` by its float class (same Parameters; deep copy unless ``inplace``)."""
    if not isinstance(model, nn.Module):
        raise ParameterError(f"to_digital: model must be a torch.nn.Module (got {type(model).__name__})")
    if not inplace:
        model = copy.deepcopy(model)
    if isinstance(model, AnalogLayer):
        return model.to_float()
    memo: dict[int, nn.Module] = {}

    def visit(parent: nn.Module) -> None:
        for child_name, child in list(parent.named_children()):
            if isinstance(child, AnalogLayer):
                if id(child) not in memo:
                    memo[id(child)] = child.to_float()
                setattr(parent, child_name, memo[id(child)])
            else:
                visit(child)

    visit(model)
    return model


def analog_layers(model: nn.Module) -> list[tuple[str, AnalogLayer]]:
    """``(name, layer)`` for every analog layer of ``model``, in ``named_modules`` order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, AnalogLayer)]


def set_mode(model: nn.Module, mode: str, *, eval_mode: str | None = "keep") -> nn.Module:
    """Set the training mode of every analog layer in place (``eval_mode`` too, unless ``"keep"``)."""
    if mode not in MODES:
        raise ParameterError(f"set_mode: mode must be one of {MODES} (got {mode!r})")
    for _, layer in analog_layers(model):
        layer.mode = mode
        if eval_mode != "keep":
            if eval_mode is not None and eval_mode not in MODES:
                raise ParameterError(f"set_mode: eval_mode must be one of {MODES}, None or 'keep' (got {eval_mode!r})")
            layer.eval_mode = eval_mode
    return model


def rng_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The position of every analog layer's generator, by module name (``torch.Generator.get_state``).

    A layer's ``state_dict`` is exactly its float layer's, so it does not hold the generator;
    save this next to it (and the optimizer's) to resume training bit for bit:
    ``set_rng_state(model, state)`` puts every generator back where it was.
    """
    return {name: layer.generator.get_state() for name, layer in analog_layers(model)}


def set_rng_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Restore the generator positions saved by :func:`rng_state` (the layer names must match)."""
    layers = dict(analog_layers(model))
    missing, extra = sorted(set(layers) - set(state)), sorted(set(state) - set(layers))
    if missing or extra:
        raise ParameterError(
            f"set_rng_state: the saved generator states do not match the model's analog layers "
            f"(model layers without a state: {missing}; states for no layer: {extra}); save them with "
            f"rng_state(model) from a model converted the same way"
        )
    for name, layer in layers.items():
        s = state[name]
        if not isinstance(s, torch.Tensor) or s.dtype != torch.uint8:
            raise ParameterError(f"set_rng_state: state[{name!r}] must be a uint8 tensor from rng_state (got {type(s).__name__})")
        layer.generator.set_state(s)
