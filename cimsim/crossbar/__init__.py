"""The crossbar core: program weights onto simulated tiles and run tiled analog MVMs."""

from .compensation import DriftCompensation, GlobalDriftCompensation, IdentityDriftCompensation, PerColumnDriftCompensation
from .mvm import tile_mvm
from .program import program_drifted, program_matrix
from .snapshot import DriftedState, MvmMasks
from .state import ProgrammedState

__all__ = [
    "program_matrix",
    "program_drifted",
    "tile_mvm",
    "ProgrammedState",
    "DriftedState",
    "MvmMasks",
    "DriftCompensation",
    "GlobalDriftCompensation",
    "PerColumnDriftCompensation",
    "IdentityDriftCompensation",
]
