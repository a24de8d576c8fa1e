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
from collections.abc import Hashable
from typing import TypeVar

from pullgate.common.lru import Lru, LruStats

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


_REGISTRY: list[Lru[object, object]] = []
_REGISTRY_LOCK = threading.Lock()


def memo(name: str, capacity: int) -> Lru[K, V]:
    """Create a memo and register it with :func:`clear_caches` and :func:`cache_info`."""
    created: Lru[K, V] = Lru(capacity, name=name)
    with _REGISTRY_LOCK:
        _REGISTRY.append(created)  # type: ignore[arg-type]
    return created


def clear_caches() -> None:
    """Empty every verification memo (as if no certificate or identity had been seen)."""
    with _REGISTRY_LOCK:
        memos = tuple(_REGISTRY)
    for each in memos:
        each.clear()


def cache_info() -> tuple[LruStats, ...]:
    """Statistics of every verification memo (name, hits, misses, evictions, size, capacity)."""
    with _REGISTRY_LOCK:
        memos = tuple(_REGISTRY)
    return tuple(m.stats() for m in memos)
