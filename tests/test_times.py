"""cimsim.times: the one time validation, with its upper bound (the age of the universe)."""

from __future__ import annotations

import math

import pytest

from cimsim.errors import ParameterError
from cimsim.times import T_MAX_S, check_time, check_times, format_time, parse_time, parse_times


def test_t_max_is_the_age_of_the_universe() -> None:
    assert T_MAX_S == 4.35e17
    assert 13.7e9 * 365.25 * 86400 < T_MAX_S < 13.9e9 * 365.25 * 86400


@pytest.mark.parametrize("t", [0, 0.0, 1e-12, 3600, 3.15e7, T_MAX_S])
def test_valid_times_pass(t: float) -> None:
    assert check_time(t) == float(t)
    assert check_times([t]) == [float(t)]


@pytest.mark.parametrize("t", [T_MAX_S * 1.0001, 1e18, 1e300, 10**400, math.inf])
def test_times_beyond_the_age_of_the_universe_are_refused(t: float) -> None:
    with pytest.raises(ParameterError, match=r"^t_s must be a finite number of seconds >= 0 and <= 4\.35e\+17 "
                                             r"\(the age of the universe\) .*\(got .*\); give the time since programming"):
        check_time(t)
    with pytest.raises(ParameterError, match=r"^times_s must be finite seconds >= 0 and <= 4\.35e\+17 \(the age of the universe\)"):
        check_times([1.0, t])


@pytest.mark.parametrize("t", [-1.0, -1e-300, math.nan, True, "1h", None])
def test_other_bad_times_keep_their_message(t: object) -> None:
    with pytest.raises(ParameterError, match=r"t_s must be a finite number of seconds >= 0"):
        check_time(t)


def test_parse_time_checks_the_bound() -> None:
    assert parse_time("13e9y") == pytest.approx(13e9 * 365.25 * 86400)
    with pytest.raises(ParameterError, match=r"the time '14e9y' must be .* <= 4\.35e\+17 \(the age of the universe\)"):
        parse_time("14e9y")
    with pytest.raises(ParameterError, match=r"<= 4\.35e\+17"):
        parse_times("1s,1e30y")
    with pytest.raises(ParameterError, match=r"<= 4\.35e\+17"):
        parse_time(1e20)


def test_parse_and_format_unchanged() -> None:
    assert parse_times("1s,1h,1d,1y,10y") == [1.0, 3600.0, 86400.0, 365.25 * 86400, 3652.5 * 86400]
    assert [format_time(t) for t in (0, 1, 3600, 86400, 365.25 * 86400)] == ["0", "1s", "1h", "1d", "1y"]
    with pytest.raises(ParameterError, match="strictly increasing"):
        check_times([2, 1])
