"""Name resolution under the exchange's deadline: a resolver that never answers cannot hold a
request past its deadline, concurrent lookups of one name share one thread, and a name that
resolves is connected to by address while TLS and ``Host`` keep the name."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pullgate.errors import Reason
from pullgate.net.resolver import Resolver
from pullgate.registry.model import Endpoint, RegistryError, RegistryLimits
from tests.support.parts import build_transport, build_watchdog
from tests.support.raw_http import RawConnection, RawServer
from tests.support.threads import outcome_of

LIMITS = RegistryLimits(connect_timeout=5.0, read_timeout=5.0, request_timeout=30.0)
HUNG = "registry.hung.test"
GRACE = 0.2


class StubResolver:
    """``getaddrinfo`` for the tests: one name hangs, one does not exist, one is loopback."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int, family: int, kind: int) -> list[Any]:
        with self._lock:
            self.calls.append(host)
        if host == HUNG:
            self.release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "released")
        if host == "registry.loopback.test":
            return socket.getaddrinfo("127.0.0.1", port, family, kind)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def stub() -> Iterator[StubResolver]:
    value = StubResolver()
    yield value
    value.release.set()


def _endpoint(host: str) -> Endpoint:
    return Endpoint(url=f"http://{host}/v2", scheme="http", host=host, path="/v2")


def test_a_hung_lookup_ends_at_the_deadline(stub: StubResolver) -> None:
    transport = build_transport(LIMITS, watchdog=build_watchdog(Resolver(stub)))
    endpoint = _endpoint(f"{HUNG}:5000")
    budget = 0.5
    outcomes: list[tuple[float, object]] = []

    def one() -> None:
        started = time.perf_counter()
        client = build_transport(LIMITS, watchdog=transport.watchdog, deadline=started + budget)
        outcome = outcome_of(lambda: client.request(endpoint, "GET", endpoint.url + "/", cap=10))
        outcomes.append((time.perf_counter() - started, outcome))

    threads = [threading.Thread(target=one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 16
    for took, outcome in outcomes:
        assert isinstance(outcome, RegistryError), outcome
        assert outcome.reason is Reason.TIMEOUT
        assert took <= budget + GRACE, took
    assert stub.calls == [HUNG]  # one lookup for 16 concurrent requests


def test_a_name_that_does_not_exist_is_unreachable(stub: StubResolver) -> None:
    transport = build_transport(LIMITS, watchdog=build_watchdog(Resolver(stub)))
    endpoint = _endpoint("registry.missing.test")
    outcome = outcome_of(lambda: transport.request(endpoint, "GET", endpoint.url + "/", cap=10))
    assert isinstance(outcome, RegistryError), outcome
    assert outcome.reason is Reason.REGISTRY_UNREACHABLE


def test_a_resolved_name_is_connected_to_by_address_and_keeps_its_name(
    stub: StubResolver,
) -> None:
    def script(conn: RawConnection) -> None:
        if conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with RawServer(script) as server:
        port = server.host.rsplit(":", 1)[1]
        endpoint = _endpoint(f"registry.loopback.test:{port}")
        transport = build_transport(LIMITS, watchdog=build_watchdog(Resolver(stub)))
        response = transport.request(endpoint, "GET", endpoint.url + "/", cap=10)
    assert response.body == b"ok"
    assert server.requests[0].headers["host"] == f"registry.loopback.test:{port}"
