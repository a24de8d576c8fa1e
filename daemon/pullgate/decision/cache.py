"""The decision cache and single-flight (ARCHITECTURE.md "decision"; issue 5 item 4).

:class:`DecisionCache` keeps final decisions, keyed by everything that can change one:
the top-level digest, the selected platform manifest's digest, the platform, the requirement
override and the configuration snapshot digest (which hashes the trust policy, the trust stores,
certs.d and the daemon config). Lifetimes:

* an allow that was *not* inconclusive lives ``min(max_ttl, valid_until - now)``, where
  ``valid_until`` is the earliest signature expiry, certificate notAfter or OCSP/CRL nextUpdate
  behind it;
* every other stored decision (a definitive deny, an inconclusive deny, an audit-mode allow that
  would have denied) lives at most ``negative_ttl`` (and never past ``valid_until``);
* a fail-open allow (inconclusive, allowed only because ``on_inconclusive = "allow"``) is never
  stored, so the next request tries again.

The cache is a bounded LRU; evictions are counted. :class:`SingleFlight` makes concurrent
identical computations share one run. Both are thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from pullgate.clock import Clock
from pullgate.config import CacheConfig, Requirement
from pullgate.decision.model import Decision

__all__ = ["CacheKey", "CacheStats", "DecisionCache", "FlightStats", "SingleFlight", "ttl_for"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheKey:
    """What a cached decision depends on."""

    digest: str  # top-level (index or manifest)
    platform_digest: str | None  # the selected platform manifest, for an index
    platform: str  # normalised os/arch[/variant] asked for
    require: Requirement | None  # the request's override, if any
    snapshot: str  # configuration snapshot digest


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStats:
    """Counters of a :class:`DecisionCache`."""

    hits: int
    misses: int
    evictions: int
    expirations: int
    entries: int
    max_entries: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    decision: Decision
    expires: datetime


def ttl_for(
    decision: Decision, config: CacheConfig, now: datetime, valid_until: datetime | None
) -> float:
    """Seconds ``decision`` may be served from the cache (0 = do not store it)."""
    if decision.inconclusive and decision.allowed:
        return 0.0  # fail-open: never remembered as an allow
    positive = decision.allowed and not decision.inconclusive and not decision.audit_denied
    ttl = config.max_ttl if positive else min(config.negative_ttl, config.max_ttl)
    if valid_until is not None:
        ttl = min(ttl, (valid_until - now).total_seconds())
    return max(ttl, 0.0)


class DecisionCache:
    """Bounded, thread-safe LRU of decisions with per-entry lifetimes.

    Args:
        config: ``max_entries``, ``max_ttl`` and ``negative_ttl``.
        clock: Source of "now" for expiry.
    """

    def __init__(self, config: CacheConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expirations = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: CacheKey) -> Decision | None:
        """The live decision for ``key`` (refreshing its LRU position), or None."""
        now = self._clock.now()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now >= entry.expires:
                del self._entries[key]
                self._expirations += 1
                entry = None
            if entry is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return entry.decision

    def put(self, key: CacheKey, decision: Decision, valid_until: datetime | None = None) -> float:
        """Store ``decision`` for its lifetime (see :func:`ttl_for`); returns the TTL used."""
        if self.config.max_entries <= 0:
            return 0.0
        now = self._clock.now()
        ttl = ttl_for(decision, self.config, now, valid_until)
        if ttl <= 0:
            return 0.0
        entry = _Entry(decision=decision, expires=now + timedelta(seconds=ttl))
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.config.max_entries:
                self._entries.popitem(last=False)
                self._evictions += 1
        return ttl

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._entries.clear()

    def stats(self) -> CacheStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                expirations=self._expirations,
                entries=len(self._entries),
                max_entries=self.config.max_entries,
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class FlightStats:
    """Counters of a :class:`SingleFlight`."""

    calls: int  # computations actually run
    joins: int  # callers that shared someone else's computation
    in_flight: int  # keys being computed right now


class SingleFlight(Generic[K, V]):
    """Concurrent calls with the same key share one computation (thread-based).

    The first caller runs the function; callers arriving while it runs wait for its result or
    its exception. A finished key is forgotten at once, so a later call computes afresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[K, Future[V]] = {}
        self._calls = 0
        self._joins = 0

    def do(self, key: K, compute: Callable[[], V]) -> tuple[V, bool]:
        """Run ``compute`` once for concurrent callers of ``key``.

        Returns:
            The result and whether this caller joined another caller's computation.

        Raises:
            Exception: Whatever ``compute`` raised, in every caller that shared it.
        """
        with self._lock:
            existing = self._flights.get(key)
            if existing is not None:
                self._joins += 1
            else:
                flight: Future[V] = Future()
                self._flights[key] = flight
                self._calls += 1
        if existing is not None:
            return existing.result(), True
        try:
            value = compute()
        except BaseException as exc:
            self._finish(key)
            flight.set_exception(exc)
            raise
        self._finish(key)
        flight.set_result(value)
        return value, False

    def _finish(self, key: K) -> None:
        with self._lock:
            self._flights.pop(key, None)

    def stats(self) -> FlightStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return FlightStats(calls=self._calls, joins=self._joins, in_flight=len(self._flights))
