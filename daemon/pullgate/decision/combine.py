"""Combining subject verdicts into one decision (docs/architecture.md §1, "decision").

* ``both``: every subject must pass; ``either``: the index, or every platform manifest
  containerd may run, must pass; ``index`` and ``platform`` need every subject they verify.
  A plain (single-platform) manifest is one subject.
* Failed vs inconclusive: a failure is *definitive* when it cannot be rescued by retrying
  (``both``: any definitive subject failure; ``either``: every failure definitive), otherwise
  the decision is *inconclusive*.
* Then the statement's settings: an inconclusive deny with ``on_inconclusive = "allow"``
  becomes an allow with ``fail_open``; a deny under ``mode = "audit"`` becomes an allow with
  ``audit_denied`` and reason ``AUDIT_ONLY`` (the underlying reason is kept in the message
  and in the subjects). Without an applicable statement nothing is relaxed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pullgate.config import InconclusiveAction, Mode, Requirement, StatementSettings
from pullgate.decision.model import Decision, SubjectDecision
from pullgate.errors import PullgateError, Reason

__all__ = ["Subject", "Verdict", "combine", "finish", "is_inconclusive"]


def is_inconclusive(err: PullgateError) -> bool:
    """True for errors that a retry could turn into another answer (the reason table says)."""
    return err.inconclusive


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    """One verified subject plus what the combination needs to know about it."""

    decision: SubjectDecision
    inconclusive: bool
    valid_until: datetime | None = None  # allow evidence goes stale at this instant


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The combined result before the statement's settings are applied."""

    allowed: bool
    reason: Reason
    message: str
    inconclusive: bool
    subjects: tuple[SubjectDecision, ...] = ()

    @classmethod
    def from_error(cls, err: PullgateError) -> Verdict:
        """A deny for an error raised outside subject verification (classed by the table)."""
        return cls(
            allowed=False, reason=err.reason, message=str(err), inconclusive=is_inconclusive(err)
        )


def _label(subject: Subject) -> str:
    return f"{subject.decision.role} {subject.decision.digest}"


def _either(subjects: Sequence[Subject]) -> tuple[bool, bool]:
    """``either``: (allowed, a failure could be rescued by retrying). The index alone, or every
    platform manifest containerd may run, must pass."""
    index = [s for s in subjects if s.decision.role == "index"]
    others = [s for s in subjects if s.decision.role != "index"]

    def group(members: list[Subject]) -> tuple[bool, bool]:
        passed = bool(members) and all(s.decision.verified for s in members)
        definitive = any(not s.decision.verified and not s.inconclusive for s in members)
        return passed, definitive or not members

    index_ok, index_lost = group(index)
    others_ok, others_lost = group(others)
    return index_ok or others_ok, not (index_lost and others_lost)


def combine(requirement: Requirement, subjects: Sequence[Subject]) -> Verdict:
    """Combine subject verdicts per ``requirement`` (see the module docstring)."""
    decisions = tuple(s.decision for s in subjects)
    passed = [s for s in subjects if s.decision.verified]
    failed = [s for s in subjects if not s.decision.verified]
    if requirement is Requirement.EITHER:
        allowed, rescuable = _either(subjects)
    else:
        allowed = bool(subjects) and not failed
        rescuable = all(s.inconclusive for s in failed)
    if allowed:
        skipped = all(s.decision.reason is Reason.SKIPPED_BY_POLICY for s in passed)
        return Verdict(
            allowed=True,
            reason=Reason.SKIPPED_BY_POLICY if skipped else Reason.VERIFIED,
            message="; ".join(f"{_label(s)}: {s.decision.message}" for s in passed),
            inconclusive=False,
            subjects=decisions,
        )
    if not failed:
        return Verdict(
            allowed=False,
            reason=Reason.INTERNAL,
            message="nothing to verify",
            inconclusive=False,
            subjects=decisions,
        )
    definitive = [s for s in failed if not s.inconclusive]
    inconclusive = [s for s in failed if s.inconclusive]
    culprit = (inconclusive or failed)[0] if rescuable else definitive[0]
    message = "; ".join(f"{_label(s)}: {s.decision.message}" for s in failed)
    return Verdict(
        allowed=False,
        reason=culprit.decision.reason,
        message=message,
        inconclusive=rescuable,
        subjects=decisions,
    )


def finish(
    verdict: Verdict,
    settings: StatementSettings,
    base: Mapping[str, Any],
    timings: Mapping[str, float],
    *,
    has_policy: bool,
) -> Decision:
    """Apply ``on_inconclusive`` and ``mode`` and build the :class:`Decision`.

    Args:
        verdict: The combined verdict.
        settings: The statement's settings.
        base: Decision fields describing the request (reference, digest, platform, …).
        timings: Phase → seconds.
        has_policy: False when no statement applied (nothing is relaxed then).
    """
    allowed, reason, message = verdict.allowed, verdict.reason, verdict.message
    fail_open = audit_denied = False
    if not allowed and has_policy:
        if verdict.inconclusive and settings.on_inconclusive is InconclusiveAction.ALLOW:
            allowed = fail_open = True
        elif settings.mode is Mode.AUDIT:
            allowed = audit_denied = True
            message = f"audit mode, would deny with {reason.value}: {message}"
            reason = Reason.AUDIT_ONLY
    return Decision(
        allowed=allowed,
        reason=reason,
        message=message,
        inconclusive=verdict.inconclusive,
        fail_open=fail_open,
        audit_denied=audit_denied,
        subjects=verdict.subjects,
        timings=dict(timings),
        **base,
    )
