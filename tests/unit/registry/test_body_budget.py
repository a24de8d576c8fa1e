"""The in-flight byte budget: however many endless bodies are read at once, the bytes held stay
under the budget, a request that finds no room in time fails inconclusive, and every
reservation is given back."""

from __future__ import annotations

import threading
import time

import pytest

from pullgate.errors import Reason
from pullgate.registry.body import CHUNK, ByteBudget, InflightBudgetExhausted
from pullgate.registry.model import RegistryLimits
from pullgate.registry.transport import ResponseTooLarge
from tests.support.parts import build_transport
from tests.support.raw_http import RawConnection, RawServer
from tests.support.threads import outcome_of

LIMITS = RegistryLimits(connect_timeout=2.0, read_timeout=2.0, request_timeout=20.0)


def _endless(conn: RawConnection) -> None:
    if conn.read_request() is None:
        return
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    conn.stream(head, b"4000\r\n" + b"e" * 0x4000 + b"\r\n")


def test_concurrent_endless_bodies_never_hold_more_than_the_budget() -> None:
    cap = 4 * CHUNK
    budget = ByteBudget(2 * cap + 2 * CHUNK, wait=10.0)
    outcomes: list[object] = []
    lock = threading.Lock()

    with RawServer(_endless) as server:
        url = f"{server.url}/v2/app/blobs/x"

        def one() -> None:
            transport = build_transport(LIMITS, budget=budget)
            outcome = outcome_of(lambda: transport.request(server.endpoint(), "GET", url, cap=cap))
            transport.close()
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=one) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    stats = budget.stats()
    assert len(outcomes) == 12
    assert all(isinstance(o, ResponseTooLarge | InflightBudgetExhausted) for o in outcomes)
    assert any(isinstance(o, ResponseTooLarge) for o in outcomes)
    assert 0 < stats.peak <= stats.limit
    assert stats.in_use == 0


def test_no_room_in_time_is_an_inconclusive_timeout_and_gives_everything_back() -> None:
    budget = ByteBudget(4 * CHUNK, wait=0.3)
    assert budget.acquire(4 * CHUNK)  # somebody else holds it all
    with RawServer(_endless) as server:
        url = f"{server.url}/v2/app/blobs/x"
        started = time.perf_counter()
        outcome = outcome_of(
            lambda: build_transport(LIMITS, budget=budget).request(
                server.endpoint(), "GET", url, cap=CHUNK
            )
        )
        waited = time.perf_counter() - started
    assert isinstance(outcome, InflightBudgetExhausted), outcome
    assert outcome.reason is Reason.TIMEOUT
    assert waited < 5.0
    budget.release(4 * CHUNK)
    assert budget.stats().in_use == 0
    assert budget.stats().exhausted == 1


@pytest.mark.parametrize("announced", [True, False])
def test_a_body_within_its_cap_is_read_whole(announced: bool) -> None:
    payload = bytes(range(256)) * 1000  # several chunks
    framing = (
        f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        if announced
        else b"Transfer-Encoding: chunked\r\n\r\n"
        + f"{len(payload):x}\r\n".encode()
        + payload
        + b"\r\n0\r\n\r\n"
    )

    def script(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\n" + framing)

    budget = ByteBudget(1 << 20, wait=1.0)
    with RawServer(script) as server:
        response = build_transport(LIMITS, budget=budget).request(
            server.endpoint(), "GET", f"{server.url}/v2/app/blobs/x", cap=len(payload)
        )
    assert response.body == payload
    assert budget.stats().in_use == 0
