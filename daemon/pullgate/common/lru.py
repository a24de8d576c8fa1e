"""The one bounded cache type: a least-recently-used map with a fixed capacity and statistics.

Every cache and memo in pullgate is an :class:`Lru` owned by the object that uses it, sized from
configuration (``[cache]``) or from a documented constant, so memory stays bounded whatever a
registry or a caller sends, and :meth:`Lru.stats` reports hits, misses, evictions and size the same
way for all of them.

Invariants: ``len(lru) <= capacity`` after every call; :meth:`Lru.get` counts a hit or a miss and
marks a hit most recently used; :meth:`Lru.peek` does neither; an entry dropped to make room is
counted as an eviction and passed to ``on_evict`` (outside the lock, so the callback may take
other locks or close what it is given).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

__all__ = ["Lru", "LruStats"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")


@dataclass(frozen=True, slots=True, kw_only=True)
class LruStats:
    """What one cache did since it was created (or last :meth:`Lru.reset_stats`)."""

    name: str
    hits: int
    misses: int
    evictions: int
    size: int
    capacity: int


class Lru(Generic[K, V]):
    """A thread-safe least-recently-used map holding at most ``capacity`` entries.

    Args:
        capacity: Maximum number of entries (> 0).
        name: Shown in :meth:`stats`.
        on_evict: Called with each entry dropped to make room (not with ones removed by
            :meth:`pop`, :meth:`discard_if` or :meth:`clear`).
    """

    __slots__ = (
        "_capacity",
        "_data",
        "_evictions",
        "_hits",
        "_lock",
        "_misses",
        "_on_evict",
        "name",
    )

    def __init__(
        self,
        capacity: int,
        *,
        name: str = "",
        on_evict: Callable[[K, V], None] | None = None,
    ) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        self.name = name
        self._capacity = capacity
        self._on_evict = on_evict
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    @property
    def capacity(self) -> int:
        """Maximum number of entries."""
        return self._capacity

    def resize(self, capacity: int) -> list[tuple[K, V]]:
        """Change the capacity (> 0), evicting the least recently used entries beyond it;
        returns the evicted entries, oldest first."""
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        with self._lock:
            self._capacity = capacity
            evicted = self._trim()
        return self._evicted(evicted)

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        """The value for ``key`` (now the most recently used), or ``default``; counts a hit or
        a miss."""
        with self._lock:
            try:
                value = self._data[key]
            except KeyError:
                self._misses += 1
                return default
            self._data.move_to_end(key)
            self._hits += 1
            return value

    @overload
    def peek(self, key: K) -> V | None: ...
    @overload
    def peek(self, key: K, default: D) -> V | D: ...
    def peek(self, key: K, default: object = None) -> object:
        """The value for ``key``, or ``default``, without touching its recency or the counts."""
        with self._lock:
            return self._data.get(key, default)

    def put(self, key: K, value: V) -> list[tuple[K, V]]:
        """Store ``value`` for ``key`` as the most recently used entry, evicting the least
        recently used ones beyond capacity; returns the evicted entries, oldest first."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            evicted = self._trim()
        return self._evicted(evicted)

    def _trim(self) -> list[tuple[K, V]]:
        """Drop the least recently used entries beyond capacity (the lock is held)."""
        evicted: list[tuple[K, V]] = []
        while len(self._data) > self._capacity:
            evicted.append(self._data.popitem(last=False))
        self._evictions += len(evicted)
        return evicted

    def _evicted(self, evicted: list[tuple[K, V]]) -> list[tuple[K, V]]:
        """Tell the eviction hook (outside the lock) and hand the entries back."""
        if self._on_evict is not None:
            for old_key, old_value in evicted:
                self._on_evict(old_key, old_value)
        return evicted

    @overload
    def pop(self, key: K) -> V | None: ...
    @overload
    def pop(self, key: K, default: D) -> V | D: ...
    def pop(self, key: K, default: object = None) -> object:
        """Remove ``key`` and return its value, or ``default`` when absent."""
        with self._lock:
            return self._data.pop(key, default)

    def discard_if(self, drop: Callable[[K, V], bool]) -> list[tuple[K, V]]:
        """Remove every entry for which ``drop(key, value)`` is true; returns them, oldest first."""
        with self._lock:
            gone = [(k, v) for k, v in self._data.items() if drop(k, v)]
            for k, _ in gone:
                del self._data[k]
        return gone

    def items(self) -> list[tuple[K, V]]:
        """A snapshot of the entries, least recently used first."""
        with self._lock:
            return list(self._data.items())

    def clear(self) -> None:
        """Drop every entry (the counts stay)."""
        with self._lock:
            self._data.clear()

    def reset_stats(self) -> None:
        """Zero the hit, miss and eviction counts."""
        with self._lock:
            self._hits = self._misses = self._evictions = 0

    def stats(self) -> LruStats:
        """Hits, misses, evictions, current size and capacity."""
        with self._lock:
            return LruStats(
                name=self.name,
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                size=len(self._data),
                capacity=self._capacity,
            )

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __iter__(self) -> Iterator[K]:
        """The keys at the time of the call, least recently used first."""
        with self._lock:
            return iter(list(self._data))

    def __repr__(self) -> str:
        return f"Lru({self.name!r}, {len(self)}/{self._capacity})"
