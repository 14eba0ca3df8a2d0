"""The resume file of a drift study: every finished point, one JSON line each.

With ``out=PATH`` every finished point is appended to ``PATH`` with the suffix
``.points.jsonl`` (:func:`points_path`; one JSON line per point, flushed immediately). The first
line fingerprints the study::

    {"format": "cimsim.drift_points/2", "fingerprint": <sha256 hex>, "study": {...}, "sha256": <16 hex>}

and every further line is one point::

    {"repeat": r, "chip_seed": s, "t_s": t, "score": v, "sha256": <16 hex>}

``sha256`` on each line is the first 16 hex digits of the sha256 of the line's other fields as
``json.dumps(..., sort_keys=True)`` (floats round-trip through JSON exactly, so the reader
recomputes it): a line that fails it (torn by an interruption, or damaged) is dropped with a
warning and that point is computed again. The header is written to a temporary file renamed
into place, so a file never exists without it.

The fingerprint (:func:`fingerprint`) hashes what determines a point's score: the model's
weights, structure and profiles (or the chip's own fingerprint), the data, the study seed,
compensation, metric, batch size and scored output field. Re-running with the same ``out`` reads the points already
there and computes only the missing ones; points are keyed by (chip seed, t), so adding times or
repeats to a finished study also re-uses what was computed. A file of another study is refused.
Files of the format ``cimsim.drift_points/1`` (no checksums) are still read and extended.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write_bytes
from ..errors import ParameterError, StateFormatError
from .chip import Chip, analog_layers
from .metrics import EvalData

__all__ = ["POINTS_FORMAT", "points_path", "fingerprint", "start_points", "append_point", "read_points"]

POINTS_FORMAT = "cimsim.drift_points/2"
POINTS_FORMAT_1 = "cimsim.drift_points/1"  # without checksums: still read
_READ_FORMATS = (POINTS_FORMAT, POINTS_FORMAT_1)


def points_path(out: str | Path) -> Path:
    """The file of finished points that belongs to the report path ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".points.jsonl") if out.suffix != ".json" else out.with_suffix(".points.jsonl")


def fingerprint(model: Any, data: EvalData, seed: int, compensation: str, metric: str, output_key: str | int | None = None) -> tuple[str, dict]:
    """``(sha256 hex, study dict)`` of a study of ``model`` (a converted model or a :class:`Chip`) on ``data``."""
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
    n_samples = data.digest(h)
    study = {"model": kind, "seed": seed, "compensation": compensation, "metric": metric, "n_samples": n_samples, "batch_size": data.batch_size}
    if output_key is not None:  # absent when None: fingerprints of earlier studies stay valid
        study["output_key"] = output_key
    h.update(json.dumps(study, sort_keys=True).encode())
    return h.hexdigest(), study


def _profile_yaml(layer: Any) -> str:
    prof = getattr(layer, "profile", None)
    if prof is None:
        return ""
    to_yaml = getattr(prof, "to_yaml", None)
    return to_yaml() if callable(to_yaml) else prof.model_dump_json()


def _digest(rec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(rec, sort_keys=True, allow_nan=True).encode()).hexdigest()[:16]


def _line(rec: dict[str, Any]) -> bytes:
    return (json.dumps({**rec, "sha256": _digest(rec)}, allow_nan=True) + "\n").encode()


def _checked(raw: bytes, *, need_sum: bool) -> dict[str, Any] | None:
    """The record of one line, or None if it is not JSON or fails its checksum."""
    try:
        rec = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(rec, dict):
        return None
    digest = rec.pop("sha256", None)
    if digest is None:
        return None if need_sum else rec
    return rec if digest == _digest(rec) else None


def start_points(path: Path, fingerprint: str, study: dict) -> dict[tuple[int, float], float]:
    """The points already in ``path`` (see :func:`read_points`); a new file gets its header line,
    written whole (a temporary file renamed into place)."""
    done = read_points(path, fingerprint)
    if not path.exists():
        atomic_write_bytes(path, _line({"format": POINTS_FORMAT, "fingerprint": fingerprint, "study": study}), checksum=False)
    return done


def append_point(path: str, rec: dict[str, Any]) -> None:
    """Append one point ``rec`` as a JSON line with its checksum."""
    line = _line(rec)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write per line: atomic append, also with several processes
    finally:
        os.close(fd)


def read_points(path: Path, fingerprint: str) -> dict[tuple[int, float], float]:
    """Points already computed: ``{(chip_seed, t_s): score}``. Lines that fail their checksum are dropped
    (with a warning). A file without a complete header line (left by a kill of an older cimsim while
    it was created) holds no points: it is removed, with a warning, and the study starts afresh."""
    if not path.exists():
        return {}
    raw_bytes = path.read_bytes()
    if b"\n" not in raw_bytes:
        warnings.warn(f"{path} has no complete header line (an interrupted start): starting the study afresh",
                      RuntimeWarning, stacklevel=3)
        path.unlink()
        return {}
    lines = raw_bytes.split(b"\n")
    try:
        header = json.loads(lines[0])
        if not isinstance(header, dict):
            raise TypeError(type(header).__name__)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
        raise StateFormatError(f"{path} is not a cimsim points file (unreadable first line); delete it or pass another out path") from None
    fmt = header.get("format")
    if fmt not in _READ_FORMATS:
        raise StateFormatError(f"{path} is not a cimsim points file (format {fmt!r}); delete it or pass another out path")
    need_sum = fmt != POINTS_FORMAT_1
    if need_sum and _checked(lines[0], need_sum=True) is None:
        raise StateFormatError(f"{path}: its header line fails its checksum (damaged); delete the file or pass another out path")
    if header.get("fingerprint") != fingerprint:
        raise ParameterError(
            f"{path} holds points of a different study (another model, profile, data set, seed, compensation or "
            f"metric: {header.get('study')}); pass another out path to start a new study, or delete the file"
        )
    if not raw_bytes.endswith(b"\n"):
        with open(path, "ab") as f:  # close a line torn by an interruption before appending more
            f.write(b"\n")
    done: dict[tuple[int, float], float] = {}
    dropped = 0
    for raw in lines[1:]:
        if not raw.strip():
            continue
        rec = _checked(raw, need_sum=need_sum)
        try:
            if rec is None:
                raise ValueError("checksum")
            done[(int(rec["chip_seed"]), float(rec["t_s"]))] = float(rec["score"])
        except (KeyError, TypeError, ValueError):
            dropped += 1  # torn by an interruption or damaged: that point is recomputed
    if dropped:
        warnings.warn(f"{path}: dropped {dropped} line(s) that are torn or fail their checksum; those points are computed again",
                      RuntimeWarning, stacklevel=3)
    return done
