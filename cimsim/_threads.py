"""One small thread pool for work split into fixed pieces (raw random words, row chunks).

The pieces are fixed by the data's shape, never by the number of threads, and every piece
writes its own slice of the output; so results are identical with one thread or many.  Numba
kernels called from the pool are compiled ``nogil=True``; numpy's random ``fill`` releases the
GIL too, so the pieces really run side by side.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

import numpy as np

__all__ = ["in_pool", "map_pieces", "n_elements", "n_workers", "release_free_heap", "scratch"]

T = TypeVar("T")
_POOL: ThreadPoolExecutor | None = None
_TLS = threading.local()
#: scratch buffers up to this size are kept per thread for reuse
SCRATCH_MAX_BYTES = 1 << 24


def n_workers() -> int:
    """Threads in the pool: the CPUs this process may use (at most 16)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(16, n))


def map_pieces(fn: Callable[..., T], items: Iterable) -> list[T]:
    """``[fn(i) for i in items]``, run on the pool when there is more than one item."""
    items = list(items)
    # on a pool thread already (a piece that itself has pieces): run inline, never wait on the
    # pool from inside it
    if len(items) <= 1 or n_workers() == 1 or in_pool():
        return [fn(i) for i in items]
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=n_workers(), thread_name_prefix="cimsim", initializer=_mark_pool)
    return list(_POOL.map(fn, items))


def _mark_pool() -> None:
    _TLS.in_pool = True


def in_pool() -> bool:
    """True on a pool thread: run Numba kernels serially there (Numba's parallel layers other
    than OpenMP must not be entered from two threads at once)."""
    return getattr(_TLS, "in_pool", False)


def scratch(name: str, shape, dtype) -> np.ndarray:
    """A per-thread reusable work array named ``name`` (contents undefined).

    Memory fresh from the OS costs a page fault per 4 KiB on first touch (slow on some VMs),
    so per-call temporaries reuse one buffer per name and thread; buffers over
    :data:`SCRATCH_MAX_BYTES` (16 MiB) are not kept.  The caller must be done with the array
    before the same thread asks for ``name`` again.
    """
    dtype = np.dtype(dtype)
    nbytes = n_elements(shape) * dtype.itemsize
    bufs = _TLS.__dict__.setdefault("bufs", {})
    b = bufs.get(name)
    if b is None or b.nbytes < nbytes:
        b = np.empty(max(nbytes, 64), np.uint8)
        if nbytes <= SCRATCH_MAX_BYTES:
            bufs[name] = b
    return b[:nbytes].view(dtype).reshape(shape)


def n_elements(shape) -> int:
    """Number of elements of ``shape`` (an int or a sequence of ints)."""
    return int(shape) if isinstance(shape, (int, np.integer)) else math.prod(int(v) for v in shape)


_TRIM: list = []  # [malloc_trim or None], resolved on first use


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim(0)``; a no-op elsewhere),
    after dropping the calling thread's :func:`scratch` buffers.

    Programming a large layer allocates and frees many chunk-sized temporaries; glibc keeps the
    freed pages, so the resident size stays at the transient peak and the optimizer's own
    temporaries come on top of it. Called after a large analog layer's backward (cheap next to
    it, plus refilling the scratch buffers on the next forward); it changes no value, only what
    the process holds.
    """
    if not _TRIM:
        fn = None
        try:
            name = ctypes.util.find_library("c")
            fn = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
        except OSError:
            fn = None
        if fn is not None:
            fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
        _TRIM.append(fn)
    _TLS.__dict__.pop("bufs", None)  # this thread's scratch buffers go too (refilled on next use)
    if _TRIM[0] is not None:
        _TRIM[0](0)
