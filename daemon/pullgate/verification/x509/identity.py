"""Trusted identities: ``x509.subject`` distinguished names, parsed and matched like notation.

Implements docs/notation.md §8.5 (Notary Project trust-store / trust-policy
specification, "Trusted Identities Constraints"):

1. A policy identity is ``<prefix>:<value>``; only the ``x509.subject`` prefix is understood, the
   others are ignored at verification time. ``*`` alone matches any signer.
2. The value is an RFC 4514 distinguished name held to notation's rules
   (:mod:`pullgate.verification.x509.names`).
3. The certificate side is the **leaf** subject rendered by Go's ``pkix.Name.String()``
   (:func:`go_name_string`) and parsed by the same rules, so a leaf with two ``OU`` values or
   with any attribute outside Go's short-name table can only be matched by ``*``.
4. A signer matches when some configured identity's attribute map is a subset of the leaf's
   (exact, case-sensitive values after unescaping).

The DN parser and the Go renderings (:mod:`pullgate.verification.x509.go_render`) are re-exported
here under their former names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cryptography import x509

from pullgate.common.lru import Lru
from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.cache import memo
from pullgate.verification.x509.certs import certificate_digest
from pullgate.verification.x509.go_render import go_dn_list, go_name_string, go_quote
from pullgate.verification.x509.names import (
    DnProblem,
    InvalidDistinguishedName,
    is_subset_dn,
    parse_dn,
    parsed_dn,
)

__all__ = [
    "WILDCARD",
    "X509_SUBJECT",
    "DnProblem",
    "InvalidDistinguishedName",
    "certificate_subject",
    "go_dn_list",
    "go_name_string",
    "go_quote",
    "is_subset_dn",
    "match_trusted_identities",
    "parse_dn",
    "x509_identities",
]

WILDCARD = "*"
X509_SUBJECT = "x509.subject"

# Certificate DER SHA-256 -> its subject rendered by Go's ``pkix.Name.String()``.
_SUBJECTS: Lru[bytes, str] = memo("rendered certificate subjects", 256)


def certificate_subject(cert: x509.Certificate) -> str:
    """``go_name_string(cert.subject)``, memoised by the certificate's DER digest."""
    digest = certificate_digest(cert)
    known = _SUBJECTS.get(digest)
    if known is None:
        known = go_name_string(cert.subject)
        _SUBJECTS.put(digest, known)
    return known


# ----------------------------------------------------------------------------- matching


def x509_identities(identities: Sequence[str]) -> list[str]:
    """The DN values of the ``x509.subject:`` identities, in order."""
    values: list[str] = []
    for identity in identities:
        prefix, sep, value = identity.partition(":")
        if sep and prefix == X509_SUBJECT:
            values.append(value)
    return values


def match_trusted_identities(
    leaf: x509.Certificate, identities: Sequence[str], statement_name: str
) -> None:
    """Check the signing (leaf) certificate against a statement's ``trustedIdentities``.

    Args:
        leaf: the first certificate of the signature's chain.
        identities: the statement's ``trustedIdentities`` (already validated).
        statement_name: for error messages.

    Raises:
        VerificationFailed: ``Reason.IDENTITY_MISMATCH`` when no ``x509.subject`` identity is
            configured, a configured one does not parse, the leaf subject does not parse under
            notation's rules, or no identity is a subset of the leaf subject.
    """
    if WILDCARD in identities:
        return
    configured: list[Mapping[str, str]] = []
    for value in x509_identities(identities):
        try:
            configured.append(parsed_dn(value))
        except InvalidDistinguishedName as exc:
            raise VerificationFailed(
                Reason.IDENTITY_MISMATCH,
                f"trust policy statement {go_quote(statement_name)} has an invalid identity: {exc}",
            ) from exc
    if not configured:
        raise VerificationFailed(
            Reason.IDENTITY_MISMATCH,
            "no x509 trusted identities are configured in the trust policy "
            f"{go_quote(statement_name)}",
        )
    subject = certificate_subject(leaf)
    try:
        leaf_dn = parsed_dn(subject)
    except InvalidDistinguishedName as exc:
        raise VerificationFailed(
            Reason.IDENTITY_MISMATCH,
            "error while parsing the certificate subject from the digital signature. "
            f"error : {exc}",
        ) from exc
    if not any(is_subset_dn(identity, leaf_dn) for identity in configured):
        raise VerificationFailed(
            Reason.IDENTITY_MISMATCH,
            f"signing certificate from the digital signature does not match the X.509 trusted "
            f"identities {go_dn_list(configured)} defined in the trust policy "
            f"{go_quote(statement_name)}",
        )
