"""The reload queue: requests coalesce into one pending reload, paced, on its own thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError

import pytest

from pullgate.errors import PullgateError, Reason
from pullgate.trust.queue import ReloadQueue

_WAIT = 10.0


class _Reloads:
    """A reload that records its triggers and thread, and can be held until released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threads: set[str] = set()
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.fail: BaseException | None = None

    def __call__(self, trigger: str) -> int:
        self.calls.append(trigger)
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.hold.wait(_WAIT)
        if self.fail is not None:
            raise self.fail
        return len(self.calls)


@pytest.fixture
def reloads() -> _Reloads:
    return _Reloads()


@pytest.fixture
def queue(reloads: _Reloads) -> Iterator[ReloadQueue[int]]:
    q: ReloadQueue[int] = ReloadQueue(reloads, min_interval=0.0, name="test-reload")
    q.start()
    yield q
    reloads.hold.set()
    q.stop()


def test_requests_made_while_one_runs_coalesce_into_one_later_reload(
    reloads: _Reloads, queue: ReloadQueue[int]
) -> None:
    reloads.hold.clear()
    first = queue.request("rpc")
    assert reloads.entered.wait(_WAIT)  # the first reload is running now
    later = [queue.request("sighup") for _ in range(200)] + [queue.request("watch")]
    assert not any(f.done() for f in later)
    reloads.hold.set()
    assert first.result(_WAIT) == 1
    # Every later request is answered by the one reload that started after it: not the first.
    assert {f.result(_WAIT) for f in later} == {2}
    assert reloads.calls == ["rpc", "sighup+watch"]
    assert queue.runs == 2
    assert reloads.threads == {"test-reload"}  # never the caller's thread


def test_a_pending_future_turns_running_when_its_reload_starts(
    reloads: _Reloads, queue: ReloadQueue[int]
) -> None:
    reloads.hold.clear()
    queue.request("rpc")
    assert reloads.entered.wait(_WAIT)
    pending = queue.request("sighup")
    assert not pending.running()  # queued behind the running one
    assert not pending.done()
    reloads.entered.clear()
    reloads.hold.set()
    assert reloads.entered.wait(_WAIT)
    assert pending.result(_WAIT) == 2


def test_min_interval_paces_a_storm(reloads: _Reloads) -> None:
    queue: ReloadQueue[int] = ReloadQueue(reloads, min_interval=0.25)
    queue.start()
    try:
        started = time.monotonic()
        futures = []
        while time.monotonic() - started < 1.0:
            futures.append(queue.request("sighup"))
            time.sleep(0.002)
        for future in futures:
            future.result(_WAIT)
    finally:
        queue.stop()
    # about 1 s / 0.25 s + the first; without pacing it would be one per request
    assert 2 <= len(reloads.calls) <= 7, reloads.calls
    assert len(futures) > 50


def test_a_cancelled_request_does_not_cancel_the_others(
    reloads: _Reloads, queue: ReloadQueue[int]
) -> None:
    reloads.hold.clear()
    queue.request("rpc")
    assert reloads.entered.wait(_WAIT)
    gone, kept = queue.request("rpc"), queue.request("rpc")
    assert gone.cancel()
    reloads.hold.set()
    assert kept.result(_WAIT) == 2
    with pytest.raises(CancelledError):
        gone.result(_WAIT)


def test_an_error_reaches_every_waiter_and_the_queue_goes_on(
    reloads: _Reloads, queue: ReloadQueue[int]
) -> None:
    reloads.fail = RuntimeError("boom")
    futures = [queue.request("rpc") for _ in range(3)]
    for future in futures:
        with pytest.raises(RuntimeError):
            future.result(_WAIT)
    reloads.fail = None
    assert queue.request("rpc").result(_WAIT) >= 2


def test_stop_fails_what_is_pending_and_later_requests(reloads: _Reloads) -> None:
    queue: ReloadQueue[int] = ReloadQueue(reloads, min_interval=60.0)
    queue.start()
    assert queue.request("rpc").result(_WAIT) == 1
    pending = queue.request("rpc")  # paced: would wait a minute
    queue.stop()
    for future in (pending, queue.request("rpc")):
        with pytest.raises(PullgateError) as info:
            future.result(_WAIT)
        assert info.value.reason is Reason.INTERNAL
    assert reloads.calls == ["rpc"]


def test_the_interval_is_read_before_each_wait(reloads: _Reloads) -> None:
    interval = [60.0]
    queue: ReloadQueue[int] = ReloadQueue(reloads, min_interval=lambda: interval[0])
    queue.start()
    try:
        assert queue.request("rpc").result(_WAIT) == 1
        pending = queue.request("rpc")
        time.sleep(0.1)
        assert not pending.done()
        interval[0] = 0.0  # a reload changed reload_debounce
        queue.request("watch")  # any request wakes the queue, which re-reads the interval
        assert pending.result(_WAIT) == 2
    finally:
        queue.stop()


def test_an_unpaced_request_does_not_wait_for_the_interval(reloads: _Reloads) -> None:
    queue: ReloadQueue[int] = ReloadQueue(reloads, min_interval=60.0)
    queue.start()
    try:
        assert queue.request("rpc").result(_WAIT) == 1
        paced = queue.request("sighup")
        assert queue.request("watch", paced=False).result(_WAIT) == 2  # not a minute later
        assert paced.result(_WAIT) == 2  # joined the same reload
        assert reloads.calls == ["rpc", "sighup+watch"]
    finally:
        queue.stop()
