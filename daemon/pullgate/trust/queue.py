"""Reload requests coalesced into one pending reload, run on a thread of their own.

Every trigger (the file watcher, SIGHUP, the ``Reload`` RPC) asks a :class:`ReloadQueue` for a
reload. A request made while no reload is pending creates the pending one; requests made while
it has not started yet join it. Each request gets a future of its own (a caller may cancel
it without touching anyone else's) that completes with the result of that pending reload, which
starts *after* the request was made: a caller's answer reflects the files as they were when it
asked, or later. The futures follow :class:`concurrent.futures.Future` states: *pending* until
their reload starts, *running* while it runs, so a trigger can tell whether a reload that will
still see its change is already queued.

Pacing: the first request after a quiet period starts at once; a request that arrives while a
reload runs, or less than ``min_interval`` seconds after the previous one ended, waits until
``min_interval`` after that end. A storm of triggers therefore costs at most one reload per
``min_interval`` (plus the one running when it began), however many signals or calls arrive.
A request made with ``paced=False`` (the file watcher's, which debounces on its own) lets its
pending reload start as soon as the running one ends.

Reloads run on the queue's single thread, never on the executor that decisions use, and they
are serialised there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from pullgate.errors import PullgateError, Reason

__all__ = ["ReloadQueue"]

_LOG = logging.getLogger(__name__)

T = TypeVar("T")


class ReloadQueue(Generic[T]):
    """Coalesces reload requests and runs them, paced, on one dedicated thread.

    Args:
        reload: runs one reload; gets the triggers of every request it serves, joined by
            ``+`` in arrival order (``sighup``, ``rpc+sighup``, …).
        min_interval: seconds from the end of one reload to the start of the next (a number,
            or a callable read before each wait, so a reload can change it).
        name: the thread's name.
    """

    def __init__(
        self,
        reload: Callable[[str], T],
        *,
        min_interval: float | Callable[[], float] = 1.0,
        name: str = "pullgate-reload",
    ) -> None:
        self._reload = reload
        self._min_interval = min_interval
        self._name = name
        self._cond = threading.Condition()
        self._waiters: list[Future[T]] = []
        self._triggers: list[str] = []
        self._urgent = False  # the pending reload has an unpaced request
        self._last_end: float | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.runs = 0  # reloads run (diagnostics, tests)

    def start(self) -> None:
        """Start the reload thread (idempotent)."""
        with self._cond:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the running reload, fail the pending one, join the thread (idempotent)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            self._fail_pending()

    def request(self, trigger: str, *, paced: bool = True) -> Future[T]:
        """Ask for a reload; the future completes with the result of one that starts later.

        Requests made before the pending reload starts are all served by it; ``paced=False``
        lets it start without waiting for ``min_interval``.
        """
        future: Future[T] = Future()
        with self._cond:
            if self._stopping:
                future.set_exception(_stopping())
                return future
            if not self._waiters:
                self._triggers, self._urgent = [], False
            self._cond.notify_all()  # the thread re-reads the interval as well
            self._waiters.append(future)
            self._urgent = self._urgent or not paced
            if trigger not in self._triggers:
                self._triggers.append(trigger)
        return future

    def reload(self, trigger: str, *, paced: bool = True) -> T:
        """:meth:`request`, then wait for its result (blocking)."""
        return self.request(trigger, paced=paced).result()

    def _interval(self) -> float:
        value = self._min_interval
        try:
            return max(0.0, float(value() if callable(value) else value))
        except Exception:  # noqa: BLE001  (pacing must never stop reloads)
            _LOG.exception("reload pacing: cannot read the interval")
            return 0.0

    def _next(self) -> tuple[list[Future[T]], str] | None:
        """Wait until a pending reload is due; take it (None when stopping)."""
        with self._cond:
            while True:
                if self._stopping:
                    return None
                if self._waiters:
                    due = 0.0
                    if self._last_end is not None and not self._urgent:
                        due = self._last_end + self._interval()
                    remaining = due - time.monotonic()
                    if remaining <= 0:
                        waiters, triggers = self._waiters, "+".join(self._triggers)
                        self._waiters, self._triggers, self._urgent = [], [], False
                        # Running from here on: later requests make a new batch.
                        live = [f for f in waiters if f.set_running_or_notify_cancel()]
                        return live, triggers
                    self._cond.wait(remaining)
                else:
                    self._cond.wait()

    def _run(self) -> None:
        while (job := self._next()) is not None:
            waiters, triggers = job
            try:
                result = self._reload(triggers)
            except BaseException as exc:  # noqa: BLE001  (handed to every waiter)
                for future in waiters:
                    future.set_exception(exc)
            else:
                for future in waiters:
                    future.set_result(result)
            finally:
                with self._cond:
                    self.runs += 1
                    self._last_end = time.monotonic()

    def _fail_pending(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if future.set_running_or_notify_cancel():
                future.set_exception(_stopping())


def _stopping() -> PullgateError:
    return PullgateError(Reason.INTERNAL, "the daemon is stopping; the reload did not run")
