"""Drift-compensation glue: a name (``"none"``, ``"global"``, ``"per_column"``) -> per-layer objects.

The physics lives in :mod:`cimsim.crossbar` (``GlobalDriftCompensation``,
``PerColumnDriftCompensation``): right after programming a fixed reference input is read
through the array and the summed absolute output is stored (one number per layer, or one per
output column); at time t the same readout is repeated and the digital output is multiplied by
the ratio reference / now, undoing the mean conductance decay ``((t + t0) / t0)^(-nu)`` (global
practice of Joshi et al., Nat. Commun. 2020, and aihwkit's ``GlobalDriftCompensation``).

Here a chip gets one object per analog layer, calibrated once per chip, from a generator that
depends only on the chip seed and the layer index (so a chip saved and loaded again recalibrates
to exactly the same factors).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..crossbar import GlobalDriftCompensation, PerColumnDriftCompensation
from ..errors import ParameterError

__all__ = ["COMPENSATIONS", "make_compensation", "ReadCompensation"]

COMPENSATIONS = ("none", "global", "per_column")

def make_compensation(kind: str, state: Any, rng: np.random.Generator) -> Any:
    """A calibrated compensation object for one programmed layer, or ``None`` for ``"none"``."""
    if kind == "none":
        return None
    if kind == "global":
        return GlobalDriftCompensation.from_state(state, rng)
    if kind == "per_column":
        return PerColumnDriftCompensation.from_state(state, rng)
    raise ParameterError(f"compensation must be one of {list(COMPENSATIONS)} (got {kind!r})")


class ReadCompensation:
    """A compensation whose readout at one time was taken once: ``factor`` returns it.

    A chip read at time t takes the reference readout once (as the hardware would, before
    serving inferences) and applies the same digital factor to every batch; ``tile_mvm`` then
    does not repeat the readout per batch, and the factor does not depend on the batch size.
    """

    def __init__(self, compensation: Any, drifted: Any, rng: np.random.Generator):
        self.compensation = compensation
        self.t_s = float(drifted.t_s)
        self.value = np.asarray(compensation.factor(drifted, rng))
        self.value.flags.writeable = False

    def factor(self, drifted: Any, rng: Any = None, **_: Any) -> np.ndarray:
        if float(drifted.t_s) != self.t_s:
            raise ParameterError(f"this compensation factor was read at t = {self.t_s} s, not {drifted.t_s} s")
        return self.value
