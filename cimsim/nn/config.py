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

__all__ = ["AnalogConfig", "NoiseSpec", "MODES", "BACKWARD_WEIGHTS", "NOISE_GRADS", "ADC_BACKWARDS", "as_config",
           "check_mode", "check_backward_weights", "resolve_profile"]

#: training modes: the chip in the loop, the noise-injection baseline, the plain float layer, and
#: smoothed (LOTION) training on the conductance grid
MODES = ("hardware", "noise_injection", "ideal", "smoothed")
#: weights the STE backward multiplies with: the float Parameter or the chip's effective weights
BACKWARD_WEIGHTS = ("float", "programmed")
#: noise injection's gradient: straight through the noise, or through the noisy weights
NOISE_GRADS = ("straight", "through")
#: the ADC stage's backward in hardware mode: the STE's saturation mask, or the slope of the expected
#: transfer under Gaussian noise before the converter
ADC_BACKWARDS = ("ste", "expected")
#: what noise injection draws: the profile's programming noise, or its own additive / multiplicative level
NOISE_KINDS = ("profile", "additive", "multiplicative")


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """Noise injection's own settings (``AnalogConfig(noise=...)``).

    kind: ``"profile"`` (default: the profile's programming noise in weight units,
      :func:`~cimsim.nn.noise_injection.programming_noise_std`), ``"additive"``
      (``W + level_rel max|W| eps``, ``max|W|`` over the layer or each output channel, see ``per``) or
      ``"multiplicative"`` (``W (1 + level_rel eps)``); ``eps ~ N(0, 1)`` per weight.
    level_rel: the level (fraction; ignored by ``"profile"``).
    per: ``"layer"`` or ``"channel"`` (output channel = row of the weight as the layer stores it);
      the group ``max|W|`` is taken over (``"additive"`` only).
    """

    kind: str = "profile"
    level_rel: float = 0.05
    per: str = "layer"

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise ParameterError(f"NoiseSpec.kind must be one of {NOISE_KINDS} (got {self.kind!r}), "
                                 "e.g. NoiseSpec(kind='additive', level_rel=0.05)")
        lvl = self.level_rel
        if isinstance(lvl, bool) or not isinstance(lvl, (int, float)) or not (0.0 <= float(lvl) < float("inf")):
            raise ParameterError(f"NoiseSpec.level_rel must be a finite number >= 0 (got {lvl!r}), e.g. 0.05")
        object.__setattr__(self, "level_rel", float(lvl))
        if self.per not in ("layer", "channel"):
            raise ParameterError(f"NoiseSpec.per must be 'layer' or 'channel' (got {self.per!r})")


def _check_choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ParameterError(f"{name} must be one of {allowed} (got {value!r})")


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
        (``W + sigma(W) N(0, 1)``), ``"ideal"`` (the float layer) or ``"smoothed"`` (randomized
        rounding on the conductance grid, :mod:`cimsim.nn.smoothed`).
      eval_mode: mode in eval (``model.eval()``); ``None`` runs ``mode`` there too.
      backward_weights: ``"float"`` (the STE multiplies with the float ``W``) or ``"programmed"``
        (with the programmed chip's effective weights).
      noise: noise injection's :class:`NoiseSpec` (default: the profile's programming noise);
        a dict of its fields is accepted.
      noise_grad: ``"straight"`` (noise injection's gradient is the identity through the noise) or
        ``"through"`` (autograd through ``W + sigma(W) eps``, ``sigma`` not detached).
      adc_backward: ``"ste"`` (hardware mode's ADC backward is the saturation mask) or
        ``"expected"`` (the slope of ``E[ADC(u + n)]``, ``n ~ N(0, sigma^2)``; see
        :func:`cimsim.nn.ste.expected_adc_slope`).
      adc_sigma_lsb: ``sigma`` of ``adc_backward="expected"`` in LSB; ``None``: the profile's
        ``adc.noise_lsb`` (must then be > 0).
      smoothing_noise: ``"smoothed"`` mode folds the profile's programming noise into its
        expectation (``E[L(Q(w) + sigma(Q(w)) eps)]``) when True, else rounding alone.
      smoothing_curvature: ``"none"`` (the sample's gradient, straight to ``W``) or ``"fisher"``
        (adds LOTION's curvature term ``1/2 h (lo + hi - 2 W)``, ``h`` a running average of the
        squared gradient; :class:`cimsim.nn.smoothed.Curvature`).
      learn_input_range: give the layer a learnable DAC input range (needs a fixed-range DAC).
      seed: the layer's generator seed; :func:`~cimsim.nn.convert` gives layer ``i`` ``seed + i``.
    """

    profile: DeviceProfile
    mode: str = "hardware"
    eval_mode: str | None = None
    backward_weights: str = "float"
    learn_input_range: bool = False
    seed: int = 0
    noise: NoiseSpec = NoiseSpec()
    noise_grad: str = "straight"
    adc_backward: str = "ste"
    adc_sigma_lsb: float | None = None
    smoothing_noise: bool = True
    smoothing_curvature: str = "none"

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile", resolve_profile(self.profile))
        check_mode(self.mode)
        check_mode(self.eval_mode, "eval_mode", allow_none=True)
        check_backward_weights(self.backward_weights)
        if isinstance(self.noise, Mapping):
            object.__setattr__(self, "noise", NoiseSpec(**self.noise))
        if not isinstance(self.noise, NoiseSpec):
            raise ParameterError(f"noise must be a NoiseSpec or a dict of its fields (got {self.noise!r}), "
                                 "e.g. NoiseSpec(kind='additive', level_rel=0.05)")
        _check_choice("noise_grad", self.noise_grad, NOISE_GRADS)
        _check_choice("adc_backward", self.adc_backward, ADC_BACKWARDS)
        if not isinstance(self.smoothing_noise, bool):
            raise ParameterError(f"smoothing_noise must be True or False (got {self.smoothing_noise!r})")
        if self.smoothing_curvature not in ("none", "fisher"):
            raise ParameterError(f"smoothing_curvature must be 'none' or 'fisher' (got {self.smoothing_curvature!r})")
        if self.adc_backward == "expected":
            self._check_expected_adc()
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

    def _check_expected_adc(self) -> None:
        """What ``adc_backward="expected"`` needs: a quantising ADC, one conversion per tile column
        (analog subtraction, no bit slices, no bit-serial DAC) and a noise width > 0."""
        p = self.profile
        sig = self.adc_sigma_lsb
        if sig is not None and (isinstance(sig, bool) or not isinstance(sig, (int, float)) or not 0 < float(sig) < float("inf")):
            raise ParameterError(f"adc_sigma_lsb must be a finite number > 0 or None (got {sig!r}), e.g. 0.5")
        if sig is not None:
            object.__setattr__(self, "adc_sigma_lsb", float(sig))
        elif not p.adc.noise_lsb > 0:
            raise ParameterError(
                f"adc_backward='expected' needs noise before the ADC: profile {p.name!r} has adc.noise_lsb="
                f"{p.adc.noise_lsb}; give adc_sigma_lsb (the noise's std in LSB, e.g. 0.5)"
            )
        bad = []
        if p.adc.bits is None:
            bad.append("adc.bits=None (ideal ADC: nothing to smooth)")
        if p.mapping.subtraction != "analog":
            bad.append(f"mapping.subtraction={p.mapping.subtraction!r} (needs 'analog')")
        if p.mapping.weight_slices != 1:
            bad.append(f"mapping.weight_slices={p.mapping.weight_slices} (needs 1)")
        if p.dac.bit_serial:
            bad.append("dac.bit_serial=True (needs False)")
        if bad:
            raise ParameterError(f"adc_backward='expected' is not available for profile {p.name!r}: {'; '.join(bad)}; "
                                 "use adc_backward='ste'")

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
