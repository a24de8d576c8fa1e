"""A TCP relay on 127.0.0.1 that can hold back what its clients send, to make one party's
registry traffic slower than another's (e.g. pullgate's verification slower than the runtime's
pull), and that counts what it relays (did the runtime ask the registry anything?).

Bytes pass unchanged (TLS stays end to end). While ``delay`` is above zero, every chunk a client
sends reaches the upstream that long after it arrived (an added latency). Threads per direction;
every socket is closed by :meth:`TcpRelay.close` (the context manager's exit).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from types import TracebackType

CHUNK = 65_536


class TcpRelay:
    """Listens on 127.0.0.1 (an ephemeral port) and relays each connection to ``upstream``
    (``host``, ``port``)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self.delay = 0.0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._sent = 0  # client bytes relayed upstream
        self._closed = False
        threading.Thread(target=self._accept, name="tcp-relay", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sent(self) -> int:
        """Bytes the relay's clients have sent upstream so far."""
        with self._lock:
            return self._sent

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for source, sink, upstream in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, upstream), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        """Copy ``source`` to ``sink``; from a client, each chunk ``delay`` seconds after it
        arrived (a latency: chunks in quick succession are not held back one after another)."""
        chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        threading.Thread(target=self._send_held, args=(chunks, sink), daemon=True).start()
        try:
            while data := source.recv(CHUNK):
                due = time.monotonic()
                if upstream:
                    due += self.delay
                    with self._lock:
                        self._sent += len(data)
                chunks.put((due, data))
        except OSError:
            pass
        finally:
            chunks.put((0.0, b""))

    @staticmethod
    def _send_held(chunks: queue.SimpleQueue[tuple[float, bytes]], sink: socket.socket) -> None:
        try:
            while True:
                due, data = chunks.get()
                if not data:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        for each in sockets:
            with contextlib.suppress(OSError):
                each.close()

    def __enter__(self) -> TcpRelay:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
