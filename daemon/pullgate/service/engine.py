"""The composition root's decision-engine part (docs/architecture.md §3.4): the one place the
engine, its collaborators and the registry clients of the command line are built.
:mod:`pullgate.service.compose` calls it for ``pullgate serve`` and the one-shot CLI; tests and
benchmarks build their engines through it too, so they run the daemon's wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import urllib3

from pullgate.common.clock import Clock
from pullgate.config import CacheConfig
from pullgate.decision.clients import ClientKit, ClientPool, make_client
from pullgate.decision.context import OpenedStores, SnapshotLike, StoreOpener, Stores
from pullgate.decision.decider import Decider
from pullgate.decision.model import Decision
from pullgate.decision.parts import EngineParts
from pullgate.decision.record import DecisionObserver
from pullgate.decision.resolution import Resolver
from pullgate.net.deadline import Watchdog
from pullgate.net.resolver import Resolver as NameResolver
from pullgate.registry.auth import CredentialStore
from pullgate.registry.body import own_budget
from pullgate.registry.client import RegistryClient
from pullgate.registry.health import EndpointHealth
from pullgate.registry.model import HostsConfig, RegistryLimits
from pullgate.registry.tls import TlsContextCache
from pullgate.registry.transport import RequestLogHook
from pullgate.verification.revocation.fetch import HttpFetcher, Urllib3Fetcher

__all__ = ["deadline_watchdog", "decision_engine", "registry_client", "revocation_fetcher"]

_FETCH_POOLS = 16  # OCSP/CRL hosts with pooled connections
_FETCH_CONNECTIONS = 4  # pooled connections per OCSP/CRL host


def deadline_watchdog() -> Watchdog:
    """One watchdog (one thread, one name resolver) ending every registry and OCSP/CRL
    exchange of its owner at its deadline."""
    return Watchdog(NameResolver())


def revocation_fetcher(watchdog: Watchdog) -> HttpFetcher:
    """The OCSP/CRL transport: one connection pool, deadlines ended by ``watchdog``."""
    pool = urllib3.PoolManager(num_pools=_FETCH_POOLS, maxsize=_FETCH_CONNECTIONS, retries=False)
    return Urllib3Fetcher(pool, watchdog=watchdog)


def decision_engine(
    snapshot: Callable[[], SnapshotLike],
    *,
    clock: Clock,
    cache: CacheConfig,
    observer: DecisionObserver,
    watchdog: Watchdog | None = None,
    fetcher: HttpFetcher | None = None,
    request_log: RequestLogHook | None = None,
    on_allow: Callable[[Decision, str], object] | None = None,
    stores: StoreOpener | None = None,
    max_workers: int = 32,
    max_flights: int = 64,
) -> Decider:
    """The decision engine over ``snapshot`` with every collaborator it uses.

    Args:
        cache: The ``[cache]`` the resolver starts with (each snapshot's then applies).
        watchdog: Ends registry exchanges at their deadlines (None: :func:`deadline_watchdog`).
        fetcher: OCSP/CRL transport (None: :func:`revocation_fetcher` on ``watchdog``).
        request_log: Receives one record per registry HTTP exchange.
        stores: (snapshot, credentials) → the store to read (None: registry clients over the
            snapshot's certs.d).
        max_workers: Threads verifying subjects in parallel.
        max_flights: Threads running the computations of ``decide_async``.
    """
    watchdog = watchdog if watchdog is not None else deadline_watchdog()
    content: Stores
    if stores is None:
        content = ClientKit(
            tls_contexts=TlsContextCache(),
            health=EndpointHealth(),
            watchdog=watchdog,
            request_log=request_log,
            clock=clock,
        )
    else:
        content = OpenedStores(stores)
    parts = EngineParts(
        stores=content,
        pool=ClientPool(),
        resolver=Resolver(clock, cache),
        verify=ThreadPoolExecutor(max_workers, thread_name_prefix="pullgate-verify"),
        flights=ThreadPoolExecutor(max_flights, thread_name_prefix="pullgate-decide"),
    )
    return Decider(
        snapshot,
        parts,
        clock=clock,
        fetcher=fetcher if fetcher is not None else revocation_fetcher(watchdog),
        observer=observer,
        on_allow=on_allow,
    )


def registry_client(
    hosts: Callable[[str], HostsConfig],
    credentials: CredentialStore | None,
    *,
    clock: Clock,
) -> RegistryClient:
    """One registry client with default limits and parts of its own (``pullgate inspect``)."""
    return make_client(
        hosts,
        credentials,
        RegistryLimits(),
        None,
        clock,
        tls_contexts=TlsContextCache(),
        budget=own_budget(),
        health=EndpointHealth(),
        watchdog=deadline_watchdog(),
    )
