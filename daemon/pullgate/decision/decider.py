"""The decision layer: one pull in, one enforceable answer out (ARCHITECTURE.md "decision").

Flow of :meth:`Decider.decide`:

1. The current configuration snapshot; the platform (request, ``config.platform``, or this
   node); the reference, normalised; the trust-policy statement (scope matching is on
   ``registry/repository``, so it is chosen before the registry is contacted, and an
   unreachable registry can still honour the statement's ``on_inconclusive``). No statement →
   deny ``NO_POLICY``.
2. Resolve (HEAD). For an index: fetch it by digest (digest-verified, memoised by digest),
   select the manifest containerd would pull (:mod:`pullgate.decision.platform`); none → deny
   ``PLATFORM_NOT_FOUND``. The platform descriptor comes out of the verified index bytes, so
   it is listed in the index by construction; its own bytes are digest- and size-checked
   against that listing whenever they are fetched.
3. Decision cache (:mod:`pullgate.decision.cache`), keyed by the resolved digests, the
   repository and the statement (never shared across repositories or statements).
4. Verify the subjects the requirement needs, in parallel on a thread pool, within the whole
   decision's budget (``verification.timeout`` → ``TIMEOUT``, inconclusive): ``both`` and
   ``either`` verify index and platform manifest, ``index`` / ``platform`` only the one they
   need. A plain manifest is one subject (role ``manifest``), whatever the requirement.
5. Combine: ``both`` needs both; ``either`` needs one. A failure is definitive when it cannot
   be rescued (``both``: any definitive failure; ``either``: all failures definitive);
   otherwise it is inconclusive.
6. Inconclusive + ``on_inconclusive = "allow"`` → allowed, ``fail_open`` (warning logged on
   every call). Still denied + ``mode = "audit"`` → allowed, ``audit_denied``, reason
   ``AUDIT_ONLY`` with the underlying reason kept in the message.

Step 2's resolve goes through the resolve memo (:mod:`pullgate.decision.memo`, ``[cache]
resolve_ttl``; the module docstring there explains why a briefly stale tag → digest mapping
cannot let unverified content through), and the index memo keeps parsed indexes by digest, so
a warm decision makes no registry request at all.

The whole of ``decide`` is single-flighted on (reference, digest, platform, requirement,
credentials identity, snapshot digest): 100 concurrent identical cold calls cost one call's
registry requests. Threads call :meth:`Decider.decide`; asyncio front ends call
:meth:`Decider.decide_async`, which answers a warm request on the event loop from the memos and
the cache (no thread hop, no I/O), and otherwise joins the same flights without holding a
thread while it waits. An unexpected exception is a fail-closed ``INTERNAL`` deny (never opened
by ``on_inconclusive``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from pullgate.clock import Clock
from pullgate.config import CacheConfig, DaemonConfig, Requirement
from pullgate.decision.audit import audit_record
from pullgate.decision.cache import CacheKey, CacheStats, DecisionCache, FlightStats, SingleFlight
from pullgate.decision.clients import (
    ClientPool,
    PhaseTimes,
    TimedClient,
    credentials_identity,
    make_client,
)
from pullgate.decision.combine import Subject, Verdict, combine, finish
from pullgate.decision.memo import MemoKey, ResolveMemo
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.decision.platform import (
    IndexEntry,
    Platform,
    host_platform,
    index_entries,
    parse_platform,
    select_entry,
)
from pullgate.decision.verify import SubjectContext, SubjectJob, run_subject, timed_out_subject
from pullgate.descriptor import Descriptor, is_digest
from pullgate.errors import (
    MalformedInput,
    PullgateError,
    Reason,
    VerificationFailed,
    VerificationInconclusive,
)
from pullgate.pipeline import Resolved, resolve
from pullgate.registry.auth import CredentialStore, DockerConfigCredentials, StaticCredentials
from pullgate.registry.client import MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_OCI_INDEX
from pullgate.registry.model import HostsConfig, ImageReference, RegistryLimits
from pullgate.registry.reference import parse_reference
from pullgate.registry.transport import RequestRecord
from pullgate.trust import TrustConfig
from pullgate.verification.http_fetch import HttpFetcher, Urllib3Fetcher
from pullgate.verification.policy import TrustPolicyStatement
from pullgate.verification.revocation import CrlCache, NetworkRevocationChecker

__all__ = ["Decider", "DeciderStats", "SnapshotLike"]

log = logging.getLogger(__name__)

_INDEX_TYPES = frozenset({MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST})
_INDEX_MEMO = 1024
_RESOLVE_MEMO = 4096
_ROUTES = 4096


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a request identity led last time: its resolve-memo key, the digest the memo gave
    and the cache key built from it. Valid while the memo still gives that digest, because
    everything else in the cache key is a function of the flight key (snapshot included)."""

    memo_key: MemoKey
    digest: str
    cache_key: CacheKey


class _WouldBlock(Exception):
    """Raised inside a warm-path lookup that would need the network or the disk."""


class SnapshotLike(Protocol):
    """What the decider needs of a configuration snapshot (``pullgate.reload.snapshot``)."""

    @property
    def generation(self) -> int: ...
    @property
    def config(self) -> DaemonConfig: ...
    @property
    def trust(self) -> TrustConfig: ...
    @property
    def digest(self) -> str: ...
    def hosts(self, registry: str) -> HostsConfig: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class DeciderStats:
    """Counters for ``Status`` and metrics."""

    cache: CacheStats
    single_flight: FlightStats
    decisions: int
    fail_open: int
    clients_created: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _Shared:
    """Per-snapshot state reused across requests."""

    digest: str
    revocation: NetworkRevocationChecker
    docker: CredentialStore | None
    docker_error: PullgateError | None
    limits: RegistryLimits


class _Context:
    """One computation: the snapshot, the request and the timings being collected."""

    def __init__(self, snap: SnapshotLike, request: DecisionRequest, started: float) -> None:
        self.snap = snap
        self.request = request
        self.started = started
        self.deadline = started + snap.config.verification.timeout
        self.times = PhaseTimes()
        self.platform: Platform | None = None
        self.statement: TrustPolicyStatement | None = None
        self.digest = ""
        self.valid_until: datetime | None = None
        self.resolve_cached = False
        self.memo_key: MemoKey | None = None

    def base(self) -> dict[str, object]:
        settings = self.snap.config.settings_for(self.statement.name if self.statement else None)
        return {
            "reference": self.request.reference,
            "digest": self.digest,
            "platform": str(self.platform) if self.platform else None,
            "statement": self.statement.name if self.statement else None,
            "level": self.statement.level.value if self.statement else None,
            "requirement": self.request.require or settings.require,
            "mode": settings.mode,
            "generation": self.snap.generation,
            "resolve_cached": self.resolve_cached,
        }


class _Lender:
    """Borrows a pooled registry client on first use only (a warm decision needs none)."""

    def __init__(
        self, pool: ClientPool, key: tuple[str, str], factory: Callable[[], TimedClient]
    ) -> None:
        self._pool = pool
        self._key = key
        self._factory = factory
        self._stack = ExitStack()
        self._client: TimedClient | None = None

    def client(self) -> TimedClient:
        if self._client is None:
            self._client = self._stack.enter_context(self._pool.lend(self._key, self._factory))
        return self._client

    def __enter__(self) -> _Lender:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


class _OfflineLender(_Lender):
    """A lender for the warm path: any registry access means "not warm"."""

    def client(self) -> TimedClient:
        raise _WouldBlock


class Decider:
    """Decides pulls against the current configuration snapshot. Thread-safe.

    Args:
        snapshot: Returns the current snapshot (swapped atomically by the reloader).
        clock: Source of "now" (verification, cache lifetimes, tokens).
        fetcher: OCSP/CRL transport (default: a pooled urllib3 fetcher).
        request_log: Receives one record per registry HTTP exchange.
        audit: Receives one audit dict per decision (see :mod:`pullgate.decision.audit`).
        max_workers: Threads verifying subjects in parallel.
        max_flights: Threads running the computations of :meth:`decide_async` (distinct
            concurrent cold decisions beyond this wait their turn).
    """

    def __init__(
        self,
        snapshot: Callable[[], SnapshotLike],
        *,
        clock: Clock,
        fetcher: HttpFetcher | None = None,
        request_log: Callable[[RequestRecord], None] | None = None,
        audit: Callable[[dict[str, object]], None] | None = None,
        max_workers: int = 32,
        max_flights: int = 64,
    ) -> None:
        self._snapshot = snapshot
        self._clock = clock
        self._fetcher = fetcher or Urllib3Fetcher()
        self._request_log = request_log
        self._audit = audit
        self._lock = threading.Lock()
        self._shared: _Shared | None = None
        self._cache: DecisionCache | None = None
        self._flight: SingleFlight[tuple[object, ...], Decision] = SingleFlight()
        self._pool = ClientPool()
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="pullgate-verify")
        # Runs the computations of decide_async's flights; nothing on it ever waits on a
        # flight, so a thread caller joining such a flight cannot deadlock it (cache.py).
        self._flight_executor = ThreadPoolExecutor(
            max_flights, thread_name_prefix="pullgate-decide"
        )
        self._memo = ResolveMemo(clock, max_entries=_RESOLVE_MEMO)
        self._routes: OrderedDict[tuple[object, ...], _Route] = OrderedDict()
        self._index_memo: OrderedDict[str, tuple[IndexEntry, ...]] = OrderedDict()
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
            self._flight_key(request, snap), lambda: self._compute(snap, request, cache)
        )
        return self._deliver(decision, request, joined=joined)

    async def decide_async(self, request: DecisionRequest) -> Decision:
        """:meth:`decide` for asyncio front ends (same answers, audit lines and counters).

        A warm request (resolve memo, index memo and decision cache all hit) is answered right
        here on the event loop: it needs no I/O, only in-memory lookups under short locks.
        Anything else joins or leads the request's flight; the computation runs on the
        decider's own threads and no waiting caller holds a thread.
        """
        started = time.perf_counter()
        snap = self._snapshot()
        cache = self._cache_for(snap.config.cache)
        key = self._flight_key(request, snap)
        warm = self._routed(key, request, cache, started) or self._peek(snap, request, cache)
        if warm is not None:
            return self._deliver(warm, request, joined=False)
        decision, joined = await self._flight.do_async(
            key, lambda: self._compute(snap, request, cache), self._flight_executor
        )
        return self._deliver(decision, request, joined=joined)

    def _deliver(self, decision: Decision, request: DecisionRequest, *, joined: bool) -> Decision:
        """Log fail-open, count, audit; the decision as the caller gets it."""
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
        if self._audit is not None:
            record = audit_record(decision, request)
            record["single_flight_joined"] = joined
            self._audit(record)
        return decision

    @staticmethod
    def _flight_key(request: DecisionRequest, snap: SnapshotLike) -> tuple[object, ...]:
        """Everything the answer depends on, except the caller (never a secret)."""
        return (
            request.reference,
            request.digest,
            request.platform,
            request.require,
            credentials_identity(request.credentials),
            snap.digest,
        )

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

    # ------------------------------------------------------------------ plumbing

    def _cache_for(self, config: CacheConfig) -> DecisionCache:
        with self._lock:
            if self._cache is None or self._cache.config != config:
                self._cache = DecisionCache(config, self._clock)
            return self._cache

    def _shared_for(self, snap: SnapshotLike, *, offline: bool = False) -> _Shared:
        with self._lock:
            if self._shared is not None and self._shared.digest == snap.digest:
                return self._shared
        if offline:  # building it reads config.json: not on the event loop
            raise _WouldBlock
        config = snap.config
        docker: CredentialStore | None = None
        docker_error: PullgateError | None = None
        if config.registry.config_json is not None:
            try:
                docker = DockerConfigCredentials.from_file(config.registry.config_json)
            except PullgateError as exc:
                docker_error = exc
        shared = _Shared(
            digest=snap.digest,
            revocation=NetworkRevocationChecker(
                self._fetcher, self._clock, crl_cache=CrlCache(config.verification.crl_cache_dir)
            ),
            docker=docker,
            docker_error=docker_error,
            limits=RegistryLimits(
                max_manifest_bytes=config.registry.max_manifest_bytes,
                max_envelope_bytes=config.registry.max_envelope_bytes,
                connect_timeout=config.registry.connect_timeout,
                read_timeout=config.registry.read_timeout,
            ),
        )
        with self._lock:
            self._shared = shared
        self._pool.drop(lambda key: key[0] == snap.digest)
        return shared

    def _compute(
        self, snap: SnapshotLike, request: DecisionRequest, cache: DecisionCache
    ) -> Decision:
        ctx = _Context(snap, request, time.perf_counter())
        try:
            return self._run(ctx, cache)
        except PullgateError as exc:
            return self._conclude(ctx, Verdict.from_error(exc))
        except Exception as exc:  # a bug must deny (fail closed), never crash the caller
            log.exception("internal error deciding %s", request.reference)
            internal = VerificationFailed(Reason.INTERNAL, f"internal error: {type(exc).__name__}")
            return self._conclude(ctx, Verdict.from_error(internal, inconclusive=False))

    def _routed(
        self,
        key: tuple[object, ...],
        request: DecisionRequest,
        cache: DecisionCache,
        started: float,
    ) -> Decision | None:
        """The cached decision through the request identity's last route, or None."""
        with self._lock:
            route = self._routes.get(key)
        if route is None:
            return None
        resolved = self._memo.get(route.memo_key)
        if resolved is None or resolved.target.digest != route.digest:
            return None
        cached = cache.get(route.cache_key, count_miss=False)
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
        ctx = _Context(snap, request, time.perf_counter())
        try:
            return self._run(ctx, cache, offline=True)
        except _WouldBlock:
            return None
        except Exception:  # the full computation turns it into a typed deny
            log.debug("warm path declined %s", request.reference, exc_info=True)
            return None

    def _conclude(self, ctx: _Context, verdict: Verdict) -> Decision:
        settings = ctx.snap.config.settings_for(ctx.statement.name if ctx.statement else None)
        timings = ctx.times.as_dict()
        timings["total"] = time.perf_counter() - ctx.started
        return finish(verdict, settings, ctx.base(), timings, has_policy=ctx.statement is not None)

    def _run(self, ctx: _Context, cache: DecisionCache, *, offline: bool = False) -> Decision:
        """Decide ``ctx``'s request; ``offline``: from memory only (else :class:`_WouldBlock`)."""
        request, snap = ctx.request, ctx.snap
        ctx.platform = self._platform(request, snap.config)
        ref = self._reference(request)
        ctx.digest = ref.digest or ""
        ctx.statement = snap.trust.oci_policy.select(f"{ref.locator}@{ref.digest or ''}")
        shared = self._shared_for(snap, offline=offline)
        if shared.docker_error is not None:
            raise shared.docker_error
        creds: CredentialStore | None = shared.docker
        if request.credentials is not None:
            creds = StaticCredentials(request.credentials)
        pool_key = (snap.digest, credentials_identity(request.credentials))

        def factory() -> TimedClient:
            return make_client(snap.hosts, creds, shared.limits, self._request_log, self._clock)

        lender_type = _OfflineLender if offline else _Lender
        with lender_type(self._pool, pool_key, factory) as lender:
            resolved = self._resolve(lender, ref, ctx, pool_key[1])
            ctx.digest = resolved.target.digest
            entry: IndexEntry | None = None
            if resolved.target.media_type in _INDEX_TYPES:
                entries = self._index(lender, resolved.reference, resolved.target, ctx)
                entry = select_entry(entries, ctx.platform)
                if entry is None:
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
            platform_digest=entry.descriptor.digest if entry else None,
            platform=str(ctx.platform),
            require=request.require,
            snapshot=snap.digest,
            repository=ref.locator,
            statement=ctx.statement.name,
        )
        if ctx.memo_key is not None and snap.config.cache.resolve_ttl > 0:
            route = _Route(memo_key=ctx.memo_key, digest=resolved.target.digest, cache_key=key)
            with self._lock:
                self._routes[self._flight_key(request, snap)] = route
                while len(self._routes) > _ROUTES:
                    self._routes.popitem(last=False)
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
            raise _WouldBlock

        def lend() -> AbstractContextManager[TimedClient]:
            return self._pool.lend(pool_key, factory)

        sub = SubjectContext(
            ref=resolved.reference,
            snap=snap,
            statement=ctx.statement,
            revocation=shared.revocation,
            clock=self._clock,
            lend=lend,
            times=ctx.times,
        )
        decision = self._verify(ctx, sub, resolved.target, entry)
        cache.put(key, decision, ctx.valid_until)
        return decision

    def _verify(
        self, ctx: _Context, sub: SubjectContext, target: Descriptor, entry: IndexEntry | None
    ) -> Decision:
        settings = ctx.snap.config.settings_for(sub.statement.name)
        requirement = ctx.request.require or settings.require
        jobs: list[SubjectJob] = []
        if entry is None:
            jobs.append(SubjectJob(role="manifest", descriptor=target))
        else:
            if requirement is not Requirement.PLATFORM:
                jobs.append(SubjectJob(role="index", descriptor=target))
            if requirement is not Requirement.INDEX:
                jobs.append(
                    SubjectJob(role="platform", descriptor=entry.descriptor, platform=ctx.platform)
                )
        futures = [self._executor.submit(run_subject, job, sub) for job in jobs]
        subjects: list[Subject] = []
        budget = ctx.snap.config.verification.timeout
        for job, future in zip(jobs, futures, strict=True):
            remaining = ctx.deadline - time.perf_counter()
            try:
                subjects.append(future.result(timeout=max(remaining, 0.0)))
            except FutureTimeout:
                subjects.append(timed_out_subject(job, budget))
        bounds = [s.valid_until for s in subjects if s.valid_until is not None]
        ctx.valid_until = min(bounds, default=None)
        effective = requirement if entry is not None else Requirement.BOTH
        return self._conclude(ctx, combine(effective, subjects))

    def _resolve(
        self, lender: _Lender, ref: ImageReference, ctx: _Context, identity: str
    ) -> Resolved:
        """Resolve ``ref``, through the resolve memo (see :mod:`pullgate.decision.memo`)."""
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

    def _index(
        self, lender: _Lender, ref: ImageReference, target: Descriptor, ctx: _Context
    ) -> tuple[IndexEntry, ...]:
        with self._lock:
            memo = self._index_memo.get(target.digest)
            if memo is not None:
                self._index_memo.move_to_end(target.digest)
                return memo
        client = lender.client()
        started = time.perf_counter()
        try:
            data = client.fetch_manifest(ref, target)  # digest- and size-verified
        finally:
            ctx.times.add("fetch", time.perf_counter() - started)
        entries = index_entries(data)
        with self._lock:
            self._index_memo[target.digest] = entries
            while len(self._index_memo) > _INDEX_MEMO:
                self._index_memo.popitem(last=False)
        return entries

    @staticmethod
    def _platform(request: DecisionRequest, config: DaemonConfig) -> Platform:
        text = request.platform or config.platform
        return parse_platform(text) if text else host_platform()

    @staticmethod
    def _reference(request: DecisionRequest) -> ImageReference:
        ref = parse_reference(request.reference)
        if request.digest:
            if not is_digest(request.digest):
                raise MalformedInput(f"invalid digest {request.digest!r}")
            if ref.digest and ref.digest != request.digest:
                raise MalformedInput("the reference's digest differs from the request's digest")
            ref = ref.with_digest(request.digest)
        return ref
