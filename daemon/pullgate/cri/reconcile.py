"""Re-checking a tag after its pull failed or was cancelled, for a bounded time.

The proxy checks the tag once at once (:func:`pullgate.cri.pin.clean_up`), but that check can
come too early: cancelling the upstream ``PullImage`` returns locally at once while containerd's
handler keeps running, containerd 1.6 writes the image record under the tag during the fetch
(before unpacking), and its CRI plugin picks the record up asynchronously (``ImageCreate``
event). A tag that moved after verification may therefore name an unverified image only
moments after that first check. A :class:`Reconciler` repeats the check on one background
thread at the offsets in ``schedule`` (seconds after the failure, :data:`RECHECK_AFTER` by
default: ~30 s in all), whatever the earlier checks found -- when the runtime has stopped
writing is not knowable from outside.

Bounded: one worker thread for all watched pulls (started on demand, gone when idle), one watch
per reference and verified digest (a new failure restarts its schedule), at most
:data:`MAX_WATCHES` watches (beyond that a failure is logged at ERROR and not re-checked).
:meth:`Reconciler.close` lets checks that fall due before a deadline run, drops the rest (logged)
and never raises.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pullgate.cri.request import PullRequest

__all__ = ["MAX_WATCHES", "RECHECK_AFTER", "Reconciler"]

log = logging.getLogger(__name__)

RECHECK_AFTER: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
"""Seconds after a failed or cancelled tag pull at which the tag is checked again."""
MAX_WATCHES = 1024
"""Distinct (reference, digest) pairs re-checked at the same time."""

Check = Callable[[PullRequest, str], None]
"""One check of a pull's tag against the digest pullgate verified (logs; should not raise)."""


@dataclass(eq=False)
class _Watch:
    pull: PullRequest
    digest: str
    started: float
    step: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return str(self.pull.reference), self.digest


class Reconciler:
    """Re-checks failed or cancelled tag pulls at the offsets in ``schedule`` (seconds).

    Args:
        check: one check (called on the worker thread; an exception is logged).
        schedule: increasing offsets from the failure, in seconds.
    """

    def __init__(self, check: Check, schedule: Sequence[float] = RECHECK_AFTER) -> None:
        self._check = check
        self._schedule = tuple(schedule)
        self._cond = threading.Condition()
        self._watches: dict[tuple[str, str], _Watch] = {}
        self._due: list[tuple[float, int, _Watch]] = []
        self._seq = itertools.count()
        self._worker: threading.Thread | None = None
        self._deadline: float | None = None  # set by close()

    @property
    def watching(self) -> int:
        """Pulls with re-checks still to come."""
        with self._cond:
            return len(self._watches)

    def watch(self, pull: PullRequest, digest: str) -> None:
        """Re-check ``pull``'s tag against ``digest`` on the schedule, starting now."""
        if not self._schedule:
            return
        watch = _Watch(pull, digest, time.monotonic())
        with self._cond:
            if self._deadline is not None:
                log.warning("not re-checking %s after its pull failed: stopping", pull.reference)
                return
            if watch.key not in self._watches and len(self._watches) >= MAX_WATCHES:
                log.error(
                    "not re-checking %s after its pull failed: %d pulls are being re-checked "
                    "already; an unverified image may remain",
                    pull.reference,
                    MAX_WATCHES,
                )
                return
            self._watches[watch.key] = watch  # a watch it replaces is skipped when due
            self._push(watch)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="pullgate-cri-recheck", daemon=True
                )
                self._worker.start()
            self._cond.notify_all()

    def close(self, deadline: float) -> threading.Thread | None:
        """Accept no more watches; checks due by ``deadline`` (``time.monotonic()``) still run,
        later ones are dropped (logged). Returns the worker thread to wait for, if any."""
        with self._cond:
            if self._deadline is None or deadline < self._deadline:
                self._deadline = deadline
            self._cond.notify_all()
            return self._worker

    def _push(self, watch: _Watch) -> None:
        due = watch.started + self._schedule[watch.step]
        heapq.heappush(self._due, (due, next(self._seq), watch))

    def _run(self) -> None:
        while True:
            with self._cond:
                watch = self._next()
                if watch is None:
                    self._worker = None
                    return
            try:
                self._check(watch.pull, watch.digest)
            except Exception:  # the worker must survive any check
                log.exception("re-checking %s after its pull failed", watch.pull.reference)
            with self._cond:
                watch.step += 1
                if self._watches.get(watch.key) is not watch:
                    continue  # replaced by a newer failure of the same pull
                if watch.step < len(self._schedule):
                    self._push(watch)
                else:
                    del self._watches[watch.key]

    def _next(self) -> _Watch | None:
        """The next watch that is due, waiting for it; None when the worker should end.
        Called with the lock held."""
        while True:
            while self._due and self._watches.get(self._due[0][2].key) is not self._due[0][2]:
                heapq.heappop(self._due)  # superseded
            if not self._due:
                return None
            due = self._due[0][0]
            if self._deadline is not None and due > self._deadline:
                self._drop()
                return None
            now = time.monotonic()
            if due <= now:
                return heapq.heappop(self._due)[2]
            self._cond.wait(due - now)

    def _drop(self) -> None:
        for watch in self._watches.values():
            log.warning(
                "stopping: %s is no longer re-checked after its pull failed; an unverified "
                "image may remain",
                watch.pull.reference,
            )
        self._watches.clear()
        self._due.clear()
