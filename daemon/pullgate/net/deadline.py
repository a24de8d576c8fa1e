"""Hard deadlines for outgoing HTTP exchanges (registry, OCSP/CRL): a watchdog shuts the sockets
down when one passes.

urllib3's read timeout bounds each socket read, not a whole exchange: a server that sends one
byte a little before every read timeout (during the TLS handshake, the headers or the body), or
an endless body at full speed, keeps a request (and the thread running it) busy for ever. This
module gives every exchange a deadline (``time.perf_counter()`` seconds):

* :class:`Exchange` is entered around one exchange (redirects included) on the requesting
  thread; the connection classes of :func:`guard_pools` report each socket that exchange uses
  (a pooled one when it is handed out, a new one as soon as it is connected, before any TLS
  handshake) through a thread-local, and stop its watch when the socket goes back to the pool
  (another thread may take it from there before the exchange ends);
* :class:`Watchdog` is one daemon thread; when an exchange's deadline passes it shuts down the
  exchange's sockets (``shutdown(2)`` on a duplicate descriptor of the same socket, which wakes
  a read blocked in another thread), and the exchange is marked ``fired`` so the caller reports
  ``TIMEOUT`` whatever error (or early end of body) the shutdown produced.

* :func:`bounded_by` caps every exchange a thread enters inside it (a decision's budget covers
  the OCSP/CRL fetches made while verifying, not only the registry's answers);
* a new connection's name is resolved by the watchdog's :class:`~pullgate.net.resolver.Resolver`,
  waited for until the exchange's deadline only (``getaddrinfo`` itself cannot be interrupted),
  and each address is then tried with the connect timeout cut to the time the exchange has
  left.

A :class:`Watchdog` is owned by whoever builds the transports and injected into them (the
composition root gives one to the decider, whose client kit hands it to every registry
transport, and to the OCSP/CRL fetcher); its thread only exists while some exchange is armed.
The one module global is the thread-local through which an :class:`Exchange` reaches urllib3's
connection classes, which have no other way to learn it.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from pullgate.net.resolver import LookupTimeout, Resolver

_current = threading.local()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def bounded_by(deadline: float) -> Iterator[None]:
    """Every :class:`Exchange` created on this thread inside the block ends by ``deadline``
    (``time.perf_counter()`` seconds) at the latest; nested blocks keep the earliest."""
    previous: float | None = getattr(_current, "cap", None)
    _current.cap = deadline if previous is None else min(previous, deadline)
    try:
        yield
    finally:
        _current.cap = previous


class Exchange:
    """One exchange's deadline and the sockets it uses (see the module docstring).

    Args:
        watchdog: Arms the deadline.
        deadline: ``time.perf_counter()`` seconds.
    """

    def __init__(self, watchdog: Watchdog, deadline: float) -> None:
        cap: float | None = getattr(_current, "cap", None)
        self.deadline = deadline if cap is None else min(deadline, cap)
        self.fired = False
        self._watchdog = watchdog
        self._lock = threading.Lock()
        # (descriptor watched, its duplicate owned by this exchange), oldest first
        self._socks: list[tuple[int, socket.socket]] = []
        self._open = False
        self._outer: Exchange | None = None  # the thread's exchange before this one

    @property
    def resolver(self) -> Resolver:
        """Resolves names for this exchange's new connections."""
        return self._watchdog.resolver

    def attach(self, sock: socket.socket) -> None:
        """Watch ``sock`` (shut down at once when the deadline already passed)."""
        try:
            dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:  # closed (nothing left to abort), or out of descriptors: an unwatched
            _shutdown(sock)  # socket would let a drip hold the thread, so it fails instead
            return
        with self._lock:
            if self._open and not self.fired:
                self._socks.append((sock.fileno(), dup))
                return
        _shutdown(dup)
        dup.close()

    def detach(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` (it goes back to its pool, where another exchange may take it
        before this one ends: this one's deadline must not reach it there)."""
        try:
            fd = sock.fileno()
        except OSError:
            return
        dup: socket.socket | None = None
        with self._lock:
            for index in range(len(self._socks) - 1, -1, -1):
                if self._socks[index][0] == fd:
                    dup = self._socks.pop(index)[1]
                    break
        if dup is not None:
            dup.close()

    def fire(self) -> None:
        """Shut down every socket of the exchange (called by the watchdog)."""
        with self._lock:
            if not self._open:
                return
            self.fired = True
            for _, dup in self._socks:
                _shutdown(dup)

    def __enter__(self) -> Exchange:
        with self._lock:
            self._open = True
            self.fired = time.perf_counter() >= self.deadline
        self._outer = getattr(_current, "exchange", None)
        _current.exchange = self
        if not self.fired:
            try:
                self._watchdog.arm(self)
            except BaseException:  # e.g. no thread could be started: leave no trace
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        _current.exchange = self._outer
        self._outer = None
        with self._lock:
            self._open = False
            socks, self._socks = self._socks, []
        self._watchdog.disarm(self)
        for _, dup in socks:
            dup.close()


def _attach_current(sock: socket.socket | None) -> None:
    exchange: Exchange | None = getattr(_current, "exchange", None)
    if exchange is not None and sock is not None:
        exchange.attach(sock)


def _new_socket(sock: socket.socket) -> socket.socket:
    _attach_current(sock)
    return sock


@contextlib.contextmanager
def _connect_budget(conn: HTTPConnection) -> Iterator[None]:
    """Cut ``conn``'s connect timeout to what the thread's exchange has left."""
    exchange: Exchange | None = getattr(_current, "exchange", None)
    if exchange is None:
        yield
        return
    left = exchange.deadline - time.perf_counter()
    if left <= 0:
        raise ConnectTimeoutError(conn, "the exchange's deadline passed before connecting")
    original = conn.timeout
    if not isinstance(original, int | float) or original > left:
        conn.timeout = left
    try:
        yield
    finally:
        conn.timeout = original


def _returned(conn: Any) -> None:
    exchange: Exchange | None = getattr(_current, "exchange", None)
    sock = getattr(conn, "sock", None)
    if exchange is not None and isinstance(sock, socket.socket):
        exchange.detach(sock)


def _lent(conn: Any) -> HTTPConnection:
    _attach_current(getattr(conn, "sock", None))
    return cast(HTTPConnection, conn)


class Watchdog:
    """Fires :class:`Exchange` deadlines from one daemon thread (started on first use).

    Args:
        resolver: Resolves the names of new connections under their exchange's deadline.
    """

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Exchange]] = []
        self._armed: set[int] = set()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, exchange: Exchange) -> None:
        """Fire ``exchange`` at its deadline unless it is disarmed first."""
        with self._cond:
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (exchange.deadline, next(self._seq), exchange))
            self._armed.add(id(exchange))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="pullgate-deadline", daemon=True
                )
                self._thread.start()
            elif earliest is None or exchange.deadline < earliest:
                # Only a new earliest deadline changes how long the thread must sleep; waking it
                # for every request would put a thread switch on every registry round trip.
                self._cond.notify()

    def disarm(self, exchange: Exchange) -> None:
        """Forget ``exchange`` (its heap entry is dropped when it comes up)."""
        with self._cond:
            self._armed.discard(id(exchange))

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and id(self._heap[0][2]) not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._thread = None
                    return
                deadline, _, exchange = self._heap[0]
                wait = deadline - time.perf_counter()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._armed.discard(id(exchange))
            exchange.fire()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _guarded_connect(conn: HTTPConnection, connect: Callable[[], socket.socket]) -> socket.socket:
    """``connect()`` (urllib3's ``_new_conn``) with the thread's exchange bounding the name
    lookup and each connection attempt; the addresses are tried in the resolver's order."""
    exchange: Exchange | None = getattr(_current, "exchange", None)
    name = conn._dns_host
    if exchange is None or _is_address(name):
        with _connect_budget(conn):
            return _new_socket(connect())
    try:
        infos = exchange.resolver.resolve(
            name, conn.port or 0, allowed_gai_family(), exchange.deadline
        )
    except LookupTimeout as exc:
        raise ConnectTimeoutError(conn, f"no address for {conn.host} in time") from exc
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"looking up {conn.host} failed: {exc}") from exc
    failure: Exception = NameResolutionError(
        conn.host, conn, socket.gaierror(f"no address for {conn.host}")
    )
    try:
        for address in dict.fromkeys(str(info[4][0]) for info in infos):
            conn._dns_host = address
            try:
                with _connect_budget(conn):
                    return _new_socket(connect())
            except (NewConnectionError, ConnectTimeoutError) as exc:
                failure = exc
    finally:
        conn._dns_host = name  # the name stays what TLS verifies and Host carries
    raise failure


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_connect(self, super()._new_conn)


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_connect(self, super()._new_conn)


class _GuardedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> HTTPConnection:
        return _lent(super()._get_conn(timeout))

    def _put_conn(self, conn: Any) -> None:
        _returned(conn)
        super()._put_conn(conn)


class _GuardedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> HTTPConnection:
        return _lent(super()._get_conn(timeout))

    def _put_conn(self, conn: Any) -> None:
        _returned(conn)
        super()._put_conn(conn)


def guard_pools(manager: urllib3.PoolManager) -> urllib3.PoolManager:
    """Make ``manager``'s connections report their sockets to the current :class:`Exchange`."""
    manager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
    return manager
