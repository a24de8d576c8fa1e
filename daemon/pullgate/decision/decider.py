"""The decision engine: one pull in, one enforceable answer out, for every front end
(docs/architecture.md §1).

Flow of :meth:`Decider.decide`:

1. The snapshot; the platform (request, ``config.platform``, or this node); the normalised
   reference; its trust-policy statement, chosen before the registry is contacted (so an
   unreachable registry still honours ``on_inconclusive``); none → deny ``NO_POLICY``.
2. Resolve. For an index: fetch it by digest (verified, memoised), select every manifest a
   fronted containerd would run (:mod:`pullgate.decision.matcher`); none → deny
   ``PLATFORM_NOT_FOUND``. Each platform descriptor comes from digest-verified index bytes;
   its own bytes are digest- and size-checked against that listing whenever fetched.
3. Decision cache, keyed by the resolved digests, the repository and the statement.
4. Verify the subjects the requirement needs (``both``/``either``: index and platform manifest;
   ``index``/``platform``: that one; a plain manifest: itself), in parallel, within the
   decision's budget (``verification.timeout`` → ``TIMEOUT``, inconclusive).
5. Combine: ``both`` needs both, ``either`` one; a failure that cannot be rescued is
   definitive, otherwise inconclusive.
6. Inconclusive + ``on_inconclusive = "allow"`` → allowed, ``fail_open`` (logged every time);
   still denied + ``mode = "audit"`` → allowed, ``audit_denied``, reason ``AUDIT_ONLY``.

With the resolve and index memos a warm decision makes no registry request. Parts: ``context``,
``resolution`` (1-2), ``cache`` (3), ``verify`` (4), ``combine`` (5-6), ``content`` (what an
allow covers); content is read only through a :class:`~pullgate.registry.store.Store`.

``decide`` is single-flighted on everything the answer depends on (:func:`flight_key`); threads
call :meth:`Decider.decide`, asyncio front ends :meth:`Decider.decide_async` (warm answers on
the event loop, cold ones joined without holding a thread). An unexpected exception is a
fail-closed ``INTERNAL`` deny (never opened by ``on_inconclusive``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace

from pullgate.common.clock import Clock
from pullgate.common.descriptor import Descriptor
from pullgate.config import CacheConfig
from pullgate.decision.cache import CacheKey, DecisionCache, SingleFlight
from pullgate.decision.clients import credentials_identity
from pullgate.decision.combine import Verdict
from pullgate.decision.content import ContentRead
from pullgate.decision.context import (
    DeciderStats,
    DecisionContext,
    Lender,
    OfflineLender,
    Route,
    Shared,
    SnapshotLike,
    WouldBlock,
    flight_key,
)
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.decision.parts import EngineParts
from pullgate.decision.platform import IndexEntry
from pullgate.decision.record import DecisionObserver
from pullgate.decision.resolution import (
    INDEX_TYPES,
    request_platform,
    request_reference,
)
from pullgate.decision.verify import SubjectContext, run_plan
from pullgate.errors import PullgateError, Reason, VerificationFailed, VerificationInconclusive
from pullgate.registry.auth import CredentialStore, StaticCredentials
from pullgate.registry.body import BudgetStats
from pullgate.registry.health import EndpointState
from pullgate.registry.store import FetchHook, Store
from pullgate.verification.revocation.fetch import HttpFetcher

__all__ = ["Decider", "DeciderStats", "SnapshotLike"]

log = logging.getLogger(__name__)


class Decider:
    """Decides pulls against the current configuration snapshot. Thread-safe.

    Args:
        snapshot: Returns the current snapshot (swapped atomically by the reloader).
        parts: Stores, store pool, resolver and threads (:class:`EngineParts`).
        clock: Source of "now" (verification, cache lifetimes, tokens).
        fetcher: OCSP/CRL transport.
        observer: Told of every answer, once per caller (audit and counters,
            :class:`~pullgate.decision.record.DecisionRecorder`).
        on_allow: Receives every allow, whichever front end asked, and its snapshot's digest
            (None: nobody keeps allows).
    """

    def __init__(
        self,
        snapshot: Callable[[], SnapshotLike],
        parts: EngineParts,
        *,
        clock: Clock,
        fetcher: HttpFetcher,
        observer: DecisionObserver,
        on_allow: Callable[[Decision, str], object] | None,
    ) -> None:
        self._snapshot = snapshot
        self._clock = clock
        self._fetcher = fetcher
        self._stores = parts.stores
        self._observer = observer
        self._on_allow = on_allow
        self._lock = threading.Lock()
        self._shared: Shared | None = None
        self._cache: DecisionCache | None = None
        self._flight: SingleFlight[tuple[object, ...], Decision] = SingleFlight()
        self._pool = parts.pool
        self._executor = parts.verify
        self._flight_executor = parts.flights
        self._resolver = parts.resolver
        self._decisions = 0
        self._fail_open = 0

    def close(self) -> None:
        """Stop the worker threads and close pooled connections."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._flight_executor.shutdown(wait=False, cancel_futures=True)
        self._pool.close()

    # ------------------------------------------------------------------ public API

    def decide(self, request: DecisionRequest) -> Decision:
        """Decide one pull. Never raises for a verdict; every problem is a typed deny."""
        snap = self._snapshot()
        cache = self._cache_for(snap.config.cache)
        decision, joined = self._flight.do(
            flight_key(request, snap), lambda: self._compute(snap, request, cache)
        )
        return self._deliver(decision, request, snap, joined=joined)

    async def decide_async(self, request: DecisionRequest) -> Decision:
        """:meth:`decide` for asyncio front ends (same answers, audit lines and counters): a warm
        request (:meth:`decide_cached`) is answered on the event loop, with no I/O; anything else
        joins or leads the request's flight, computed on the decider's own threads (no waiting
        caller holds a thread)."""
        warm = self.decide_cached(request)
        if warm is not None:
            return warm
        snap = self._snapshot()
        cache = self._cache_for(snap.config.cache)
        key = flight_key(request, snap)
        decision, joined = await self._flight.do_async(
            key, lambda: self._compute(snap, request, cache), self._flight_executor
        )
        return self._deliver(decision, request, snap, joined=joined)

    def decide_cached(self, request: DecisionRequest) -> Decision | None:
        """The answer from memory alone (resolve memo, index memo, decision cache), recorded like
        any answer; None, with nothing recorded, when it would need I/O."""
        snap = self._snapshot()
        cache = self._cache_for(snap.config.cache)
        key = flight_key(request, snap)
        warm = self._routed(key, request, cache) or self._peek(snap, request, cache)
        return None if warm is None else self._deliver(warm, request, snap, joined=False)

    def _deliver(
        self, decision: Decision, request: DecisionRequest, snap: SnapshotLike, *, joined: bool
    ) -> Decision:
        """Log fail-open, count, record (audit and metrics), report allows; the decision as the
        caller gets it."""
        if decision.fail_open:
            log.warning(
                "fail-open: %s allowed although verification was inconclusive (%s: %s)",
                decision.reference,
                decision.reason.value,
                decision.message,
            )
        with self._lock:
            self._decisions += 1
            self._fail_open += int(decision.fail_open)
        self._observer.decided(decision, request, joined=joined)
        if decision.allowed and self._on_allow is not None:
            try:
                self._on_allow(decision, snap.digest)
            except Exception:  # recording must never turn an answer into a crash
                log.exception("recording the allow of %s failed", decision.reference)
        return decision

    def stats(self) -> DeciderStats:
        """Cache, single-flight and decision counters."""
        cache = self._cache_for(self._snapshot().config.cache)
        with self._lock:
            decisions, fail_open = self._decisions, self._fail_open
        return DeciderStats(
            cache=cache.stats(),
            single_flight=self._flight.stats(),
            decisions=decisions,
            fail_open=fail_open,
            clients_created=self._pool.created,
        )

    def registry_status(self) -> tuple[tuple[EndpointState, ...], BudgetStats | None]:
        """Endpoints remembered as failing, and the in-flight byte budget (once there is one)."""
        shared = self._shared
        return self._stores.endpoint_states(), shared.budget.stats() if shared is not None else None

    # ------------------------------------------------------------------ plumbing

    def _cache_for(self, config: CacheConfig) -> DecisionCache:
        with self._lock:
            current = self._cache
            if current is not None and current.config is config:  # the common case, cheaply
                return current
            if current is None or current.config != config:
                current = self._cache = DecisionCache(config, self._clock)
                self._resolver.configure(config)
            return current

    def _shared_for(self, snap: SnapshotLike, *, offline: bool = False) -> Shared:
        with self._lock:
            if self._shared is not None and self._shared.digest == snap.digest:
                return self._shared
        if offline:  # built once per snapshot, on the computing path (warm lookups never build)
            raise WouldBlock
        shared = Shared.build(snap, self._fetcher, self._clock)
        self._stores.configure(snap.config)
        self._pool.resize(snap.config.cache.idle_client_keys)
        with self._lock:
            self._shared = shared
        self._pool.drop(lambda key: key[0] == snap.digest)
        return shared

    def _compute(
        self, snap: SnapshotLike, request: DecisionRequest, cache: DecisionCache
    ) -> Decision:
        ctx = DecisionContext(snap, request, time.perf_counter())
        try:
            return self._run(ctx, cache)
        except PullgateError as exc:
            return ctx.conclude(Verdict.from_error(exc))
        except Exception as exc:  # a bug must deny (fail closed), never crash the caller
            log.exception("internal error deciding %s", request.reference)
            internal = VerificationFailed(Reason.INTERNAL, f"internal error: {type(exc).__name__}")
            return ctx.conclude(Verdict.from_error(internal))

    def _routed(
        self, key: tuple[object, ...], request: DecisionRequest, cache: DecisionCache
    ) -> Decision | None:
        """The cached decision through the request identity's last route, or None."""
        started = time.perf_counter()
        now = self._clock.now()
        routed = self._resolver.routed(key, now)
        if routed is None:
            return None
        cached = cache.lookup(routed, count_miss=False, now=now.timestamp())
        if cached is None:
            return None
        return replace(
            cached,
            reference=request.reference,
            cache_hit=True,
            timings={"total": time.perf_counter() - started},
            resolve_cached=True,
        )

    def _peek(
        self, snap: SnapshotLike, request: DecisionRequest, cache: DecisionCache
    ) -> Decision | None:
        """The cached decision when everything it needs is in memory, else None (then the
        full computation decides, including every error case)."""
        ctx = DecisionContext(snap, request, time.perf_counter())
        try:
            return self._run(ctx, cache, offline=True)
        except WouldBlock:
            return None
        except Exception:  # the full computation turns it into a typed deny
            log.debug("warm path declined %s", request.reference, exc_info=True)
            return None

    def _run(
        self, ctx: DecisionContext, cache: DecisionCache, *, offline: bool = False
    ) -> Decision:
        """Decide ``ctx``'s request; ``offline``: from memory only (else :class:`WouldBlock`)."""
        request, snap = ctx.request, ctx.snap
        ctx.platform = request_platform(request, snap.config)
        ref = request_reference(request)
        ctx.digest = ref.digest or ""
        ctx.statement = snap.trust.oci_policy.select(ref.policy_reference())
        shared = self._shared_for(snap, offline=offline)
        creds: CredentialStore | None = shared.docker
        if request.credentials is not None:
            creds = StaticCredentials(request.credentials)
        pool_key = (snap.digest, credentials_identity(request.credentials))

        factory = self._stores.factory(snap, creds, shared.limits, shared.budget)

        lender_type = OfflineLender if offline else Lender
        with lender_type(self._pool, pool_key, factory, deadline=ctx.deadline) as lender:
            resolved = self._resolver.resolve(lender, ref, ctx, pool_key[1])
            ctx.digest = resolved.target.digest
            picks: tuple[IndexEntry, ...] = ()
            if resolved.target.media_type in INDEX_TYPES:
                picks = self._resolver.picks(
                    lender, resolved.reference, resolved.target, ctx.platform, ctx
                )
                if not picks:
                    raise VerificationFailed(
                        Reason.PLATFORM_NOT_FOUND,
                        f"{resolved.reference} has no manifest for platform {ctx.platform}",
                    )
        if time.perf_counter() >= ctx.deadline:
            raise VerificationInconclusive(
                Reason.TIMEOUT,
                f"the {snap.config.verification.timeout:g} s decision budget ran out "
                "while resolving",
            )
        key = CacheKey(
            digest=resolved.target.digest,
            platform_digest=",".join(e.descriptor.digest for e in picks) or None,
            platform=str(ctx.platform),
            require=request.require,
            snapshot=snap.digest,
            repository=ref.locator,
            statement=ctx.statement.name,
            user_metadata=tuple(sorted((request.user_metadata or {}).items())),
        )
        if ctx.memo_key is not None and snap.config.cache.resolve_ttl > 0:
            route = Route(
                memo_key=ctx.memo_key, digest=resolved.target.digest, cache_key=key.compact()
            )
            self._resolver.remember_route(flight_key(request, snap), route)
        cached = cache.get(key, count_miss=not offline)
        if cached is not None:
            timings = ctx.times.as_dict()
            timings["total"] = time.perf_counter() - ctx.started
            return replace(
                cached,
                reference=request.reference,
                cache_hit=True,
                timings=timings,
                resolve_cached=ctx.resolve_cached,
            )
        if offline:
            raise WouldBlock

        def lend(on_fetch: FetchHook | None) -> AbstractContextManager[Store]:
            return self._pool.lend(pool_key, factory, deadline=ctx.deadline, on_fetch=on_fetch)

        sub = SubjectContext(
            ref=resolved.reference,
            snap=snap,
            statement=ctx.statement,
            shared=shared,
            clock=self._clock,
            lend=lend,
            times=ctx.times,
            user_metadata=request.user_metadata,
        )
        decision = self._verify(ctx, sub, resolved.target, picks)
        cache.put(key, decision, ctx.valid_until)
        return decision

    def _verify(
        self,
        ctx: DecisionContext,
        sub: SubjectContext,
        target: Descriptor,
        picks: tuple[IndexEntry, ...],
    ) -> Decision:
        manifests = [e.descriptor for e in picks] or [target]
        content = ContentRead(self._executor, sub.lend, sub.ref, manifests, deadline=ctx.deadline)
        verdict = run_plan(self._executor, ctx, sub, target, picks, alongside=content.start)
        return content.bind(ctx.conclude(verdict), ctx)
