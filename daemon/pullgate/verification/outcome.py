"""Verification outcome as data: per signature, per check, the action taken and a typed reason.

Levels are tables, not if-chains (Notary Project trust-store / trust-policy spec,
"Signature Verification details"; notation-go ``verifier/trustpolicy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from pullgate.errors import Reason


class CheckType(StrEnum):
    """The validations a signature goes through; the first five are governed by the level."""

    INTEGRITY = "integrity"
    AUTHENTICITY = "authenticity"
    AUTHENTIC_TIMESTAMP = "authenticTimestamp"
    EXPIRY = "expiry"
    REVOCATION = "revocation"
    # Out-of-table checks: always enforced at every non-skip level.
    PLUGIN = "plugin"
    DESCRIPTOR = "descriptor"
    USER_METADATA = "user-metadata"


LEVEL_CHECKS: tuple[CheckType, ...] = (
    CheckType.INTEGRITY,
    CheckType.AUTHENTICITY,
    CheckType.AUTHENTIC_TIMESTAMP,
    CheckType.EXPIRY,
    CheckType.REVOCATION,
)


class CheckAction(StrEnum):
    """What a failed check does to the signature's verdict."""

    ENFORCE = "enforce"
    LOG = "log"
    SKIP = "skip"


class Level(StrEnum):
    """Trust-policy ``signatureVerification.level``."""

    STRICT = "strict"
    PERMISSIVE = "permissive"
    AUDIT = "audit"
    SKIP = "skip"


_E, _L = CheckAction.ENFORCE, CheckAction.LOG

LEVEL_ACTIONS: Mapping[Level, Mapping[CheckType, CheckAction]] = MappingProxyType(
    {
        Level.STRICT: MappingProxyType(dict.fromkeys(LEVEL_CHECKS, _E)),
        Level.PERMISSIVE: MappingProxyType(
            {
                CheckType.INTEGRITY: _E,
                CheckType.AUTHENTICITY: _E,
                CheckType.AUTHENTIC_TIMESTAMP: _L,
                CheckType.EXPIRY: _L,
                CheckType.REVOCATION: _L,
            }
        ),
        Level.AUDIT: MappingProxyType(
            {
                CheckType.INTEGRITY: _E,
                CheckType.AUTHENTICITY: _L,
                CheckType.AUTHENTIC_TIMESTAMP: _L,
                CheckType.EXPIRY: _L,
                CheckType.REVOCATION: _L,
            }
        ),
        Level.SKIP: MappingProxyType(dict.fromkeys(LEVEL_CHECKS, CheckAction.SKIP)),
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """One check of one signature. ``reason`` is None when the check passed or was skipped."""

    check: CheckType
    action: CheckAction
    passed: bool
    reason: Reason | None = None
    message: str = ""

    @property
    def is_fatal(self) -> bool:
        """True when this result denies the signature."""
        return not self.passed and self.action is CheckAction.ENFORCE


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureOutcome:
    """Everything learned about one signature."""

    manifest_digest: str
    envelope_media_type: str
    results: tuple[CheckResult, ...]
    signer_subject: str | None = None
    signer_fingerprint: str | None = None
    signing_time: str | None = None
    valid_until: datetime | None = None  # earliest of signature expiry and chain notAfter

    @property
    def passed(self) -> bool:
        """True when no result is fatal."""
        return not any(r.is_fatal for r in self.results)

    @property
    def failure(self) -> CheckResult | None:
        """The first fatal result, if any."""
        return next((r for r in self.results if r.is_fatal), None)

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        """Failures that were only logged."""
        return tuple(r for r in self.results if not r.passed and r.action is CheckAction.LOG)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationOutcome:
    """The verdict for one artifact: allowed, the reason and every signature's outcome."""

    reference: str
    digest: str
    statement: str | None
    level: Level | None
    allowed: bool
    reason: Reason
    message: str
    signatures: tuple[SignatureOutcome, ...] = field(default_factory=tuple)
    inconclusive: bool = False

    @property
    def verified_signature(self) -> SignatureOutcome | None:
        """The signature that passed, if any."""
        return next((s for s in self.signatures if s.passed), None)

    @property
    def failing_check(self) -> CheckType | None:
        """The first enforced failing check of the first signature (conformance reporting)."""
        for sig in self.signatures:
            failure = sig.failure
            if failure is not None:
                return failure.check
        return None
