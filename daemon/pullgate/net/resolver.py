"""Name resolution that a deadline can end.

``getaddrinfo`` cannot be interrupted: a resolver that never answers holds the calling thread
for its own timeouts and retries (five seconds and more per attempt), past any request or
decision deadline. :class:`Resolver` runs each lookup on a daemon thread of its own and lets
the caller wait only until its deadline; the lookup thread finishes (or hangs) on its own.

* Concurrent lookups of the same (host, port, family) share one thread: 64 decisions against
  one unresolvable name start one lookup, not 64.
* At most ``max_lookups`` lookup threads exist at once; a caller that finds none free waits for
  one until its deadline, so hung lookups cannot pile up threads.
* Nothing is cached: the system resolver (and nscd or systemd-resolved) caches.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["AddressInfo", "LookupTimeout", "Resolver"]

AddressInfo = tuple[Any, ...]
"""One ``getaddrinfo`` result: (family, type, proto, canonname, sockaddr)."""

Lookup = Callable[[str, int, int, int], list[AddressInfo]]


class LookupTimeout(TimeoutError):
    """No answer for a name before the caller's deadline."""


class _Pending:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: list[AddressInfo] = []
        self.error: BaseException | None = None


def _system_lookup(host: str, port: int, family: int, kind: int) -> list[AddressInfo]:
    # Looked up at call time, so a test may stand in for the system resolver.
    return socket.getaddrinfo(host, port, family, kind)


class Resolver:
    """Runs ``getaddrinfo`` under a deadline (see the module docstring).

    Args:
        lookup: The resolver function (``socket.getaddrinfo``'s signature, positional).
        max_lookups: Lookup threads that may exist at once.
    """

    def __init__(self, lookup: Lookup = _system_lookup, *, max_lookups: int = 8) -> None:
        self._lookup = lookup
        self._slots = threading.BoundedSemaphore(max_lookups)
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int, int], _Pending] = {}

    def resolve(
        self, host: str, port: int, family: int, deadline: float | None
    ) -> list[AddressInfo]:
        """``host``'s stream addresses, or an error by ``deadline`` (``time.perf_counter()``
        seconds; None: wait as long as the lookup takes).

        Raises:
            socket.gaierror: The name does not resolve (or any error ``getaddrinfo`` raised).
            LookupTimeout: No answer before ``deadline``.
        """
        key = (host, port, family)
        with self._lock:
            pending = self._pending.get(key)
            leader = pending is None
            if pending is None:
                pending = self._pending[key] = _Pending()
        if leader:
            self._start(key, pending, deadline)
        left = None if deadline is None else deadline - time.perf_counter()
        if not pending.done.wait(None if left is None else max(left, 0.0)):
            raise LookupTimeout(f"no address for {host} before the deadline")
        error = pending.error
        if isinstance(error, OSError):  # a fresh copy per waiter: they raise it on their threads
            raise type(error)(*error.args)
        if error is not None:
            raise OSError(f"looking up {host} failed: {error!r}")
        return list(pending.result)

    def _start(self, key: tuple[str, int, int], pending: _Pending, deadline: float | None) -> None:
        left = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
        if not self._slots.acquire(timeout=left):
            self._finish(key, pending, LookupTimeout(f"no free resolver thread for {key[0]}"))
            return
        try:
            threading.Thread(
                target=self._run, args=(key, pending), name="pullgate-resolve", daemon=True
            ).start()
        except RuntimeError as exc:  # no thread could be started
            self._slots.release()
            self._finish(key, pending, OSError(f"cannot look up {key[0]}: {exc}"))

    def _run(self, key: tuple[str, int, int], pending: _Pending) -> None:
        host, port, family = key
        error: BaseException | None = None
        try:
            pending.result = self._lookup(host, port, family, socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError) as exc:  # handed to every waiter
            error = exc
        finally:  # whatever happened, the waiters are woken (no result: no address)
            self._slots.release()
            self._finish(key, pending, error)

    def _finish(
        self, key: tuple[str, int, int], pending: _Pending, error: BaseException | None
    ) -> None:
        pending.error = error
        with self._lock:
            if self._pending.get(key) is pending:
                del self._pending[key]
        pending.done.set()
