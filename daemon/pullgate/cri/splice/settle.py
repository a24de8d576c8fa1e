"""Where the splice transport settles the allows it took from memory on a relay thread
(:data:`~pullgate.cri.splice.routes.Quick`): one thread of its own, in order, never queued behind
a verification. An allow is handed over once the runtime's answer to it has gone to the caller
(or the call or its connection ended without one), so counting it and writing its audit line
never compete with the create they record (docs/decisions.md, "The splice's quick allow").

Nothing is dropped: :meth:`Settler.close` settles everything queued before it returns, and an
allow handed over after that is settled at once by the caller.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["Settle", "Settler", "settle_now"]

log = logging.getLogger(__name__)

Settle = Callable[[], object]


class Settler:
    """One settling thread (started by the constructor)."""

    def __init__(self, name: str = "pullgate-settle") -> None:
        self._queue: queue.SimpleQueue[Settle | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, settle: Settle) -> None:
        """Queue ``settle`` (settled here, at once, after :meth:`close`)."""
        with self._lock:
            if not self._closed:
                self._queue.put(settle)
                return
        settle_now(settle)

    def close(self) -> None:
        """Settle everything queued, then stop the thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (settle := self._queue.get()) is not None:
            settle_now(settle)


def settle_now(settle: Settle) -> None:
    """Settle on the calling thread; a failure is logged, never raised."""
    try:
        settle()
    except Exception:
        log.exception("runtime gate: an allow could not be recorded")
