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

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.cache import CertMemo
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


def certificate_subject(cert: x509.Certificate, memo: CertMemo | None = None) -> str:
    """``go_name_string(cert.subject)``; with a ``memo``, memoised by the certificate's DER
    digest."""
    if memo is None:
        return go_name_string(cert.subject)
    digest = certificate_digest(cert, memo)
    known = memo.subjects.get(digest)
    if known is None:
        known = go_name_string(cert.subject)
        memo.subjects.put(digest, known)
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
    leaf: x509.Certificate,
    identities: Sequence[str],
    statement_name: str,
    memo: CertMemo | None = None,
) -> None:
    """Check the signing (leaf) certificate against a statement's ``trustedIdentities``.

    Args:
        leaf: the first certificate of the signature's chain.
        identities: the statement's ``trustedIdentities`` (already validated).
        statement_name: for error messages.
        memo: The snapshot's certificate memos (None: nothing is memoised).

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
            configured.append(parsed_dn(value, memo))
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
    subject = certificate_subject(leaf, memo)
    try:
        leaf_dn = parsed_dn(subject, memo)
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
