"""Shared jit settings: the one fastmath flag set, the MVM kernels' threading, serial copies."""

from __future__ import annotations

import types

from numba import njit

__all__ = ["FASTMATH", "FM", "MVM_PARALLEL", "serial_copy"]

#: The one fastmath flag set used by the non-quantising kernels (never ``fastmath=True``).
FASTMATH = frozenset({"nsz", "arcp", "contract"})
FM = set(FASTMATH)

#: The per-call MVM kernels (DAC, ADC, square) run between BLAS calls and are threaded: on a
#: quiet machine that pays; on one already loaded by other processes Numba's and BLAS's thread
#: pools can fight, where ``numba.set_num_threads(1)`` helps.  Their loops run over independent
#: outputs (prange), so either setting gives bitwise identical results.
MVM_PARALLEL = True


def serial_copy(kernel):
    """A single-threaded copy of the parallel ``kernel``: same code, same flags, no prange threads.

    The copy is a new function object named ``<name>_serial``.  Jitting ``kernel.py_func`` itself
    again would not do: Numba's on-disk cache names its files after the function's qualified
    name and keys them by signature and bytecode, not by the ``parallel`` flag, so the two
    dispatchers would share one cache entry and whichever compiled first would serve both (a
    "parallel" ADC that ran on one thread, or a "serial" copy that started threads on a pool
    thread).
    """
    f = kernel.py_func
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__, f.__closure__)
    g.__qualname__ = f.__qualname__ + "_serial"
    g.__doc__ = f.__doc__
    g.__module__ = f.__module__
    opts = {k: v for k, v in kernel.targetoptions.items() if k not in ("parallel", "nopython")}
    return njit(cache=True, nogil=True, **opts)(g)
