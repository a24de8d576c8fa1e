"""The resolve memo: a short-lived reference → descriptor map (the warm path).

Every decision starts by resolving its reference (OCI distribution-spec ``HEAD
/v2/<name>/manifests/<reference>``). On a warm decision that request is nearly all of the cost,
so :class:`ResolveMemo` lets the decider reuse a recent answer:

* **key** — (configuration snapshot digest, credentials identity, normalised reference, kind).
  The snapshot digest covers certs.d and the daemon config, so a reload never reuses an answer
  obtained through other endpoints or TLS settings. The credentials identity is the one-way
  hash of :func:`~pullgate.decision.clients.credentials_identity`, never the secret, so an
  answer obtained with one caller's credentials is only reused for a request carrying the very
  same credentials: a caller who cannot read a repository still has to ask the registry.
* **tags** live ``[cache] resolve_ttl`` seconds (default 5, bounded by ``max_ttl``; 0 turns the
  memo off). **Digests** are content-addressed — the descriptor of ``name@sha256:…`` cannot
  change — so they live ``max_ttl``.
* only successful resolutions are remembered; the memo is a bounded LRU.

Invariant: the memo changes *which* digest is verified, never *whether* content is verified —
every decision names the digest it verified, and the enforcement points pin that digest (the
CRI proxy after the pull, the bindir shim by pulling by digest), so a stale tag mapping can
only deny a tag that just moved. The argument in full: docs/decisions.md, "A tag's resolved
digest is reused". The memo is thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pullgate.common.clock import Clock
from pullgate.common.lru import Lru, LruStats
from pullgate.decision.resolved import Resolved

__all__ = ["MemoKey", "ResolveMemo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoKey:
    """What a resolution depends on (never a secret)."""

    snapshot: str  # configuration snapshot digest (certs.d, daemon config, trust)
    credentials: str  # credentials_identity(): a one-way hash, "" without credentials
    reference: str  # the normalised reference (str(ImageReference))
    by_digest: bool  # a digest reference (content-addressed) or a tag


@dataclass(frozen=True, slots=True)
class _Memo:
    resolved: Resolved
    expires: datetime


class ResolveMemo:
    """Bounded, thread-safe LRU of recent resolutions with per-entry lifetimes.

    Args:
        clock: Source of "now" for expiry.
        max_entries: Resolutions kept (the least recently used are dropped).
    """

    def __init__(self, clock: Clock, *, max_entries: int = 4096) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: Lru[MemoKey, _Memo] = Lru(max(1, max_entries), name="resolve memo")

    def __len__(self) -> int:
        return len(self._entries)

    def resize(self, max_entries: int) -> None:
        """Keep at most ``max_entries`` resolutions from now on."""
        self._max_entries = max_entries
        self._entries.resize(max(1, max_entries))

    def stats(self) -> LruStats:
        """Hits, misses, evictions and size of the memo."""
        return self._entries.stats()

    def get(self, key: MemoKey, *, now: datetime | None = None) -> Resolved | None:
        """The live resolution of ``key``, or None (``now``: when the caller just read it)."""
        if now is None:
            now = self._clock.now()
        memo = self._entries.get(key)
        if memo is None:
            return None
        if now >= memo.expires:
            self._entries.pop(key)  # a racing fresh put may go too: only a later miss
            return None
        return memo.resolved

    def put(self, key: MemoKey, resolved: Resolved, ttl: float) -> None:
        """Remember ``resolved`` for ``ttl`` seconds (nothing when ``ttl`` <= 0)."""
        if ttl <= 0 or self._max_entries <= 0:
            return
        memo = _Memo(resolved, self._clock.now() + timedelta(seconds=ttl))
        self._entries.put(key, memo)
