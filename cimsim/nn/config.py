"""``AnalogConfig``: the settings every analog layer and :func:`~cimsim.nn.convert` take, checked once.

In the style of torchao's ``quantize_(model, config)``: ``convert(model, AnalogConfig("pcm",
mode="noise_injection"))`` and the keyword form ``convert(model, "pcm", mode="noise_injection")``
build the same frozen config; a layer holds its own as ``layer.analog_config``. Every check of a
setting lives in :meth:`AnalogConfig.__post_init__` (and the two ``check_*`` helpers it uses), so
a config that exists is valid and nothing downstream re-checks it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import ParameterError
from ..profiles.loader import load_profile, profile_from_dict
from ..profiles.schema import DeviceProfile
from ..rng import check_seed

__all__ = ["AnalogConfig", "MODES", "BACKWARD_WEIGHTS", "as_config", "check_mode", "check_backward_weights",
           "resolve_profile"]

#: training modes: the chip in the loop, the noise-injection baseline, the plain float layer
MODES = ("hardware", "noise_injection", "ideal")
#: weights the STE backward multiplies with: the float Parameter or the chip's effective weights
BACKWARD_WEIGHTS = ("float", "programmed")


def check_mode(mode, what: str = "mode", allow_none: bool = False):
    """``mode`` if it is one of :data:`MODES` (or ``None`` when allowed), else ParameterError."""
    if allow_none and mode is None:
        return None
    if mode not in MODES:
        raise ParameterError(f"{what} must be one of {MODES}{' or None' if allow_none else ''} (got {mode!r})")
    return mode


def check_backward_weights(value) -> str:
    if value not in BACKWARD_WEIGHTS:
        raise ParameterError(f"backward_weights must be one of {BACKWARD_WEIGHTS} (got {value!r})")
    return value


def resolve_profile(profile) -> DeviceProfile:
    """A ``DeviceProfile`` as is; a preset name or YAML path through ``load_profile``."""
    if isinstance(profile, DeviceProfile):
        return profile
    if isinstance(profile, str):
        return load_profile(profile)
    raise ParameterError(
        f"profile must be a DeviceProfile or a preset name such as 'pcm' (got {type(profile).__name__}: {profile!r})"
    )


@dataclasses.dataclass(frozen=True)
class AnalogConfig:
    """How an analog layer runs; frozen, validated on construction (and on ``dataclasses.replace``).

    Fields:
      profile: the ``DeviceProfile`` (a preset name such as ``"pcm"`` or a YAML path is loaded).
      mode: ``"hardware"`` (chip forward, extended-STE backward), ``"noise_injection"``
        (``W + sigma(W) N(0, 1)``) or ``"ideal"`` (the float layer).
      eval_mode: mode in eval (``model.eval()``); ``None`` runs ``mode`` there too.
      backward_weights: ``"float"`` (the STE multiplies with the float ``W``) or ``"programmed"``
        (with the programmed chip's effective weights).
      learn_input_range: give the layer a learnable DAC input range (needs a fixed-range DAC).
      seed: the layer's generator seed; :func:`~cimsim.nn.convert` gives layer ``i`` ``seed + i``.
    """

    profile: DeviceProfile
    mode: str = "hardware"
    eval_mode: str | None = None
    backward_weights: str = "float"
    learn_input_range: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile", resolve_profile(self.profile))
        check_mode(self.mode)
        check_mode(self.eval_mode, "eval_mode", allow_none=True)
        check_backward_weights(self.backward_weights)
        if not isinstance(self.learn_input_range, bool):
            raise ParameterError(f"learn_input_range must be True or False (got {self.learn_input_range!r})")
        if self.learn_input_range:
            dac = self.profile.dac
            if dac.bits is None or dac.range.kind != "fixed":
                raise ParameterError(
                    "learn_input_range=True needs a profile with a fixed-range DAC (dac.bits set and "
                    f"dac.range.kind: fixed; got dac.bits={dac.bits}, dac.range.kind={dac.range.kind}), e.g. "
                    "load_profile('pcm', overrides={'dac.range': {'kind': 'fixed', 'bound': 1.0}})"
                )
        object.__setattr__(self, "seed", check_seed(self.seed, "seed", "AnalogConfig('pcm', seed=0)"))

    def updated(self, changes: Mapping[str, Any], source: str = "AnalogConfig.updated") -> AnalogConfig:
        """``dataclasses.replace(self, **changes)``, where ``changes["profile"]`` may also be a dict of
        dotted profile overrides (``{"adc.bits": 6}``) applied on top of this config's profile."""
        changes = dict(changes)
        _check_fields(changes, source)
        prof = changes.get("profile")
        if isinstance(prof, Mapping):
            changes["profile"] = profile_from_dict(self.profile.model_dump(mode="json"), source=source, overrides=prof)
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:  # the profile by name: its full dump would fill a screen
        rest = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)[1:])
        return f"AnalogConfig(profile={self.profile.name!r}, {rest})"


_FIELDS = tuple(f.name for f in dataclasses.fields(AnalogConfig))


def _check_fields(settings: Mapping[str, Any], source: str) -> None:
    unknown = [k for k in settings if k not in _FIELDS]
    if unknown:
        raise ParameterError(
            f"{source}: unknown key(s) {unknown}; AnalogConfig fields: {list(_FIELDS)}, e.g. "
            f"{{'mode': 'ideal', 'profile': {{'adc.bits': 6}}}}"
        )


def as_config(config=None, source: str = "AnalogConfig", **settings) -> AnalogConfig:
    """The config that ``(config, **settings)`` names: ``config`` is an :class:`AnalogConfig` (then
    ``settings`` are changes to it), a profile (object, preset name or YAML path), or ``None`` (then
    ``settings`` must hold ``profile``)."""
    _check_fields(settings, source)
    if isinstance(config, AnalogConfig):
        return config.updated(settings, source) if settings else config
    if config is not None:
        if "profile" in settings:
            raise ParameterError(f"{source}: the profile is given twice (positionally and as profile=)")
        settings["profile"] = config
    if "profile" not in settings:
        raise ParameterError(
            f"{source} needs a profile or an AnalogConfig, e.g. profile='pcm' or config=AnalogConfig('pcm')"
        )
    return AnalogConfig(**settings)
