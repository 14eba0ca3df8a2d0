"""Fitting device profiles to measurements, and simulating measurements from profiles.

:func:`fit_profile` turns a measurement table (one row per read: device, g_target_us, t_s,
g_us, read) into a validated :class:`~cimsim.profiles.DeviceProfile` and a fit report;
:func:`simulate_measurements` draws such a table from a profile's own laws.
"""

from __future__ import annotations

from .fit import FitResult, fit_profile
from .simulate import simulate_measurements
from .table import MeasurementTable, read_table

__all__ = ["FitResult", "MeasurementTable", "fit_profile", "read_table", "simulate_measurements"]
