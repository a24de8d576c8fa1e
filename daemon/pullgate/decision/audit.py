"""One JSON audit line per decision (docs/architecture.md §1, "decision").

Fields: reference, top-level digest, every subject's digest and verdict, platform, statement,
level, requirement, mode, decision, reason, message, fail-open / audit-only flags, the signer's
subject and certificate fingerprint, cache hit, phase timings, caller and configuration
generation, and the front end that asked. Credentials are never part of a record: no field
carries them, and :class:`pullgate.decision.record.DecisionRecorder` scrubs every record (with
the request's secret values, :func:`request_secrets`) before it reaches the sink.
"""

from __future__ import annotations

from typing import Any

from pullgate.decision.model import Decision, DecisionRequest, SubjectDecision
from pullgate.errors import Reason

__all__ = ["audit_record", "request_secrets"]

_MIN_SECRET = 4


def _signer(subject: SubjectDecision) -> dict[str, Any] | None:
    """The signature that verified the subject (a VERIFIED subject's signature fields name the
    passing signature; a denied subject's name the failing one, which is not a signer)."""
    if subject.reason is not Reason.VERIFIED or subject.signature_digest is None:
        return None
    return {
        "manifest": subject.signature_digest,
        "subject": subject.signer_subject,
        "fingerprint": subject.signer_fingerprint,
        "signing_time": subject.signing_time,
    }


def request_secrets(request: DecisionRequest) -> tuple[str, ...]:
    """The request's secret values long enough to be recognised in text."""
    creds = request.credentials
    if creds is None:
        return ()
    values = (creds.password, creds.identity_token, creds.registry_token)
    return tuple(v for v in values if len(v) >= _MIN_SECRET)


def audit_record(decision: Decision, request: DecisionRequest) -> dict[str, Any]:
    """The audit dict of one decision (JSON-serialisable; not yet scrubbed)."""
    subjects: list[dict[str, Any]] = []
    digests: dict[str, str] = {}
    signer: dict[str, Any] | None = None  # the first subject's signer that verified
    for s in decision.subjects:  # one pass: this runs for every decision, warm ones included
        one = _signer(s)
        if signer is None:
            signer = one
        digests[s.role] = s.digest
        subjects.append(
            {
                "role": s.role,
                "digest": s.digest,
                "platform": s.platform,
                "verified": s.verified,
                "reason": s.reason.value,
                "signer": one,
            }
        )
    record: dict[str, Any] = {
        "reference": decision.reference,
        "digest": decision.digest,
        "digests": digests,
        "platform": decision.platform,
        "statement": decision.statement,
        "level": decision.level,
        "requirement": decision.requirement.value if decision.requirement else None,
        "mode": decision.mode.value,
        "decision": "allow" if decision.allowed else "deny",
        "reason": decision.reason.value,
        "message": decision.message,
        "inconclusive": decision.inconclusive,
        "fail_open": decision.fail_open,
        "audit_denied": decision.audit_denied,
        "signer_subject": signer["subject"] if signer else None,
        "signer_fingerprint": signer["fingerprint"] if signer else None,
        "subjects": subjects,
        "cache_hit": decision.cache_hit,
        "resolve_cached": decision.resolve_cached,
        "timings": {k: round(v, 6) for k, v in decision.timings.items()},
        "caller": request.caller,
        "front": request.front.value if request.front is not None else None,
        "credentials_supplied": request.credentials is not None,
        "generation": decision.generation,
    }
    return record
