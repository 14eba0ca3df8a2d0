"""ProgrammedState: a programmed chip (immutable), its drift and calibration, save/load.

Its snapshot at a time t, DriftedState, lives in ``snapshot.py``, below the drift and
calibration code this class calls."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._io import atomic_save, read_verified
from ..errors import CalibrationError, ParameterError, StateFormatError
from ..kernels import engine as backend
from ..profiles.schema import DeviceProfile, RangeCalibrated, RangeFixed
from ..rng import SeedLike, as_generator
from ..times import check_time
from .calibration import calibrate_state
from .drift import drift_state
from .snapshot import DriftedState
from .state_io import check_state_arrays
from .tiling import TileGrid

__all__ = ["ProgrammedState", "FORMAT_VERSION"]

FORMAT_VERSION = "cimsim.ProgrammedState/2"
_ARRAYS = ("g_pos", "g_neg", "nu_pos", "nu_neg", "fault_pos", "fault_neg", "scales", "adc_gain",
           "adc_offset_lsb", "adc_bound")


@dataclass(frozen=True, eq=False)
class ProgrammedState:
    """A weight matrix programmed onto simulated crossbar tiles (immutable; arrays read-only).

    g_pos ``[out, in]`` µS: the G+ device of each weight (differential) or the single device
    (single_reference); g_neg ``[R, in]`` µS: the G- device (R = out) or the reference column of
    each output tile (R = n_out_tiles); nu_*: drift exponents (None without drift); fault_*: int8
    codes 0 ok, 1 stuck
    at g_min, 2 stuck at g_max (None without faults); scales ``[n_in_tiles, out]``: weight scale
    of each tile column; adc_gain / adc_offset_lsb ``[n_conv, n_in_tiles, out]`` static ADC
    errors (n_conv = 2 with digital subtraction); dac_bound / adc_bound: calibrated ranges
    (None until :meth:`calibrate`); devices_kept: False for the periphery-only state of a
    :func:`~cimsim.crossbar.program.program_drifted` snapshot (device arrays are empty rows).
    """

    profile: DeviceProfile
    shape: tuple[int, int]
    seed: int | None
    g_pos: np.ndarray
    g_neg: np.ndarray
    nu_pos: np.ndarray | None
    nu_neg: np.ndarray | None
    fault_pos: np.ndarray | None
    fault_neg: np.ndarray | None
    scales: np.ndarray
    adc_gain: np.ndarray
    adc_offset_lsb: np.ndarray
    dac_bound: float | None = None
    adc_bound: np.ndarray | None = None
    devices_kept: bool = True

    def __post_init__(self):
        for name in _ARRAYS:
            a = getattr(self, name)
            if a is not None:
                a.flags.writeable = False

    # ------------------------------------------------------------------ geometry
    @property
    def weight_shape(self) -> tuple[int, int]:
        """``[out, in]`` of the weight matrix; ``shape`` counts device columns, ``weight_slices``
        of them per output with bit slicing (``mapping.weight_slices``), else the same."""
        return (self.shape[0] // self.profile.mapping.weight_slices, self.shape[1])

    @functools.cached_property
    def grid(self) -> TileGrid:
        t = self.profile.tile
        return TileGrid(self.shape[0], self.shape[1], t.rows, t.cols)

    @property
    def dtype(self) -> np.dtype:
        return self.g_pos.dtype

    @property
    def neg_row(self) -> np.ndarray:
        """Row of g_neg that each output's G- (or reference) device lives in."""
        if self.profile.mapping.kind == "differential":
            return np.arange(self.shape[0], dtype=np.int64)
        return np.arange(self.shape[0], dtype=np.int64) // self.profile.tile.cols

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(self, n).nbytes for n in _ARRAYS if getattr(self, n) is not None))

    # ------------------------------------------------------------------ ranges
    def dac_fixed_bound(self) -> float | None:
        """The DAC bound in input units (None for dynamic per-vector scaling)."""
        r = self.profile.dac.range
        if isinstance(r, RangeFixed):
            return float(r.bound)
        if isinstance(r, RangeCalibrated):
            if self.dac_bound is None:
                raise CalibrationError(
                    "dac.range.kind is 'calibrated' but this state was never calibrated: call state = state.calibrate(x_ref) first"
                )
            return float(self.dac_bound)
        return None

    def adc_bounds(self) -> np.ndarray:
        """ADC full scale of every tile column, float64 ``[n_in_tiles, out]`` (normalised units).

        A fixed bound in raw units (``adc.units: raw``, sums of x_norm W) is bound / s in the
        normalised units of a tile column with weight scale s (w_norm = W / s)."""
        r = self.profile.adc.range
        g = self.grid
        if isinstance(r, RangeFixed):
            if self.profile.adc.units == "raw":
                return float(r.bound) / np.asarray(self.scales, dtype=np.float64)
            return np.full((g.n_in_tiles, g.n_out), float(r.bound))
        if self.adc_bound is None:
            raise CalibrationError(
                "adc.range.kind is 'calibrated' but this state was never calibrated: call state = state.calibrate(x_ref) first"
            )
        return self.adc_bound

    # ------------------------------------------------------------------ time
    def drift(self, t_s: float, rng: SeedLike, *, backend_name: str = "numba") -> DriftedState:
        """The chip at ``t_s`` seconds after programming, 1/f noise realised (static for one time).

        Draws from ``rng`` as in :func:`cimsim.crossbar.drift.drift_state`; equations in
        :mod:`cimsim.devices.drift` and :func:`cimsim.kernels.drift.drift_to_blocks`.
        """
        t = check_time(t_s)
        return drift_state(self, t, as_generator(rng), backend(backend_name), noiseless=False)

    def effective_weights(self, t_s: float, rng: SeedLike) -> np.ndarray:
        """Weights ``[out, in]`` the chip realises at ``t_s`` (w = s (G+(t) - G-(t)) / dg, summed
        over a weight's bit slices)."""
        return self.drift(t_s, rng).effective_weights()

    def calibrate(self, x_ref: np.ndarray, *, backend_name: str = "numba") -> "ProgrammedState":
        """A copy with calibrated DAC/ADC ranges set from reference inputs ``x_ref [n, in]``.

        DAC: bound = percentile of |x_ref|.  ADC: per tile column, percentile of |partial sum|
        over x_ref, computed on the programmed conductances (t = 0, no read noise).
        """
        return calibrate_state(self, x_ref, backend(backend_name))

    def replace(self, **kw) -> "ProgrammedState":
        return dataclasses.replace(self, **kw)

    # ------------------------------------------------------------------ io
    def save(self, path) -> None:
        """Write the state (arrays bit-exact, profile as JSON, format version) to an .npz file."""
        if not self.devices_kept:
            raise ParameterError("this chip's device arrays were not kept (program_drifted): nothing to save; "
                                 "program it with program_matrix to save it")
        meta = {
            "format": FORMAT_VERSION,
            "shape": list(self.shape),
            "seed": self.seed,
            "dac_bound": self.dac_bound,
            "profile": self.profile.model_dump(mode="json"),
        }
        arrays = {n: getattr(self, n) for n in _ARRAYS if getattr(self, n) is not None}
        atomic_save(path, lambda f: np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays))

    @classmethod
    def load(cls, path, *, sha256: str | None = None) -> "ProgrammedState":
        """Read a state written by :meth:`save`; anything else raises StateFormatError.

        The bytes are checked against ``sha256`` (e.g. from a chip manifest) or else the
        checksum file :meth:`save` writes beside the state (a file without one is read
        unchecked), and every array against the profile, shape and tile grid
        (:func:`~cimsim.crossbar.state_io.check_state_arrays`) before any kernel sees it.
        """
        p = os.fspath(path)
        data = read_verified(p, required=False, expected=sha256)
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                files = {k: z[k] for k in z.files}
        except Exception as e:  # noqa: BLE001 - any reader failure is a format problem
            raise StateFormatError(f"{p}: not a cimsim state file (.npz): {e}") from None
        try:
            meta = json.loads(str(files.pop("__meta__")))
            if not isinstance(meta, dict):
                raise TypeError(type(meta).__name__)
        except Exception:  # noqa: BLE001
            raise StateFormatError(f"{p}: missing or unreadable __meta__ record; not a cimsim state file") from None
        if meta.get("format") != FORMAT_VERSION:
            raise StateFormatError(f"{p}: format {meta.get('format')!r} is not {FORMAT_VERSION!r}")
        unknown = sorted(set(files) - set(_ARRAYS))
        if unknown:
            raise StateFormatError(f"{p}: unknown arrays {unknown}; a state file holds only {list(_ARRAYS)}")
        try:
            profile = DeviceProfile.model_validate(meta["profile"])
            shape = tuple(meta["shape"])
            seed = meta["seed"]
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise TypeError(f"seed {seed!r} is not an int or null")
            kw: dict[str, Any] = {n: files.get(n) for n in _ARRAYS}
            for n in ("g_pos", "g_neg", "scales", "adc_gain", "adc_offset_lsb"):
                if kw[n] is None:
                    raise KeyError(n)
            dac_bound = meta["dac_bound"]
        except Exception as e:  # noqa: BLE001
            raise StateFormatError(f"{p}: incomplete or inconsistent state file ({type(e).__name__}: {e})") from None
        shape = check_state_arrays(p, profile, shape, kw, dac_bound)
        return cls(profile=profile, shape=shape, seed=seed, dac_bound=None if dac_bound is None else float(dac_bound), **kw)
