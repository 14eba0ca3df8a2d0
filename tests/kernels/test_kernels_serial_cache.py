"""The single-threaded copies of the parallel kernels keep their own on-disk cache entries.

Numba names cache files after a function's qualified name and keys them by signature and
bytecode, not by ``parallel``; a serial copy jitted from the same function object shared the
parallel kernel's entry, so whichever compiled first served both.
"""

import importlib.util
import sys

import numpy as np
from numba import njit

from cimsim.kernels import NUMBA as NB
from cimsim.kernels._jit import serial_copy

PAIRS = ("zig_normals", "dac_convert", "adc_tiles", "row_absmax_bits")

KERNEL = '''
import numpy as np
from numba import njit, prange

@njit(cache=True, parallel=True)
def double(x, out):
    for i in prange(x.shape[0]):
        out[i] = 2.0 * x[i]
'''


def test_serial_copies_are_distinct_functions():
    for name in PAIRS:
        par, ser = getattr(NB, name).parallel, getattr(NB, name).serial
        assert par.py_func is not ser.py_func
        assert ser.py_func.__qualname__ == par.py_func.__qualname__ + "_serial"
        assert par.targetoptions.get("parallel") and not ser.targetoptions.get("parallel")
        assert ser.targetoptions.get("nogil")


def _load(path, name, monkeypatch):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, mod)
    spec.loader.exec_module(mod)
    return mod


def test_fresh_cache_compiles_each_copy(tmp_path, monkeypatch):
    """A kernel cached beside a fresh file: the serial copy compiled (and saved) first, the
    parallel kernel then compiles its own code instead of loading the copy's entry; the plain
    re-jit of py_func (the old way) would have loaded it."""
    path = tmp_path / "cimsim_cache_probe.py"
    path.write_text(KERNEL)
    mod = _load(path, "cimsim_cache_probe", monkeypatch)
    x = np.arange(5.0)
    out = np.zeros(5)
    serial = serial_copy(mod.double)
    serial(x, out)
    mod.double(x, out)
    np.testing.assert_array_equal(out, 2 * x)
    assert not serial.stats.cache_hits and not mod.double.stats.cache_hits
    old_way = njit(cache=True, nogil=True)(mod.double.py_func)
    old_way(x, out)
    assert sum(old_way.stats.cache_hits.values()) == 1  # the collision the copy avoids
