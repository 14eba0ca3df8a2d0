"""Numba kernels (``_numba``) and their plain-numpy twins (``_reference``), same names.

The crossbar layer imports kernels through :func:`backend`; ``backend("reference")`` gives the
numpy twins (used by tests and benchmarks to compare the two).
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

from .._threads import in_pool
from ..errors import ParameterError
from . import _numba
from ._numba import FASTMATH

__all__ = ["FASTMATH", "backend", "sized", "KERNEL_NAMES", "SERIAL_MAX"]

#: Below this many elements of work, the parallel kernels run their single-threaded copy.
SERIAL_MAX = 1 << 16

#: Every jitted kernel; each has a plain-numpy twin of the same name in ``_reference``.
KERNEL_NAMES = tuple(name for name in _numba.__all__ if name != "FASTMATH")


def backend(name: str = "numba") -> ModuleType:
    """The kernel module: ``"numba"`` (jitted, default) or ``"reference"`` (plain numpy)."""
    if name == "numba":
        from . import _numba

        return _numba
    if name == "reference":
        from . import _reference

        return _reference
    raise ParameterError(f"kernel backend must be 'numba' or 'reference' (got {name!r})")


def sized(K: ModuleType, name: str, n: int) -> Callable:
    """Kernel ``name`` of backend ``K`` for ``n`` elements of work: the parallel kernel, or its
    single-threaded copy ``name_serial`` for small work (``n <= SERIAL_MAX``) and on a pool thread
    (where Numba's parallel layers must not be entered).  Both give the same bits."""
    return getattr(K, name + "_serial") if (n <= SERIAL_MAX or in_pool()) else getattr(K, name)
