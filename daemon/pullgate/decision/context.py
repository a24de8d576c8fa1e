"""What one decision carries through the decider (docs/architecture.md §1).

The pieces :class:`~pullgate.decision.decider.Decider` threads through a computation: the
configuration snapshot it reads (:class:`SnapshotLike`), the per-snapshot state shared by every
request (:class:`Shared`), one computation's request, timings and findings
(:class:`DecisionContext`), the registry client borrowed on first use only (:class:`Lender`;
:class:`OfflineLender` for the warm path, where any registry access means "not warm":
:class:`WouldBlock`), and a request identity's last route into the decision cache
(:class:`Route`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Protocol

from pullgate.common.clock import Clock
from pullgate.config import DaemonConfig
from pullgate.decision.cache import CacheStats, FlightStats
from pullgate.decision.clients import ClientPool, PhaseTimes, credentials_identity
from pullgate.decision.combine import Verdict, finish
from pullgate.decision.memo import MemoKey
from pullgate.decision.model import BINDIR_CALLER, Decision, DecisionRequest
from pullgate.decision.platform import Platform
from pullgate.decision.subject_memo import SubjectMemo
from pullgate.registry.auth import CredentialStore
from pullgate.registry.body import ByteBudget
from pullgate.registry.health import EndpointState
from pullgate.registry.model import HostsConfig, RegistryLimits
from pullgate.registry.store import FetchHook, Store
from pullgate.trust.files import TrustConfig
from pullgate.verification.cache import CertMemo
from pullgate.verification.policy import TrustPolicyStatement
from pullgate.verification.revocation import CrlCache, NetworkRevocationChecker
from pullgate.verification.revocation.fetch import HttpFetcher

__all__ = [
    "DeciderStats",
    "DecisionContext",
    "Lender",
    "OfflineLender",
    "OpenedStores",
    "Route",
    "Shared",
    "SnapshotLike",
    "StoreOpener",
    "Stores",
    "WouldBlock",
]


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request identity led last time: its resolve-memo key, the digest the memo gave
    and the cache key built from it. Valid while the memo still gives that digest, because
    everything else in the cache key is a function of the flight key (snapshot included)."""

    memo_key: MemoKey
    digest: str
    cache_key: int  # CacheKey.compact()


class WouldBlock(Exception):
    """Raised inside a warm-path lookup that would need the network or the disk."""


class SnapshotLike(Protocol):
    """What the decider needs of a configuration snapshot (``pullgate.trust.snapshot``)."""

    @property
    def generation(self) -> int: ...
    @property
    def config(self) -> DaemonConfig: ...
    @property
    def trust(self) -> TrustConfig: ...
    @property
    def digest(self) -> str: ...
    @property
    def docker(self) -> CredentialStore | None: ...
    @property
    def cert_memo(self) -> CertMemo: ...
    def hosts(self, registry: str) -> HostsConfig: ...


StoreOpener = Callable[[SnapshotLike, CredentialStore | None], Store]


class Stores(Protocol):
    """Where a decider's content comes from: the registry
    (:class:`~pullgate.decision.clients.ClientKit`), or an OCI layout or in-memory store
    (:class:`OpenedStores`)."""

    def configure(self, config: DaemonConfig) -> None:
        """Apply a new snapshot's bounds."""
        ...

    def endpoint_states(self) -> tuple[EndpointState, ...]:
        """Endpoints remembered as failing (none for a store without endpoints)."""
        ...

    def factory(
        self,
        snap: SnapshotLike,
        credentials: CredentialStore | None,
        limits: RegistryLimits,
        budget: ByteBudget,
    ) -> Callable[[], Store]:
        """Makes the stores of one computation (its snapshot and credentials)."""
        ...


class OpenedStores:
    """:class:`Stores` from an ``opener(snapshot, credentials)``: an OCI layout
    (``pullgate verify --oci-layout``), or an in-memory store in tests."""

    def __init__(self, opener: StoreOpener) -> None:
        self._opener = opener

    def configure(self, config: DaemonConfig) -> None:
        """Nothing to bound."""

    def endpoint_states(self) -> tuple[EndpointState, ...]:
        """No endpoints."""
        return ()

    def factory(
        self,
        snap: SnapshotLike,
        credentials: CredentialStore | None,
        limits: RegistryLimits,
        budget: ByteBudget,
    ) -> Callable[[], Store]:
        """``opener`` bound to the computation's snapshot and credentials."""
        return partial(self._opener, snap, credentials)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeciderStats:
    """Counters for ``Status`` and metrics."""

    cache: CacheStats
    single_flight: FlightStats
    decisions: int
    fail_open: int
    clients_created: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Shared:
    """Per-snapshot state reused across requests."""

    digest: str
    revocation: NetworkRevocationChecker
    docker: CredentialStore | None
    limits: RegistryLimits
    budget: ByteBudget  # registry body bytes in flight, shared by every client
    subjects: SubjectMemo  # definitive subject verdicts, by repository, statement and digest
    cert_memo: CertMemo  # the snapshot's certificate-check memos (pullgate.verification.cache)

    @classmethod
    def build(cls, snap: SnapshotLike, fetcher: HttpFetcher, clock: Clock) -> Shared:
        """The state for ``snap`` (its ``config.json`` credentials were loaded, and hashed into
        its digest, when the snapshot was built: a changed file is a new snapshot)."""
        config = snap.config
        return cls(
            digest=snap.digest,
            revocation=NetworkRevocationChecker(
                fetcher,
                clock,
                crl_cache=CrlCache(config.verification.crl_cache_dir),
                memo=snap.cert_memo,
            ),
            docker=snap.docker,
            limits=RegistryLimits(
                max_manifest_bytes=config.registry.max_manifest_bytes,
                max_envelope_bytes=config.registry.max_envelope_bytes,
                connect_timeout=config.registry.connect_timeout,
                read_timeout=config.registry.read_timeout,
                fallback_timeout=config.registry.fallback_timeout,
                referrers_entries=config.cache.referrers_entries,
                referrers_ttl=config.cache.referrers_ttl,
            ),
            budget=ByteBudget(config.registry.max_inflight_bytes, config.registry.inflight_wait),
            subjects=SubjectMemo(config.cache, clock),
            cert_memo=snap.cert_memo,
        )


def flight_key(request: DecisionRequest, snap: SnapshotLike) -> tuple[object, ...]:
    """Everything a decision depends on, except the caller (never a secret): the key of its
    single flight. Whether the caller is containerd's bindir verifier counts (it may widen
    what an index decision covers, :mod:`pullgate.decision.every_platform`)."""
    return (
        request.caller == BINDIR_CALLER,
        request.reference,
        request.digest,
        request.platform,
        request.require,
        tuple(sorted((request.user_metadata or {}).items())),
        credentials_identity(request.credentials),
        snap.digest,
    )


class DecisionContext:
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

    def conclude(self, verdict: Verdict) -> Decision:
        """The decision ``verdict`` leads to under the statement's settings, timed."""
        settings = self.snap.config.settings_for(self.statement.name if self.statement else None)
        timings = self.times.as_dict()
        timings["total"] = time.perf_counter() - self.started
        return finish(
            verdict, settings, self.base(), timings, has_policy=self.statement is not None
        )

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


class Lender:
    """Borrows a pooled store on first use only (a warm decision needs none)."""

    def __init__(
        self,
        pool: ClientPool,
        key: tuple[str, str],
        factory: Callable[[], Store],
        *,
        deadline: float | None = None,
        on_fetch: FetchHook | None = None,
    ) -> None:
        self._pool = pool
        self._key = key
        self._factory = factory
        self._deadline = deadline
        self._on_fetch = on_fetch
        self._stack = ExitStack()
        self._client: Store | None = None

    def client(self) -> Store:
        if self._client is None:
            self._client = self._stack.enter_context(
                self._pool.lend(
                    self._key, self._factory, deadline=self._deadline, on_fetch=self._on_fetch
                )
            )
        return self._client

    def __enter__(self) -> Lender:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


class OfflineLender(Lender):
    """A lender for the warm path: any registry access means "not warm"."""

    def client(self) -> Store:
        raise WouldBlock
