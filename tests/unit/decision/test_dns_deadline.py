"""An unresolvable registry name: every decision ends within its deadline (plus 0.2 s), whatever
the system resolver does. The system resolver is stood in for (no DNS traffic leaves the
machine): the registry's name hangs until the test ends, every other name is looked up as
usual."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pullgate.decision.model import DecisionRequest
from pullgate.errors import Reason
from pullgate.registry.model import Endpoint
from tests.unit.decision.world import HttpWorld


@pytest.fixture
def world(http_world: HttpWorld) -> HttpWorld:
    """The registry store's wire behaviour under the engine: the HTTP fake registry."""
    return http_world


HUNG = "registry.hung.test"
DEADLINE = 1.0
GRACE = 0.2


@pytest.fixture
def hung_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == HUNG:
            release.wait(60)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield release
    release.set()


def test_every_decision_ends_by_its_deadline(world: HttpWorld, hung_name: threading.Event) -> None:
    endpoint = Endpoint(
        url=f"http://{HUNG}:5000/v2", scheme="http", host=f"{HUNG}:5000", path="/v2"
    )
    decider = world.decider(endpoints=(endpoint,), timeout=DEADLINE)

    def decide(tag: str) -> tuple[float, Any]:
        started = time.perf_counter()
        decision = decider.decide(DecisionRequest(reference=world.ref(tag)))
        return time.perf_counter() - started, decision

    try:
        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(decide, [f"a{i}" for i in range(8)]))
            second = list(pool.map(decide, [f"b{i}" for i in range(8)]))  # lookup still hung
    finally:
        decider.close()
    for took, decision in first + second:
        assert (decision.allowed, decision.reason, decision.inconclusive) == (
            False,
            Reason.TIMEOUT,
            True,
        )
        assert took <= DEADLINE + GRACE, took
