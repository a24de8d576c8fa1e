"""Stores and instrumentation for the decision layer (docs/architecture.md §1).

* :class:`ClientPool` keeps idle :class:`~pullgate.registry.store.Store` objects (registry
  clients, by default) so pooled connections and bearer tokens are reused. A store is used by
  one thread at a time (checked out, then returned). Pools are keyed by (snapshot digest,
  credentials identity): a client that authenticated with one caller's credentials is only ever
  handed to a request carrying the very same credentials, so credentials and tokens cannot leak
  between callers.
* Phase timings come from hooks, not subclasses: a lent store reports every digest-verified
  fetch to the hook it was lent with (:meth:`~pullgate.registry.store.Store.session`);
  :class:`TimedSource` and :class:`TimedRevocation` split verification time into the phases
  reported in ``Decision.timings``: ``fetch`` (every digest-verified GET), ``discover``
  (referrers listing and tag-schema lookups: signature iteration minus fetches), ``revocation``
  (OCSP/CRL); ``crypto`` is what is left of the verification.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from cryptography import x509

from pullgate.common.clock import Clock
from pullgate.common.descriptor import Descriptor
from pullgate.common.lru import Lru, LruStats
from pullgate.config import DaemonConfig
from pullgate.net.deadline import Watchdog
from pullgate.registry.auth import CredentialStore
from pullgate.registry.body import ByteBudget
from pullgate.registry.client import RegistryClient
from pullgate.registry.health import EndpointHealth, EndpointState
from pullgate.registry.model import (
    Credentials,
    HostsConfig,
    ImageReference,
    RegistryLimits,
)
from pullgate.registry.referrers_memo import referrers_memo
from pullgate.registry.store import FetchHook, Store
from pullgate.registry.tls import TlsContextCache
from pullgate.registry.transport import RequestLogHook, Transport
from pullgate.verification.revocation import Purpose, RevocationChecker, RevocationResult
from pullgate.verification.verifier import SignatureBlob

__all__ = [
    "ClientKit",
    "ClientPool",
    "HostsSource",
    "PhaseTimes",
    "TimedRevocation",
    "TimedSource",
    "credentials_identity",
    "make_client",
]


def credentials_identity(credentials: Credentials | None) -> str:
    """A one-way identity of ``credentials`` for pool and single-flight keys (never logged)."""
    if credentials is None:
        return ""
    fields = (
        credentials.username,
        credentials.password,
        credentials.identity_token,
        credentials.registry_token,
        credentials.server_address,
    )
    return hashlib.sha256("\0".join(fields).encode()).hexdigest()


class PhaseTimes:
    """Thread-safe per-phase seconds accumulator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        """Add ``seconds`` to ``phase``."""
        with self._lock:
            self._seconds[phase] = self._seconds.get(phase, 0.0) + max(seconds, 0.0)

    def get(self, phase: str) -> float:
        """Seconds accumulated for ``phase``."""
        with self._lock:
            return self._seconds.get(phase, 0.0)

    def add_fetch(self, seconds: float) -> None:
        """A :data:`~pullgate.registry.store.FetchHook`: add ``seconds`` to ``fetch``."""
        self.add("fetch", seconds)

    def as_dict(self) -> dict[str, float]:
        """A copy of every phase."""
        with self._lock:
            return dict(self._seconds)


class TimedSource:
    """A ``SignatureSource`` over a store lent with ``times.add_fetch`` as its fetch hook:
    records ``discover`` as signature iteration time minus the fetches the hook saw."""

    def __init__(self, store: Store, ref: ImageReference, times: PhaseTimes) -> None:
        self._store = store
        self._ref = ref
        self._times = times

    def signatures(self, target: Descriptor) -> Iterator[SignatureBlob]:
        """The store's signatures of ``target``, timed per step."""
        inner = self._store.signatures(self._ref, target)
        while True:
            fetched = self._times.get("fetch")
            started = time.perf_counter()
            try:
                blob = next(inner)
            except StopIteration:
                return
            finally:
                elapsed = time.perf_counter() - started
                fetch = self._times.get("fetch") - fetched
                self._times.add("discover", elapsed - fetch)
            yield blob


class TimedRevocation:
    """Wraps a :class:`RevocationChecker`: times it and keeps the earliest nextUpdate seen."""

    def __init__(self, inner: RevocationChecker, times: PhaseTimes) -> None:
        self._inner = inner
        self._times = times
        self._lock = threading.Lock()
        self.next_update: datetime | None = None

    def check(
        self,
        chain: Sequence[x509.Certificate],
        *,
        purpose: Purpose,
        authentic_signing_time: datetime | None,
    ) -> RevocationResult:
        """See :meth:`RevocationChecker.check`."""
        started = time.perf_counter()
        try:
            result = self._inner.check(
                chain, purpose=purpose, authentic_signing_time=authentic_signing_time
            )
        finally:
            self._times.add("revocation", time.perf_counter() - started)
        if result.next_update is not None:
            with self._lock:
                if self.next_update is None or result.next_update < self.next_update:
                    self.next_update = result.next_update
        return result


ClientFactory = Callable[[], Store]


class ClientPool:
    """Idle stores per key; a store is lent to one thread at a time.

    Args:
        max_keys: Distinct (snapshot, credentials) keys kept (LRU; the oldest are closed).
        max_idle: Idle clients kept per key.
    """

    def __init__(self, *, max_keys: int = 64, max_idle: int = 8) -> None:
        self._lock = threading.Lock()
        self._idle: Lru[tuple[str, str], list[Store]] = Lru(max_keys, name="idle registry clients")
        self._max_idle = max_idle
        self.created = 0

    @contextmanager
    def lend(
        self,
        key: tuple[str, str],
        factory: ClientFactory,
        *,
        deadline: float | None = None,
        on_fetch: FetchHook | None = None,
    ) -> Iterator[Store]:
        """Borrow a store for ``key`` (made by ``factory`` when none is idle); while it is
        lent, none of its requests outlives ``deadline`` (``time.perf_counter()`` seconds) and
        ``on_fetch`` receives the time of each of its fetches."""
        client: Store | None = None
        with self._lock:
            idle = self._idle.get(key)  # now the most recently used key
            if idle:
                client = idle.pop()
        if client is None:
            client = factory()
            with self._lock:
                self.created += 1
        try:
            with client.session(deadline=deadline, on_fetch=on_fetch):
                yield client
        finally:
            self._give_back(key, client)

    def _give_back(self, key: tuple[str, str], client: Store) -> None:
        closing: list[Store] = []
        with self._lock:
            idle = self._idle.peek(key) or []
            if len(idle) < self._max_idle:
                idle.append(client)
            else:
                closing.append(client)
            for _, dropped in self._idle.put(key, idle):  # the least recently used keys
                closing.extend(dropped)
        for item in closing:
            item.close()

    def stats(self) -> LruStats:
        """Hits, misses, evictions, size and capacity of the pool's keys."""
        return self._idle.stats()

    def resize(self, max_keys: int) -> None:
        """Keep idle clients for at most ``max_keys`` keys (the least recently used are closed)."""
        closing: list[Store] = []
        with self._lock:
            for _, dropped in self._idle.resize(max_keys):
                closing.extend(dropped)
        for item in closing:
            item.close()

    def drop(self, keep: Callable[[tuple[str, str]], bool]) -> None:
        """Close the idle clients of every key for which ``keep`` is false."""
        closing: list[Store] = []
        with self._lock:
            for _, dropped in self._idle.discard_if(lambda k, _v: not keep(k)):
                closing.extend(dropped)
        for item in closing:
            item.close()

    def close(self) -> None:
        """Close every idle client."""
        self.drop(lambda _key: False)


class HostsSource(Protocol):
    """What a client needs of a snapshot: certs.d, by registry host."""

    def hosts(self, registry: str) -> HostsConfig:
        """The endpoint configuration of ``registry``."""
        ...


class ClientKit:
    """The registry as the decider's :class:`~pullgate.decision.context.Stores`: what every
    registry client of a decider shares, all built by the composition root — TLS contexts
    (built from ``hosts.toml`` files only, no credential material: see :func:`make_client`), the
    endpoint memory (:mod:`pullgate.registry.health`: a failing endpoint is asked last by every
    decision), the deadline watchdog (:mod:`pullgate.net.deadline`: one thread and one name
    resolver, whose lookup-thread cap then holds for every transport of the decider, and for its
    OCSP/CRL fetcher), the request log and the clock."""

    def __init__(
        self,
        *,
        tls_contexts: TlsContextCache,
        health: EndpointHealth,
        watchdog: Watchdog,
        request_log: RequestLogHook | None,
        clock: Clock,
    ) -> None:
        self.tls_contexts = tls_contexts
        self.health = health
        self.watchdog = watchdog
        self._request_log = request_log
        self._clock = clock

    def configure(self, config: DaemonConfig) -> None:
        """Apply a snapshot's ``[cache]`` bounds and ``[registry] endpoint_backoff``."""
        self.tls_contexts.resize(config.cache.tls_entries)
        self.health.configure(
            config.registry.endpoint_backoff, max_entries=config.cache.endpoint_entries
        )

    def endpoint_states(self) -> tuple[EndpointState, ...]:
        """Endpoints remembered as failing."""
        return self.health.states()

    def factory(
        self,
        snap: HostsSource,
        credentials: CredentialStore | None,
        limits: RegistryLimits,
        budget: ByteBudget,
    ) -> ClientFactory:
        """Makes clients for one computation's snapshot and credentials."""

        def make() -> Store:
            return make_client(
                snap.hosts,
                credentials,
                limits,
                self._request_log,
                self._clock,
                tls_contexts=self.tls_contexts,
                budget=budget,
                health=self.health,
                watchdog=self.watchdog,
            )

        return make


def make_client(
    hosts: Callable[[str], HostsConfig],
    credentials: CredentialStore | None,
    limits: RegistryLimits,
    request_log: RequestLogHook | None,
    clock: Clock,
    *,
    tls_contexts: TlsContextCache,
    budget: ByteBudget,
    health: EndpointHealth,
    watchdog: Watchdog,
) -> RegistryClient:
    """A fresh registry client (the daemon's :class:`~pullgate.registry.store.Store`) over the
    owner's shared parts; its transport's deadlines are enforced by ``watchdog``.

    ``tls_contexts`` may be shared by every client of a decider: a TLS context is built from
    ``hosts.toml`` files only, never from a caller's credentials, and sharing it spares every new
    client a context build (the system roots: tens of milliseconds).

    The referrers-API memo stays per client on purpose: the subjects of one decision are
    discovered in parallel on different clients, and a shared memo would let one subject's
    finding race the other's probe, so the same decision would cost a varying number of
    registry requests.
    """
    transport = Transport(
        limits,
        clock,
        tls_contexts,
        watchdog,
        budget,
        health,
        request_log=request_log,
    )
    return RegistryClient(
        hosts,
        credentials=credentials,
        limits=limits,
        clock=clock,
        transport=transport,
        referrers_memo=referrers_memo(limits),
    )
