"""One small thread pool for work split into fixed pieces (raw random words, row chunks).

The pieces are fixed by the data's shape, never by the number of threads, and every piece
writes its own slice of the output; so results are identical with one thread or many.  Numba
kernels called from the pool are compiled ``nogil=True``; numpy's random ``fill`` releases the
GIL too, so the pieces really run side by side.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

__all__ = ["map_pieces", "n_workers"]

T = TypeVar("T")
_POOL: ThreadPoolExecutor | None = None


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
    if len(items) <= 1 or n_workers() == 1:
        return [fn(i) for i in items]
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=n_workers(), thread_name_prefix="cimsim")
    return list(_POOL.map(fn, items))
