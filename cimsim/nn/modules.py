"""The analog layers' shared behaviour (:class:`AnalogLayer`) and ``AnalogLinear``.

Each layer keeps its float weights as ordinary Parameters (optimizers, ``state_dict``,
``torch.save`` and ``copy.deepcopy`` work unchanged; the state dict is exactly the float layer's)
and holds its settings as one frozen :class:`~cimsim.nn.config.AnalogConfig`
(``layer.analog_config``: profile, mode, eval mode, backward weights, seed) and a seeded
``torch.Generator``.

Modes (``layer.analog_mode``, the config's ``mode``; not ``mode``, which ``nn.RNNBase`` uses for its
cell kind):

* ``"hardware"``: every forward draws a 63-bit seed ``s`` from the layer's generator, programs
  the chip from the *current* float weights (``prog, read = split_seed(s)``;
  ``program_matrix(W, profile, rng=prog)``) and runs ``tile_mvm(x, state, t_s=t, rng=read)``;
  the backward is the extended STE of :class:`cimsim.nn.ste.AnalogMatmulSTE`. There is no
  programmed state to fall out of step with the weights and no ``synchronize()``.
  ``layer.last_seed`` / ``layer.last_t_s`` record the draws; ``layer.hardware_forward(x, seed)``
  runs the same path with a forced seed; ``layer.program(seed)`` returns the chip that seed
  programs. ``t`` is 0, or drawn log-uniformly per forward from the profile's ``training``
  section (``drift_t_min_s``/``drift_t_max_s``) in training mode, or ``layer.eval_t_s`` in eval.
  In eval the chip is *deployed*: programmed once per weight version and read many times. The
  first eval forward after the weights (or the config, or ``eval_t_s``) changed programs the
  chip with the seed it draws and drifts it to ``eval_t_s``; later eval forwards read that same
  snapshot, each with a fresh copy of its read generator, so two eval calls on the same input
  give identical outputs, bit for bit those of ``hardware_forward(x, seed, t_s=eval_t_s)``.
  Every forward still draws its seed (the layer's generator advances as before, so training
  runs that evaluate between steps keep their bits). A change of the weights is seen by value
  (the deployed weights are kept and compared), so ``optimizer.step()``, ``load_state_dict``
  and in-place edits of ``.data`` all re-program; :meth:`reprogram` forces a new chip.
* ``"noise_injection"``: ``F.linear(x, W + sigma(W) * N(0, 1))`` inside autograd, with
  ``sigma`` the profile's programming noise in weight units
  (:func:`cimsim.nn.noise_injection.programming_noise_std`) or the config's own ``noise``
  (:class:`~cimsim.nn.config.NoiseSpec`, gradient per ``noise_grad``), noise drawn from the
  layer's generator.
* ``"smoothed"``: ``F.linear(x, w_hat)``, ``w_hat`` one randomized rounding of ``W`` on the
  conductance grid in weight units (plus programming noise), gradient straight to ``W``
  (:mod:`cimsim.nn.smoothed`).
* ``"ideal"``: the plain float layer.

Eval mode (``model.eval()``) runs the same mode unless ``layer.eval_mode`` names another one.
Layers are built with a config or its fields as keywords: ``AnalogLinear(64, 10, profile="pcm",
mode="ideal")``, ``AnalogLinear(64, 10, config=AnalogConfig("pcm"))``,
``AnalogLinear.from_float(linear, config)``.
A programmed chip can be attached (``attach_chip``) so that every forward reads that fixed chip
instead (the drift evaluation does this).

A layer with several crossbar matrices (a grouped convolution's groups, a recurrent layer's
cells, attention's projections) programs matrix ``g`` with seed :func:`~cimsim.rng.group_seed`
``(s, g)``. The convolutions are in :mod:`cimsim.nn.conv`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..crossbar import DriftedState, program_drifted, program_matrix
from ..errors import CalibrationError, ParameterError, ShapeError
from ..profiles.schema import DeviceProfile, RangeFixed
from ..rng import SEED_HIGH, group_seed, split_seed, torch_generator
from ._compile import run_eagerly
from ._tensors import check_dense
from .config import AnalogConfig, as_config
from .hardware import Calibration, FloatReader, MatrixReader, analog_matmul, with_calibration
from .noise_injection import inject_noise, programming_noise_std
from .smoothed import smoothed_matrix

__all__ = ["AnalogLinear", "AnalogLayer", "LayerCalibration"]

if TYPE_CHECKING:
    # AnalogLayer is a mixin that always comes first in front of a torch layer (AnalogLinear is
    # AnalogLayer + nn.Linear); to the type checker it is an nn.Module so that the torch members
    # it uses (training, train, register_forward_pre_hook, extra_repr) are known. At run time it
    # stays a plain class, so the MRO of every layer is unchanged.
    _ModuleBase = nn.Module
else:
    _ModuleBase = object

#: an attached chip: (states, read generators, t_s, compensations), one entry per matrix
_Chip = tuple[tuple[Any, ...], tuple[Any, ...], float | None, tuple[Any, ...]]


@dataclasses.dataclass(frozen=True, eq=False)
class LayerCalibration:
    """Calibrated converter ranges of one analog layer (:func:`cimsim.nn.calibrate`): per crossbar
    matrix ``(dac_bound, adc_bound)``, computed for ``profile`` and set on every chip the layer
    programs (training and eval forwards, :meth:`AnalogLayer.program`)."""

    profile: DeviceProfile
    bounds: tuple[Calibration, ...]

    def digest(self) -> str:
        """The first 12 hex digits of the sha256 of the bounds."""
        h = hashlib.sha256()
        for dac, adc in self.bounds:
            h.update(repr(dac).encode())
            h.update(b"-" if adc is None else np.ascontiguousarray(adc, dtype=np.float64).tobytes())
        return h.hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class _Deployed:
    """The eval-mode chip: programmed once from ``weights`` with ``seed``, drifted to ``t_s``;
    per matrix its snapshot and its read generator right after the drift draws."""

    key: tuple[AnalogConfig, float]  # (config, t_s): another config or time re-programs
    seed: int
    weights: tuple[torch.Tensor, ...]
    snaps: tuple[tuple[DriftedState, np.random.Generator], ...]
    calibration: LayerCalibration | None = None

    def matches(self, key: tuple[AnalogConfig, float], mats: list[torch.Tensor],
                calibration: LayerCalibration | None) -> bool:
        return self.key == key and self.calibration is calibration and len(mats) == len(self.weights) and all(
            w.shape == m.shape and w.dtype == m.dtype and w.device == m.device and torch.equal(w, m.detach())
            for w, m in zip(self.weights, mats)
        )


def _keep_fused_kernels_off(module, args):
    """No-op forward pre-hook: its presence keeps torch's fused transformer kernels off (see
    :meth:`AnalogLayer._setup_analog`)."""
    return None


class AnalogLayer(_ModuleBase):
    """Behaviour shared by the analog layers (a mixin over the matching ``torch.nn`` class)."""

    _FLOAT_CLS: type[nn.Module]

    if TYPE_CHECKING:
        # What the single-weight layers (Linear, Conv, ConvTranspose) provide: the torch class's
        # weight and the layer's own float/analog forwards. The recurrent and attention layers
        # override every method below that reads them.
        weight: torch.Tensor

        @classmethod
        def _empty_like(cls, m: Any, **kw: Any) -> AnalogLayer: ...

        def _empty_float(self) -> nn.Module: ...

        def _float(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor: ...

        def _analog(self, x: torch.Tensor, calls: list[dict[str, Any]]) -> torch.Tensor: ...

    def __init_subclass__(cls, **kwargs):
        """Every ``forward`` of an analog layer (this mixin's and any a subclass defines) runs
        outside ``torch.compile`` (see :mod:`cimsim.nn._compile`)."""
        super().__init_subclass__(**kwargs)
        run_eagerly(cls)

    #: whether the layer can learn its DAC input range (a per-matrix scale: Linear/Conv layers)
    _INPUT_RANGE = True

    # ------------------------------------------------------------------ setup
    def _setup_analog(self, config: AnalogConfig) -> None:
        if config.learn_input_range and not self._INPUT_RANGE:
            raise ParameterError(f"{type(self).__name__} does not support learn_input_range (use it on Linear/Conv layers)")
        self.analog_config = config
        self.generator = torch_generator(config.seed)
        self.eval_t_s = 0.0
        self.last_seed: int | None = None
        self.last_t_s: float | None = None
        self._chip: _Chip | None = None
        self._deployed: _Deployed | None = None
        self.calibration: LayerCalibration | None = None
        self._recorder: list[Any] | None = None  # set by cimsim.nn.calibrate while it reads the inputs
        # torch's fused inference kernels (TransformerEncoderLayer's "fast path", taken in eval
        # under no_grad) read the float weights directly and would skip the chip; they stay off
        # for any module holding a hook, so every analog layer carries this no-op one
        self.register_forward_pre_hook(_keep_fused_kernels_off)
        self.input_range = nn.Parameter(self._initial_input_range(self.weight)) if config.learn_input_range else None

    def _initial_input_range(self, like: torch.Tensor) -> torch.Tensor:
        """The DAC's bound (the config checked that the DAC has a fixed range)."""
        bound = cast(RangeFixed, self.profile.dac.range).bound
        return torch.tensor(float(bound), dtype=like.dtype, device=like.device)

    def _configure(self, **changes) -> None:
        self.analog_config = dataclasses.replace(self.analog_config, **changes)

    @property
    def profile(self) -> DeviceProfile:
        return self.analog_config.profile

    @property
    def backward_weights(self) -> str:
        return self.analog_config.backward_weights

    @property
    def seed(self) -> int:
        """The seed the layer's generator started from (:meth:`reseed` restarts it)."""
        return self.analog_config.seed

    @property
    def learn_input_range(self) -> bool:
        return self.input_range is not None

    @property
    def analog_mode(self) -> str:
        """Training mode: one of :data:`~cimsim.nn.config.MODES` (checked on assignment)."""
        return self.analog_config.mode

    @analog_mode.setter
    def analog_mode(self, value: str) -> None:
        self._configure(mode=value)

    @property
    def eval_mode(self) -> str | None:
        """Mode used in eval (``None``: the same as :attr:`analog_mode`)."""
        return self.analog_config.eval_mode

    @eval_mode.setter
    def eval_mode(self, value: str | None) -> None:
        self._configure(eval_mode=value)

    @classmethod
    def from_float(cls, module: nn.Module, config=None, **settings):
        """The analog twin of a float layer, sharing its Parameter objects (no copy).

        ``config``: an :class:`AnalogConfig`, or a profile with the other fields as keywords."""
        if not isinstance(module, cls._FLOAT_CLS):
            raise ParameterError(
                f"{cls.__name__}.from_float expects a {cls._FLOAT_CLS.__name__} (got {type(module).__name__})"
            )
        config = as_config(config, f"{cls.__name__}.from_float", **settings)
        new = cls._empty_like(module, config=config)
        weight = cast(torch.Tensor, module.weight)  # the float layer's (or an analog twin's) Parameter
        new.weight = weight
        new.bias = module.bias
        if config.learn_input_range:
            old = getattr(module, "input_range", None)
            new.input_range = old if old is not None else nn.Parameter(new._initial_input_range(weight))
        new.train(module.training)
        return new

    def to_float(self) -> nn.Module:
        """The plain float layer (sharing this layer's Parameter objects)."""
        new = self._empty_float()
        new.weight = self.weight
        new.bias = self.bias
        new.train(self.training)
        return new

    def reseed(self, seed: int) -> None:
        """Restart the layer's generator from ``seed`` (the per-forward seeds repeat from there)."""
        self._configure(seed=seed)
        self.generator = torch_generator(self.seed)

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", profile={self.profile.name}, analog_mode={self.analog_mode}"
        if self.eval_mode is not None:
            s += f", eval_mode={self.eval_mode}"
        if self.backward_weights != "float":
            s += f", backward_weights={self.backward_weights}"
        if self.input_range is not None:
            s += ", learn_input_range=True"
        if self.calibration is not None:  # in the repr, so the evaluation's fingerprints (which hash it) see it
            s += f", calibrated={self.calibration.digest()}"
        return s

    # ------------------------------------------------------------------ chips
    def weight_matrices(self) -> list[torch.Tensor]:
        """The layer's weights as the matrices put on the chip: one ``[out, in]`` per group."""
        w = self.weight.reshape(self.weight.shape[0], -1)
        groups = getattr(self, "groups", 1)
        if groups == 1:
            return [w]
        return list(w.chunk(groups, dim=0))

    def program(self, seed: int):
        """The chip a hardware forward with seed ``seed`` programs from the current weights.

        ``ProgrammedState`` for a linear layer or an ungrouped conv; a tuple with one state per
        group otherwise (group ``g`` uses :func:`group_seed` ``(seed, g)``). Its reads use
        ``split_seed(seed)[1]`` (per group: ``split_seed(group_seed(seed, g))[1]``).
        """
        mats = self.weight_matrices()
        states = tuple(with_calibration(st, c) for st, c in zip(self._program_raw(seed), self._calibrations(len(mats))))
        return states[0] if len(states) == 1 else states

    def _program_raw(self, seed: int) -> tuple[Any, ...]:
        """:meth:`program`'s states before any calibrated range is set on them, one per matrix."""
        return tuple(
            program_matrix(m.detach().cpu().contiguous().numpy(), self.profile, rng=split_seed(s)[0])
            for m, s in zip(self.weight_matrices(), self._group_seeds(seed))
        )

    def _calibrations(self, n: int) -> list[Calibration | None]:
        """Per matrix, the calibrated ranges to set on a chip programmed now (``None``: none)."""
        cal = self.calibration
        p = self.profile
        if cal is not None:
            if cal.profile != p or len(cal.bounds) != n:
                raise CalibrationError(
                    f"{type(self).__name__}: its calibration was computed for profile {cal.profile.name!r} with "
                    f"{len(cal.bounds)} matrices, the layer now has profile {p.name!r} and {n}; run "
                    f"cimsim.calibrate(model, data) again"
                )
            return list(cal.bounds)
        if p.dac.range.kind == "calibrated" or p.adc.range.kind == "calibrated":
            raise CalibrationError(
                f"{type(self).__name__}: profile {p.name!r} has calibrated converter ranges (dac.range.kind="
                f"{p.dac.range.kind!r}, adc.range.kind={p.adc.range.kind!r}) and this layer was never calibrated: "
                f"call cimsim.calibrate(model, reference_inputs) first"
            )
        return [None] * n

    def read_rng(self, seed: int):
        """The read generator(s) matching :meth:`program` ``(seed)``."""
        rngs = tuple(split_seed(s)[1] for s in self._group_seeds(seed))
        return rngs[0] if len(rngs) == 1 else rngs

    def attach_chip(self, state, *, rng, t_s: float | None = None, compensation=None) -> None:
        """Read this fixed chip on every forward (any mode, train or eval) until :meth:`detach_chip`.

        ``state``: what :meth:`program` returned (or its ``DriftedState`` snapshot(s)); ``rng``: the
        read generator(s); ``t_s``: time since programming (needed for a ``ProgrammedState``).
        Gradients still flow through the extended STE.
        """
        states = state if isinstance(state, tuple) else (state,)
        rngs = rng if isinstance(rng, tuple) else (rng,)
        n = getattr(self, "groups", 1)
        if len(states) != n or len(rngs) != n:
            raise ParameterError(
                f"attach_chip: this layer has {n} group(s); got {len(states)} state(s) and {len(rngs)} rng(s)"
            )
        comps = compensation if isinstance(compensation, tuple) else (compensation,) * n
        self._chip = (states, rngs, t_s, comps)

    def detach_chip(self) -> None:
        """Go back to programming the chip from the weights (per forward in training, per weight
        version in eval)."""
        self._chip = None

    def reprogram(self) -> None:
        """Drop the eval-mode chip: the next eval forward programs a new one (with the seed it draws)."""
        self._deployed = None

    def _deployed_snaps(self, mats: list[torch.Tensor], seed: int, t_s: float) -> list[tuple[DriftedState, Any]]:
        """Eval-mode hardware: ``(snapshot, read generator)`` per matrix of the chip deployed from
        ``mats``, programmed with ``seed`` unless the deployed one still matches the weights,
        the config and ``t_s`` (see the module docstring). The generators are fresh copies."""
        key = (self.analog_config, float(t_s))
        dep = self._deployed
        if dep is None or not dep.matches(key, mats, self.calibration):
            snaps = []
            for w, s, c in zip(mats, self._group_seeds(seed), self._calibrations(len(mats))):
                prog, read = split_seed(s)
                ds = program_drifted(w.detach().cpu().contiguous().numpy(), self.profile, rng=prog, t_s=t_s,
                                     read_rng=read)
                snaps.append((with_calibration(ds, c), read))
            dep = _Deployed(key, int(seed), tuple(m.detach().clone() for m in mats), tuple(snaps), self.calibration)
            self._deployed = dep
        self.last_seed, self.last_t_s = dep.seed, float(t_s)
        return [(ds, copy.deepcopy(r)) for ds, r in dep.snaps]

    @property
    def chip_attached(self) -> bool:
        return self._chip is not None

    def _group_seeds(self, seed: int) -> list[int]:
        seed = int(seed)
        groups = getattr(self, "groups", 1)
        if groups == 1:
            return [seed]
        return [group_seed(seed, g) for g in range(groups)]

    # ------------------------------------------------------------------ forward
    def active_mode(self) -> str:
        """The mode the next forward runs in (``eval_mode`` applies in eval only)."""
        cfg = self.analog_config
        if self.training or cfg.eval_mode is None:
            return cfg.mode
        return cfg.eval_mode

    def _draw_seed(self) -> int:
        return int(torch.randint(0, SEED_HIGH, (1,), generator=self.generator).item())

    def _draw_t(self) -> float:
        tr = self.profile.training
        if not self.training:
            return float(self.eval_t_s)
        if tr.drift_t_min_s is None or tr.drift_t_max_s is None:  # the profile sets both or neither
            return 0.0
        u = float(torch.rand((), generator=self.generator, dtype=torch.float64))
        lo, hi = float(tr.drift_t_min_s), float(tr.drift_t_max_s)
        if lo > 0:
            return lo * (hi / lo) ** u
        return (hi + 1.0) ** u - 1.0  # log-uniform in t + 1 s when the range starts at 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_dense(x)
        if self._recorder is not None:
            return self._analog(x, [dict(record=g) for g in range(len(self._recorder))])
        if self._chip is not None:
            states, rngs, t_s, comps = self._chip
            return self._analog(x, [dict(state=s, rng=r, t_s=t_s, compensation=c)
                                    for s, r, c in zip(states, rngs, comps)])
        mode = self.active_mode()
        if mode == "ideal":
            return self._float(x, self.weight)
        if mode == "noise_injection":
            return self._float(x, self.noisy_weight())
        if mode == "smoothed":
            return self._float(x, self.smoothed_weight())
        seed = self._draw_seed()
        t = self._draw_t()
        if not self.training:
            return self._analog(x, [dict(state=ds, rng=r, t_s=None)
                                    for ds, r in self._deployed_snaps(self.weight_matrices(), seed, t)])
        return self.hardware_forward(x, seed, t_s=t)

    def hardware_forward(self, x: torch.Tensor, seed: int, *, t_s: float = 0.0) -> torch.Tensor:
        """The hardware-mode forward with a forced seed (what ``forward`` does after its draws)."""
        self.last_seed = int(seed)
        self.last_t_s = float(t_s)
        seeds = self._group_seeds(seed)
        return self._analog(x, [dict(seed=s, t_s=t_s, calibration=c)
                                for s, c in zip(seeds, self._calibrations(len(seeds)))])

    def forward_chip(self, x: torch.Tensor, state, *, rng, t_s: float | None = None, compensation=None) -> torch.Tensor:
        """One forward through a given programmed chip (see :meth:`attach_chip` for the arguments)."""
        saved = self._chip
        try:
            self.attach_chip(state, rng=rng, t_s=t_s, compensation=compensation)
            return self.forward(x)
        finally:
            self._chip = saved

    def noisy_weight(self) -> torch.Tensor:
        """``W + a(W) * N(0, 1)`` (noise-injection mode, the config's ``noise`` and ``noise_grad``;
        :func:`~cimsim.nn.noise_injection.inject_noise`), differentiable in ``W``."""
        return self._noisy(self.weight)

    def _noisy(self, w: torch.Tensor) -> torch.Tensor:
        """Noise injection on one crossbar matrix ``w`` (or a weight whose first axis is the output)."""
        cfg = self.analog_config
        if cfg.noise.kind == "profile" and cfg.noise_grad == "straight":
            return self._with_noise(w, programming_noise_std(w, self.profile))
        return inject_noise(w, self.profile, cfg.noise, cfg.noise_grad, self._normals(w))

    def _normals(self, w: torch.Tensor) -> torch.Tensor:
        """``N(0, 1)`` of ``w``'s shape from the layer's generator (drawn on the CPU, then moved)."""
        return torch.randn(w.shape, generator=self.generator, dtype=w.dtype).to(w.device)

    def _with_noise(self, w: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """``w + std * N(0, 1)``, the normals from the layer's generator; ``std`` is the profile's
        programming noise for ``w``'s layout, used when the config's noise is the profile's (else
        its own noise, :func:`~cimsim.nn.noise_injection.inject_noise`, replaces it)."""
        cfg = self.analog_config
        if cfg.noise.kind != "profile":
            return inject_noise(w, self.profile, cfg.noise, cfg.noise_grad, self._normals(w))
        return w + std * self._normals(w)

    def smoothed_weight(self) -> torch.Tensor:
        """One randomized-rounding draw on the conductance grid per crossbar matrix
        (``"smoothed"`` mode, :func:`~cimsim.nn.smoothed.smoothed_matrix`), gradient straight to
        ``W``, reassembled in the weight's layout (Linear and Conv layers: the matrices are row
        blocks of ``W.reshape(out, -1)``)."""
        if type(self).weight_matrices is not AnalogLayer.weight_matrices:
            raise ParameterError(f"{type(self).__name__} does not support mode='smoothed' (its crossbar matrices are "
                                 "not row blocks of its weight); use it on Linear, Conv, recurrent or attention layers")
        mats = [self._smoothed(m, i) for i, m in enumerate(self.weight_matrices())]
        return torch.cat(mats, 0).reshape(self.weight.shape)

    def _smoothed(self, w: torch.Tensor, i: int) -> torch.Tensor:
        """Matrix ``i``'s smoothed draw; with ``smoothing_curvature="fisher"`` its curvature state
        (the running squared gradient, like an optimiser's state: kept on the layer, not saved)."""
        cfg = self.analog_config
        state = None
        if cfg.smoothing_curvature == "fisher" and self.training:
            states = self.__dict__.setdefault("_curvature", {})
            state = states.setdefault(i, {})
            if "avg" in state and state["avg"].shape != w.shape:
                state.clear()
        return smoothed_matrix(w, self.profile, self.generator, cfg.smoothing_noise, state)

    def _matrix_readers(self, mats: list[torch.Tensor]) -> list:
        """One reader per crossbar matrix for a forward that reads them several times (recurrent
        steps, attention projections), in the active mode: the attached chip, the float weights
        (``"ideal"``), noisy float weights (``"noise_injection"``: ``W + sigma(W) N(0, 1)``, drawn
        once per forward) or a chip programmed now from the current weights with one seed drawn
        from the layer's generator (``"hardware"``; matrix ``m`` with :func:`group_seed` ``(s, m)``)."""
        if self._recorder is not None:
            return [_RecordingReader(w, self._recorder[g]) for g, w in enumerate(mats)]
        if self._chip is not None:
            states, rngs, t_s, comps = self._chip
            return [MatrixReader(w, self.profile, s, r, t_s, c, self.backward_weights, *self._adc_bw())
                    for w, s, r, c in zip(mats, states, rngs, comps)]
        mode = self.active_mode()
        if mode == "ideal":
            return [FloatReader(w) for w in mats]
        if mode == "noise_injection":
            return [FloatReader(self._noisy(w)) for w in mats]
        if mode == "smoothed":
            return [FloatReader(self._smoothed(w, i)) for i, w in enumerate(mats)]
        seed, t = self._draw_seed(), self._draw_t()
        if not self.training:
            return [MatrixReader(w, self.profile, ds, r, None, None, self.backward_weights, *self._adc_bw())
                    for w, (ds, r) in zip(mats, self._deployed_snaps(mats, seed, t))]
        self.last_seed, self.last_t_s = seed, t
        readers = []
        for w, s, c in zip(mats, self._group_seeds(seed), self._calibrations(len(mats))):
            prog, read = split_seed(s)
            ds = program_drifted(w.detach().cpu().contiguous().numpy(), self.profile, rng=prog, t_s=t, read_rng=read)
            ds = with_calibration(ds, c)
            readers.append(MatrixReader(w, self.profile, ds, read, None, None, self.backward_weights, *self._adc_bw()))
        return readers

    def _adc_bw(self) -> tuple[str, float | None]:
        return self.analog_config.adc_backward, self.analog_config.adc_sigma_lsb

    def _mm(self, x2: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, kw: dict[str, Any]) -> torch.Tensor:
        if "record" in kw:  # calibration: note what the crossbar would see, compute in float
            assert self._recorder is not None, "record calls come from forward while recording"
            xs = x2.detach()
            if self.input_range is not None:  # the DAC sees x scaled by B / alpha (analog_matmul)
                xs = xs * (float(cast(RangeFixed, self.profile.dac.range).bound) / float(self.input_range.detach().abs()))
            self._recorder[kw["record"]].add(xs)
            return F.linear(x2, w, b)
        cfg = self.analog_config
        return analog_matmul(x2, w, b, self.profile, backward_weights=self.backward_weights,
                             input_range=self.input_range, adc_backward=cfg.adc_backward,
                             adc_sigma_lsb=cfg.adc_sigma_lsb, **kw)


run_eagerly(AnalogLayer)


class _RecordingReader(FloatReader):
    """A float matrix reader that hands every input it reads to a calibration recorder."""

    def __init__(self, weight, recorder):
        super().__init__(weight)
        self.recorder = recorder

    def __call__(self, x, bias):
        self.recorder.add(x.detach())
        return super().__call__(x, bias)


class AnalogLinear(AnalogLayer, nn.Linear):
    """``nn.Linear`` on a simulated analog chip (see the module docstring for the modes).

    ``AnalogLinear(in_features, out_features, bias=True, *, config=None, **settings)``: an
    :class:`AnalogConfig` and/or its fields as keywords (``profile="pcm", mode="ideal"``).
    Inputs may have any leading dimensions.
    """

    _FLOAT_CLS = nn.Linear

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None, *,
                 config: AnalogConfig | None = None, **settings):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._setup_analog(as_config(config, type(self).__name__, **settings))

    @classmethod
    def _empty_like(cls, m, **kw):
        return cls(m.in_features, m.out_features, bias=m.bias is not None, device="meta", **kw)

    def _empty_float(self):
        return nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")

    def _float(self, x, w):
        return F.linear(x, w, self.bias)

    def _analog(self, x, calls):
        if x.shape[-1] != self.in_features:
            raise ShapeError(
                f"{type(self).__name__}: input's last dimension must be in_features={self.in_features} (got input {tuple(x.shape)})"
            )
        lead = x.shape[:-1]
        y = self._mm(x.reshape(-1, self.in_features), self.weight, self.bias, calls[0])
        return y.reshape(*lead, self.out_features)
