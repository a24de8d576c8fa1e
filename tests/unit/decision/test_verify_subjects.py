"""verify_subjects at and after the decision's deadline: a late definitive deny stands, a late
allow is a TIMEOUT, and a subject whose turn comes after the deadline is not started.

``run_subject`` is replaced by a stand-in that takes as long as the test says; the deadline
logic is what is under test, not verification (covered by the decider tests).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pullgate.decision import verify
from pullgate.decision.combine import Subject
from pullgate.decision.model import SubjectDecision
from pullgate.decision.verify import SubjectJob, verify_subjects
from pullgate.descriptor import Descriptor
from pullgate.errors import Reason

_JOB = SubjectJob(
    role="manifest",
    descriptor=Descriptor(
        media_type="application/vnd.oci.image.manifest.v1+json",
        digest="sha256:" + "a" * 64,
        size=10,
    ),
)


def _subject(*, verified: bool, reason: Reason, inconclusive: bool = False) -> Subject:
    decision = SubjectDecision(
        role=_JOB.role,
        digest=_JOB.descriptor.digest,
        verified=verified,
        reason=reason,
        message="stand-in",
    )
    return Subject(decision=decision, inconclusive=inconclusive)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(2)
    yield pool
    pool.shutdown(wait=True)


def _stand_in(
    monkeypatch: pytest.MonkeyPatch, outcome: Subject, *, until: float
) -> list[SubjectJob]:
    """run_subject answers ``outcome`` once ``until`` (perf_counter) has passed; calls logged."""
    calls: list[SubjectJob] = []

    def run(job: SubjectJob, ctx: Any) -> Subject:
        calls.append(job)
        time.sleep(max(until - time.perf_counter(), 0.0))
        return outcome

    monkeypatch.setattr(verify, "run_subject", run)
    return calls


def _verify(executor: ThreadPoolExecutor, deadline: float) -> Subject:
    (subject,) = verify_subjects(executor, [_JOB], None, deadline=deadline, budget=1.0)  # type: ignore[arg-type]
    return subject


@pytest.mark.parametrize(
    ("outcome", "expected", "inconclusive"),
    [
        (_subject(verified=False, reason=Reason.UNTRUSTED), Reason.UNTRUSTED, False),
        (_subject(verified=True, reason=Reason.VERIFIED), Reason.TIMEOUT, True),
    ],
    ids=["definitive-deny-stands", "allow-is-timeout"],
)
def test_a_late_result(
    monkeypatch: pytest.MonkeyPatch,
    executor: ThreadPoolExecutor,
    outcome: Subject,
    expected: Reason,
    inconclusive: bool,
) -> None:
    deadline = time.perf_counter() + 0.05
    _stand_in(monkeypatch, outcome, until=deadline + 0.1)
    subject = _verify(executor, deadline)
    assert (subject.decision.reason, subject.inconclusive) == (expected, inconclusive)


def test_nothing_starts_after_the_deadline(
    monkeypatch: pytest.MonkeyPatch, executor: ThreadPoolExecutor
) -> None:
    calls = _stand_in(monkeypatch, _subject(verified=True, reason=Reason.VERIFIED), until=0.0)
    subject = _verify(executor, time.perf_counter() - 1.0)
    assert subject.decision.reason is Reason.TIMEOUT
    assert calls == []


def test_a_pooled_subject_that_finished_late_is_a_timeout_too(
    monkeypatch: pytest.MonkeyPatch, executor: ThreadPoolExecutor
) -> None:
    """The pooled subject (index) allows just after the deadline, while the calling thread's
    own subject (platform) runs even later: when the pooled answer is collected it is complete,
    but late, and must count as a TIMEOUT as the calling thread's late allow does."""
    deadline = time.perf_counter() + 0.05
    index = SubjectJob(role="index", descriptor=_JOB.descriptor)
    platform = SubjectJob(role="platform", descriptor=_JOB.descriptor)
    finish = {"index": deadline + 0.05, "platform": deadline + 0.3}

    def run(job: SubjectJob, ctx: Any) -> Subject:
        time.sleep(max(finish[job.role] - time.perf_counter(), 0.0))
        return _subject(verified=True, reason=Reason.VERIFIED)

    monkeypatch.setattr(verify, "run_subject", run)
    subjects = verify_subjects(executor, [index, platform], None, deadline=deadline, budget=1.0)  # type: ignore[arg-type]
    assert [s.decision.reason for s in subjects] == [Reason.TIMEOUT, Reason.TIMEOUT]
