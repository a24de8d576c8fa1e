"""Where the OCI referrers API was found absent recently (docs/containerd.md §1.9).

Signature discovery (:mod:`pullgate.registry.source`) asks an endpoint remembered here for the
tag-schema index (``<alg>-<hex>``) directly instead of probing the API again, as oras-go keeps
per-repository referrers state. Only the discovery path depends on it: the tag schema lists the
same signatures the API would where the API is absent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pullgate.common.lru import Lru, LruStats
from pullgate.registry.model import RegistryLimits

__all__ = ["ReferrersKey", "ReferrersMemo", "referrers_memo"]

ReferrersKey = tuple[str, str, str]  # (registry of the reference, endpoint URL, repository)


class ReferrersMemo:
    """Where the referrers API was found absent recently: a bounded, expiring memo.

    Only *which discovery path* is taken depends on it: an endpoint remembered here is asked for
    the tag-schema index (``<alg>-<hex>``) directly, which lists the same signatures as the API
    would when the API is absent. An entry expires after ``ttl`` seconds, so an endpoint that
    gains the API is probed again. Keys name the registry of the reference, the endpoint URL and
    the repository, so a mirror serving several registries never mixes them up; the memo belongs
    to one :class:`RegistryClient` (hence to one set of credentials) unless its owner passes the
    same memo to several clients.

    Args:
        ttl: Seconds an "absent" finding is trusted.
        max_entries: Entries kept (least recently used dropped first).
        monotonic: Monotonic seconds (tests inject one).
    """

    def __init__(
        self,
        *,
        ttl: float = 600.0,
        max_entries: int = 1024,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._absent: Lru[ReferrersKey, float] = Lru(  # key -> expiry
            max(1, max_entries), name="referrers API absent"
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._absent)

    def stats(self) -> LruStats:
        """Hits, misses, evictions, size and capacity of the memo."""
        return self._absent.stats()

    def api_absent(self, key: ReferrersKey) -> bool:
        """True when ``key``'s endpoint answered "no referrers API" less than ``ttl`` ago."""
        with self._lock:
            expiry = self._absent.get(key)
            if expiry is None:
                return False
            if self._monotonic() >= expiry:
                self._absent.pop(key)
                return False
            return True

    def mark_absent(self, key: ReferrersKey) -> None:
        """Remember that ``key``'s endpoint has no referrers API (for ``ttl`` seconds)."""
        if self._ttl <= 0 or self._max_entries <= 0:
            return
        with self._lock:
            self._absent.put(key, self._monotonic() + self._ttl)

    def forget(self, key: ReferrersKey) -> None:
        """Drop what is known about ``key`` (the next discovery probes the API again)."""
        with self._lock:
            self._absent.pop(key, None)


def referrers_memo(limits: RegistryLimits) -> ReferrersMemo:
    """A memo for one client, sized and timed by ``limits`` (``referrers_ttl``,
    ``referrers_entries``)."""
    return ReferrersMemo(ttl=limits.referrers_ttl, max_entries=limits.referrers_entries)
