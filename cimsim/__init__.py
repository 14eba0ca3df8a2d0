"""cimsim: a simulator of analog compute-in-memory hardware.

Describe a device in YAML (:func:`load_profile`), program weights onto a simulated crossbar
(:func:`program_matrix`, :func:`tile_mvm`), train any PyTorch model against the chip
(:func:`convert`), and estimate accuracy under conductance drift (:func:`evaluate_drift`), over
design grids on this machine or a Dask cluster (:func:`sweep`).
Importing cimsim changes no global state of numpy, torch or Numba, with one exception: until
``torch._dynamo`` is imported, one finder sits at the front of ``sys.meta_path``; it steps aside
on that import and marks the analog layers' forwards ``torch.compiler.disable`` once TorchDynamo
has loaded (:mod:`cimsim.nn._compile`), so ``torch.compile`` runs them eagerly without every
``import cimsim`` paying for TorchDynamo.  Nothing else is installed.
"""

from __future__ import annotations

from . import data, models
from .crossbar import (
    DriftCompensation,
    DriftedState,
    GlobalDriftCompensation,
    IdentityDriftCompensation,
    MvmMasks,
    PerColumnDriftCompensation,
    ProgrammedState,
    program_drifted,
    program_matrix,
    tile_mvm,
)
from ._threads import get_num_threads, set_num_threads
from .errors import (
    CalibrationError,
    CimsimError,
    DataError,
    NonFiniteError,
    ParameterError,
    ProfileError,
    ShapeError,
    StateFormatError,
    WorkerError,
)
from .evaluation import Chip, DriftReport, evaluate_drift, program
from .fitting import FitResult, fit_profile, simulate_measurements
from .nn import (
    AnalogConfig,
    AnalogConv1d,
    AnalogConv2d,
    AnalogConv3d,
    AnalogConvTranspose1d,
    AnalogConvTranspose2d,
    AnalogConvTranspose3d,
    AnalogGRU,
    AnalogLinear,
    AnalogLSTM,
    AnalogMultiheadAttention,
    AnalogRNN,
    NoiseSpec,
    calibrate,
    convert,
    load,
    reprogram,
    save,
    to_digital,
)
from .profiles import DeviceProfile, dump_profile, list_profiles, load_profile, profile_from_dict, profile_from_yaml
from .sweep import SweepResult, sweep

__version__ = "0.1.0"

__all__ = [
    # profiles
    "DeviceProfile",
    "load_profile",
    "dump_profile",
    "list_profiles",
    "profile_from_dict",
    "profile_from_yaml",
    # crossbar
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
    # torch bridge
    "AnalogConfig",
    "NoiseSpec",
    "AnalogLinear",
    "AnalogConv1d",
    "AnalogConv2d",
    "AnalogConv3d",
    "AnalogConvTranspose1d",
    "AnalogConvTranspose2d",
    "AnalogConvTranspose3d",
    "AnalogLSTM",
    "AnalogGRU",
    "AnalogRNN",
    "AnalogMultiheadAttention",
    "convert",
    "calibrate",
    "to_digital",
    "reprogram",
    "save",
    "load",
    # evaluation
    "program",
    "Chip",
    "evaluate_drift",
    "DriftReport",
    # fitting profiles to measurements
    "fit_profile",
    "simulate_measurements",
    "FitResult",
    # sweeps
    "sweep",
    "SweepResult",
    # data and models
    "data",
    "models",
    # threads
    "set_num_threads",
    "get_num_threads",
    # errors
    "CimsimError",
    "ProfileError",
    "ShapeError",
    "NonFiniteError",
    "ParameterError",
    "StateFormatError",
    "CalibrationError",
    "DataError",
    "WorkerError",
    "__version__",
]
