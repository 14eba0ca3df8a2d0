"""Bad measurement tables: each is a DataError naming the row(s), the column and the fix."""

import sys

import numpy as np
import pytest

from cimsim import fit_profile, simulate_measurements
from cimsim.errors import DataError
from cimsim.fitting import read_table
from cimsim.fitting.table import check_table


def _cols(n=6):
    return {
        "device": np.arange(n),
        "g_target_us": np.full(n, 10.0),
        "t_s": np.full(n, 5.0),
        "g_us": np.linspace(9, 11, n),
    }


def test_missing_column():
    cols = _cols()
    del cols["t_s"]
    with pytest.raises(DataError, match=r"missing column\(s\) \['t_s'\].*needs device, g_target_us, t_s, g_us"):
        check_table(cols)


@pytest.mark.parametrize("col, want, fix", [
    ("g_s", "g_us", r"g_us = g_s \* 1e6"),
    ("r_ohm", "g_us", r"g_us = 1e6 / r_ohm"),
    ("t_min", "t_s", r"t_s = t_min \* 60"),
])
def test_column_in_other_units_is_refused_with_the_fix(col, want, fix):
    cols = _cols()
    cols[col] = cols.pop(want)
    with pytest.raises(DataError, match=rf"column '{col}' holds .*reads '{want}'.*{fix}"):
        check_table(cols)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf(bad):
    cols = _cols()
    cols["g_us"][[1, 4]] = bad
    with pytest.raises(DataError, match=r"column 'g_us' has NaN/Inf in rows 1, 4"):
        check_table(cols)


def test_negative_conductance():
    cols = _cols()
    cols["g_us"][3] = -0.5
    with pytest.raises(DataError, match=r"column 'g_us' has negative conductances in row 3 \(values \[-0.5\]\)"):
        check_table(cols)


def test_time_not_after_programming():
    cols = _cols()
    cols["t_s"][[0, 2]] = [0.0, -1.0]
    with pytest.raises(DataError, match=r"column 't_s' has times <= 0 in rows 0, 2.*> 0 s"):
        check_table(cols)


def test_device_with_two_targets():
    cols = _cols()
    cols["device"][:] = [0, 0, 1, 1, 2, 2]
    cols["g_target_us"][1] = 12.0
    with pytest.raises(DataError, match=r"device 0 has two targets \[10.0, 12.0\] \(rows 0, 1, column 'g_target_us'\)"):
        check_table(cols)


def test_too_few_devices_per_level():
    t = simulate_measurements("pcm", [5.0, 20.0], [1.0, 100.0, 1e4], devices_per_target=4, seed=0)
    with pytest.raises(DataError, match=r"g_target_us=5 has 4 device\(s\).*at least 10 devices per level"):
        fit_profile(t)


def test_too_few_read_times_for_drift():
    t = simulate_measurements("pcm", [5.0, 20.0], [1.0, 100.0, 1e4], devices_per_target=12, seed=0)
    cols = t.columns()
    keep = ~((cols["device"] == 3) & (cols["t_s"] == 1e4))
    with pytest.raises(DataError, match=r"device 3 was read at 2 time\(s\) \(column 't_s'\); the drift fit needs at least 3"):
        fit_profile({k: v[keep] for k, v in cols.items()})


def test_not_a_number_in_csv(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("device,g_target_us,t_s,g_us\n0,10,1,9.9\n1,10,1,ten\n")
    with pytest.raises(DataError, match=r"m.csv: column 'g_us' row 1: 'ten' is not a number"):
        read_table(f)


def test_parquet_without_pandas_names_what_to_install(tmp_path, monkeypatch):
    f = tmp_path / "m.parquet"
    f.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(DataError, match=r"Parquet needs pandas with pyarrow: pip install 'cimsim\[fit\]' pyarrow"):
        read_table(f)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"unknown table format '.xlsx'"):
        (tmp_path / "m.xlsx").write_text("x")
        read_table(tmp_path / "m.xlsx")
    with pytest.raises(DataError, match=r"no such file"):
        read_table(tmp_path / "none.csv")


def test_one_target_level_is_refused():
    t = simulate_measurements("pcm", [10.0], [1.0, 100.0, 1e4], devices_per_target=12, seed=0)
    with pytest.raises(DataError, match=r"g_min=10, g_max=10 .*at least two levels.*g_range_us"):
        fit_profile(t)


def test_one_read_time_fits_without_drift():
    t = simulate_measurements("rram_neurram", [5.0, 15.0, 25.0, 40.0], [60.0], devices_per_target=50, reads=3, seed=0)
    r = fit_profile(t)
    assert r.profile.drift.kind == "none"
    assert any("one read time in the data: drift not fitted" in a for a in r.profile.assumptions)
    assert r.profile.read_noise.kind == "gaussian"


@pytest.mark.parametrize("kw, match", [
    ({"t0_s": -1.0}, r"t0_s must be None \(fitted\) or a time > 0 s \(got -1.0\)"),
    ({"n_levels": 1}, r"n_levels must be 'auto', None \(continuous\) or an int >= 2 \(got 1\)"),
    ({"name": "my device"}, r"name must be letters, digits.*\(got 'my device'\)"),
    ({"seed": -3}, r"seed must be an int in \[0, 2\^63 - 1\] \(got -3\)"),
])
def test_bad_fit_arguments(kw, match):
    from cimsim.errors import ParameterError

    t = simulate_measurements("pcm", [5.0, 20.0], [1.0, 100.0, 1e4], devices_per_target=12, seed=0)
    with pytest.raises(ParameterError, match=match):
        fit_profile(t, **kw)
