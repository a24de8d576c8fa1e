"""The deadline watchdog (pullgate.deadline): exchanges fire at their own deadline, whatever else
is armed, and a disarmed exchange never fires."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pullgate.deadline import Exchange, Watchdog

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
    watchdog = Watchdog()
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
    watchdog = Watchdog()
    with Exchange(watchdog, time.perf_counter() + 0.05) as exchange:
        exchange.attach(pair[0])
    time.sleep(0.2)  # past the deadline: the watchdog has come round to the entry by now
    assert not exchange.fired
    pair[1].sendall(b"x")
    assert pair[0].recv(1) == b"x"  # the socket was left alone


def test_a_deadline_already_past_fires_on_entry(pair: tuple[socket.socket, socket.socket]) -> None:
    with Exchange(Watchdog(), time.perf_counter() - 1) as exchange:
        exchange.attach(pair[0])
        assert exchange.fired
        assert pair[0].recv(1) == b""  # shut down at once
