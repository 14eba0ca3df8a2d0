"""The resume file of a drift study: every finished point, one JSON line each.

With ``out=PATH`` every finished point is appended to ``PATH`` with the suffix
``.points.jsonl`` (:func:`points_path`; one JSON line per point, flushed immediately). The first
line fingerprints the study::

    {"format": "cimsim.drift_points/1", "fingerprint": <sha256 hex>, "study": {...}}

and every further line is one point::

    {"repeat": r, "chip_seed": s, "t_s": t, "score": v}

The fingerprint (:func:`fingerprint`) hashes what determines a point's score: the model's
weights, structure and profiles (or the chip's own fingerprint), the data, the study seed,
compensation, metric and batch size. Re-running with the same ``out`` reads the points already
there and computes only the missing ones; points are keyed by (chip seed, t), so adding times or
repeats to a finished study also re-uses what was computed. A file of another study is refused,
and a line torn by an interruption is ignored (that point is computed again).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ParameterError, StateFormatError
from .chip import Chip, analog_layers

__all__ = ["POINTS_FORMAT", "points_path", "fingerprint", "start_points", "append_point", "read_points"]

POINTS_FORMAT = "cimsim.drift_points/1"


def points_path(out: str | Path) -> Path:
    """The file of finished points that belongs to the report path ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".points.jsonl") if out.suffix != ".json" else out.with_suffix(".points.jsonl")


def fingerprint(model: Any, x: torch.Tensor, y: torch.Tensor, seed: int, compensation: str, metric: str, batch_size: int) -> tuple[str, dict]:
    """``(sha256 hex, study dict)`` of a study of ``model`` (a converted model or a :class:`Chip`)."""
    h = hashlib.sha256()
    if isinstance(model, Chip):
        h.update(model.fingerprint().encode())
        kind = "chip"
    else:
        for k, v in model.state_dict().items():
            h.update(k.encode())
            if isinstance(v, torch.Tensor):
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(repr(model).encode())

        for name, layer in analog_layers(model):
            h.update(name.encode())
            h.update(_profile_yaml(layer).encode())
        kind = type(model).__name__
    h.update(x.numpy().tobytes())
    h.update(y.numpy().tobytes())
    study = {"model": kind, "seed": seed, "compensation": compensation, "metric": metric, "n_samples": len(x), "batch_size": batch_size}
    h.update(json.dumps(study, sort_keys=True).encode())
    return h.hexdigest(), study


def _profile_yaml(layer: Any) -> str:
    prof = getattr(layer, "profile", None)
    if prof is None:
        return ""
    to_yaml = getattr(prof, "to_yaml", None)
    return to_yaml() if callable(to_yaml) else prof.model_dump_json()


def start_points(path: Path, fingerprint: str, study: dict) -> dict[tuple[int, float], float]:
    """The points already in ``path`` (see :func:`read_points`); a new file gets its header line."""
    done = read_points(path, fingerprint)
    if not path.exists():
        path.write_text(json.dumps({"format": POINTS_FORMAT, "fingerprint": fingerprint, "study": study}) + "\n")
    return done


def append_point(path: str, rec: dict[str, Any]) -> None:
    """Append one point ``rec`` as a JSON line."""
    line = (json.dumps(rec, allow_nan=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write per line: atomic append, also with several processes
    finally:
        os.close(fd)


def read_points(path: Path, fingerprint: str) -> dict[tuple[int, float], float]:
    """Points already computed: ``{(chip_seed, t_s): score}``. A torn last line is ignored."""
    if not path.exists():
        return {}
    raw_bytes = path.read_bytes()
    lines = raw_bytes.split(b"\n")
    try:
        header = json.loads(lines[0])
    except (json.JSONDecodeError, IndexError):
        raise StateFormatError(f"{path} is not a cimsim points file (unreadable first line); delete it or pass another out path")
    if header.get("format") != POINTS_FORMAT:
        raise StateFormatError(f"{path} is not a cimsim points file (format {header.get('format')!r}); delete it or pass another out path")
    if header.get("fingerprint") != fingerprint:
        raise ParameterError(
            f"{path} holds points of a different study (another model, profile, data set, seed, compensation or "
            f"metric: {header.get('study')}); pass another out path to start a new study, or delete the file"
        )
    if not raw_bytes.endswith(b"\n"):
        with open(path, "ab") as f:  # close a line torn by an interruption before appending more
            f.write(b"\n")
    done: dict[tuple[int, float], float] = {}
    for raw in lines[1:]:
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            done[(int(rec["chip_seed"]), float(rec["t_s"]))] = float(rec["score"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # a line torn by the interruption: that point is recomputed
    return done
