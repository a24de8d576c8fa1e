"""Steps 1-2 of a decision: what is asked, and what it resolves to (docs/architecture.md §1).

:func:`request_platform` and :func:`request_reference` turn a
:class:`~pullgate.decision.model.DecisionRequest` into the platform and the normalised reference
it names. A :class:`Resolver` owns the three in-memory stores that let a warm decision make no
registry request at all:

* the resolve memo (:mod:`pullgate.decision.memo`, ``[cache] resolve_ttl``): reference →
  descriptor; its module docstring explains why a briefly stale tag → digest mapping cannot let
  unverified content through;
* the index memo: parsed index entries by the index's digest (content-addressed, so never
  stale);
* the routes: a request identity (the decider's flight key) → the resolve-memo key, the digest
  it gave and the decision-cache key built from it (:class:`~pullgate.decision.context.Route`).
"""

from __future__ import annotations

import time
from datetime import datetime

from pullgate.common.clock import Clock
from pullgate.common.descriptor import Descriptor, is_digest
from pullgate.common.lru import Lru, LruStats
from pullgate.config import CacheConfig, DaemonConfig
from pullgate.decision.context import DecisionContext, Lender, Route
from pullgate.decision.every_platform import covers_every_platform, every_manifest
from pullgate.decision.matcher import containerd_picks
from pullgate.decision.memo import MemoKey, ResolveMemo
from pullgate.decision.model import DecisionRequest
from pullgate.decision.platform import (
    IndexEntry,
    Platform,
    host_platform,
    index_entries,
    parse_platform,
)
from pullgate.decision.resolved import Resolved, resolve
from pullgate.errors import MalformedInput
from pullgate.registry.client import MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_OCI_INDEX
from pullgate.registry.model import ImageReference
from pullgate.registry.reference import parse_reference

__all__ = ["INDEX_TYPES", "Resolver", "request_platform", "request_reference"]

INDEX_TYPES = frozenset({MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST})
# Index memo entries per cached decision: most decisions share few indexes (one per image).
_INDEX_SHARE = 10


def request_platform(request: DecisionRequest, config: DaemonConfig) -> Platform:
    """The platform to decide for: the request's, else ``config.platform``, else this node's.

    Raises:
        MalformedInput: the platform text does not parse.
    """
    text = request.platform or config.platform
    return parse_platform(text) if text else host_platform()


def request_reference(request: DecisionRequest) -> ImageReference:
    """The request's normalised reference, pinned to the request's digest when it has one.

    Raises:
        MalformedInput: an unparsable reference or digest, or two digests that differ.
    """
    ref = parse_reference(request.reference)
    if request.digest:
        if not is_digest(request.digest):
            raise MalformedInput(f"invalid digest {request.digest!r}")
        if ref.digest and ref.digest != request.digest:
            raise MalformedInput("the reference's digest differs from the request's digest")
        ref = ref.with_digest(request.digest)
    return ref


class Resolver:
    """Resolution through the resolve memo, the index memo and the routes. Thread-safe.

    Args:
        clock: Source of "now" for the resolve memo's lifetimes.
        config: ``[cache]``: ``max_entries`` bounds the resolve memo and the routes (one of
            each per cached decision at most), a tenth of it the index memo.
    """

    def __init__(self, clock: Clock, config: CacheConfig) -> None:
        self._memo = ResolveMemo(clock, max_entries=config.max_entries)
        self._routes: Lru[tuple[object, ...], Route] = Lru(config.max_entries, name="routes")
        self._index_memo: Lru[str, tuple[IndexEntry, ...]] = Lru(
            max(1, config.max_entries // _INDEX_SHARE), name="index memo"
        )

    def configure(self, config: CacheConfig) -> None:
        """Resize the memos for a new ``[cache]`` table."""
        self._memo.resize(config.max_entries)
        self._routes.resize(max(1, config.max_entries))
        self._index_memo.resize(max(1, config.max_entries // _INDEX_SHARE))

    def stats(self) -> tuple[LruStats, ...]:
        """Statistics of the resolve memo, the routes and the index memo."""
        return (self._memo.stats(), self._routes.stats(), self._index_memo.stats())

    def remember_route(self, key: tuple[object, ...], route: Route) -> None:
        """Keep ``route`` for ``key`` (the oldest routes are dropped past the bound)."""
        self._routes.put(key, route)

    def routed(self, key: tuple[object, ...], now: datetime) -> int | None:
        """The decision-cache key request identity ``key`` led to last time, while the resolve
        memo still gives that route's digest at ``now``; else None."""
        route = self._routes.get(key)
        if route is None:
            return None
        resolved = self._memo.get(route.memo_key, now=now)
        if resolved is None or resolved.target.digest != route.digest:
            return None
        return route.cache_key

    def resolve(
        self, lender: Lender, ref: ImageReference, ctx: DecisionContext, identity: str
    ) -> Resolved:
        """Resolve ``ref``, through the resolve memo (see :mod:`pullgate.decision.memo`).

        Raises:
            PullgateError: the registry could not resolve it (typed as :func:`resolve` does).
        """
        config = ctx.snap.config.cache
        key = MemoKey(
            snapshot=ctx.snap.digest,
            credentials=identity,
            reference=str(ref),
            by_digest=ref.digest is not None,
        )
        ctx.memo_key = key
        if config.resolve_ttl > 0:
            memo = self._memo.get(key)
            if memo is not None:
                ctx.resolve_cached = True
                return memo
        client = lender.client()
        started = time.perf_counter()
        try:
            resolved = resolve(client, ref)
        finally:
            ctx.times.add("resolve", time.perf_counter() - started)
        if config.resolve_ttl > 0:  # a digest's descriptor is content-addressed: max_ttl
            ttl = config.max_ttl if key.by_digest else min(config.resolve_ttl, config.max_ttl)
            self._memo.put(key, resolved, ttl)
        return resolved

    def index(
        self, lender: Lender, ref: ImageReference, target: Descriptor, ctx: DecisionContext
    ) -> tuple[IndexEntry, ...]:
        """The entries of index ``target`` (fetched digest- and size-verified, or memoised).

        Raises:
            PullgateError: the fetch failed or the bytes are not a valid index.
        """
        memo = self._index_memo.get(target.digest)
        if memo is not None:
            return memo
        client = lender.client()
        started = time.perf_counter()
        try:
            data = client.fetch_manifest(ref, target)  # digest- and size-verified
        finally:
            ctx.times.add("fetch", time.perf_counter() - started)
        if target.media_type not in INDEX_TYPES:
            raise MalformedInput(f"{target.digest} is not an index ({target.media_type})")
        entries = index_entries(data)
        self._index_memo.put(target.digest, entries)
        return entries

    def picks(
        self,
        lender: Lender,
        ref: ImageReference,
        target: Descriptor,
        platform: Platform,
        ctx: DecisionContext,
    ) -> tuple[IndexEntry, ...]:
        """Every manifest a fronted containerd runs from index ``target`` for ``platform``
        (:func:`~pullgate.decision.matcher.containerd_picks`; nested indexes fetched as above),
        or, for a bindir-verifier request that must cover every platform, every manifest it could
        fetch (:mod:`pullgate.decision.every_platform`).

        Raises:
            PullgateError: a fetch failed, or an index is not one containerd would read.
        """

        def load(entry: IndexEntry) -> tuple[IndexEntry, ...]:
            return self.index(lender, ref, entry.descriptor, ctx)

        entries = self.index(lender, ref, target, ctx)
        statement = ctx.statement.name if ctx.statement else None
        if covers_every_platform(ctx.request, ctx.snap.config, statement):
            return every_manifest(entries, load)
        return containerd_picks(entries, platform, load)
