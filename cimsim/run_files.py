"""The files of a run directory (see :mod:`cimsim.runs`): ``run.json`` checked field by field,
and the training checkpoints (the last one and the one before it).

A checkpoint is written atomically with its sha256 (:mod:`cimsim._io`); before a new one is
written the last one becomes ``checkpoint.prev.pt`` (its checksum file moved first), so a crash
at any moment leaves at least one checkpoint that passes its checksum, and a resumed run starts
from the newest such one.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from ._io import atomic_save, read_verified, sidecar_path
from .errors import StateFormatError
from .nn import MODES
from .rng import SEED_HIGH

__all__ = ["RUN_FORMAT", "CHECKPOINT_FORMAT", "MODEL_NAMES", "read_spec", "checkpoints", "save_checkpoint", "load_checkpoint"]

RUN_FORMAT = "cimsim.run/2"
_RUN_FORMAT_1 = "cimsim.run/1"  # without checksums: still read
CHECKPOINT_FORMAT = "cimsim.checkpoint/1"
_CHECKSUMMED = ("model.pt", "profile.yaml")
MODEL_NAMES = ("mlp", "lenet")


def read_spec(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of ``run_dir``, its checksum and every field checked."""
    sp = run_dir / "run.json"
    if not sp.is_file():
        raise StateFormatError(f"{run_dir} is not a cimsim run (no run.json); create one with `cimsim train --out {run_dir}`")
    raw = read_verified(sp, required=False)
    try:
        spec = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateFormatError(f"{sp} is not valid JSON ({exc}); train the run again (cimsim train --out {run_dir})") from None
    if not isinstance(spec, dict):
        raise StateFormatError(f"{sp}: expected a JSON object (got {type(spec).__name__}); train the run again")
    fmt = spec.get("format")
    if fmt not in (RUN_FORMAT, _RUN_FORMAT_1):
        raise StateFormatError(f"{sp}: format {fmt!r}, expected {RUN_FORMAT!r}")
    if fmt == RUN_FORMAT:
        read_verified(sp)  # a current run always has the checksum file

    def bad(key: str, what: str) -> StateFormatError:
        return StateFormatError(f"{sp}: {key} must be {what} (got {spec.get(key)!r}); fix the field or train the run again")

    def is_int(v: Any, low: int = 0) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    if spec.get("model") not in MODEL_NAMES:
        raise bad("model", f"one of {list(MODEL_NAMES)}")
    shape = spec.get("input_shape")
    if not (isinstance(shape, list) and shape and all(is_int(v, 1) for v in shape)):
        raise bad("input_shape", "a list of positive ints")
    if not is_int(spec.get("n_classes"), 2):
        raise bad("n_classes", "an int >= 2")
    hidden = spec.get("hidden")
    if hidden is not None and not (isinstance(hidden, list) and all(is_int(v, 1) for v in hidden)):
        raise bad("hidden", "a list of positive ints or null")
    if spec.get("mode") not in MODES:
        raise bad("mode", f"one of {list(MODES)}")
    if not is_int(spec.get("seed")) or spec["seed"] > SEED_HIGH:
        raise bad("seed", "an int in [0, 2^63 - 1]")
    if not isinstance(spec.get("data"), str) or not (spec.get("data_root") is None or isinstance(spec.get("data_root"), str)):
        raise bad("data", "a data set name (and data_root a path or null)")
    if not is_int(spec.get("data_seed", 0)):
        raise bad("data_seed", "an int >= 0")
    sums = spec.get("sha256")
    if fmt == RUN_FORMAT and not (isinstance(sums, dict) and all(isinstance(sums.get(f), str) for f in _CHECKSUMMED)):
        raise bad("sha256", f"the checksums of {list(_CHECKSUMMED)}")
    return spec


def checkpoints(path: Path) -> tuple[Path, Path]:
    """The last checkpoint and the one before it."""
    return path, path.with_name(path.stem + ".prev" + path.suffix)


def save_checkpoint(path: Path, ck: dict[str, Any]) -> None:
    """Write ``ck`` atomically with its checksum; the previous checkpoint is kept as ``*.prev.pt``
    (its checksum moved first), so a crash at any point leaves at least one whole checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    last, prev = checkpoints(path)
    if last.is_file():
        if sidecar_path(last).is_file():
            os.replace(sidecar_path(last), sidecar_path(prev))
        os.replace(last, prev)
    atomic_save(path, lambda f: torch.save(ck, f))


def load_checkpoint(path: Path, spec: dict[str, Any], profile_yaml: str, echo) -> dict[str, Any] | None:
    """The last good checkpoint (``checkpoint.pt``, else ``checkpoint.prev.pt``) written by a run with
    exactly ``spec`` and profile, else None. A checkpoint that fails its checksum or cannot be read
    is skipped (said so); checkpoints of other settings are deleted."""
    for i, cand in enumerate(checkpoints(path)):
        if not cand.is_file():
            continue
        try:
            raw = read_verified(cand)
            ck = torch.load(io.BytesIO(raw), weights_only=True)
            if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
                raise StateFormatError(f"{cand}: not a cimsim training checkpoint")
        except Exception as exc:  # noqa: BLE001 - a damaged, truncated or foreign file: try the one before
            if echo:
                echo(f"discarding {cand}: it cannot be read ({type(exc).__name__}: {exc})")
            continue
        if ck.get("spec") != spec or ck.get("profile") != profile_yaml:
            if echo:
                echo(f"discarding {cand}: it was written with other settings; training from epoch 1")
            break
        if echo:
            note = "" if i == 0 else f" (the last good checkpoint; {path.name} was damaged)"
            echo(f"resuming from {cand} after epoch {ck['epoch']}{note}")
        return ck
    else:
        if echo and any(c.is_file() for c in checkpoints(path)):
            echo("no readable checkpoint left; training from epoch 1")
    for cand in checkpoints(path):
        cand.unlink(missing_ok=True)
        sidecar_path(cand).unlink(missing_ok=True)
    return None
