"""The endpoint memory: an endpoint that failed at transport level is asked after the others for
a bounded, doubling time; an answer clears it; HTTP errors are answers; and at an endpoint with
others after it the timeouts leave them time."""

from __future__ import annotations

import time

from pullgate.errors import Reason
from pullgate.registry.health import EndpointHealth
from pullgate.registry.model import Endpoint, ImageReference, RegistryError, RegistryLimits
from tests.support.fake_registry import FakeRegistry, hosts_for, refused_endpoint
from tests.support.parts import build_client, build_transport
from tests.support.raw_http import RawConnection, RawServer
from tests.support.threads import outcome_of


def _endpoint(name: str) -> Endpoint:
    return Endpoint(url=f"https://{name}/v2", scheme="https", host=name, path="/v2")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_endpoint_goes_last_for_a_doubling_while_and_returns() -> None:
    clock = Clock()
    health = EndpointHealth(10.0, max_backoff=25.0, clock=clock)
    a, b, c = _endpoint("a"), _endpoint("b"), _endpoint("c")
    health.failed(a, Reason.TIMEOUT)
    assert health.order([a, b, c]) == (b, c, a)
    clock.now += 10.5
    assert health.order([a, b, c]) == (a, b, c)  # back in its place
    health.failed(a, Reason.REGISTRY_TLS)  # second in a row: 20 s
    clock.now += 19.0
    assert health.order([a, b, c]) == (b, c, a)
    health.failed(a, Reason.REGISTRY_UNREACHABLE)  # third: 40 s, capped at 25 s
    clock.now += 25.5
    assert health.order([a, b, c]) == (a, b, c)
    (state,) = health.states()
    assert (state.endpoint, state.consecutive_failures, state.failures_total) == (a.url, 3, 3)
    assert state.last_error == "REGISTRY_UNREACHABLE"
    health.answered(a)
    assert health.states()[0].consecutive_failures == 0


def test_only_transport_failures_count() -> None:
    health = EndpointHealth(10.0)
    a, b = _endpoint("a"), _endpoint("b")
    for reason in (Reason.REGISTRY_ERROR, Reason.REGISTRY_AUTH, Reason.MALFORMED):
        health.failed(a, reason)
    assert health.order([a, b]) == (a, b)
    assert health.states() == ()


def test_a_refusing_mirror_is_asked_after_the_upstream_by_the_next_operation(
    reg: FakeRegistry,
) -> None:
    target = reg.put_image("app")
    mirror = refused_endpoint()
    client = build_client(hosts_for(mirror, reg.endpoint()))
    ref = ImageReference(registry="registry.test", repository="app", tag="v1")
    with client:
        assert client.resolve(ref).same_target(target)
        assert client.endpoints(ref) == (reg.endpoint(), mirror)
        (state,) = client.transport.health.states()
        assert (state.endpoint, state.healthy) == (mirror.url, False)


def test_a_hung_endpoint_with_a_fallback_gets_the_fallback_timeout_and_a_share() -> None:
    def hang(conn: RawConnection) -> None:
        conn.read_request()
        conn.server.stopping.wait(30)

    limits = RegistryLimits(read_timeout=20.0, fallback_timeout=0.3)
    with RawServer(hang) as server:
        transport = build_transport(limits)
        url = f"{server.url}/v2/app/manifests/v1"
        started = time.perf_counter()
        with transport.attempt(1):
            outcome = outcome_of(lambda: transport.request(server.endpoint(), "GET", url, cap=10))
        took = time.perf_counter() - started
        assert isinstance(outcome, RegistryError), outcome
        assert outcome.reason is Reason.TIMEOUT
        assert took < 2.0, took
        # With a 2 s budget and one endpoint after it, a (dripping) exchange gets half of it.
        transport.deadline = time.perf_counter() + 2.0
        with transport.attempt(1):
            assert transport._exchange_deadline() <= time.perf_counter() + 1.0
        with transport.attempt(0):
            assert transport._exchange_deadline() > time.perf_counter() + 1.5
