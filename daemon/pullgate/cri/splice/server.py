"""The splice transport's listener: accepts callers on the gate's socket and splices each to a
connection of its own to the runtime (:class:`~pullgate.cri.splice.conn.Splice`).

Connections are bounded (:data:`MAX_CONNECTIONS`; one past it is closed at once) and so are the
verdicts running at once (:data:`DECIDERS`, a pool shared by all connections; a queued verdict
never holds up a pass-through call). Allows taken from memory on a relay thread are settled
(counted, audited) in order on one thread of their own, never queued behind a verification;
:meth:`SpliceServer.stop` waits for every one of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pullgate.cri.splice.conn import Splice
from pullgate.cri.splice.routes import Route
from pullgate.cri.splice.settle import Settler

__all__ = ["DECIDERS", "MAX_CONNECTIONS", "SpliceServer", "upstream_path"]

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256
DECIDERS = 64
_CLOSE_WAIT = 5.0  # seconds stop() waits for the relay threads of shut connections


def upstream_path(upstream: str) -> str:
    """The socket path of ``unix:///path``, ``unix:/path`` or a plain path."""
    if upstream.startswith("unix://"):
        return upstream[len("unix://") :]
    if upstream.startswith("unix:"):
        return upstream[len("unix:") :]
    return upstream


class SpliceServer:
    """Serves one socket (see the module docstring).

    Args:
        upstream: the runtime's socket (a path or a ``unix:`` URL).
        route: ``:path`` -> what to do with the call.
        observe: receives the seconds each timed pass-through call took.
    """

    def __init__(
        self,
        upstream: str,
        route: Callable[[bytes], Route],
        *,
        observe: Callable[[float], None] | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._upstream = upstream_path(upstream)
        self._route = route
        self._observe = observe
        self._max = max_connections
        self._lock = threading.Lock()
        self._open: set[Splice] = set()
        self._listener: socket.socket | None = None
        self._deciders: ThreadPoolExecutor | None = None
        self._settler: Settler | None = None
        self._acceptor: threading.Thread | None = None

    @property
    def connections(self) -> int:
        """Caller connections open now."""
        with self._lock:
            return len(self._open)

    def start(self, socket_path: str | Path, mode: int = 0o600) -> None:
        """Listen on ``socket_path`` (a stale socket there is replaced) with ``mode``.

        Raises:
            OSError: the path exists and is not a socket, or cannot be bound.
        """
        path = Path(socket_path)
        if path.is_symlink() or (path.exists() and not stat.S_ISSOCK(path.lstat().st_mode)):
            raise FileExistsError(f"{path} exists and is not a socket")
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            os.chmod(path, mode)
            listener.listen(128)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._deciders = ThreadPoolExecutor(DECIDERS, thread_name_prefix="pullgate-verdict")
        self._settler = Settler()
        self._acceptor = threading.Thread(
            target=self._accept,
            args=(listener, self._deciders, self._settler),
            name="pullgate-splice",
        )
        self._acceptor.daemon = True
        self._acceptor.start()

    def stop(self, grace: float | None = None) -> ThreadPoolExecutor | None:
        """Stop accepting; verdicts and answers in flight get ``grace`` seconds; then every
        connection is closed (waiting a few seconds for their relay threads) and every quick
        allow is settled. Returns the workers' pool when some are still running (its owner
        must not close what they use)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(5.0)
        deciders, self._deciders = self._deciders, None
        running = deciders is not None and not _drained(deciders, grace or 0.0)
        with self._lock:
            open_now = list(self._open)
        for splice in open_now:
            splice.shutdown()
        deadline = time.monotonic() + _CLOSE_WAIT
        while self.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        settler, self._settler = self._settler, None
        if settler is not None:
            settler.close()  # memory and the audit log only: never drop a record
        return deciders if running else None

    def _accept(
        self, listener: socket.socket, deciders: ThreadPoolExecutor, settler: Settler
    ) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            with self._lock:
                full = len(self._open) >= self._max
                splice = None
                if not full:
                    splice = Splice(
                        client,
                        self._upstream,
                        self._route,
                        deciders,
                        settler=settler,
                        observe=self._observe,
                        on_close=self._closed,
                    )
                    self._open.add(splice)
            if splice is None:
                log.warning("runtime gate: %d connections open, refusing another", self._max)
                client.close()
                continue
            splice.start()

    def _closed(self, splice: Splice) -> None:
        with self._lock:
            self._open.discard(splice)


def _drained(pool: ThreadPoolExecutor, seconds: float) -> bool:
    """Shut ``pool`` down, waiting up to ``seconds`` for its work; whether it all finished."""
    waiter = threading.Thread(target=pool.shutdown, kwargs={"wait": True}, daemon=True)
    waiter.start()
    waiter.join(seconds)
    return not waiter.is_alive()
