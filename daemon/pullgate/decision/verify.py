"""Verifying one subject of a decision (index, platform manifest or plain manifest).

Runs notation's per-artifact verification (:class:`~pullgate.verification.verifier.Verifier`)
for one descriptor, on a borrowed registry client, and records the phases of
``Decision.timings``: ``discover``, ``fetch`` and ``revocation`` are measured by the wrappers of
:mod:`pullgate.decision.clients`; ``crypto`` is the rest of the verification time. Phases are
summed over subjects, so with parallel subjects they can add up to more than the wall time.

:func:`plan_subjects` picks the subjects a requirement needs (``both`` and ``either``: index and
platform manifest; ``index`` / ``platform``: the one they name; a plain manifest is one subject
whatever the requirement) and :func:`verify_subjects` verifies them in parallel within the
decision's deadline (a subject still running then is inconclusive, ``TIMEOUT``).

The calling thread verifies one subject itself, and any other one that no pool thread has
picked up by then: the pool is shared by every decision, and while slow registries hold its
threads (each one at most until its own decision's deadline, which the transport enforces), a
decision for a healthy registry must not wait in its queue until its budget is gone.

Every subject runs under the decision's deadline (:func:`pullgate.net.deadline.bounded_by`): the
registry's answers and the OCSP/CRL fetches alike end by then. A subject that finishes after the
deadline is a ``TIMEOUT`` -- unless it found a definitive reason to deny, which stands (turning
it into an inconclusive ``TIMEOUT`` would let ``on_inconclusive = "allow"`` open it); a queued
subject whose turn comes after the deadline is not started.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pullgate.common.clock import Clock
from pullgate.common.descriptor import Descriptor
from pullgate.config import Requirement
from pullgate.decision.clients import PhaseTimes, TimedRevocation, TimedSource
from pullgate.decision.combine import Subject, Verdict, combine, is_inconclusive
from pullgate.decision.model import SubjectDecision
from pullgate.decision.platform import IndexEntry, Platform
from pullgate.errors import PullgateError, Reason, reason_row
from pullgate.net.deadline import bounded_by
from pullgate.registry.model import ImageReference
from pullgate.registry.store import FetchHook, Store
from pullgate.verification.policy import TrustPolicyStatement
from pullgate.verification.revocation import RevocationChecker
from pullgate.verification.verifier import Verifier

if TYPE_CHECKING:
    from pullgate.decision.context import DecisionContext, Shared, SnapshotLike

__all__ = [
    "SubjectJob",
    "failed_subject",
    "plan_subjects",
    "run_plan",
    "run_subject",
    "timed_out_subject",
    "verify_subjects",
]

_MEASURED = ("discover", "fetch", "revocation")


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectJob:
    """What to verify: a role and its descriptor (and platform, for the platform manifest)."""

    role: str  # "index" | "platform" | "manifest"
    descriptor: Descriptor
    platform: Platform | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectContext:
    """Everything shared by the subjects of one decision."""

    ref: ImageReference
    snap: SnapshotLike
    statement: TrustPolicyStatement
    shared: Shared  # the snapshot's revocation checker, subject memo and certificate memos
    clock: Clock
    lend: Callable[[FetchHook | None], AbstractContextManager[Store]]
    times: PhaseTimes
    user_metadata: Mapping[str, str] | None = None  # required signed metadata (the CLI's -m)

    @property
    def revocation(self) -> RevocationChecker:
        """The snapshot's revocation checker."""
        return self.shared.revocation


def _unverified(job: SubjectJob, reason: Reason, message: str, *, inconclusive: bool) -> Subject:
    return Subject(
        decision=SubjectDecision(
            role=job.role,
            digest=job.descriptor.digest,
            verified=False,
            reason=reason,
            message=message,
            platform=str(job.platform) if job.platform else None,
        ),
        inconclusive=inconclusive,
    )


def failed_subject(job: SubjectJob, err: PullgateError) -> Subject:
    """A subject that could not be verified because of ``err``."""
    return _unverified(job, err.reason, str(err), inconclusive=is_inconclusive(err))


def timed_out_subject(job: SubjectJob, budget: float) -> Subject:
    """A subject whose verification did not finish within the decision's budget."""
    message = f"verification did not finish within {budget:g} s"
    return _unverified(
        job, Reason.TIMEOUT, message, inconclusive=reason_row(Reason.TIMEOUT).inconclusive
    )


def run_subject(job: SubjectJob, ctx: SubjectContext) -> Subject:
    """Verify ``job``'s descriptor against the statement, or reuse the snapshot's definitive
    verdict for its digest (:mod:`pullgate.decision.subject_memo`); never raises for a verdict."""
    if ctx.user_metadata:  # the memo's key does not hold what the verdict then depends on
        return _verify_subject(job, ctx)
    key = (ctx.ref.policy_locator, ctx.statement.name, job.descriptor.digest)
    platform = str(job.platform) if job.platform else None
    memo = ctx.shared.subjects.get(key, job.role, platform)
    if memo is not None:
        return memo
    subject = _verify_subject(job, ctx)
    ctx.shared.subjects.put(key, subject)
    return subject


def _verify_subject(job: SubjectJob, ctx: SubjectContext) -> Subject:
    local = PhaseTimes()
    revocation = TimedRevocation(ctx.revocation, local)
    started = time.perf_counter()
    try:
        verifier = Verifier(
            trust_store=ctx.snap.trust.store,
            revocation=revocation,
            clock=ctx.clock,
            max_signatures=ctx.snap.config.verification.max_signatures,
            memo=ctx.shared.cert_memo,
        )
        with ctx.lend(local.add_fetch) as client:
            outcome = verifier.verify_artifact(
                reference=ctx.ref.policy_reference(job.descriptor.digest),
                target=job.descriptor,
                statement=ctx.statement,
                source=TimedSource(client, ctx.ref, local),
                user_metadata=ctx.user_metadata,
            )
    except PullgateError as exc:
        return failed_subject(job, exc)
    finally:
        total = time.perf_counter() - started
        measured = local.as_dict()
        for phase in _MEASURED:
            ctx.times.add(phase, measured.get(phase, 0.0))
        ctx.times.add("crypto", total - sum(measured.get(p, 0.0) for p in _MEASURED))
    bounds = []
    signature = outcome.verified_signature
    if outcome.allowed and signature is not None and signature.valid_until is not None:
        bounds.append(signature.valid_until)
    if revocation.next_update is not None:
        bounds.append(revocation.next_update)
    shown = signature or (outcome.signatures[0] if outcome.signatures else None)
    return Subject(
        decision=SubjectDecision(
            role=job.role,
            digest=job.descriptor.digest,
            verified=outcome.allowed,
            reason=outcome.reason,
            message=outcome.message,
            platform=str(job.platform) if job.platform else None,
            outcome=outcome,
            signature_digest=shown.manifest_digest if shown else None,
            signer_subject=shown.signer_subject if shown else None,
            signer_fingerprint=shown.signer_fingerprint if shown else None,
            signing_time=shown.signing_time if shown else None,
        ),
        inconclusive=outcome.inconclusive,
        valid_until=min(bounds, default=None),
    )


def plan_subjects(
    requirement: Requirement,
    target: Descriptor,
    picks: Sequence[IndexEntry],
    platform: Platform | None,
) -> list[SubjectJob]:
    """The subjects ``requirement`` needs verified: ``target`` is the resolved top-level
    descriptor, ``picks`` every platform manifest containerd may run when ``target`` is an
    index (each one is a ``platform`` subject, labelled with the platform its entry declares, else
    ``platform``)."""
    if not picks:
        return [SubjectJob(role="manifest", descriptor=target)]
    jobs: list[SubjectJob] = []
    if requirement is not Requirement.PLATFORM:
        jobs.append(SubjectJob(role="index", descriptor=target))
    if requirement is not Requirement.INDEX:
        jobs += [
            SubjectJob(role="platform", descriptor=e.descriptor, platform=_declared(e) or platform)
            for e in picks
        ]
    return jobs


def _declared(entry: IndexEntry) -> Platform | None:
    """The platform ``entry`` declares, as written (None without os and architecture)."""
    declared = entry.platform
    if declared is None or not declared.os or not declared.architecture:
        return None
    return Platform(os=declared.os, architecture=declared.architecture, variant=declared.variant)


def _definitive_deny(subject: Subject) -> bool:
    return not subject.decision.verified and not subject.inconclusive


def verify_subjects(
    executor: Executor,
    jobs: Sequence[SubjectJob],
    ctx: SubjectContext,
    *,
    deadline: float,
    budget: float,
    alongside: Callable[[], object] | None = None,
) -> list[Subject]:
    """Verify ``jobs`` in parallel (on ``executor`` and the calling thread); a job not done by
    ``deadline`` (``time.perf_counter()``) is a ``TIMEOUT`` subject (``budget``: the
    configured seconds). ``alongside`` is called once the pooled jobs are queued, before the
    calling thread's own one (work to overlap with verification, queued behind it)."""

    def bounded(job: SubjectJob) -> Subject:
        """``job`` verified within the deadline; not started, or finished late, is a TIMEOUT
        (a definitive deny stands however late it comes)."""
        if time.perf_counter() >= deadline:
            return timed_out_subject(job, budget)
        with bounded_by(deadline):
            subject = run_subject(job, ctx)
        if time.perf_counter() < deadline or _definitive_deny(subject):
            return subject
        return timed_out_subject(job, budget)

    if not jobs:
        if alongside is not None:
            alongside()
        return []
    *pooled, last = jobs
    futures = [executor.submit(bounded, job) for job in pooled]
    if alongside is not None:
        alongside()
    last_subject = bounded(last)
    subjects: list[Subject] = []
    for job, future in zip(pooled, futures, strict=True):
        if future.cancel():  # still queued: every pool thread is busy elsewhere
            subjects.append(bounded(job))
            continue
        remaining = deadline - time.perf_counter()
        try:
            subjects.append(future.result(timeout=max(remaining, 0.0)))
        except FutureTimeout:
            subjects.append(timed_out_subject(job, budget))
    subjects.append(last_subject)
    return subjects


def run_plan(
    executor: Executor,
    ctx: DecisionContext,
    sub: SubjectContext,
    target: Descriptor,
    picks: Sequence[IndexEntry],
    *,
    alongside: Callable[[], object] | None = None,
) -> Verdict:
    """Verify the subjects the request's requirement needs and combine them (sets
    ``ctx.valid_until`` to the earliest bound behind them); ``alongside`` as for
    :func:`verify_subjects`."""
    settings = ctx.snap.config.settings_for(sub.statement.name)
    requirement = ctx.request.require or settings.require
    jobs = plan_subjects(requirement, target, picks, ctx.platform)
    budget = ctx.snap.config.verification.timeout
    subjects = verify_subjects(
        executor, jobs, sub, deadline=ctx.deadline, budget=budget, alongside=alongside
    )
    bounds = [s.valid_until for s in subjects if s.valid_until is not None]
    ctx.valid_until = min(bounds, default=None)
    effective = requirement if picks else Requirement.BOTH
    return combine(effective, subjects)
