"""The kernels of the crossbar path, one module per stage beside its plain-numpy twin.

=================  ======================  =================================================
stage              jitted (Numba)          twin (numpy)
=================  ======================  =================================================
random normals     :mod:`.ziggurat`        :mod:`.ziggurat_ref`
Philox4x32-10      :mod:`.philox`          :mod:`.philox_ref`
programming        :mod:`.programming`     :mod:`.programming_ref`
drift              :mod:`.drift`           :mod:`.drift_ref`
converters         :mod:`.converters`      :mod:`.converters_ref`
=================  ======================  =================================================

An :class:`Engine` holds one full set (``NUMBA`` or ``REFERENCE``); the crossbar layer takes
one with :func:`engine` and never asks which it got.  Kernels with a parallel build carry their
single-threaded copy in a :class:`Parallel` (pick one with ``.sized(n)``).  :mod:`.sampling` is
the wrapper that keys the ziggurat's Philox stream with two words of the caller's Generator.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

from .._threads import follow_threads, get_num_threads, in_pool
from ..errors import ParameterError
from . import converters, converters_ref, drift, drift_ref, programming, programming_ref, ziggurat, ziggurat_ref
from ._jit import FASTMATH

__all__ = ["FASTMATH", "Engine", "Parallel", "NUMBA", "REFERENCE", "engine", "KERNEL_NAMES", "SERIAL_MAX"]

#: Below this many elements of work, the parallel kernels run their single-threaded copy.
SERIAL_MAX = 1 << 16


@dataclass(frozen=True)
class Parallel:
    """A kernel built with ``prange`` and its single-threaded copy (same code, same bits)."""

    parallel: Callable
    serial: Callable

    def sized(self, n: int) -> Callable:
        """The copy for ``n`` elements of work: serial for small work (``n <= SERIAL_MAX``),
        where starting Numba's threads costs more than the loop, on a pool thread, where
        Numba's parallel layers must not be entered, and when cimsim runs on one thread
        (``cimsim.set_num_threads``, else torch's count); else the parallel build, on that many
        threads (:func:`~cimsim._threads.follow_threads`)."""
        return self.serial if (n <= SERIAL_MAX or in_pool() or get_num_threads() == 1) else self.parallel

    def __call__(self, *args):
        return self.parallel(*args)


@dataclass(frozen=True)
class Engine:
    """One full kernel set.  ``torch_gemm``: the MVM's dense products run as torch GEMMs on
    tensors (Numba engine) or as numpy matmuls over per-tile blocks (reference engine)."""

    name: str
    torch_gemm: bool
    zig_normals: Parallel
    map_targets: Callable
    program_targets: Callable
    program_devices: Callable
    drift_to_blocks: Callable
    bit_line_transfer: Callable
    dac_convert: Parallel
    adc_tiles: Parallel
    row_absmax_bits: Parallel


def _engine(name: str, torch_gemm: bool, zig, prog, dr, conv) -> Engine:
    par = {n: Parallel(follow_threads(getattr(m, n)) if hasattr(getattr(m, n), "py_func") else getattr(m, n),
                       getattr(m, n + "_serial"))
           for m, n in ((zig, "zig_normals"), (conv, "dac_convert"), (conv, "adc_tiles"), (conv, "row_absmax_bits"))}
    return Engine(name=name, torch_gemm=torch_gemm, map_targets=prog.map_targets,
                  program_targets=prog.program_targets, program_devices=prog.program_devices,
                  drift_to_blocks=dr.drift_to_blocks, bit_line_transfer=dr.bit_line_transfer, **par)


NUMBA = _engine("numba", True, ziggurat, programming, drift, converters)
REFERENCE = _engine("reference", False, ziggurat_ref, programming_ref, drift_ref, converters_ref)

#: Every kernel an engine holds; each has a jitted build and a twin of the same name.
KERNEL_NAMES = tuple(f.name for f in fields(Engine) if f.name not in ("name", "torch_gemm"))


def engine(name: str = "numba") -> Engine:
    """The kernel set: ``"numba"`` (jitted, default) or ``"reference"`` (plain numpy)."""
    if name == "numba":
        return NUMBA
    if name == "reference":
        return REFERENCE
    raise ParameterError(f"kernel backend must be 'numba' or 'reference' (got {name!r})")
