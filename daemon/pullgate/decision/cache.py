"""The decision cache and single-flight (docs/architecture.md §1, "decision").

:class:`DecisionCache` keeps final decisions, keyed by everything that can change one:
the top-level digest, the selected platform manifest's digest, the platform, the requirement
override, the configuration snapshot digest (which hashes the trust policy, the trust stores,
certs.d and the daemon config), the repository the signatures were fetched from and the
trust-policy statement that judged them. Lifetimes:

* an allow that was *not* inconclusive lives ``min(max_ttl, valid_until - now)``, where
  ``valid_until`` is the earliest signature expiry, certificate notAfter or OCSP/CRL nextUpdate
  behind it;
* every other stored decision (a definitive deny, an inconclusive deny, an audit-mode allow that
  would have denied) lives at most ``negative_ttl`` (and never past ``valid_until``);
* a fail-open allow (inconclusive, allowed only because ``on_inconclusive = "allow"``) is never
  stored, so the next request tries again.

The cache is a bounded LRU; evictions are counted. Entries are compact: the key is the SHA-256
of the key's fields (all 256 bits, held as an ``int``, a smaller object than 32 ``bytes``) and
the value one ``bytes`` object, the expiry followed by the
decision as :mod:`pullgate.decision.compact` encodes it (no per-check outcome, no timings), so
50,000 cached decisions take tens of MB, not hundreds. The few hundred most recently hit
entries are also kept decoded (a warm image is served without decoding it on every pull); a
decoded copy never outlives its entry.

:class:`SingleFlight` makes concurrent identical computations share one run, for threads
(:meth:`SingleFlight.do`) and for asyncio tasks (:meth:`SingleFlight.do_async`) alike, on the
same flights: an asyncio caller joins a computation a thread started and vice versa, and an
asyncio joiner waits on the event loop, never in a worker thread. Both are thread-safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import struct
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from pullgate.common.clock import Clock
from pullgate.common.lru import Lru, LruStats
from pullgate.config import CacheConfig, Requirement
from pullgate.decision.compact import decode_decision, encode_decision
from pullgate.decision.model import Decision
from pullgate.errors import MalformedInput

__all__ = ["CacheKey", "CacheStats", "DecisionCache", "FlightStats", "SingleFlight", "ttl_for"]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_EXPIRY = struct.Struct("<d")  # POSIX seconds, in front of the encoded decision


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheKey:
    """What a cached decision depends on."""

    digest: str  # top-level (index or manifest)
    platform_digest: str | None  # the selected platform manifest, for an index
    platform: str  # normalised os/arch[/variant] asked for
    require: Requirement | None  # the request's override, if any
    snapshot: str  # configuration snapshot digest
    # Where the signatures came from and the statement that judged them: the same digest in
    # another repository may fall under another statement (other trusted identities) and has
    # its own signatures, so it never shares an entry.
    repository: str = ""  # registry/repository
    statement: str | None = None
    user_metadata: tuple[tuple[str, str], ...] = ()  # required signed metadata, sorted

    def compact(self) -> int:
        """The identity the cache stores: the SHA-256 of the fields, unambiguously joined, as
        an ``int`` (all 256 bits)."""
        fields = (
            self.digest,
            self.platform_digest or "",
            self.platform,
            self.require.value if self.require is not None else "",
            self.snapshot,
            self.repository,
            self.statement or "",
            json.dumps(self.user_metadata),  # JSON: no raw newline can blur the fields
        )
        return int.from_bytes(hashlib.sha256("\n".join(fields).encode()).digest())


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStats:
    """Counters of a :class:`DecisionCache`."""

    hits: int
    misses: int
    evictions: int
    expirations: int
    entries: int
    max_entries: int


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
        config: ``max_entries``, ``max_ttl``, ``negative_ttl`` and ``decoded_entries``.
        clock: Source of "now" for expiry.
    """

    def __init__(self, config: CacheConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        # compact key -> expiry+blob; an evicted entry leaves the decoded subset too
        self._entries: Lru[int, bytes] = Lru(
            max(1, config.max_entries), name="decisions", on_evict=self._evicted
        )
        # the hottest entries also kept as objects ([cache] decoded_entries)
        self._decoded: Lru[int, Decision] = Lru(
            max(1, config.decoded_entries), name="decoded decisions"
        )
        self._hits = 0
        self._misses = 0
        self._expirations = 0

    def _evicted(self, compact: int, _value: bytes) -> None:
        self._decoded.pop(compact)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: CacheKey, *, count_miss: bool = True) -> Decision | None:
        """The live decision for ``key`` (refreshing its LRU position), or None.

        The decision comes back as stored: ``reference`` empty, no ``outcome``, no timings.
        ``count_miss=False`` is for a lookup that will be retried by a full computation (the
        retry counts the miss).
        """
        return self.lookup(key.compact(), count_miss=count_miss)

    def lookup(
        self, compact: int, *, count_miss: bool = True, now: float | None = None
    ) -> Decision | None:
        """:meth:`get` by the key's :meth:`CacheKey.compact` identity (a caller that looks the
        same key up again keeps it); ``now`` (POSIX seconds) when the caller has just read the
        clock."""
        if now is None:
            now = self._clock.now().timestamp()
        with self._lock:
            value = self._entries.get(compact)
            if value is not None and now >= _EXPIRY.unpack_from(value)[0]:
                self._entries.pop(compact)
                self._decoded.pop(compact)
                self._expirations += 1
                value = None
            if value is None:
                self._misses += int(count_miss)
                return None
            self._hits += 1
            decision = self._decoded.get(compact)
            if decision is not None:
                return decision
        try:
            decision = decode_decision(value[_EXPIRY.size :])
        except MalformedInput:  # cannot happen with our own bytes; recompute rather than trust
            log.exception("dropping an undecodable cache entry")
            with self._lock:
                self._entries.pop(compact)
            return None
        with self._lock:
            if self._entries.peek(compact) is value:  # still the same entry
                self._decoded.put(compact, decision)
        return decision

    def put(self, key: CacheKey, decision: Decision, valid_until: datetime | None = None) -> float:
        """Store ``decision`` for its lifetime (see :func:`ttl_for`); returns the TTL used."""
        if self.config.max_entries <= 0:
            return 0.0
        now = self._clock.now()
        ttl = ttl_for(decision, self.config, now, valid_until)
        if ttl <= 0:
            return 0.0
        value = _EXPIRY.pack(now.timestamp() + ttl) + encode_decision(decision)
        compact = key.compact()
        with self._lock:
            self._entries.put(compact, value)
            self._decoded.pop(compact)
        return ttl

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._entries.clear()
            self._decoded.clear()

    def stats(self) -> CacheStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._entries.stats().evictions,
                expirations=self._expirations,
                entries=len(self._entries),
                max_entries=self.config.max_entries,
            )

    def lru_stats(self) -> tuple[LruStats, ...]:
        """The statistics of the entries and of their decoded subset."""
        return (self._entries.stats(), self._decoded.stats())


@dataclass(frozen=True, slots=True, kw_only=True)
class FlightStats:
    """Counters of a :class:`SingleFlight`."""

    calls: int  # computations actually run
    joins: int  # callers that shared someone else's computation
    in_flight: int  # keys being computed right now


class SingleFlight(Generic[K, V]):
    """Concurrent calls with the same key share one computation (threads and asyncio tasks).

    The first caller runs the function; callers arriving while it runs wait for its result or
    its exception. A finished key is forgotten at once, so a later call computes afresh. A
    flight is marked running when it starts, so a cancelled asyncio joiner (its RPC was
    cancelled) cannot cancel the computation the other callers wait for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[K, Future[V]] = {}
        self._calls = 0
        self._joins = 0

    def _enter(self, key: K) -> tuple[Future[V], bool]:
        """The flight for ``key`` and whether this caller leads it (and must settle it)."""
        with self._lock:
            existing = self._flights.get(key)
            if existing is not None:
                self._joins += 1
                return existing, False
            flight: Future[V] = Future()
            flight.set_running_or_notify_cancel()
            self._flights[key] = flight
            self._calls += 1
            return flight, True

    def _run(self, key: K, flight: Future[V], compute: Callable[[], V]) -> None:
        """Run ``compute`` and settle ``flight`` (forgetting ``key`` first)."""
        try:
            value = compute()
        except BaseException as exc:
            self._finish(key)
            flight.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._finish(key)
        flight.set_result(value)

    def do(self, key: K, compute: Callable[[], V]) -> tuple[V, bool]:
        """Run ``compute`` once for concurrent callers of ``key`` (blocking).

        Returns:
            The result and whether this caller joined another caller's computation.

        Raises:
            Exception: Whatever ``compute`` raised, in every caller that shared it.
        """
        flight, leader = self._enter(key)
        if leader:
            self._run(key, flight, compute)
        return flight.result(), not leader

    async def do_async(
        self, key: K, compute: Callable[[], V], executor: Executor
    ) -> tuple[V, bool]:
        """Like :meth:`do`, for asyncio: the leader runs ``compute`` on ``executor``; joiners
        (and the leader) wait on the event loop without holding a thread.

        ``executor`` must run nothing that waits on a flight: a thread caller may join this
        flight and block until ``compute`` has run, so ``compute`` must not queue behind such
        callers (the decider gives flights a pool of their own).

        The computation runs to completion even if every waiting task is cancelled, so the
        callers still waiting, and the cache, get its result.

        Raises:
            Exception: Whatever ``compute`` raised, in every caller that shared it.
        """
        flight, leader = self._enter(key)
        if leader:
            executor.submit(self._run, key, flight, compute)
        value = await asyncio.shield(asyncio.wrap_future(flight))
        return value, not leader

    def _finish(self, key: K) -> None:
        with self._lock:
            self._flights.pop(key, None)

    def stats(self) -> FlightStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return FlightStats(calls=self._calls, joins=self._joins, in_flight=len(self._flights))
