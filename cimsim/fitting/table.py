"""The measurement table: one row per read of one device, units in the column names.

=============== ==================================================================
column          meaning
=============== ==================================================================
``device``      device id (any value; one programming event per device)
``g_target_us`` the programming target of that device, µS
``t_s``         time of the read since the end of programming, seconds (> 0)
``g_us``        the measured conductance, µS (>= 0)
``read``        optional: index of repeated reads of one device at (nearly) one ``t_s``
=============== ==================================================================

:class:`MeasurementTable` holds the columns as numpy arrays (no pandas needed); it reads and
writes CSV (the ``csv`` module), NPZ (numpy, ``allow_pickle=False``) and, when pyarrow or pandas
is installed, Parquet; it accepts a pandas DataFrame or a dict of columns.  :func:`check_table`
raises :class:`~cimsim.errors.DataError` naming the row(s) and column of every problem and the
fix (columns in other units, NaN/Inf, negative conductances, times <= 0, a device with two
targets).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["COLUMNS", "MeasurementTable", "as_table", "check_table", "read_table"]

#: required columns, in the order written
COLUMNS = ("device", "g_target_us", "t_s", "g_us")

# columns in other units: column -> (what it holds, the column cimsim reads, the conversion)
_OTHER_UNITS: dict[str, tuple[str, str, str]] = {}
for _pre, _col in (("g", "g_us"), ("g_target", "g_target_us")):
    for _u, _name, _f in (("s", "S", "* 1e6"), ("ms", "mS", "* 1e3"), ("ns", "nS", "/ 1e3")):
        _OTHER_UNITS[f"{_pre}_{_u}"] = (f"conductance in {_name}", _col, f"{_col} = {_pre}_{_u} {_f}")
    _r = "r" if _pre == "g" else "r_target"
    for _u, _name, _f in (("ohm", "ohm", "1e6 /"), ("kohm", "kohm", "1e3 /"), ("mohm", "Mohm", "1 /")):
        _OTHER_UNITS[f"{_r}_{_u}"] = (f"resistance in {_name}", _col, f"{_col} = {_f} {_r}_{_u}")
for _u, _f in (("ms", "/ 1e3"), ("us", "/ 1e6"), ("min", "* 60"), ("h", "* 3600"), ("d", "* 86400")):
    _OTHER_UNITS[f"t_{_u}"] = (f"time in {_u}", "t_s", f"t_s = t_{_u} {_f}")


def _rows(idx: np.ndarray, limit: int = 8) -> str:
    """Row numbers (0-based, as in the file's data rows) for a message, the first ``limit``."""
    idx = np.asarray(idx).ravel()
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    more = f" and {idx.size - limit} more" if idx.size > limit else ""
    return f"row{'s' if idx.size > 1 else ''} {shown}{more}"


@dataclass(frozen=True)
class MeasurementTable:
    """One row per read: ``device``, ``g_target_us``, ``t_s``, ``g_us``, ``read`` (numpy arrays).

    ``source`` names where the rows came from (a file name, or a description), ``sha256`` the
    digest of that file's bytes (or of the columns for a table made in memory).
    """

    device: np.ndarray
    g_target_us: np.ndarray
    t_s: np.ndarray
    g_us: np.ndarray
    read: np.ndarray
    source: str = "<memory>"
    sha256: str = ""

    def __len__(self) -> int:
        return int(self.g_us.shape[0])

    @property
    def n_devices(self) -> int:
        return int(np.unique(self.device).shape[0])

    def columns(self) -> dict[str, np.ndarray]:
        """The five columns as a dict of arrays."""
        return {"device": self.device, "g_target_us": self.g_target_us, "t_s": self.t_s, "g_us": self.g_us,
                "read": self.read}

    def to_pandas(self) -> Any:
        """A pandas DataFrame of the columns (needs pandas: ``pip install 'cimsim[fit]'``)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise DataError("to_pandas needs pandas: pip install 'cimsim[fit]' (or pandas>=2)") from exc
        return pd.DataFrame(self.columns())

    def save(self, path: str | Path) -> Path:
        """Write the table to ``path``: ``.csv``, ``.npz`` or ``.parquet`` (by the suffix)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(COLUMNS + ("read",))
            for d, gt, t, g, r in zip(self.device.tolist(), self.g_target_us.tolist(), self.t_s.tolist(),
                                      self.g_us.tolist(), self.read.tolist()):
                w.writerow([d, repr(gt), repr(t), repr(g), r])
            path.write_text(buf.getvalue(), encoding="utf-8")
        elif suffix == ".npz":
            dev = self.device if self.device.dtype.kind in "iuf" else self.device.astype(str)
            np.savez(path, device=dev, g_target_us=self.g_target_us, t_s=self.t_s, g_us=self.g_us, read=self.read)
        elif suffix == ".parquet":
            self.to_pandas().to_parquet(path, index=False)
        else:
            raise DataError(f"{path}: unknown table format {suffix!r}; write .csv, .npz or .parquet")
        return path


def _digest_columns(cols: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(cols):
        a = np.asarray(cols[k])
        h.update(k.encode())
        h.update(a.astype(str).tobytes() if a.dtype.kind not in "iufb" else np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{path}: empty file; a measurement table needs a header row {', '.join(COLUMNS)} and data rows")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        vals = [r[j].strip() if j < len(r) else "" for r in body]
        if name == "device":
            try:
                out[name] = np.asarray([int(v) for v in vals], dtype=np.int64)
            except ValueError:
                out[name] = np.asarray(vals, dtype=str)
            continue
        num = np.empty(len(vals))
        for i, v in enumerate(vals):
            try:
                num[i] = float(v) if v != "" else np.nan
            except ValueError:
                raise DataError(f"{path}: column {name!r} row {i}: {v!r} is not a number; write a decimal number") from None
        out[name] = num
    return out


def read_table(path: str | Path) -> MeasurementTable:
    """Read and check a measurement table from a ``.csv``, ``.npz`` or ``.parquet`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give a measurement table (.csv, .npz or .parquet)")
    suffix = path.suffix.lower()
    cols: dict[str, Any]
    if suffix == ".csv":
        cols = _read_csv(path)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            cols = {k: z[k] for k in z.files}
    elif suffix == ".parquet":
        try:
            import pandas as pd

            cols = {k: v.to_numpy() for k, v in pd.read_parquet(path).items()}
        except ImportError as exc:
            raise DataError(
                f"{path}: reading Parquet needs pandas with pyarrow: pip install 'cimsim[fit]' pyarrow "
                "(or save the table as .csv / .npz)"
            ) from exc
    else:
        raise DataError(f"{path}: unknown table format {suffix!r}; give a .csv, .npz or .parquet file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return check_table(cols, source=path.name, sha256=digest)


def as_table(data: Any) -> MeasurementTable:
    """``data`` (a MeasurementTable, a path, a pandas DataFrame or a dict of columns), checked."""
    if isinstance(data, MeasurementTable):
        return check_table(data.columns(), source=data.source, sha256=data.sha256)
    if isinstance(data, (str, Path)):
        return read_table(data)
    if hasattr(data, "to_numpy") and hasattr(data, "columns") and hasattr(data, "items"):  # a pandas DataFrame
        return check_table({str(k): v.to_numpy() for k, v in data.items()}, source="<DataFrame>")
    if isinstance(data, Mapping):
        return check_table(dict(data), source="<dict>")
    raise DataError(
        f"measurement data must be a file path (.csv/.npz/.parquet), a pandas DataFrame, a dict of columns or a "
        f"MeasurementTable (got {type(data).__name__})"
    )


def check_table(cols: Mapping[str, Any], *, source: str = "<memory>", sha256: str = "") -> MeasurementTable:
    """The columns as a :class:`MeasurementTable`, or a DataError naming rows, column and fix."""
    names = list(cols)
    for name in names:
        if name in _OTHER_UNITS:
            what, want, fix = _OTHER_UNITS[name]
            raise DataError(
                f"{source}: column {name!r} holds {what}; cimsim reads {want!r} (units in the name): convert it, "
                f"{fix}, and rename the column"
            )
    missing = [c for c in COLUMNS if c not in cols]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {missing} (got columns {names}); a measurement table needs "
            f"{', '.join(COLUMNS)} (+ optional read), one row per read"
        )
    n = len(np.asarray(cols["g_us"]))
    if n == 0:
        raise DataError(f"{source}: the table has no rows; give one row per read")
    lens = {c: len(np.asarray(cols[c])) for c in names if c in COLUMNS or c == "read"}
    if len(set(lens.values())) > 1:
        raise DataError(f"{source}: columns of different lengths {lens}; every column needs one value per row")
    num: dict[str, np.ndarray] = {}
    for c in ("g_target_us", "t_s", "g_us"):
        try:
            a = np.asarray(cols[c], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{source}: column {c!r} must hold numbers ({exc})") from None
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise DataError(
                f"{source}: column {c!r} has NaN/Inf in {_rows(bad)} (values {a[bad[:3]].tolist()}); drop those rows "
                "or fill in the measured values"
            )
        num[c] = a
    for c in ("g_target_us", "g_us"):
        bad = np.flatnonzero(num[c] < 0)
        if bad.size:
            raise DataError(
                f"{source}: column {c!r} has negative conductances in {_rows(bad)} (values {num[c][bad[:3]].tolist()}); "
                "a conductance is >= 0 µS: subtract no baseline, or drop the rows"
            )
    bad = np.flatnonzero(num["t_s"] <= 0)
    if bad.size:
        raise DataError(
            f"{source}: column 't_s' has times <= 0 in {_rows(bad)} (values {num['t_s'][bad[:3]].tolist()}); t_s is the "
            "time since the end of programming, > 0 s (a read right after programming takes a few ms: write that)"
        )
    device = np.asarray(cols["device"])
    if device.dtype.kind == "O":
        device = device.astype(str)
    if "read" in cols:
        read = np.asarray(cols["read"])
        if read.dtype.kind == "f":
            badr = np.flatnonzero(~np.isfinite(read) | (read < 0) | (read != np.round(read)))
            if badr.size:
                raise DataError(f"{source}: column 'read' must hold integers >= 0; bad in {_rows(badr)}")
        read = read.astype(np.int64)
    else:
        read = np.zeros(n, np.int64)
    # one target per device
    codes, inv = np.unique(device, return_inverse=True)
    inv = inv.ravel()
    tmin = np.full(codes.shape[0], np.inf)
    tmax = np.full(codes.shape[0], -np.inf)
    np.minimum.at(tmin, inv, num["g_target_us"])
    np.maximum.at(tmax, inv, num["g_target_us"])
    two = np.flatnonzero(tmax > tmin)
    if two.size:
        d = codes[two[0]].item()
        rows = np.flatnonzero(inv == two[0])
        vals = np.unique(num["g_target_us"][rows]).tolist()
        raise DataError(
            f"{source}: device {d!r} has two targets {vals} ({_rows(rows)}, column 'g_target_us'); one device is one "
            f"programming event: give each programming its own device id ({two.size} device(s) affected)"
        )
    return MeasurementTable(device=device, g_target_us=num["g_target_us"], t_s=num["t_s"], g_us=num["g_us"], read=read,
                            source=source, sha256=sha256 or _digest_columns({**num, "device": device, "read": read}))
