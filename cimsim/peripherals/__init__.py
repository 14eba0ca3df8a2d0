"""DAC and ADC: profile sections compiled into the plans the converter kernels take.

:mod:`.transfer` holds what both share (levels, the one definition of an ideal converter, the
nonlinearity codes); :mod:`.dac` and :mod:`.adc` the plans and their conversion equations.
"""

from .adc import AdcPlan, adc_plan
from .dac import DacPlan, dac_plan
from .transfer import (NL_NONE, NL_POLY, NL_SCURVE, NL_TABLE, RANGE_CALIBRATED, RANGE_DYNAMIC, RANGE_FIXED,
                       encode_nonlinearity, is_ideal, levels)

__all__ = ["DacPlan", "AdcPlan", "dac_plan", "adc_plan", "is_ideal", "levels", "encode_nonlinearity",
           "NL_NONE", "NL_POLY", "NL_TABLE", "NL_SCURVE", "RANGE_FIXED", "RANGE_CALIBRATED", "RANGE_DYNAMIC"]
