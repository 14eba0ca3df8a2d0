"""The torch bridge: analog layers, model conversion and the extended straight-through estimator.

See ``docs/training.md``. Layers keep float weights as ordinary Parameters and their settings in
one frozen :class:`AnalogConfig`; in ``"hardware"`` mode every forward programs the simulated chip
from the current weights (:mod:`.hardware`) and the backward is the extended STE of
:class:`AnalogMatmulSTE` (:mod:`.ste`); ``"noise_injection"`` adds the programming noise of
:func:`programming_noise_std` (:mod:`.noise_injection`, or its own :class:`NoiseSpec`) to the weights;
``"smoothed"`` trains on randomized roundings to the conductance grid (:mod:`.smoothed`).
"""

from .attention import AnalogMultiheadAttention
from .calibration import calibrate
from .config import ADC_BACKWARDS, BACKWARD_WEIGHTS, MODES, NOISE_GRADS, AnalogConfig, NoiseSpec
from .conv import AnalogConv1d, AnalogConv2d, AnalogConv3d
from .convert import (
    CONVERSION_MAP,
    ConversionReport,
    ConversionWarning,
    analog_layers,
    convert,
    reprogram,
    rng_state, set_mode, set_rng_state, to_digital,
)
from .hardware import analog_matmul, hardware_mvm
from .modules import AnalogLayer, AnalogLinear, LayerCalibration
from .noise_injection import inject_noise, noise_scale, programming_noise_std
from .smoothed import randomized_round, rounding_variance, smoothed_matrix
from .recurrent import AnalogGRU, AnalogLSTM, AnalogRNN
from .saving import load, save
from .ste import AnalogMatmulSTE, expected_adc_slope, expected_transfer_slope
from .transposed import AnalogConvTranspose1d, AnalogConvTranspose2d, AnalogConvTranspose3d

__all__ = [
    "CONVERSION_MAP",
    "ConversionReport",
    "ConversionWarning",
    "AnalogConfig",
    "AnalogLinear",
    "AnalogMultiheadAttention",
    "AnalogConv1d",
    "AnalogConv2d",
    "AnalogConv3d",
    "AnalogConvTranspose1d",
    "AnalogConvTranspose2d",
    "AnalogConvTranspose3d",
    "AnalogLayer",
    "LayerCalibration",
    "AnalogGRU",
    "AnalogLSTM",
    "AnalogRNN",
    "AnalogMatmulSTE",
    "ADC_BACKWARDS",
    "BACKWARD_WEIGHTS",
    "MODES",
    "NOISE_GRADS",
    "NoiseSpec",
    "expected_adc_slope",
    "expected_transfer_slope",
    "inject_noise",
    "noise_scale",
    "randomized_round",
    "rounding_variance",
    "smoothed_matrix",
    "analog_layers",
    "analog_matmul",
    "calibrate",
    "convert",
    "hardware_mvm",
    "load",
    "programming_noise_std",
    "reprogram",
    "save",
    "rng_state",
    "set_mode",
    "set_rng_state",
    "to_digital",
]
