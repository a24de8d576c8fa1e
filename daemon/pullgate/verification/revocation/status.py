"""Revocation verdicts (docs/notation.md §12): statuses, purposes and results.

The vocabulary shared by the revocation modules: :class:`RevocationStatus`, :class:`Purpose` and
the chain-level :class:`RevocationResult` are public (re-exported by
:mod:`pullgate.verification.revocation`); :class:`Answer` is the verdict for one certificate
that the OCSP (:mod:`~pullgate.verification.revocation.ocsp`) and CRL
(:mod:`~pullgate.verification.revocation.crl`)
checks return, and :class:`CheckError` the way they give up on one responder or URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from hashlib import sha256

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pullgate.verification.x509.certs import X509_DECODE_ERRORS

__all__ = [
    "Answer",
    "CheckError",
    "Purpose",
    "RevocationResult",
    "RevocationStatus",
    "der_of",
    "subject_of",
]


class RevocationStatus(StrEnum):
    """Revocation verdict for a certificate or a whole chain."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class Purpose(StrEnum):
    """What the chain is used for (selects the wording and the chain profile)."""

    CODE_SIGNING = "codeSigning"
    TIMESTAMPING = "timestamping"


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationResult:
    """Outcome for a chain; ``subject`` names the leaf-most revoked/unknown certificate."""

    status: RevocationStatus
    subject: str | None
    detail: str
    method: str
    next_update: datetime | None = None  # earliest OCSP/CRL nextUpdate behind a good answer


class CheckError(Exception):
    """This OCSP server / CRL URL gave no usable answer (the caller moves on or reports unknown)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The verdict for one certificate: status, why, and which method (OCSP, CRL, …) decided."""

    status: RevocationStatus
    detail: str
    method: str
    next_update: datetime | None = None  # when the evidence (OCSP response, CRL) goes stale


def subject_of(cert: x509.Certificate) -> str:
    """The RFC 4514 subject of ``cert`` (how results name certificates).

    ``cryptography`` decodes names lazily; a subject that cannot be decoded is named by the
    certificate's SHA-256 fingerprint instead, so that a result can always be reported.
    """
    try:
        return cert.subject.rfc4514_string()
    except X509_DECODE_ERRORS:
        return f"<unreadable subject of certificate sha256:{sha256(der_of(cert)).hexdigest()}>"


def der_of(cert: x509.Certificate) -> bytes:
    """The DER encoding of ``cert``."""
    return cert.public_bytes(serialization.Encoding.DER)
