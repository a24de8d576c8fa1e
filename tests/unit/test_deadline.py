"""The deadline watchdog (pullgate.net.deadline): exchanges fire at their own deadline, whatever
else is armed, and a disarmed exchange never fires."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3

from pullgate.net.deadline import Exchange, guard_pools
from tests.support.parts import build_watchdog
from tests.support.raw_http import RawConnection, RawServer

_BOUND = 10.0  # seconds a test waits for something that should happen at once


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _read_until_shut(sock: socket.socket, done: threading.Event) -> None:
    """Set ``done`` when a blocked read ends because the socket was shut down (not timed out)."""
    sock.settimeout(_BOUND)
    with contextlib.suppress(TimeoutError):
        if sock.recv(1) == b"":
            done.set()


def test_an_earlier_deadline_armed_later_fires_at_its_own_time(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    watchdog = build_watchdog()
    far = Exchange(watchdog, time.perf_counter() + 3600)
    done = threading.Event()
    with far:
        time.sleep(0.2)  # the watchdog thread is asleep until the far deadline by now
        near = Exchange(watchdog, time.perf_counter() + 0.5)
        with near:
            armed_unfired = not near.fired
            near.attach(pair[0])
            reader = threading.Thread(target=_read_until_shut, args=(pair[0], done))
            reader.start()
            assert done.wait(_BOUND), "the near deadline did not wake the blocked read"
            reader.join(_BOUND)
        assert armed_unfired
        assert near.fired
        assert not far.fired


def test_a_finished_exchange_is_never_fired(pair: tuple[socket.socket, socket.socket]) -> None:
    watchdog = build_watchdog()
    with Exchange(watchdog, time.perf_counter() + 0.05) as exchange:
        exchange.attach(pair[0])
    time.sleep(0.2)  # past the deadline: the watchdog has come round to the entry by now
    assert not exchange.fired
    pair[1].sendall(b"x")
    assert pair[0].recv(1) == b"x"  # the socket was left alone


def test_a_deadline_already_past_fires_on_entry(pair: tuple[socket.socket, socket.socket]) -> None:
    with Exchange(build_watchdog(), time.perf_counter() - 1) as exchange:
        exchange.attach(pair[0])
        assert exchange.fired
        assert pair[0].recv(1) == b""  # shut down at once


def _answer_slowly_to_slow(conn: RawConnection) -> None:
    while (request := conn.read_request()) is not None:
        if request.path == "/slow":
            time.sleep(0.6)
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_a_deadline_never_reaches_a_socket_back_in_the_pool() -> None:
    """Exchange A returns its connection to the pool and is still open when its deadline fires;
    exchange B has taken that connection meanwhile and must not lose it to A's deadline."""
    watchdog = build_watchdog()
    manager = guard_pools(urllib3.PoolManager(maxsize=1))
    outcome: list[object] = []
    with RawServer(_answer_slowly_to_slow) as server:

        def other_exchange() -> None:
            with Exchange(watchdog, time.perf_counter() + 60):
                try:
                    outcome.append(
                        manager.request("GET", f"{server.url}/slow", retries=False).status
                    )
                except urllib3.exceptions.HTTPError as exc:
                    outcome.append(exc)

        with Exchange(watchdog, time.perf_counter() + 0.3) as first:
            assert manager.request("GET", f"{server.url}/fast").data == b"ok"  # back in the pool
            taker = threading.Thread(target=other_exchange)
            taker.start()
            waited = time.perf_counter() + _BOUND
            while not first.fired and time.perf_counter() < waited:
                time.sleep(0.01)
            fired = first.fired
        taker.join(_BOUND)
    assert fired
    assert outcome == [200]
    assert server.connections == 1  # B really used the connection A gave back
