"""Where the splice transport settles the allows it took from memory on a relay thread
(:data:`~pullgate.cri.splice.routes.Quick`): one thread of its own, in order, never queued behind
a verification. Each allow gets a plain lock, held until it is settled, so the relay thread's
hand-off and the response thread's wait cost no more than a lock and a queue entry (the daemon's
hot path; see docs/decisions.md, "The splice's quick allow").

Nothing is dropped: :meth:`Settler.close` settles everything queued before it returns, and an
allow handed over after that is settled at once by the caller.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["Settler"]

log = logging.getLogger(__name__)

Settle = Callable[[], object]


class Settler:
    """One settling thread (started by the constructor)."""

    def __init__(self, name: str = "pullgate-settle") -> None:
        self._queue: queue.SimpleQueue[tuple[Settle, threading.Lock] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @staticmethod
    def claim() -> threading.Lock:
        """A lock, held: what :meth:`submit` or :meth:`settle_now` releases once its allow is
        settled (taken before the allow is acted on, so nothing can see it unsettled)."""
        done = threading.Lock()
        done.acquire()
        return done

    def submit(self, settle: Settle, done: threading.Lock) -> None:
        """Queue ``settle``; ``done`` (from :meth:`claim`) is released once it has run
        (settled here, at once, after :meth:`close`)."""
        with self._lock:
            if not self._closed:
                self._queue.put((settle, done))
                return
        _settled(settle, done)

    @staticmethod
    def settle_now(settle: Settle, done: threading.Lock) -> None:
        """Settle on the calling thread (no settler); ``done`` as for :meth:`submit`."""
        _settled(settle, done)

    def close(self) -> None:
        """Settle everything queued, then stop the thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            _settled(*item)


def _settled(settle: Settle, done: threading.Lock) -> None:
    try:
        settle()
    except Exception:
        log.exception("runtime gate: an allow could not be recorded")
    finally:
        done.release()
