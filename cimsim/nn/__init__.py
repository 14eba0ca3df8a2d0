"""The torch bridge: analog layers, model conversion and the extended straight-through estimator.

See ``docs/training.md``. Layers keep float weights as ordinary Parameters; in ``"hardware"``
mode every forward programs the simulated chip from the current weights and the backward is the
extended STE of :class:`AnalogMatmulSTE`.
"""

from .attention import AnalogMultiheadAttention
from .convert import analog_layers, convert, rng_state, set_mode, set_rng_state, to_digital
from .functional import AnalogMatmulSTE, analog_matmul, hardware_mvm, programming_noise_std
from .modules import MODES, AnalogConv1d, AnalogConv2d, AnalogConv3d, AnalogLayer, AnalogLinear
from .recurrent import AnalogGRU, AnalogLSTM, AnalogRNN
from .transposed import AnalogConvTranspose1d, AnalogConvTranspose2d, AnalogConvTranspose3d

__all__ = [
    "AnalogLinear",
    "AnalogMultiheadAttention",
    "AnalogConv1d",
    "AnalogConv2d",
    "AnalogConv3d",
    "AnalogConvTranspose1d",
    "AnalogConvTranspose2d",
    "AnalogConvTranspose3d",
    "AnalogLayer",
    "AnalogGRU",
    "AnalogLSTM",
    "AnalogRNN",
    "AnalogMatmulSTE",
    "MODES",
    "analog_layers",
    "analog_matmul",
    "convert",
    "hardware_mvm",
    "programming_noise_std",
    "rng_state",
    "set_mode",
    "set_rng_state",
    "to_digital",
]
