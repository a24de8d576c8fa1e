"""A memory of endpoints that recently failed at transport level, shared by a daemon's clients.

An endpoint that timed out, refused the connection or failed TLS is *down* for a while:
``backoff`` seconds after its first consecutive failure, doubling with each further one up to
``max_backoff``. While it is down, operations try the endpoints that are not first, in
containerd's order, and the down ones after them (still in that order: a down endpoint is
tried last, never skipped). Once the time is over the endpoint is back in its place; any HTTP
answer from it clears its failures. HTTP errors (4xx, 5xx) are answers, not failures here.

The memory holds at most ``max_entries`` endpoints (the longest-quiet ones are forgotten first),
keyed by the endpoint's API root URL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pullgate.common.lru import Lru, LruStats
from pullgate.errors import Reason
from pullgate.registry.model import Endpoint

__all__ = ["FAILURE_REASONS", "EndpointHealth", "EndpointState"]

FAILURE_REASONS = frozenset({Reason.TIMEOUT, Reason.REGISTRY_UNREACHABLE, Reason.REGISTRY_TLS})
"""Transport failures that count against an endpoint."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointState:
    """One remembered endpoint, as Status and metrics show it."""

    endpoint: str  # the API root URL
    healthy: bool  # not down now (tried in containerd's order)
    consecutive_failures: int
    failures_total: int
    last_error: str  # the Reason name of the last failure ("" when none)
    down_for: float  # seconds it stays down (0 when healthy)


@dataclass(slots=True)
class _Entry:
    consecutive: int = 0
    total: int = 0
    last_error: str = ""
    down_until: float = 0.0


class EndpointHealth:
    """Per-endpoint failure memory (see the module docstring). Thread-safe.

    Args:
        backoff: Seconds an endpoint stays down after a first failure.
        max_backoff: Ceiling of the doubling.
        max_entries: Endpoints remembered at most.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        backoff: float = 30.0,
        *,
        max_backoff: float | None = None,
        max_entries: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoff = backoff
        self.max_backoff = max_backoff if max_backoff is not None else 10 * backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: Lru[str, _Entry] = Lru(max(1, max_entries), name="endpoint health")

    def configure(self, backoff: float, *, max_entries: int | None = None) -> None:
        """Use ``backoff`` (and ten times it as the ceiling) from now on, and remember at most
        ``max_entries`` endpoints when given."""
        self.backoff, self.max_backoff = backoff, 10 * backoff
        if max_entries is not None:
            self._entries.resize(max(1, max_entries))

    def stats(self) -> LruStats:
        """Hits, misses, evictions, size and capacity of the endpoint memory."""
        return self._entries.stats()

    def failed(self, endpoint: Endpoint, reason: Reason) -> None:
        """Count a transport failure of ``endpoint`` (other reasons are ignored)."""
        if reason not in FAILURE_REASONS:
            return
        now = self._clock()
        with self._lock:
            entry = self._entries.pop(endpoint.url, None) or _Entry()
            entry.consecutive += 1
            entry.total += 1
            entry.last_error = reason.value
            delay = min(self.backoff * 2 ** min(entry.consecutive - 1, 32), self.max_backoff)
            entry.down_until = now + delay
            self._entries.put(endpoint.url, entry)

    def answered(self, endpoint: Endpoint) -> None:
        """``endpoint`` answered (any HTTP status): it is up."""
        with self._lock:
            entry = self._entries.peek(endpoint.url)
            if entry is not None and (entry.consecutive or entry.down_until):
                entry.consecutive = 0
                entry.down_until = 0.0
                self._entries.put(endpoint.url, entry)  # most recently changed

    def is_down(self, endpoint: Endpoint) -> bool:
        """True while ``endpoint`` is remembered as failing."""
        now = self._clock()
        with self._lock:
            entry = self._entries.peek(endpoint.url)
            return entry is not None and entry.down_until > now

    def order(self, endpoints: Sequence[Endpoint]) -> tuple[Endpoint, ...]:
        """``endpoints`` with the down ones moved last; both parts keep their order."""
        if not len(self._entries):
            return tuple(endpoints)
        down = [ep for ep in endpoints if self.is_down(ep)]
        if not down:
            return tuple(endpoints)
        return (*(ep for ep in endpoints if ep not in down), *down)

    def states(self) -> tuple[EndpointState, ...]:
        """Every remembered endpoint, most recently changed last."""
        now = self._clock()
        with self._lock:
            return tuple(
                EndpointState(
                    endpoint=url,
                    healthy=entry.down_until <= now,
                    consecutive_failures=entry.consecutive,
                    failures_total=entry.total,
                    last_error=entry.last_error,
                    down_for=max(entry.down_until - now, 0.0),
                )
                for url, entry in self._entries.items()
            )
