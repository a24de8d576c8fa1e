"""Render a decision for ``pullgate verify``: the JSON decision object (docs/architecture.md
§4) and text.

The JSON object is the CLI's stable contract (``decision``, ``reason``, ``message``,
``reference``, ``digest``, ``subjects`` with ``role``, ``digest``, ``verified``, ``reason``,
``signature``); more fields may be added, none renamed.
"""

from __future__ import annotations

from typing import Any

from pullgate.decision.model import Decision, SubjectDecision
from pullgate.verification.outcome import SignatureOutcome

__all__ = ["decision_json", "decision_text", "signature_json"]


def signature_json(sig: SignatureOutcome) -> dict[str, Any]:
    """One signature's outcome as JSON."""
    return {
        "manifestDigest": sig.manifest_digest,
        "envelopeMediaType": sig.envelope_media_type,
        "signerSubject": sig.signer_subject,
        "signerFingerprintSHA256": sig.signer_fingerprint,
        "signingTime": sig.signing_time,
        "verified": sig.passed,
        "checks": [
            {
                "check": r.check.value,
                "action": r.action.value,
                "passed": r.passed,
                "reason": r.reason.value if r.reason else None,
                "message": r.message,
            }
            for r in sig.results
        ],
    }


def _signatures(subject: SubjectDecision) -> tuple[SignatureOutcome | None, list[SignatureOutcome]]:
    """The signature shown for ``subject`` (the verified one, else the first) and all of them."""
    outcome = subject.outcome
    if outcome is None:
        return None, []
    every = list(outcome.signatures)
    return outcome.verified_signature or (every[0] if every else None), every


def subject_json(subject: SubjectDecision) -> dict[str, Any]:
    """One subject (index, platform manifest or plain manifest) as JSON."""
    shown, every = _signatures(subject)
    return {
        "role": subject.role,
        "digest": subject.digest,
        "platform": subject.platform,
        "verified": subject.verified,
        "reason": subject.reason.value,
        "message": subject.message,
        "signature": signature_json(shown) if shown else None,
        "signatures": [signature_json(s) for s in every],
    }


def decision_json(decision: Decision) -> dict[str, Any]:
    """The decision object printed by ``pullgate verify --output json``."""
    return {
        "decision": "allow" if decision.allowed else "deny",
        "reason": decision.reason.value,
        "message": decision.message,
        "reference": decision.reference,
        "digest": decision.digest,
        "platform": decision.platform,
        "requirement": decision.requirement.value if decision.requirement else None,
        "statement": decision.statement,
        "level": decision.level,
        "inconclusive": decision.inconclusive,
        "fail_open": decision.fail_open,
        "audit_denied": decision.audit_denied,
        "subjects": [subject_json(s) for s in decision.subjects],
    }


def decision_text(decision: Decision) -> str:
    """Human-readable lines for the terminal."""
    verdict = "ALLOW" if decision.allowed else "DENY"
    lines = [f"{verdict} {decision.reference}: {decision.reason.value} - {decision.message}"]
    if decision.statement:
        requirement = decision.requirement.value if decision.requirement else "?"
        lines.append(
            f"  trust policy statement: {decision.statement} (level {decision.level or '?'}, "
            f"require {requirement})"
        )
    for subject in decision.subjects:
        where = f" [{subject.platform}]" if subject.role == "platform" and subject.platform else ""
        state = "verified" if subject.verified else subject.reason.value
        lines.append(f"  {subject.role}{where} {subject.digest}: {state}")
        for sig in _signatures(subject)[1]:
            passed = "verified" if sig.passed else "failed"
            lines.append(
                f"    signature {sig.manifest_digest} ({sig.envelope_media_type}): {passed}"
            )
            if sig.signer_subject:
                lines.append(f"      signer: {sig.signer_subject} [{sig.signer_fingerprint}]")
            for r in sig.results:
                if not r.passed:
                    tag = "FAILED" if r.is_fatal else f"{r.action.value}-only"
                    reason = r.reason.value if r.reason else ""
                    lines.append(f"      {r.check.value}: {tag} {reason}: {r.message}")
    return "\n".join(lines)
