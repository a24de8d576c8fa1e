"""The deadline watchdog belongs to whoever builds the transports (no process-wide one): a
decider's client kit hands its own to every registry transport and to its OCSP/CRL fetcher, and
the fetcher's deadlines are fired by the watchdog it was given."""

from __future__ import annotations

from pullgate.common.clock import SystemClock
from pullgate.decision.clients import ClientKit
from pullgate.net.deadline import Exchange, Watchdog
from pullgate.net.resolver import Resolver
from pullgate.registry.body import ByteBudget
from pullgate.registry.health import EndpointHealth
from pullgate.registry.model import HostsConfig, RegistryLimits
from pullgate.registry.tls import TlsContextCache
from pullgate.verification.revocation.fetch import RevocationFetchError
from tests.support.parts import build_fetcher, build_transport, build_watchdog
from tests.support.raw_http import RawConnection, RawServer
from tests.support.threads import outcome_of


class CountingWatchdog(Watchdog):
    """A real watchdog that counts the exchanges armed on it."""

    def __init__(self) -> None:
        super().__init__(Resolver())
        self.armed = 0

    def arm(self, exchange: Exchange) -> None:
        self.armed += 1
        super().arm(exchange)


class _NoHosts:
    def hosts(self, registry: str) -> HostsConfig:
        return HostsConfig(registry=registry, directory=None, source="none", endpoints=())


def test_every_client_of_a_kit_shares_the_watchdog_it_was_given() -> None:
    watchdog = build_watchdog()
    kit = ClientKit(
        tls_contexts=TlsContextCache(),
        health=EndpointHealth(),
        watchdog=watchdog,
        request_log=None,
        clock=SystemClock(),
    )
    make = kit.factory(_NoHosts(), None, RegistryLimits(), ByteBudget(1 << 20, 1.0))
    first, second = make(), make()
    try:
        assert first.transport.watchdog is watchdog  # type: ignore[attr-defined]
        assert second.transport.watchdog is watchdog  # type: ignore[attr-defined]
    finally:
        first.close()
        second.close()
    assert build_transport().watchdog is not build_transport().watchdog


def _drip(conn: RawConnection) -> None:
    conn.read_request()
    conn.drip(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", interval=0.05)


def test_the_fetcher_arms_the_watchdog_it_was_given() -> None:
    watchdog = CountingWatchdog()
    fetcher = build_fetcher(watchdog=watchdog)
    with RawServer(_drip) as server:
        outcome = outcome_of(lambda: fetcher.get(f"{server.url}/crl", timeout=0.3, max_bytes=10**6))
    assert isinstance(outcome, RevocationFetchError)
    assert watchdog.armed == 1
