"""Numba kernels (``_numba``) and their plain-numpy twins (``_reference``), same names.

The crossbar layer imports kernels through :func:`backend`; ``backend("reference")`` gives the
numpy twins (used by tests and benchmarks to compare the two).
"""

from __future__ import annotations

from types import ModuleType

from ..errors import ParameterError
from . import _numba
from ._numba import FASTMATH

__all__ = ["FASTMATH", "backend", "KERNEL_NAMES"]

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
