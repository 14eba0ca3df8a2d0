"""A programmed chip: :func:`program` a converted model once, then read it at any time after.

``program(model, seed=s)`` programs every analog layer of ``model`` (in ``analog_layers`` order;
layer ``i`` with the integer seed ``layer_seed(s, i)``) exactly as a hardware-mode training
forward with that seed does: ``layer.program(layer_seed)``, i.e. ``prog, read = split_seed(seed)``,
``program_matrix(W, profile, rng=prog)`` (per group for grouped convolutions). The chip keeps a
private eval-mode copy of the model (the digital parts: biases, activations, pooling, ...) and the
``ProgrammedState`` of each layer; the model passed in is never touched.

Reading the chip at time ``t`` (seconds since programming):

* each layer's state is drifted to ``t`` (``state.drift(t, rng)``: ``G(t) = G_prog ((t+t0)/t0)^-nu``
  plus the 1/f read noise accumulated up to ``t``, one static realisation), then every batch runs
  through ``tile_mvm`` on that snapshot, with per-read noise from the same generator;
* the generator of layer ``i`` at time ``t`` is keyed by ``(layer seed, t)`` only
  (:meth:`Chip.read_rng`), so a chip read at ``t`` gives the same result whatever was read before,
  in this process or another, and a saved-and-loaded chip reads the same bits;
* drift compensation, if asked, is calibrated once per chip right after programming
  (:meth:`Chip.compensator`), from a generator keyed by the chip seed and layer.

``chip.at(t_s, compensation=...)`` returns a module that is used like the model in eval mode
(``chip.at(3600)(x)``); ``chip.forward(x, t_s=..., compensation=...)`` is the one-call form.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import atomic_save, atomic_write_text, read_checksum, read_verified
from ..crossbar import ProgrammedState
from ..crossbar.compensation import COMPENSATIONS, ReadCompensation, check_compensation, make_compensation
from ..errors import ParameterError, StateFormatError
from ..nn import analog_layers, to_digital
from ..rng import check_seed, compensation_generator, layer_seed, read_generator
from ..times import check_time

__all__ = ["Chip", "program", "analog_layers", "digital_copy", "CHIP_FORMAT"]

CHIP_FORMAT = "cimsim.chip/2"
_MANIFEST = "chip.json"
_WEIGHTS = "state_dict.pt"


def digital_copy(model: nn.Module) -> nn.Module:
    """A float (digital) eval-mode copy of ``model``: analog layers back to ``nn.Linear``/``nn.Conv*``."""
    m = to_digital(model)
    m.eval()
    return m


def _as_tuple(x: Any) -> tuple:
    return x if isinstance(x, tuple) else (x,)


def _untuple(x: tuple) -> Any:
    return x[0] if len(x) == 1 else x


class Chip:
    """The programmed states of every analog layer of one model, plus that model's digital parts.

    Build with :func:`program` or :meth:`Chip.load` (``Chip.load(path, model=converted_model)``). Attributes: ``seed``, ``layer_names``,
    ``layer_seeds``, ``states`` (``{name: ProgrammedState or tuple per group}``), ``model`` (the
    chip's private eval-mode copy; treat it as read-only).
    """

    def __init__(self, model: nn.Module, states: dict[str, Any], *, seed: int, layer_seeds: list[int]):
        self.model = model
        self.states = dict(states)
        self.seed = int(seed)
        self.layer_names = [n for n, _ in analog_layers(model)]
        self.layer_seeds = [int(s) for s in layer_seeds]
        if list(self.states) != self.layer_names or len(self.layer_seeds) != len(self.layer_names):
            raise StateFormatError(
                f"chip states {list(self.states)} / {len(self.layer_seeds)} seeds do not match the model's analog layers {self.layer_names}"
            )
        self._comp_cache: dict[str, dict[str, Any]] = {}
        self.model.eval()
        for p in self.model.parameters():  # the chip is read, never trained
            p.requires_grad_(False)

    # ------------------------------------------------------------------ info
    @property
    def profiles(self) -> dict[str, Any]:
        return {n: layer.profile for n, layer in analog_layers(self.model)}

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(s, "nbytes", 0) for st in self.states.values() for s in _as_tuple(st)))

    def __repr__(self) -> str:
        profs = sorted({p.name for p in self.profiles.values()})
        return f"Chip(seed={self.seed}, layers={self.layer_names}, profiles={profs}, nbytes={self.nbytes})"

    def fingerprint(self) -> str:
        """A hash of what determines the chip: model weights and structure, profiles, seeds."""
        h = hashlib.sha256()
        for k, v in self.model.state_dict().items():
            h.update(k.encode())
            if isinstance(v, torch.Tensor):
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(repr(self.model).encode())
        for p in self.profiles.values():
            h.update(p.model_dump_json().encode())
        h.update(json.dumps([self.seed, self.layer_seeds]).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------ generators
    def read_rng(self, t_s: float) -> dict[str, Any]:
        """The read generator(s) of each layer at time ``t_s`` (one per group for grouped convs).

        Keyed by (layer seed, group, t) only: the same time gives the same 1/f realisation and
        per-read noise in any process, in any order.
        """
        t = check_time(t_s)
        out = {}
        for name, ls in zip(self.layer_names, self.layer_seeds):
            n = len(_as_tuple(self.states[name]))
            out[name] = _untuple(
                tuple(read_generator(ls, g, t) for g in range(n))
            )
        return out

    def compensator(self, kind: str = "global") -> dict[str, Any] | None:
        """Per-layer drift-compensation objects (``None`` for ``"none"``), calibrated once per chip
        right after programming (cached; a loaded chip recalibrates to the same factors)."""
        if check_compensation(kind) == "none":
            return None
        if kind not in self._comp_cache:
            comps = {}
            for i, name in enumerate(self.layer_names):
                rng = compensation_generator(self.seed, i)
                comps[name] = _untuple(tuple(make_compensation(kind, s, rng) for s in _as_tuple(self.states[name])))
            self._comp_cache[kind] = comps
        return self._comp_cache[kind]

    def _resolve_comp(self, compensation: Any) -> dict[str, Any] | None:
        if compensation is None or isinstance(compensation, str):
            return self.compensator(compensation or "none")
        if isinstance(compensation, dict):
            missing = [n for n in self.layer_names if n not in compensation]
            if missing:
                raise ParameterError(f"compensation dict lacks layers {missing}; use chip.compensator('global') or a name")
            return compensation
        raise ParameterError(
            f"compensation must be one of {list(COMPENSATIONS)}, None or chip.compensator(...) (got {type(compensation).__name__})"
        )

    # ------------------------------------------------------------------ reading
    def drifted(self, t_s: float, rng: dict[str, Any] | None = None) -> dict[str, Any]:
        """Each layer's ``DriftedState`` at ``t_s`` (drawn from ``rng``, default :meth:`read_rng`)."""
        t = check_time(t_s)
        rngs = self.read_rng(t) if rng is None else rng
        return {
            n: _untuple(tuple(s.drift(t, r) for s, r in zip(_as_tuple(self.states[n]), _as_tuple(rngs[n]))))
            for n in self.layer_names
        }

    def at(self, t_s: float, *, compensation: Any = "none", rng: dict[str, Any] | None = None) -> nn.Module:
        """The chip ``t_s`` seconds after programming, as a module used like the model in eval mode.

        ``compensation``: ``"none"``, ``"global"``, ``"per_column"``, ``"global_aihwkit"`` or :meth:`compensator`'s result.
        ``rng``: per-layer read generators (default :meth:`read_rng` ``(t_s)``); they advance with
        every batch when the profile has per-read noise. The view shares the chip's parameters.
        """
        t = check_time(t_s)
        comps = self._resolve_comp(compensation)
        rngs = self.read_rng(t) if rng is None else rng
        snaps = self.drifted(t, rngs)
        # a structural copy sharing every tensor with the chip's model
        memo: dict[int, Any] = {id(p): p for p in self.model.parameters()}
        memo.update({id(b): b for b in self.model.buffers()})
        view = copy.deepcopy(self.model, memo)
        view.eval()
        for name, layer in analog_layers(view):
            comp = None
            if comps is not None:  # the reference readout at t, taken once, right after the drift draws
                comp = _untuple(
                    tuple(
                        ReadCompensation(c, d, r)
                        for c, d, r in zip(_as_tuple(comps[name]), _as_tuple(snaps[name]), _as_tuple(rngs[name]))
                    )
                )
            layer.attach_chip(snaps[name], rng=rngs[name], t_s=None, compensation=comp)
        return view

    def forward(self, x: torch.Tensor, *, t_s: float, compensation: Any = "none", rng: dict[str, Any] | None = None) -> torch.Tensor:
        """Outputs of the chip read ``t_s`` seconds after programming (no gradient)."""
        with torch.no_grad():
            return self.at(t_s, compensation=compensation, rng=rng)(x)

    __call__ = forward

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the chip to directory ``path``: ``chip.json`` (the manifest: seeds, layers, and the
        sha256 of every other file), ``state_dict.pt`` (the chip's weights) and one state file per
        layer (and group), each written atomically. :meth:`load` gives back the same bits."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        files: dict[str, list[str]] = {}
        sums: dict[str, str] = {}
        for i, name in enumerate(self.layer_names):
            files[name] = []
            for g, s in enumerate(_as_tuple(self.states[name])):
                fname = f"layer{i:03d}_g{g:03d}.npz"
                s.save(path / fname)
                files[name].append(fname)
                sums[fname] = read_checksum(path / fname) or ""
        sd = self.model.state_dict()
        sums[_WEIGHTS] = atomic_save(path / _WEIGHTS, lambda f: torch.save(sd, f))
        manifest = {
            "format": CHIP_FORMAT,
            "seed": self.seed,
            "layers": self.layer_names,
            "layer_seeds": self.layer_seeds,
            "state_files": files,
            "profiles": {n: p.name for n, p in self.profiles.items()},
            "sha256": sums,
        }
        atomic_write_text(path / _MANIFEST, json.dumps(manifest, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, *, model: nn.Module | None = None) -> "Chip":
        """Read a chip written by :meth:`save` into ``model``: the same architecture, converted
        (``cimsim.nn.convert``), whose weights are replaced by the saved ones.

        Nothing is unpickled: the weights are read with ``torch.load(weights_only=True)``. Every
        file is checked against the sha256 its manifest records (files of two chips mixed in one
        directory, or a damaged file, raise StateFormatError), and every state file's arrays
        against its profile (:meth:`ProgrammedState.load`).
        """
        path = Path(path)
        if model is None:
            raise ParameterError(
                f"Chip.load needs the model the chip was programmed from, converted: Chip.load({str(path)!r}, "
                f"model=converted_model) (e.g. converted_model = cimsim.nn.convert(build_model(), 'pcm')); "
                f"a chip directory holds weights, never pickled code"
            )
        if not isinstance(model, nn.Module):
            raise ParameterError(f"Chip.load(path, model=...) needs a converted torch nn.Module (got {type(model).__name__})")
        manifest = _read_manifest(path)
        net = copy.deepcopy(model)
        wpath = path / _WEIGHTS
        raw = read_verified(wpath, expected=manifest["sha256"][_WEIGHTS])
        try:
            weights = torch.load(io.BytesIO(raw), weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a format problem
            raise StateFormatError(f"{wpath}: not a torch state_dict ({type(exc).__name__}: {exc}); save the chip again") from None
        try:
            net.load_state_dict(weights)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise StateFormatError(f"the model given to Chip.load does not match the saved chip ({exc})") from exc
        net.eval()
        names = [n for n, _ in analog_layers(net)]
        if names != manifest["layers"]:
            raise StateFormatError(f"the saved chip has analog layers {manifest['layers']}, the model {names}")
        states = {}
        for name in names:
            states[name] = _untuple(tuple(
                ProgrammedState.load(path / f, sha256=manifest["sha256"][f]) for f in manifest["state_files"][name]
            ))
        return cls(net, states, seed=manifest["seed"], layer_seeds=manifest["layer_seeds"])


def _read_manifest(path: Path) -> dict[str, Any]:
    """``chip.json`` of the chip at ``path``, checked: its checksum, format and every field."""
    mpath = path / _MANIFEST
    if not mpath.is_file():
        raise StateFormatError(f"no chip at {path} (missing chip.json); write one with chip.save(path)")
    try:
        manifest = json.loads(read_verified(mpath).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateFormatError(f"{mpath} is not valid JSON ({exc}); save the chip again") from None
    if not isinstance(manifest, dict):
        raise StateFormatError(f"{mpath}: expected a JSON object, got {type(manifest).__name__}; save the chip again")
    if manifest.get("format") != CHIP_FORMAT:
        raise StateFormatError(
            f"{mpath}: format {manifest.get('format')!r}, expected {CHIP_FORMAT!r} (a chip saved by an older cimsim: "
            f"program and save it again)"
        )

    def field(key: str, ok: bool, what: str) -> None:
        if not ok:
            raise StateFormatError(f"{mpath}: field {key!r} must be {what} (got {manifest.get(key)!r}); save the chip again")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    field("seed", is_int(manifest.get("seed")), "an int")
    layers: Any = manifest.get("layers")
    seeds: Any = manifest.get("layer_seeds")
    field("layers", isinstance(layers, list) and all(isinstance(n, str) for n in layers), "a list of layer names")
    field("layer_seeds", isinstance(seeds, list) and all(is_int(v) for v in seeds), "a list of ints, one per layer")
    sums: Any = manifest.get("sha256")
    field("sha256", isinstance(sums, dict) and all(isinstance(v, str) for v in sums.values()), "{file: sha256 hex}")
    files: Any = manifest.get("state_files")
    field("state_files", isinstance(files, dict) and set(files) == set(layers)
          and all(isinstance(v, list) and v and all(isinstance(f, str) for f in v) for v in files.values()),
          "{layer: [state file names]} for every layer")
    for f in [_WEIGHTS, *(f for v in files.values() for f in v)]:
        if Path(f).name != f or f.startswith("."):
            raise StateFormatError(f"{mpath}: {f!r} is not a plain file name in the chip directory; save the chip again")
        if f not in sums:
            raise StateFormatError(f"{mpath}: no sha256 recorded for {f}; save the chip again")
    return manifest


def program(model: nn.Module, *, seed: int) -> Chip:
    """Program every analog layer of ``model`` once onto a new :class:`Chip` (``model`` is not changed).

    Layer ``i`` (``cimsim.nn.analog_layers`` order) gets ``layer_seed(seed, i)`` and is programmed
    with ``layer.program(that seed)``: the chip a hardware-mode forward with that seed programs.
    """
    seed = check_seed(seed, example="program(model, seed=0)")
    if not isinstance(model, nn.Module):
        raise ParameterError(f"program() needs a torch nn.Module with analog layers (got {type(model).__name__})")
    net = copy.deepcopy(model)
    net.eval()
    layers = analog_layers(net)
    if not layers:
        raise ParameterError(
            f"the model ({type(model).__name__}) has no analog layers to program: convert it first, e.g. "
            f"model = cimsim.nn.convert(model, 'pcm'); then cimsim.program(model, seed={seed})"
        )
    states, seeds = {}, []
    for i, (name, layer) in enumerate(layers):
        layer.detach_chip()
        s = layer_seed(seed, i)
        seeds.append(s)
        states[name] = layer.program(s)
    return Chip(net, states, seed=seed, layer_seeds=seeds)
