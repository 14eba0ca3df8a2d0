"""Swap the weight layers of any ``nn.Module`` tree for analog ones, and back.

``convert(model, config)`` (an :class:`~cimsim.nn.config.AnalogConfig`; or ``convert(model,
profile, mode=..., ...)``, which builds one) walks the tree (nested modules, ``Sequential``,
``ModuleList``, ``ModuleDict``, plain attributes) and replaces every module whose class the
conversion map knows, and that ``filter`` accepts, by its analog twin sharing the same Parameter
objects. The map (:data:`CONVERSION_MAP`, extended per call by ``conversion_map=``) takes a
module by ``isinstance``: the most specific registered class of its MRO wins, so subclasses of
``nn.Linear`` / ``nn.Conv*`` are converted too (to the plain analog layer: their own ``forward``
is not kept), and HuggingFace transformers' ``Conv1D`` (GPT-2) when transformers is imported
(:mod:`cimsim.nn.hf`). A map value is an analog layer class (``cls.from_float(module, config)``),
any factory ``f(module, config) -> nn.Module``, or ``None``: kept digital on purpose (embeddings,
and attention's ``out_proj``, whose weight its ``MultiheadAttention`` reads).

Layer number ``i`` (in ``named_modules`` order, counting converted layers) gets the generator
seed ``config.seed + i`` (``config`` being that layer's, after overrides) unless an override dict
names its ``seed``. A module reached under two names (weight sharing) becomes one analog module.
What was converted and what holds a weight matrix (a parameter of 2 or more dimensions) but was
left digital is reported (:class:`ConversionReport`, ``model.conversion_report``); a module left
digital because the map had no entry for it is also a warning.
``to_digital(model)`` turns every analog layer back into its float class.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ParameterError
from .attention import AnalogMultiheadAttention
from .config import AnalogConfig, as_config, check_mode
from .conv import AnalogConv1d, AnalogConv2d, AnalogConv3d
from .hf import analog_conv1d_class, conv1d_class
from .modules import AnalogLayer, AnalogLinear
from .recurrent import AnalogGRU, AnalogLSTM, AnalogRNN
from .transposed import AnalogConvTranspose1d, AnalogConvTranspose2d, AnalogConvTranspose3d

__all__ = ["CONVERSION_MAP", "ConversionReport", "ConversionWarning", "convert", "to_digital", "set_mode", "reprogram", "analog_layers", "rng_state", "set_rng_state"]

#: float class -> analog class, factory ``f(module, config) -> nn.Module``, or ``None`` (kept digital
#: on purpose). Extend it per call with ``convert(..., conversion_map={MyLayer: factory})``.
CONVERSION_MAP: dict[type[nn.Module], Any] = {
    nn.Linear: AnalogLinear, nn.Conv1d: AnalogConv1d, nn.Conv2d: AnalogConv2d, nn.Conv3d: AnalogConv3d,
    nn.ConvTranspose1d: AnalogConvTranspose1d, nn.ConvTranspose2d: AnalogConvTranspose2d,
    nn.ConvTranspose3d: AnalogConvTranspose3d, nn.LSTM: AnalogLSTM, nn.GRU: AnalogGRU, nn.RNN: AnalogRNN,
    nn.MultiheadAttention: AnalogMultiheadAttention,
    # lookup tables, not matrix-vector products: digital
    nn.Embedding: None, nn.EmbeddingBag: None,
    # MultiheadAttention's out_proj: the attention module reads its weight (converted with it)
    nn.modules.linear.NonDynamicallyQuantizableLinear: None,
}


class ConversionWarning(UserWarning):
    """A module holding a weight matrix was left digital because the conversion map has no entry for it."""


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """What :func:`convert` did. ``converted``: ``{name: "Linear -> AnalogLinear"}``; ``digital``:
    ``{name: why}`` for every module left digital that holds a parameter of 2 or more dimensions
    (a weight matrix), outside the converted layers; ``unmapped``: those of ``digital`` the map
    had no entry for (the warning's list)."""

    converted: dict[str, str]
    digital: dict[str, str]
    unmapped: tuple[str, ...]

    def __str__(self) -> str:
        rows = [f"  analog   {n or '<root>'}: {v}" for n, v in self.converted.items()]
        rows += [f"  digital  {n or '<root>'}: {v}" for n, v in self.digital.items()]
        return f"ConversionReport ({len(self.converted)} analog, {len(self.digital)} digital)\n" + "\n".join(rows)


def _default_map() -> dict[type[nn.Module], Any]:
    m = dict(CONVERSION_MAP)
    hf = conv1d_class()
    if hf is not None:
        m.setdefault(hf, analog_conv1d_class())
    return m


def _lookup(cmap: Mapping[type, Any], module: nn.Module) -> tuple[bool, Any]:
    """(registered?, entry) for ``module``: the most specific class of its MRO in ``cmap`` (an
    analog layer is looked up by its float class, so it can be converted again)."""
    cls = module._FLOAT_CLS if isinstance(module, AnalogLayer) else type(module)
    for k in cls.__mro__:
        if k in cmap:
            return True, cmap[k]
    return False, None


def _weight_params(module: nn.Module) -> list[str]:
    return [n for n, p in module.named_parameters(recurse=False) if p.dim() >= 2]


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
    conversion_map: Mapping[type, Any] | None = None,
    **settings,
) -> nn.Module:
    """Return ``model`` with its weight layers (Linear, Conv, ConvTranspose, LSTM/GRU/RNN,
    MultiheadAttention, their subclasses, transformers' Conv1D, and whatever ``conversion_map``
    adds) replaced by analog ones; ``model.conversion_report`` (:class:`ConversionReport`) says
    what was converted and what was left digital.

    ``config``: an :class:`AnalogConfig`, or a profile (a ``DeviceProfile`` or a preset name such
    as ``"pcm"``) with any other :class:`AnalogConfig` field as a keyword (``mode``, ``eval_mode``,
    ``backward_weights``, ``learn_input_range``, ``seed``); keywords given with a config change it.
    ``filter(module, name) -> bool`` selects layers (default: all). Layer ``i`` gets the seed
    ``seed + i``. ``inplace=False`` converts a deep copy and leaves ``model`` untouched.
    ``overrides`` maps a layer name or glob pattern (``"classifier"``, ``"features.*"``) to an
    :class:`AnalogConfig` (that layer's whole config), a profile, or a dict of changes to the
    config (``dataclasses.replace``; its ``profile`` may be a dict of dotted overrides such as
    ``{"adc.bits": 6}`` applied on top; a ``seed`` there is the layer's seed as is); later
    patterns win. ``conversion_map`` adds to (or overrides) :data:`CONVERSION_MAP`:
    ``{MyLinear: AnalogLinear, MyOp: lambda module, config: ..., nn.Linear: None}``.

    A module holding a weight matrix that the map has no entry for stays digital with a
    :class:`ConversionWarning` naming it (pass a ``conversion_map`` entry, or ``None`` for it to
    keep it digital quietly).

    Example: ``convert(net, "pcm", overrides={"fc3": {"mode": "ideal"}})``, or
    ``convert(net, AnalogConfig("pcm", mode="noise_injection"))``.
    """
    if not isinstance(model, nn.Module):
        raise ParameterError(f"convert: model must be a torch.nn.Module (got {type(model).__name__})")
    base = as_config(config, "convert", **settings)
    cmap = _default_map()
    if conversion_map is not None:
        if not isinstance(conversion_map, Mapping) or not all(
            isinstance(k, type) and issubclass(k, nn.Module) for k in conversion_map
        ):
            raise ParameterError(
                "convert: conversion_map must map torch module classes to an analog class, a factory "
                f"(module, config) -> module, or None, e.g. {{MyLinear: AnalogLinear}} (got {conversion_map!r})"
            )
        cmap.update(conversion_map)
    if not inplace:
        model = copy.deepcopy(model)

    counter = [0]
    memo: dict[int, nn.Module] = {}
    produced: set[int] = set()
    visited: set[int] = set()
    converted: dict[str, str] = {}
    digital: dict[str, str] = {}
    unmapped: list[str] = []

    def left_digital(module: nn.Module, name: str, why: str, warn: bool) -> None:
        held = _weight_params(module)
        if held and name not in digital:
            digital[name] = f"{type(module).__name__} ({', '.join(held)}): {why}"
            if warn:
                unmapped.append(name)

    def swap(module: nn.Module, name: str) -> nn.Module | None:
        if id(module) in memo:
            return memo[id(module)]
        if id(module) in produced:
            return module
        known, entry = _lookup(cmap, module)
        if not known:
            left_digital(module, name, "no entry in the conversion map", True)
            return None
        if entry is None:
            left_digital(module, name, "kept digital by the conversion map", False)
            return None
        if filter is not None and not filter(module, name):
            if isinstance(module, AnalogLayer):  # already analog: kept as it is
                return module
            left_digital(module, name, "not selected by filter", False)
            return None
        cfg, pinned = _layer_config(name, base, overrides)
        if not pinned:
            cfg = dataclasses.replace(cfg, seed=cfg.seed + counter[0])
        counter[0] += 1
        if isinstance(entry, type) and issubclass(entry, AnalogLayer):
            new = entry.from_float(module, cfg)
        else:
            new = entry(module, cfg)
            if not isinstance(new, nn.Module):
                raise ParameterError(
                    f"convert: the conversion_map factory for {type(module).__name__} returned "
                    f"{type(new).__name__}, not a torch module"
                )
        memo[id(module)] = new
        produced.add(id(new))
        converted[name] = f"{type(module).__name__} -> {type(new).__name__}"
        return new

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

    root = swap(model, "")
    if root is not None:
        model = root
    else:
        visit(model, "")
    report = ConversionReport(converted, digital, tuple(unmapped))
    if unmapped:
        warnings.warn(
            "convert left these modules holding weight matrices digital (no entry in the conversion map): "
            + "; ".join(f"{n or '<root>'}: {digital[n]}" for n in unmapped)
            + ". Convert them with convert(..., conversion_map={TheirClass: analog_class_or_factory}) or keep "
            "them digital quietly with conversion_map={TheirClass: None}",
            ConversionWarning,
            stacklevel=2,
        )
    object.__setattr__(model, "conversion_report", report)  # plain data beside the modules
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
