"""One exception hierarchy for cimsim.

Every error a user can cause derives from :class:`CimsimError`; the ones that report bad input
are also :class:`ValueError`, so generic ``except ValueError`` handlers keep working.  Messages
always carry the offending values and say what would be accepted instead.
"""

from __future__ import annotations

__all__ = [
    "CimsimError",
    "ProfileError",
    "ShapeError",
    "NonFiniteError",
    "ParameterError",
    "StateFormatError",
    "CalibrationError",
    "DataError",
    "WorkerError",
]


class CimsimError(Exception):
    """Root of every error raised by cimsim on purpose."""


class ProfileError(CimsimError, ValueError):
    """A device profile (YAML file, dict or override) is invalid.

    The message has one line per problem: ``file: dotted.field: what is allowed (got value)``.
    """


class ShapeError(CimsimError, ValueError):
    """Arrays whose shapes do not fit together; the message names both shapes."""


class NonFiniteError(CimsimError, ValueError):
    """NaN or Inf where finite numbers are required; the message says where and how many."""


class ParameterError(CimsimError, ValueError):
    """An impossible argument (negative time, repeats < 1, unknown option ...)."""


class StateFormatError(CimsimError, ValueError):
    """A saved chip/state/run file is missing, truncated, or of another format version."""


class CalibrationError(CimsimError, ValueError):
    """A calibrated DAC/ADC range was needed but the state was never calibrated."""


class DataError(CimsimError, ValueError):
    """A data set is missing on disk or does not fit the model."""


class WorkerError(CimsimError, RuntimeError):
    """A worker process of a parallel drift study died (killed, crashed); the message names its
    exit code or signal, and what to do (resume from the points file, or run with ``workers=1``)."""
