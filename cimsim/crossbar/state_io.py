"""The checks a state file passes before any kernel sees its arrays.

The kernels index the arrays of a :class:`~cimsim.crossbar.state.ProgrammedState` by the
shape and tile grid of its profile and never check them; a file whose arrays do not fit (cut,
of another dtype, NaN, fault codes out of range) would read past their ends.  So a loaded state
must satisfy, with ``[out, in]`` its device shape, ``T_in`` / ``T_out`` the input / output tile
counts of the profile's tile and ``n_conv`` = 2 with digital subtraction, else 1:

* g_pos ``[out, in]``; g_neg ``[out, in]`` (differential) or ``[T_out, in]`` (single_reference);
  float32 or float64 (both the same), finite, ``0 <= G <= 10 g_max`` (noise may exceed g_max);
* nu_pos / nu_neg like g_pos / g_neg, finite, ``>= 0``, both present or both absent, and only
  when the profile has drift (a chip programmed ``with_drift=False`` has none);
* fault_pos / fault_neg like g_pos / g_neg, int8 codes in {0, 1, 2}, present exactly when the
  profile has stuck-at faults;
* scales ``[T_in, out]``, finite; adc_gain / adc_offset_lsb ``[n_conv, T_in, out]``, finite;
  adc_bound (if any) ``[T_in, out]``, finite, ``>= 0``; dac_bound (if any) finite, ``>= 0``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..devices.programming import programming_plan
from ..errors import StateFormatError
from ..profiles.schema import DeviceProfile
from .tiling import TileGrid

__all__ = ["check_state_arrays", "G_SLACK"]

#: conductances up to this multiple of g_max are accepted (programming noise and device-to-device
#: variability may put a device above g_max when the profile does not clip)
G_SLACK = 10.0

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(a: np.ndarray) -> str:
    return f"shape {tuple(a.shape)} dtype {a.dtype}"


def check_state_arrays(path: str, profile: DeviceProfile, shape: Any, arrays: dict[str, Any], dac_bound: Any) -> tuple[int, int]:
    """Check the arrays of a state file (see the module docstring); returns the shape as ints.

    Raises StateFormatError naming ``path``, the array, what it is and what was expected.
    """

    def bad(name: str, got: str, expected: str) -> StateFormatError:
        return StateFormatError(f"{path}: array {name} has {got}, expected {expected}; the file is damaged or was edited")

    if (not isinstance(shape, tuple) or len(shape) != 2 or any(not isinstance(v, int) or v < 1 for v in shape)):
        raise StateFormatError(f"{path}: shape {shape!r} is not two positive ints [out, in]")
    n_out, n_in = shape
    slices = profile.mapping.weight_slices
    if n_out % slices:
        raise StateFormatError(f"{path}: shape {shape} has {n_out} device columns, not a multiple of mapping.weight_slices={slices}")
    grid = TileGrid(n_out, n_in, profile.tile.rows, profile.tile.cols)
    diff = profile.mapping.kind == "differential"
    neg_rows = n_out if diff else grid.n_out_tiles
    plan = programming_plan(profile, with_drift=True)
    g_max = float(plan.g_max_us)

    def array(name: str, want_shape: tuple[int, ...], dtypes: tuple[np.dtype, ...], low: float | None = None,
              high: float | None = None) -> np.ndarray:
        a = arrays.get(name)
        if not isinstance(a, np.ndarray):
            raise StateFormatError(f"{path}: incomplete state file: array {name} is missing")
        want = f"shape {want_shape} dtype {' or '.join(str(d) for d in dtypes)}"
        if a.shape != want_shape or a.dtype not in dtypes:
            raise bad(name, _describe(a), want)
        if a.dtype.kind == "f":
            if not np.isfinite(a).all():
                raise bad(name, f"{_describe(a)} and {int((~np.isfinite(a)).sum())} NaN/Inf values", "finite values")
        if low is not None and a.size and a.min() < low:
            raise bad(name, f"{_describe(a)} and minimum {a.min().item()!r}", f"values >= {low}")
        if high is not None and a.size and a.max() > high:
            raise bad(name, f"{_describe(a)} and maximum {a.max().item()!r}", f"values <= {high}")
        return a

    g_pos = array("g_pos", (n_out, n_in), _FLOATS, 0.0, G_SLACK * g_max)
    dt = (g_pos.dtype,)
    array("g_neg", (neg_rows, n_in), dt, 0.0, G_SLACK * g_max)
    nu = [arrays.get(n) is not None for n in ("nu_pos", "nu_neg")]
    if nu[0] != nu[1]:
        raise StateFormatError(f"{path}: incomplete state file: it has {'nu_pos' if nu[0] else 'nu_neg'} but not the other")
    if nu[0]:
        if not plan.has_drift:
            raise StateFormatError(f"{path}: the file has drift exponents nu_pos / nu_neg but its profile {profile.name!r} has no drift")
        array("nu_pos", (n_out, n_in), dt, 0.0)
        array("nu_neg", (neg_rows, n_in), dt, 0.0)
    codes = (np.dtype(np.int8),)
    for name, rows in (("fault_pos", n_out), ("fault_neg", neg_rows)):
        if plan.has_fault:
            array(name, (rows, n_in), codes, 0, 2)
        elif arrays.get(name) is not None:
            raise StateFormatError(f"{path}: the file has fault codes {name} but its profile {profile.name!r} has no stuck-at faults")
    array("scales", (grid.n_in_tiles, n_out), _FLOATS)
    n_conv = 2 if profile.mapping.subtraction == "digital" else 1
    for name in ("adc_gain", "adc_offset_lsb"):
        array(name, (n_conv, grid.n_in_tiles, n_out), _FLOATS)
    if arrays.get("adc_bound") is not None:
        array("adc_bound", (grid.n_in_tiles, n_out), _FLOATS, 0.0)
    if dac_bound is not None and (isinstance(dac_bound, bool) or not isinstance(dac_bound, (int, float))
                                  or not math.isfinite(dac_bound) or dac_bound < 0):
        raise StateFormatError(f"{path}: dac_bound {dac_bound!r} is not a finite number >= 0")
    return n_out, n_in
