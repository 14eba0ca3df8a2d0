"""Swap the Linear/Conv layers of any ``nn.Module`` tree for analog ones, and back.

``convert(model, config)`` (an :class:`~cimsim.nn.config.AnalogConfig`; or ``convert(model,
profile, mode=..., ...)``, which builds one) walks the tree (nested modules, ``Sequential``, ``ModuleList``,
``ModuleDict``, plain attributes), replaces every ``nn.Linear``, ``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d``, ``nn.LSTM``, ``nn.GRU``, ``nn.RNN``
and ``nn.MultiheadAttention``
(exact types; subclasses such as attention's ``out_proj`` are left alone) that ``filter``
accepts with its analog twin sharing the same Parameter objects, and gives layer number ``i``
(in ``named_modules`` order, counting converted layers) the generator seed ``config.seed + i``
(``config`` being that layer's, after overrides) unless an override dict names its ``seed``.
A module reached under two names (weight sharing) becomes one analog module.
``to_digital(model)`` turns every analog layer back into its float class.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ParameterError
from .attention import AnalogMultiheadAttention
from .config import AnalogConfig, as_config, check_mode
from .conv import AnalogConv1d, AnalogConv2d, AnalogConv3d
from .modules import AnalogLayer, AnalogLinear
from .recurrent import AnalogGRU, AnalogLSTM, AnalogRNN
from .transposed import AnalogConvTranspose1d, AnalogConvTranspose2d, AnalogConvTranspose3d

__all__ = ["convert", "to_digital", "set_mode", "reprogram", "analog_layers", "rng_state", "set_rng_state"]

_ANALOG_OF: dict[type[nn.Module], type[AnalogLayer]] = {nn.Linear: AnalogLinear, nn.Conv1d: AnalogConv1d, nn.Conv2d: AnalogConv2d,
                                 nn.Conv3d: AnalogConv3d, nn.LSTM: AnalogLSTM,
                                 nn.GRU: AnalogGRU, nn.RNN: AnalogRNN, nn.ConvTranspose1d: AnalogConvTranspose1d,
                                 nn.ConvTranspose2d: AnalogConvTranspose2d, nn.ConvTranspose3d: AnalogConvTranspose3d,
                                 nn.MultiheadAttention: AnalogMultiheadAttention}


def _layer_config(name: str, base: AnalogConfig, overrides: Mapping[str, Any] | None) -> tuple[AnalogConfig, bool]:
    """Layer ``name``'s config: ``base`` changed by every matching override, in order; and whether an
    override dict named the seed (then it is the layer's seed as is, not a base for ``+ i``)."""
    cfg, pinned = base, False
    for pattern, value in (overrides or {}).items():
        if not (name == pattern or fnmatch.fnmatchcase(name, pattern)):
            continue
        if isinstance(value, AnalogConfig):
            cfg, pinned = value, False
        elif isinstance(value, Mapping):
            cfg = cfg.updated(value, f"convert overrides[{pattern!r}]")
            pinned = pinned or "seed" in value
        else:  # a profile (object, preset name or path)
            cfg = dataclasses.replace(cfg, profile=value)
    return cfg, pinned


def convert(
    model: nn.Module,
    config=None,
    *,
    filter: Callable[[nn.Module, str], bool] | None = None,
    inplace: bool = False,
    overrides: Mapping[str, Any] | None = None,
    **settings,
) -> nn.Module:
    """Return ``model`` with its Linear, Conv, ConvTranspose, LSTM/GRU/RNN and MultiheadAttention layers
    replaced by analog ones.

    ``config``: an :class:`AnalogConfig`, or a profile (a ``DeviceProfile`` or a preset name such
    as ``"pcm"``) with any other :class:`AnalogConfig` field as a keyword (``mode``, ``eval_mode``,
    ``backward_weights``, ``learn_input_range``, ``seed``); keywords given with a config change it.
    ``filter(module, name) -> bool`` selects layers (default: all). Layer ``i`` gets the seed
    ``seed + i``. ``inplace=False`` converts a deep copy and leaves ``model`` untouched.
    ``overrides`` maps a layer name or glob pattern (``"classifier"``, ``"features.*"``) to an
    :class:`AnalogConfig` (that layer's whole config), a profile, or a dict of changes to the
    config (``dataclasses.replace``; its ``profile`` may be a dict of dotted overrides such as
    ``{"adc.bits": 6}`` applied on top; a ``seed`` there is the layer's seed as is); later
    patterns win.

    Example: ``convert(net, "pcm", overrides={"fc3": {"mode": "ideal"}})``, or
    ``convert(net, AnalogConfig("pcm", mode="noise_injection"))``.
    """
    if not isinstance(model, nn.Module):
        raise ParameterError(f"convert: model must be a torch.nn.Module (got {type(model).__name__})")
    base = as_config(config, "convert", **settings)
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
        cfg, pinned = _layer_config(name, base, overrides)
        if not pinned:
            cfg = dataclasses.replace(cfg, seed=cfg.seed + counter[0])
        counter[0] += 1
        new = cls.from_float(module, cfg)
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
    changes = {"mode": check_mode(mode, "set_mode: mode")}
    if eval_mode != "keep":
        changes["eval_mode"] = check_mode(eval_mode, "set_mode: eval_mode ('keep' leaves it)", allow_none=True)
    for _, layer in analog_layers(model):
        layer.analog_config = dataclasses.replace(layer.analog_config, **changes)
    return model


def reprogram(model: nn.Module) -> nn.Module:
    """Drop every analog layer's eval-mode chip: the next eval forward programs a new one."""
    for _, layer in analog_layers(model):
        layer.reprogram()
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
