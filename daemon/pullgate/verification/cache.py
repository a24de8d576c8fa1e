"""Bounded, thread-safe memos for the per-signature verification hot path.

Supports docs/notation.md §6.2 (code-signing chain rules) and §8.5 (trusted identities):
the results memoised here are pure functions of immutable inputs (certificate DER bytes, a
distinguished-name string), so a hit returns exactly what recomputing would. Only *successful*
outcomes of the expensive checks are stored; a failure is always recomputed, so a memo can never
turn a failure into a success.

A node sees the same signing chains and the same policy identities again and again; these memos
let it skip repeated certificate-signature checks, DER re-serialisation and DN parsing. Each memo
is an LRU with a fixed capacity. :func:`clear_caches` empties them all (the benchmark uses it to
measure a never-seen chain); :func:`cache_info` reports their sizes.

This module holds the one deliberate exception to "no module-level mutable state": the memos must
outlive any single verifier call to be useful, and they hold nothing but derived facts about
immutable inputs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoInfo:
    """Occupancy of one memo."""

    name: str
    size: int
    capacity: int


class BoundedMemo(Generic[K, V]):
    """A least-recently-used map with a fixed capacity, safe to share between threads."""

    __slots__ = ("_capacity", "_data", "_lock", "name")

    def __init__(self, name: str, capacity: int) -> None:
        """Create an empty memo.

        Args:
            name: Shown by :func:`cache_info`.
            capacity: Maximum number of entries (> 0); the least recently used one is dropped.
        """
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        self.name = name
        self._capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """Maximum number of entries."""
        return self._capacity

    def get(self, key: K) -> V | None:
        """The value stored for ``key`` (marking it recently used), or None."""
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        """Store ``value`` for ``key``, evicting the least recently used entry when full."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            if len(self._data) > self._capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        """Number of entries."""
        with self._lock:
            return len(self._data)


_REGISTRY: list[BoundedMemo[object, object]] = []
_REGISTRY_LOCK = threading.Lock()


def memo(name: str, capacity: int) -> BoundedMemo[K, V]:
    """Create a memo and register it with :func:`clear_caches` and :func:`cache_info`."""
    created: BoundedMemo[K, V] = BoundedMemo(name, capacity)
    with _REGISTRY_LOCK:
        _REGISTRY.append(created)  # type: ignore[arg-type]
    return created


def clear_caches() -> None:
    """Empty every verification memo (as if no certificate or identity had been seen)."""
    with _REGISTRY_LOCK:
        memos = tuple(_REGISTRY)
    for each in memos:
        each.clear()


def cache_info() -> tuple[MemoInfo, ...]:
    """Name, current size and capacity of every verification memo."""
    with _REGISTRY_LOCK:
        memos = tuple(_REGISTRY)
    return tuple(MemoInfo(name=m.name, size=len(m), capacity=m.capacity) for m in memos)
