"""Drift compensation, all of it: a reference readout at programming, a digital ratio at time t.

Reference practice (Joshi et al. 2020; aihwkit GlobalDriftCompensation): right after
programming read fixed reference inputs through the array and keep sum |y|; at time t read them
again; multiply the digital output by  factor = sum|y(0)| / sum|y(t)|  (per output column for
:class:`PerColumnDriftCompensation`).

The readout must not be drowned by noise or rounded away or clipped by the ADC: the reference
inputs are full-scale +-1 random-sign vectors that drive every m-th row of each tile
(vector r drives rows j = r mod m), with m chosen so that a column's partial sum stays within
a quarter of the ADC range (m = ceil(16 max_col sum_j w_n^2 / bound^2)); the m vectors are
repeated with fresh signs until at least 32 vectors are read.  Every row is read equally often.

aihwkit's own readout (its ``GlobalDriftCompensation``, kind ``"global_aihwkit"``,
:class:`IdentityDriftCompensation`) reads the identity matrix instead (one-hot inputs, each
driving one row) through the noisy tile and keeps mean |y| (clamped at 1e-4).  It is offered
to reproduce aihwkit's numbers, not as the default: each one-hot read carries the whole output
noise of a column and the signal of one weight, so where the weights are small against the
ADC's noise (raw-unit noise, layers with small weights) the readout is mostly noise, which does
not drift, and the factor stays near 1 while the conductances fall (factors of 1.17-1.61
against a true ~2.2 in the check of issue 19).  cimsim's readout drives whole tiles with
full-scale random signs, so its signal is a column sum that dominates the noise and tracks the
true drift.

A kind is named by a string (:data:`COMPENSATIONS`: ``"none"``, ``"global"``, ``"per_column"``,
``"global_aihwkit"``),
checked once where it enters (:func:`check_compensation`); :func:`make_compensation` calibrates
one programmed layer with the generator it is given (a chip derives it from its seed and the
layer index: ``cimsim.rng.compensation_generator``, so a saved and loaded chip recalibrates to
the same factors).  :class:`ReadCompensation` holds the readout at one time t, taken once, so
every batch read at t gets the same factor whatever the batch size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..kernels import engine as backend
from ..rng import SeedLike, as_generator
from .drift import drift_state
from .mvm import tile_mvm
from .snapshot import DriftedState
from .state import ProgrammedState

__all__ = [
    "COMPENSATIONS",
    "check_compensation",
    "make_compensation",
    "DriftCompensation",
    "GlobalDriftCompensation",
    "PerColumnDriftCompensation",
    "IdentityDriftCompensation",
    "ReadCompensation",
]

COMPENSATIONS = ("none", "global", "per_column", "global_aihwkit")

_MIN_VECTORS = 32


class DriftCompensation:
    """Base class: ``from_state(state, rng)`` reads the reference, ``factor(drifted, rng)`` the ratio."""

    def __init__(self, x_ref: np.ndarray, readout0: np.ndarray):
        self.x_ref = x_ref
        self.readout0 = readout0
        self.x_ref.flags.writeable = False
        self.readout0.flags.writeable = False

    @staticmethod
    def _reduce(y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def reference_inputs(cls, state: ProgrammedState, rng: np.random.Generator) -> np.ndarray:
        p = state.profile
        g = state.grid
        ds = drift_state(state, 0.0, rng, backend("numba"), noiseless=True)
        q = 0.0
        for k in range(g.n_in_tiles):
            q = max(q, float(np.max(np.sum(ds.block(ds.w, k).astype(np.float64) ** 2, axis=1))))
            if ds.wn is not None:
                q = max(q, float(np.max(np.sum(ds.block(ds.wn, k).astype(np.float64) ** 2, axis=1))))
        if p.adc.bits is None:
            m = 1
        else:
            bound = float(np.min(state.adc_bounds()))
            m = int(min(max(math.ceil(16.0 * q / bound**2), 1), min(p.tile.rows, g.n_in)))
        fixed = state.dac_fixed_bound()
        amp = 1.0 if fixed is None else fixed
        reps = max(1, math.ceil(_MIN_VECTORS / m))
        n_in = g.n_in
        rows_mod = (np.arange(n_in) % p.tile.rows) % m
        x = np.zeros((reps * m, n_in), dtype=state.dtype)
        signs = np.where(rng.random((reps * m, n_in)) < 0.5, -amp, amp).astype(state.dtype)
        for r in range(reps):
            for i in range(m):
                sel = rows_mod == i
                x[r * m + i, sel] = signs[r * m + i, sel]
        return x

    @classmethod
    def from_state(cls, state: ProgrammedState, rng: SeedLike) -> "DriftCompensation":
        """Reference readout right after programming (t = 0, with the chip's read noise)."""
        rng = as_generator(rng)
        x = cls.reference_inputs(state, rng)
        y0 = tile_mvm(x, state, t_s=0.0, rng=rng)
        return cls(x, cls._reduce(y0))

    def factor(self, drifted: DriftedState, rng: SeedLike, *, backend_name: str = "numba") -> np.ndarray:
        """sum|y(0)| / sum|y(t)| read through ``drifted`` (1 where the readout is 0)."""
        yt = tile_mvm(self.x_ref, drifted, rng=as_generator(rng), backend_name=backend_name)
        rt = self._reduce(yt)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(rt > 0, self.readout0 / rt, 1.0)
        return f


class GlobalDriftCompensation(DriftCompensation):
    """One factor for the whole layer: sum over reference vectors and columns of |y|."""

    @staticmethod
    def _reduce(y):
        return np.asarray(np.abs(y.astype(np.float64)).sum())


class PerColumnDriftCompensation(DriftCompensation):
    """One factor per output column: sum over reference vectors of |y_o|."""

    @staticmethod
    def _reduce(y):
        return np.abs(y.astype(np.float64)).sum(axis=0)


class IdentityDriftCompensation(DriftCompensation):
    """aihwkit's ``GlobalDriftCompensation`` (``aihwkit/inference/compensation/drift.py``): the
    reference inputs are the identity matrix (``get_readout_tensor`` = ``eye(in_size)``), read
    through the noisy chip, and the readout is ``max(mean |y|, 1e-4)`` (its ``readout``), one
    factor for the layer.  See the module docstring for why it is not cimsim's default."""

    #: aihwkit's clamp of the readout (``clamp(..., min=0.0001)``), weight x input units
    READOUT_MIN = 1e-4

    @classmethod
    def reference_inputs(cls, state: ProgrammedState, rng: np.random.Generator) -> np.ndarray:
        return np.eye(state.grid.n_in, dtype=state.dtype)

    @staticmethod
    def _reduce(y):
        return np.asarray(max(float(np.abs(y.astype(np.float64)).mean()), IdentityDriftCompensation.READOUT_MIN))


_KINDS = {"global": GlobalDriftCompensation, "per_column": PerColumnDriftCompensation,
          "global_aihwkit": IdentityDriftCompensation}


def check_compensation(kind: Any) -> str:
    """``kind`` if it names a compensation in :data:`COMPENSATIONS`, else ParameterError."""
    if not isinstance(kind, str) or kind not in COMPENSATIONS:
        raise ParameterError(f"compensation must be one of {list(COMPENSATIONS)} (got {kind!r})")
    return kind


def make_compensation(kind: str, state: ProgrammedState, rng: np.random.Generator) -> DriftCompensation | None:
    """A calibrated compensation object for one programmed layer, or ``None`` for ``"none"``.

    ``kind`` has passed :func:`check_compensation` (where the user gave it).
    """
    return None if kind == "none" else _KINDS[kind].from_state(state, rng)


class ReadCompensation:
    """A compensation whose readout at one time was taken once: ``factor`` returns it.

    A chip read at time t takes the reference readout once (as the hardware would, before
    serving inferences) and applies the same digital factor to every batch; ``tile_mvm`` then
    does not repeat the readout per batch, and the factor does not depend on the batch size.
    """

    def __init__(self, compensation: DriftCompensation, drifted: DriftedState, rng: np.random.Generator):
        self.compensation = compensation
        self.t_s = float(drifted.t_s)
        self.value = np.asarray(compensation.factor(drifted, rng))
        self.value.flags.writeable = False

    def factor(self, drifted: DriftedState, rng: Any = None, **_: Any) -> np.ndarray:
        if float(drifted.t_s) != self.t_s:
            raise ParameterError(f"this compensation factor was read at t = {self.t_s} s, not {drifted.t_s} s")
        return self.value
