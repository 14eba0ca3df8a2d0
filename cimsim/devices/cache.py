"""Plans kept per profile object, so that a layer that programs a fresh chip on every training
step compiles its profile's plans once.

A plan is a pure function of its profile (or profile section) and a few hashable arguments, and
profiles are frozen: so a plan built once can stand for every later build with the same
arguments, and the cache never changes a result.  Entries are keyed on the owner's identity
(``id``; hashing a profile by value would walk every field on each look-up) and dropped when
the owner is garbage collected (a weakref finalizer), so a recycled ``id`` never finds a stale
entry.  Plans hold arrays (converter nonlinearity specs): callers treat them as read-only.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["PlanCache"]

T = TypeVar("T")


class PlanCache:
    """``get(owner, key, build)``: ``build()`` once per (owner object, key) while the owner lives.

    ``per_owner`` bounds the entries of one owner (the oldest goes first), for keys that take
    many values, such as a drift plan's read time.
    """

    def __init__(self, per_owner: int = 64):
        self.per_owner = per_owner
        # reentrant: a garbage collection inside a locked section may run an owner's finalizer
        # (``_drop``) on this very thread
        self._lock = threading.RLock()
        self._entries: dict[int, tuple[weakref.ref, dict[Hashable, Any]]] = {}

    def get(self, owner: object, key: Hashable, build: Callable[[], T]) -> T:
        oid = id(owner)
        with self._lock:
            slot = self._entries.get(oid)
            if slot is not None and slot[0]() is owner and key in slot[1]:
                return slot[1][key]
        value = build()  # outside the lock: two threads may both build, and keep the first
        with self._lock:
            slot = self._entries.get(oid)
            if slot is None or slot[0]() is not owner:
                slot = self._entries[oid] = (weakref.ref(owner), {})
                weakref.finalize(owner, self._drop, oid, slot[0])
            plans = slot[1]
            if key not in plans:
                if len(plans) >= self.per_owner:
                    del plans[next(iter(plans))]
                plans[key] = value
            return plans[key]

    def _drop(self, oid: int, ref: weakref.ref) -> None:
        with self._lock:
            slot = self._entries.get(oid)
            if slot is not None and slot[0] is ref:
                del self._entries[oid]

    def __len__(self) -> int:
        """Owners with entries."""
        with self._lock:
            return len(self._entries)
