"""Times since programming: the one validation, the CLI's notation, and labels.

Every time a user gives (``t_s`` of a read, ``times_s`` of a study, ``--times`` of the CLI)
passes :func:`check_time` once, where it enters; the code below trusts it.

A time is finite, ``0 <= t_s <= T_MAX_S``: the upper bound is the age of the universe
(13.8e9 years = 4.35e17 s), longer than any retention study and short enough that every
expression of the drift laws (``(t + t0) / t0``, ``ln(t)``) stays finite.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Sequence, cast


from .errors import ParameterError

__all__ = ["T_MAX_S", "check_time", "check_times", "parse_time", "parse_times", "format_time"]

T_MAX_S = 4.35e17
"""Longest time since programming, seconds: the age of the universe (13.8e9 years)."""

_UPPER = f"<= {T_MAX_S:g} (the age of the universe)"


def _is_time(t_s) -> bool:
    if isinstance(t_s, bool) or not isinstance(t_s, numbers.Real):
        return False
    try:
        t = float(t_s)
    except (OverflowError, ValueError):  # an int beyond float's range
        return False
    return math.isfinite(t) and 0 <= t <= T_MAX_S


def check_time(t_s, what: str = "t_s") -> float:
    """``t_s`` as a float: a real number of seconds in [0, T_MAX_S] (0 = right after programming)."""
    if not _is_time(t_s):
        raise ParameterError(
            f"{what} must be a finite number of seconds >= 0 and {_UPPER} (0 = right after programming) (got {t_s!r}); "
            "give the time since programming, e.g. 3600 for one hour"
        )
    return float(t_s)


_YEAR_S = 365.25 * 86400.0  # Julian year
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "w": 7 * 86400.0,
    "week": 7 * 86400.0,
    "mo": _YEAR_S / 12,
    "month": _YEAR_S / 12,
    "y": _YEAR_S,
    "yr": _YEAR_S,
    "year": _YEAR_S,
}
_TIME_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_time(text: str | float | int) -> float:
    """One time in seconds: a number (seconds) or a number with a unit.

    Units: ``ns us ms s m/min h d w mo y`` (also ``sec hr day week month yr year``, and plurals);
    ``y`` is a Julian year (365.25 days). Examples: ``"1s"``, ``"1h"``, ``"2.5d"``, ``"10y"``, ``"0"``.
    """
    if isinstance(text, numbers.Real) and not isinstance(text, bool):
        return check_time(text, "a time")
    if not isinstance(text, str):
        raise ParameterError(f"a time must be a string like '1h' or a number of seconds (got {type(text).__name__})")
    m = _TIME_RE.match(text)
    unit = m.group(2).lower() if m else ""
    if unit.endswith("s") and unit not in _UNITS and unit[:-1] in _UNITS:
        unit = unit[:-1]  # plurals: days, hours, years
    if m is None or (unit and unit not in _UNITS):
        raise ParameterError(
            f"cannot read the time {text!r}: write a number >= 0 with an optional unit, one of "
            f"{', '.join(['ns', 'us', 'ms', 's', 'min', 'h', 'd', 'w', 'mo', 'y'])} (e.g. '1s,1h,1d,1y,10y')"
        )
    return check_time(float(m.group(1)) * _UNITS[unit or "s"], f"the time {text!r}")


def parse_times(text: str | float | Sequence[str | float]) -> list[float]:
    """Comma-separated times (``"1s,1h,1d,1y,10y"``), one time, or a sequence of times (numbers
    or strings), in seconds.  The result must be strictly increasing; ``ParameterError`` says
    which entries are not.
    """
    items: list[str | float]
    if isinstance(text, str):
        items = [s for s in text.split(",") if s.strip()]
    elif isinstance(text, numbers.Real) and not isinstance(text, bool):
        items = [cast(float, text)]  # a Real: mypy cannot narrow the union by an ABC
    else:
        try:
            items = list(cast("Sequence[str | float]", text))  # anything else raises TypeError here
        except TypeError:
            raise ParameterError(f"times_s must be a sequence of seconds or a string like '1s,1h,1d' (got {text!r})") from None
    return check_times([parse_time(s) if isinstance(s, str) else s for s in items])


def check_times(times: Sequence[float]) -> list[float]:
    """Validate evaluation times: a non-empty, strictly increasing list of seconds in [0, T_MAX_S]."""
    ts = list(times)
    if not ts:
        raise ParameterError("times_s is empty: give at least one time, e.g. times_s=[1, 3600, 86400]")
    bad = [t for t in ts if not _is_time(t)]
    if bad:
        raise ParameterError(
            f"times_s must be finite seconds >= 0 and {_UPPER} since programming (got {bad}); use 0 for 'right after "
            "programming'"
        )
    ts = [float(t) for t in ts]
    for a, b in zip(ts, ts[1:]):
        if not b > a:
            raise ParameterError(
                f"times_s must be strictly increasing (got {a:g} followed by {b:g} in {ts}); "
                f"sort them and remove duplicates, e.g. {sorted(set(ts))}"
            )
    return ts


def format_time(t_s: float) -> str:
    """A short label for a time in seconds: 0, 1s, 1h, 1d, 1y, 10y, 2.5e-06s ..."""
    if t_s == 0:
        return "0"
    for unit, scale in (("y", _YEAR_S), ("mo", _YEAR_S / 12), ("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if t_s >= scale:
            v = t_s / scale
            return f"{v:.3g}{unit}"
    return f"{t_s:.3g}s"


