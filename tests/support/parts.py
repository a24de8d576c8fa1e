"""Tests build the daemon's collaborators here, with test defaults, instead of the production
classes making defaults of their own (docs/architecture.md §3.4). The engine comes from the
composition root itself (:func:`pullgate.service.engine.decision_engine`), so decision tests run
the daemon's wiring; the registry transport and client get fresh parts for whatever a test
does not pass."""

from __future__ import annotations

import time
from collections.abc import Callable

import urllib3

from pullgate.common.clock import Clock, SystemClock
from pullgate.config import CacheConfig
from pullgate.decision.context import SnapshotLike, StoreOpener
from pullgate.decision.decider import Decider
from pullgate.decision.model import Decision
from pullgate.decision.record import DecisionObserver, DecisionRecorder
from pullgate.net.deadline import Watchdog
from pullgate.net.resolver import Resolver
from pullgate.registry.auth import CredentialStore
from pullgate.registry.body import ByteBudget, own_budget
from pullgate.registry.client import RegistryClient
from pullgate.registry.health import EndpointHealth
from pullgate.registry.model import HostsConfig, RegistryLimits
from pullgate.registry.referrers_memo import ReferrersMemo
from pullgate.registry.referrers_memo import referrers_memo as sized_memo
from pullgate.registry.tls import TlsContextCache
from pullgate.registry.transport import RequestLogHook, Transport
from pullgate.service.engine import deadline_watchdog, decision_engine
from pullgate.verification.revocation.fetch import HttpFetcher, Urllib3Fetcher

__all__ = ["build_client", "build_engine", "build_fetcher", "build_transport", "build_watchdog"]


def build_watchdog(resolver: Resolver | None = None) -> Watchdog:
    """A deadline watchdog of its own (with ``resolver``, else the daemon's own kind)."""
    return Watchdog(resolver) if resolver is not None else deadline_watchdog()


def build_fetcher(
    pool: urllib3.PoolManager | None = None, *, watchdog: Watchdog | None = None
) -> Urllib3Fetcher:
    """An OCSP/CRL fetcher over ``pool`` (else a small one of its own)."""
    pool = pool if pool is not None else urllib3.PoolManager(num_pools=4, retries=False)
    return Urllib3Fetcher(pool, watchdog=watchdog if watchdog is not None else build_watchdog())


def build_transport(
    limits: RegistryLimits | None = None,
    *,
    clock: Clock | None = None,
    tls_contexts: TlsContextCache | None = None,
    watchdog: Watchdog | None = None,
    budget: ByteBudget | None = None,
    health: EndpointHealth | None = None,
    request_log: RequestLogHook | None = None,
    sleep: Callable[[float], None] = time.sleep,
    deadline: float | None = None,
) -> Transport:
    """A registry transport; every part not passed is a fresh one of its own."""
    return Transport(
        limits if limits is not None else RegistryLimits(),
        clock if clock is not None else SystemClock(),
        tls_contexts if tls_contexts is not None else TlsContextCache(),
        watchdog if watchdog is not None else build_watchdog(),
        budget if budget is not None else own_budget(),
        health if health is not None else EndpointHealth(),
        request_log=request_log,
        sleep=sleep,
        deadline=deadline,
    )


def build_client(
    hosts: Callable[[str], HostsConfig],
    *,
    credentials: CredentialStore | None = None,
    limits: RegistryLimits | None = None,
    clock: Clock | None = None,
    request_log: RequestLogHook | None = None,
    sleep: Callable[[float], None] = time.sleep,
    referrers_memo: ReferrersMemo | None = None,
    tls_contexts: TlsContextCache | None = None,
    transport: Transport | None = None,
    budget: ByteBudget | None = None,
    health: EndpointHealth | None = None,
) -> RegistryClient:
    """A registry client over ``transport`` (else a :func:`build_transport` with the parts
    passed); a referrers memo of its own unless one is passed."""
    limits = limits if limits is not None else RegistryLimits()
    clock = clock if clock is not None else SystemClock()
    if transport is None:
        transport = build_transport(
            limits,
            clock=clock,
            tls_contexts=tls_contexts,
            budget=budget,
            health=health,
            request_log=request_log,
            sleep=sleep,
        )
    return RegistryClient(
        hosts,
        credentials=credentials,
        limits=limits,
        clock=clock,
        transport=transport,
        referrers_memo=referrers_memo if referrers_memo is not None else sized_memo(limits),
    )


def build_engine(
    snapshot: Callable[[], SnapshotLike],
    *,
    clock: Clock | None = None,
    fetcher: HttpFetcher | None = None,
    observer: DecisionObserver | None = None,
    request_log: RequestLogHook | None = None,
    on_allow: Callable[[Decision, str], object] | None = None,
    stores: StoreOpener | None = None,
    cache: CacheConfig | None = None,
    max_workers: int = 32,
    max_flights: int = 64,
) -> Decider:
    """The composition root's engine over ``snapshot``: registry clients unless ``stores``,
    nothing recorded unless ``observer``, the system clock unless ``clock``."""
    return decision_engine(
        snapshot,
        clock=clock if clock is not None else SystemClock(),
        cache=cache if cache is not None else CacheConfig(),
        observer=observer if observer is not None else DecisionRecorder(None),
        fetcher=fetcher,
        request_log=request_log,
        on_allow=on_allow,
        stores=stores,
        max_workers=max_workers,
        max_flights=max_flights,
    )
