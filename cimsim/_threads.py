"""One small thread pool for work split into fixed pieces (row chunks), the thread count cimsim
uses, and the process's heap.

The pieces are fixed by the data's shape, never by the number of threads, and every piece
writes its own slice of the output; so results are identical with one thread or many.  Numba
kernels called from the pool are compiled ``nogil=True``; numpy's random ``fill`` releases the
GIL too, so the pieces really run side by side.

Threads: cimsim follows the user's setting, :func:`get_num_threads`: the count given to
:func:`set_num_threads`, else ``torch.get_num_threads()`` (when torch is imported), else the
CPUs this process may use. The piece pool has that many workers (at most 16); a parallel Numba
kernel runs on that many of Numba's threads (:func:`follow_threads`; one thread: its serial
copy) and afterwards gives torch back its own thread count, which Numba's OpenMP layer, sharing
libgomp with torch, would otherwise change on launch (``torch.set_num_threads(1)`` became 2).

Memory: :func:`scratch` keeps per-thread work arrays; :func:`steady_heap` (run at import) fixes
glibc's malloc thresholds so that per-step arrays are reused instead of faulted in afresh, and
:func:`release_free_heap` hands the free heap back after a large layer's backward.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

import numpy as np

__all__ = ["follow_threads", "get_num_threads", "in_pool", "map_pieces", "n_elements", "n_workers",
           "release_free_heap", "scratch", "set_num_threads", "steady_heap", "HEAP_STEADY"]

T = TypeVar("T")
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()
_EXPLICIT: list[int] = []  # [n] after set_num_threads(n), [] to follow torch
_TLS = threading.local()
#: scratch buffers up to this size are kept per thread for reuse
SCRATCH_MAX_BYTES = 1 << 24


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads in cimsim's kernels and piece pool (``None``: follow ``torch.get_num_threads()``).

    Results do not depend on it, bit for bit; torch's own setting is never changed.
    """
    if n is None:
        _EXPLICIT.clear()
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        from .errors import ParameterError

        raise ParameterError(f"set_num_threads: n must be a positive int or None (got {n!r})")
    _EXPLICIT[:] = [n]


def get_num_threads() -> int:
    """Threads cimsim uses: :func:`set_num_threads`'s count, else torch's, else the usable CPUs."""
    if _EXPLICIT:
        return _EXPLICIT[0]
    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, int(torch.get_num_threads()))
    return _cpus()


def n_workers() -> int:
    """Threads in the pool: :func:`get_num_threads` (at most 16)."""
    return max(1, min(16, get_num_threads()))


class follow_threads:  # noqa: N801 - used like a decorator
    """``kernel`` (a parallel Numba kernel) run on :func:`get_num_threads` of Numba's threads (at most
    ``NUMBA_NUM_THREADS``), giving torch back its thread count afterwards if the launch changed it.
    Every other attribute (``py_func``, ``targetoptions``, ...) is the kernel's."""

    def __init__(self, kernel: Callable[..., Any]):
        self.kernel = kernel

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kernel, name)

    def __call__(self, *args: Any) -> Any:
        import numba

        torch = sys.modules.get("torch")
        torch_n = torch.get_num_threads() if torch is not None else None
        before = numba.get_num_threads()
        cap = int(getattr(numba.config, "NUMBA_NUM_THREADS"))  # noqa: B009 - set at run time, unknown to mypy
        numba.set_num_threads(max(1, min(get_num_threads(), cap)))
        try:
            return self.kernel(*args)
        finally:
            numba.set_num_threads(before)
            if torch is not None and torch.get_num_threads() != torch_n:
                torch.set_num_threads(torch_n)


def map_pieces(fn: Callable[..., T], items: Iterable) -> list[T]:
    """``[fn(i) for i in items]``, run on the pool when there is more than one item."""
    items = list(items)
    # on a pool thread already (a piece that itself has pieces): run inline, never wait on the
    # pool from inside it
    if len(items) <= 1 or n_workers() == 1 or in_pool():
        return [fn(i) for i in items]
    global _POOL, _POOL_SIZE
    n = n_workers()
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE != n:  # the thread count changed: a pool of the new size
            if _POOL is not None:
                _POOL.shutdown(wait=False)  # its submitted pieces still run
            _POOL, _POOL_SIZE = ThreadPoolExecutor(max_workers=n, thread_name_prefix="cimsim", initializer=_mark_pool), n
        futures = [_POOL.submit(fn, i) for i in items]
    return [f.result() for f in futures]


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


_LIBC: list = []  # [the C library (ctypes) or None], resolved on first use


def _libc_fn(name: str, argtypes: list, restype):
    """Function ``name`` of the C library (ctypes), or None where there is none (not glibc)."""
    if not _LIBC:
        lib = None
        try:
            path = ctypes.util.find_library("c")
            lib = ctypes.CDLL(path) if path else None
        except OSError:
            lib = None
        _LIBC.append(lib)
    fn = getattr(_LIBC[0], name, None) if _LIBC[0] is not None else None
    if fn is not None:
        fn.argtypes, fn.restype = argtypes, restype
    return fn


#: glibc ``mallopt`` parameters and the values :func:`steady_heap` sets
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_MMAP_THRESHOLD = 32 << 20
HEAP_TRIM_THRESHOLD = 256 << 20
#: glibc's own environment settings: when any is set, the user's choice stands
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def steady_heap() -> bool:
    """Fix glibc's malloc thresholds (called once, when cimsim is imported): blocks below 32 MiB
    come from the heap, and free heap pages are handed back to the OS only above 256 MiB (or by
    :func:`release_free_heap`).  Returns whether the thresholds were set.

    glibc's defaults adapt to the sizes freed so far: a process that frees chunks of a few
    hundred KiB can settle where every such array is mapped afresh, or the heap's top is handed
    back on each free, so the next step's arrays fault their pages in again (on a VM the host's
    first touch of a page is slow too).  A training step programs a chip of that size per layer,
    and its speed then depended on which sizes the process met first.  Nothing is set when the
    environment sets one of glibc's own ``MALLOC_*_`` thresholds, or without glibc's ``mallopt``.
    """
    if any(k in os.environ for k in MALLOC_ENV):
        return False
    fn = _libc_fn("mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int)
    if fn is None:
        return False
    return bool(fn(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)) and bool(fn(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD))


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim(0)``; a no-op elsewhere),
    after dropping the calling thread's :func:`scratch` buffers.

    Programming a large layer allocates and frees many chunk-sized temporaries; glibc keeps the
    freed pages, so the resident size stays at the transient peak and the optimizer's own
    temporaries come on top of it. Called after a large analog layer's backward (cheap next to
    it, plus refilling the scratch buffers on the next forward); it changes no value, only what
    the process holds.
    """
    _TLS.__dict__.pop("bufs", None)  # this thread's scratch buffers go too (refilled on next use)
    fn = _libc_fn("malloc_trim", [ctypes.c_size_t], ctypes.c_int)
    if fn is not None:
        fn(0)


HEAP_STEADY = steady_heap()
