"""DAC/ADC parameters for the kernels (conversion equations live in the kernel docstrings)."""

from .converters import ConverterParams, adc_params, dac_params, encode_nonlinearity, levels

__all__ = ["ConverterParams", "adc_params", "dac_params", "encode_nonlinearity", "levels"]
