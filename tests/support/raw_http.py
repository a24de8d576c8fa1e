"""A scripted HTTP server on 127.0.0.1 that writes raw bytes: for registries that misbehave at
the protocol level (slow drips, huge or lying headers, endless bodies, redirects).

Each accepted connection runs ``script(conn)`` on its own thread; the script reads requests with
:meth:`RawConnection.read_request` and answers with :meth:`RawConnection.send` or
:meth:`RawConnection.drip`. Every request is logged (headers lower-cased, body kept), and
:meth:`RawServer.wait_idle` tells when every script has ended (a drip ends when the client is
gone), which is how tests see that the client let go of a connection::

    def script(conn: RawConnection) -> None:
        conn.read_request()
        conn.drip(b"HTTP/1.1 200 OK\\r\\nX-Slow: ", interval=0.05)

    with RawServer(script) as server:
        ...
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pullgate.registry.model import Endpoint


@dataclass(frozen=True)
class RawRequest:
    """One request as received."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class RawConnection:
    """One accepted connection, handed to the script."""

    def __init__(self, sock: socket.socket, server: RawServer) -> None:
        self.sock = sock
        self.server = server
        self._buffer = b""

    def read_request(self) -> RawRequest | None:
        """The next request on this connection (None when the client closed it)."""
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            self._buffer += self.sock.recv(65536)
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        request = RawRequest(method=method, path=path, headers=headers, body=body)
        self.server.log(request)
        return request

    def send(self, data: bytes) -> bool:
        """Write ``data``; False when the client is gone."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def drip(self, prefix: bytes, *, interval: float, byte: bytes = b"a") -> None:
        """Send ``prefix``, then ``byte`` every ``interval`` seconds until the client is gone
        (or the server stops)."""
        if not self.send(prefix):
            return
        while not self.server.stopping.wait(interval):
            if not self.send(byte):
                return

    def stream(self, prefix: bytes, chunk: bytes) -> None:
        """Send ``prefix``, then ``chunk`` as fast as possible until the client is gone."""
        if not self.send(prefix):
            return
        while not self.server.stopping.is_set():
            if not self.send(chunk):
                return


class RawServer:
    """Accepts connections on an ephemeral port; use as a context manager."""

    def __init__(self, script: Callable[[RawConnection], None]) -> None:
        self.script = script
        self.requests: list[RawRequest] = []
        self.connections = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def endpoint(self, scheme: str = "http", **changes: Any) -> Endpoint:
        """An endpoint for this server (``/v2`` root); ``changes`` override fields."""
        fields: dict[str, Any] = {
            "url": f"{scheme}://{self.host}/v2",
            "scheme": scheme,
            "host": self.host,
            "path": "/v2",
        }
        fields.update(changes)
        return Endpoint(**fields)

    def log(self, request: RawRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def wait_idle(self, timeout: float) -> bool:
        """True once no script runs any more (False if some still do after ``timeout``)."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._active:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:  # wakes scripts waiting for a request on a kept-alive connection
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.wait_idle(5)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            with self._lock:
                self._socks.append(sock)
                self.connections += 1
                self._active += 1
            threading.Thread(target=self._run, args=(sock,), daemon=True).start()

    def _run(self, sock: socket.socket) -> None:
        try:
            self.script(RawConnection(sock, self))
        except OSError:
            pass
        finally:
            sock.close()
            with self._idle:
                self._active -= 1
                self._idle.notify_all()
