"""Render verification outcomes: the JSON decision object (docs/architecture.md §4) and text."""

from __future__ import annotations

from typing import Any

from pullgate.verification.outcome import SignatureOutcome, VerificationOutcome


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


def decision_json(outcome: VerificationOutcome, *, role: str = "manifest") -> dict[str, Any]:
    """The decision object printed by ``pullgate verify --output json``."""
    chosen = outcome.verified_signature or (outcome.signatures[0] if outcome.signatures else None)
    return {
        "decision": "allow" if outcome.allowed else "deny",
        "reason": outcome.reason.value,
        "message": outcome.message,
        "reference": outcome.reference,
        "digest": outcome.digest,
        "statement": outcome.statement,
        "level": outcome.level.value if outcome.level else None,
        "inconclusive": outcome.inconclusive,
        "subjects": [
            {
                "role": role,
                "digest": outcome.digest,
                "verified": outcome.allowed,
                "reason": outcome.reason.value,
                "signature": signature_json(chosen) if chosen else None,
                "signatures": [signature_json(s) for s in outcome.signatures],
            }
        ],
    }


def decision_text(outcome: VerificationOutcome) -> str:
    """Human-readable lines for the terminal."""
    verdict = "ALLOW" if outcome.allowed else "DENY"
    lines = [f"{verdict} {outcome.reference}: {outcome.reason.value} - {outcome.message}"]
    if outcome.statement:
        level = outcome.level.value if outcome.level else "?"
        lines.append(f"  trust policy statement: {outcome.statement} (level {level})")
    for sig in outcome.signatures:
        state = "verified" if sig.passed else "failed"
        lines.append(f"  signature {sig.manifest_digest} ({sig.envelope_media_type}): {state}")
        if sig.signer_subject:
            lines.append(f"    signer: {sig.signer_subject} [{sig.signer_fingerprint}]")
        for r in sig.results:
            if not r.passed:
                tag = "FAILED" if r.is_fatal else f"{r.action.value}-only"
                reason = r.reason.value if r.reason else ""
                lines.append(f"    {r.check.value}: {tag} {reason}: {r.message}")
    return "\n".join(lines)
