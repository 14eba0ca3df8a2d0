"""Measurement rows -> cells: one cell per device and read time, the mean and the sample
variance of its repeated reads, on a device x time grid.

Reads of one device whose times lie within 1 % of the previous read's (sorted by time) form
one cell (repeated reads at "nearly the same" time); the cells' times are then grouped the same
way across devices into the time grid.  The checks of what each fit needs (devices per level,
read times per device) live here, each a :class:`~cimsim.errors.DataError` that says how many
are needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .table import MeasurementTable

__all__ = ["MIN_DEVICES_PER_LEVEL", "MIN_TIMES_DRIFT", "Cells", "make_cells"]

#: devices per target level a spread (programming noise, nu spread) needs at the least
MIN_DEVICES_PER_LEVEL = 10
#: read times per device the per-device drift fit needs (2 parameters + a residual)
MIN_TIMES_DRIFT = 3
_SAME_TIME_REL = 0.01


@dataclass(frozen=True)
class Cells:
    """The device x time grid: ``g`` mean read (µS, NaN where no read), ``n`` reads, ``v`` sample
    variance of the reads (NaN with one read), ``t_s`` grid times [n_t], ``target`` [n_dev],
    ``level`` index of each device's target in ``levels_us``, ``ids`` the device ids."""

    g: np.ndarray
    n: np.ndarray
    v: np.ndarray
    t_s: np.ndarray
    target: np.ndarray
    level: np.ndarray
    levels_us: np.ndarray
    ids: np.ndarray
    n_rows: int

    @property
    def n_dev(self) -> int:
        return int(self.g.shape[0])

    @property
    def has_repeats(self) -> bool:
        return bool(np.any(self.n >= 2))


def _groups(t_sorted: np.ndarray, new_block: np.ndarray) -> np.ndarray:
    """Group index of each sorted time: a new group where ``new_block`` or t > 1.01 t_prev."""
    start = np.ones(t_sorted.shape[0], bool)
    start[1:] = new_block[1:] | (t_sorted[1:] > t_sorted[:-1] * (1 + _SAME_TIME_REL))
    return np.cumsum(start) - 1


def make_cells(tab: MeasurementTable) -> Cells:
    ids, dev = np.unique(tab.device, return_inverse=True)
    dev = dev.ravel()
    order = np.lexsort((tab.t_s, dev))
    d_s, t_s, g_s = dev[order], tab.t_s[order], tab.g_us[order]
    newdev = np.ones(d_s.shape[0], bool)
    newdev[1:] = d_s[1:] != d_s[:-1]
    cell = _groups(t_s, newdev)
    n_cells = int(cell[-1]) + 1
    cnt = np.bincount(cell, minlength=n_cells).astype(np.float64)
    mean = np.bincount(cell, g_s, n_cells) / cnt
    tmean = np.bincount(cell, t_s, n_cells) / cnt
    dev_c = np.zeros(n_cells, np.int64)
    dev_c[cell] = d_s
    ss = np.bincount(cell, (g_s - mean[cell]) ** 2, n_cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(cnt >= 2, ss / (cnt - 1), np.nan)
    # the time grid over all cells
    o = np.argsort(tmean, kind="stable")
    tg = np.empty(n_cells, np.int64)
    tg[o] = _groups(tmean[o], np.zeros(n_cells, bool))
    n_t = int(tg.max()) + 1
    grid_t = np.bincount(tg, tmean, n_t) / np.bincount(tg, minlength=n_t)
    n_dev = ids.shape[0]
    G = np.full((n_dev, n_t), np.nan)
    N = np.zeros((n_dev, n_t))
    V = np.full((n_dev, n_t), np.nan)
    # two cells of one device in one grid time (reads 1-2 % apart): keep them apart as one cell
    # each is impossible on a grid, so merge them (weighted by their read counts)
    flat = dev_c * n_t + tg
    if np.unique(flat).shape[0] != n_cells:
        w_sum = np.bincount(flat, cnt, n_dev * n_t)
        g_sum = np.bincount(flat, cnt * mean, n_dev * n_t)
        has = w_sum > 0
        G.ravel()[has] = g_sum[has] / w_sum[has]
        N.ravel()[has] = w_sum[has]
    else:
        G.ravel()[flat] = mean
        N.ravel()[flat] = cnt
        V.ravel()[flat] = var
    target = np.zeros(n_dev)
    target[dev] = tab.g_target_us
    levels, level = np.unique(target, return_inverse=True)
    return Cells(g=G, n=N, v=V, t_s=grid_t, target=target, level=level.ravel(), levels_us=levels, ids=ids,
                 n_rows=len(tab))


def check_cells(c: Cells, source: str) -> bool:
    """Raise DataError when a level has too few devices, or a device too few read times for the
    drift fit; return whether drift is to be fitted (False when the table has one read time)."""
    counts = np.bincount(c.level, minlength=c.levels_us.shape[0])
    few = np.flatnonzero(counts < MIN_DEVICES_PER_LEVEL)
    if few.size:
        k = int(few[0])
        raise DataError(
            f"{source}: target level g_target_us={c.levels_us[k]:g} has {int(counts[k])} device(s) (column 'g_target_us'); "
            f"fitting the programming spread needs at least {MIN_DEVICES_PER_LEVEL} devices per level "
            f"(100 or more for a spread within ~10 %); {few.size} level(s) short: "
            f"{', '.join(f'{c.levels_us[i]:g}' for i in few[:6])}"
        )
    n_times = np.sum(np.isfinite(c.g), axis=1)
    if c.t_s.shape[0] == 1:
        return False
    short = np.flatnonzero(n_times < MIN_TIMES_DRIFT)
    if short.size:
        i = int(short[0])
        raise DataError(
            f"{source}: device {c.ids[i].item()!r} was read at {int(n_times[i])} time(s) (column 't_s'); the drift fit needs at "
            f"least {MIN_TIMES_DRIFT} read times per device (better 6 or more, spread over decades, the first well "
            f"before t0), or a single read time for all devices to fit without drift; {short.size} device(s) short"
        )
    return True
