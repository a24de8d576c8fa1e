"""The background re-checks of failed or cancelled tag pulls (:mod:`pullgate.cri.reconcile`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pullgate.cri.reconcile import Reconciler
from pullgate.cri.request import PullRequest
from pullgate.registry.reference import parse_reference

DIGEST = "sha256:" + "d" * 64


def _pull(image: str = "r.io/team/app:v1") -> PullRequest:
    return PullRequest(image=image, reference=parse_reference(image), credentials=None, pod="")


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _workers() -> int:
    return sum(t.name == "pullgate-cri-recheck" for t in threading.enumerate())


class Checks:
    """Records each check; raises for the references in ``failing``."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.seen: list[str] = []
        self.failing = failing
        self.lock = threading.Lock()

    def __call__(self, pull: PullRequest, digest: str) -> None:
        with self.lock:
            self.seen.append(pull.image)
        if pull.image in self.failing:
            raise RuntimeError("the runtime is gone")

    def count(self) -> int:
        with self.lock:
            return len(self.seen)


def test_many_failed_pulls_share_one_worker_thread() -> None:
    checks = Checks()
    reconciler = Reconciler(checks, (0.05, 0.1))
    _until(lambda: _workers() == 0)  # none left over from earlier tests
    most = 0
    for n in range(200):
        reconciler.watch(_pull(f"r.io/team/app:v{n}"), DIGEST)
        most = max(most, _workers())
    _until(lambda: checks.count() == 400)
    assert most == 1
    _until(lambda: _workers() == 0)  # gone when idle
    assert reconciler.watching == 0


def test_each_pull_is_checked_on_the_whole_schedule_even_when_a_check_raises() -> None:
    checks = Checks(failing=("r.io/team/bad:v1",))
    reconciler = Reconciler(checks, (0.02, 0.04, 0.08))
    reconciler.watch(_pull("r.io/team/bad:v1"), DIGEST)
    reconciler.watch(_pull(), DIGEST)
    _until(lambda: checks.count() == 6)
    assert sorted(checks.seen) == ["r.io/team/app:v1"] * 3 + ["r.io/team/bad:v1"] * 3


def test_a_new_failure_of_the_same_pull_restarts_its_schedule() -> None:
    checks = Checks()
    reconciler = Reconciler(checks, (0.5, 1.0))
    reconciler.watch(_pull(), DIGEST)
    reconciler.watch(_pull(), DIGEST)
    _until(lambda: reconciler.watching == 0)
    assert checks.seen == ["r.io/team/app:v1"] * 2


def test_close_runs_checks_due_by_the_deadline_and_drops_the_rest() -> None:
    checks = Checks()
    reconciler = Reconciler(checks, (0.05, 3600.0))
    reconciler.watch(_pull(), DIGEST)
    worker = reconciler.close(time.monotonic() + 5)
    assert worker is not None
    worker.join(10)
    assert not worker.is_alive()
    assert checks.seen == ["r.io/team/app:v1"]
    assert reconciler.watching == 0
    reconciler.watch(_pull(), DIGEST)  # closed: not watched
    assert reconciler.watching == 0
