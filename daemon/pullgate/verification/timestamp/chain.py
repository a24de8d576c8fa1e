"""TSA certificate chains (docs/notation.md §10 step 6 path building, §6.3 chain rules).

Path building follows Go's ``x509.Verify`` as notation calls it for a timestamp token: from the
signing certificate through the token's certificates to a trusted TSA root, every certificate
valid **at genTime**, the extended key usages allowing timeStamping. The search is depth-first
with a budget of signature checks, so hostile certificate sets stay cheap.

:func:`validate_tsa_chain` then re-checks the built chain with notation's timestamping-chain
rules (§6.3, §10 step 7).

The small helpers shared by the timestamp modules (:func:`timestamp_failure`,
:data:`ASN1_ERRORS`, :func:`der_of`) live here, at the bottom of their import graph.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.algorithms import algorithm_for_key
from pullgate.verification.cache import CertMemo
from pullgate.verification.x509.certs import (
    X509_DECODE_ERRORS,
    check_issued_by,
    is_self_issued_ca,
    is_self_signed,
)

__all__ = [
    "ASN1_ERRORS",
    "build_tsa_path",
    "der_of",
    "timestamp_failure",
    "validate_tsa_chain",
]

_MAX_PATH = 8
_MAX_SIGNATURE_CHECKS = 256  # bounds path building over hostile certificate sets
ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)
"""Exceptions that parsing or walking foreign ASN.1 structures may raise (wrapped as failures)."""


def timestamp_failure(detail: str) -> VerificationFailed:
    """The error every timestamp check raises: ``VerificationFailed(Reason.TIMESTAMP, detail)``."""
    return VerificationFailed(Reason.TIMESTAMP, detail)


def der_of(cert: x509.Certificate) -> bytes:
    """The DER encoding of ``cert``."""
    return cert.public_bytes(Encoding.DER)


# ---------------------------------------------------------------------------------------------
# Path building (Go x509.Verify at genTime, EKU timeStamping)


def build_tsa_path(
    leaf: x509.Certificate,
    pool: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
    memo: CertMemo | None = None,
) -> tuple[x509.Certificate, ...]:
    """The first path leaf → token certificates → trusted root valid at ``at`` for timestamping
    (``memo``: the snapshot's certificate memos, None for none).

    Raises:
        VerificationFailed: ``Reason.TIMESTAMP`` when no such path exists.
    """
    builder = _PathBuilder(pool=tuple(pool), roots=tuple(roots), at=at, memo=memo)
    with _undecodable_as_failure():
        for path in builder.paths((leaf,)):
            if _eku_allows_timestamping(path):
                return path
    raise timestamp_failure(
        "failed to verify signed token: x509: certificate signed by unknown authority "
        "(or not valid at genTime / not usable for timestamping)"
    )


class _PathBuilder:
    """Depth-first search leaf -> token certificates -> trusted root, with a work budget."""

    def __init__(
        self,
        *,
        pool: tuple[x509.Certificate, ...],
        roots: tuple[x509.Certificate, ...],
        at: datetime,
        memo: CertMemo | None,
    ) -> None:
        self._memo = memo
        self._pool = pool
        self._roots = roots
        self._root_ders = {der_of(r) for r in roots}
        self._at = at
        self._budget = _MAX_SIGNATURE_CHECKS

    def _valid(self, cert: x509.Certificate) -> bool:
        return cert.not_valid_before_utc <= self._at <= cert.not_valid_after_utc

    def _issued_by(self, child: x509.Certificate, parent: x509.Certificate) -> bool:
        if self._budget <= 0:
            return False
        self._budget -= 1
        return check_issued_by(child, parent, self._memo)

    def paths(
        self, partial: tuple[x509.Certificate, ...]
    ) -> Iterator[tuple[x509.Certificate, ...]]:
        current = partial[-1]
        if not self._valid(current):
            return
        if der_of(current) in self._root_ders:
            yield partial
            return
        if len(partial) >= _MAX_PATH:
            return
        seen = {der_of(c) for c in partial}
        for root in self._roots:
            if self._valid(root) and self._issued_by(current, root):
                yield (*partial, root)
        for candidate in self._pool:
            der = der_of(candidate)
            if der in seen or der in self._root_ders:
                continue
            if self._issued_by(current, candidate):
                yield from self.paths((*partial, candidate))


def _eku_allows_timestamping(path: tuple[x509.Certificate, ...]) -> bool:
    for cert in path:
        usages = _eku(cert)
        if usages is None:
            continue
        if not {
            ExtendedKeyUsageOID.TIME_STAMPING,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        } & set(usages):
            return False
    return True


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier] | None:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


# ---------------------------------------------------------------------------------------------
# TSA chain rules (§6.3)


def validate_tsa_chain(certs: Sequence[x509.Certificate], memo: CertMemo | None = None) -> None:
    """Apply notation's timestamping-chain rules (§6.3) to a leaf → root chain.

    Args:
        certs: The TSA chain, leaf first, root last.
        memo: The snapshot's certificate memos (None: nothing is memoised).

    Raises:
        VerificationFailed: ``Reason.TIMESTAMP`` naming the first violated rule.
    """
    with _undecodable_as_failure():
        _validate_tsa_chain(certs, memo)


@contextmanager
def _undecodable_as_failure() -> Iterator[None]:
    """Certificate fields ``cryptography`` cannot decode (read lazily) end as TIMESTAMP failures."""
    try:
        yield
    except (*X509_DECODE_ERRORS, *ASN1_ERRORS) as exc:
        raise timestamp_failure(f"TSA certificate cannot be parsed: {exc}") from exc


def _validate_tsa_chain(certs: Sequence[x509.Certificate], memo: CertMemo | None) -> None:
    if not certs:
        raise timestamp_failure("certificate chain must contain at least one certificate")
    if len(certs) == 1:
        if not is_self_signed(certs[0], memo):
            raise timestamp_failure("single TSA certificate is not a valid self-signed certificate")
        _validate_tsa_leaf(certs[0])
        return
    last = len(certs) - 1
    for index, cert in enumerate(certs):
        if index == last:
            if not is_self_issued_ca(cert, memo):
                raise timestamp_failure(
                    f"root certificate {_subject(cert)} is not a self-signed CA"
                )
        else:
            if is_self_issued_ca(cert, memo):
                raise timestamp_failure(f"non-root certificate {_subject(cert)} is self-signed")
            if not check_issued_by(cert, certs[index + 1], memo):
                raise timestamp_failure(
                    f"certificate {_subject(cert)} is not issued by {_subject(certs[index + 1])}"
                )
        if index == 0:
            _validate_tsa_leaf(cert)
        else:
            _validate_tsa_ca(cert, index - 1)


def _validate_tsa_ca(cert: x509.Certificate, cas_below: int) -> None:
    constraints = _basic_constraints(cert)
    if constraints is None or not constraints.ca:
        raise timestamp_failure(f"CA certificate {_subject(cert)} lacks basicConstraints cA=true")
    if constraints.path_length is not None and constraints.path_length < cas_below:
        raise timestamp_failure(f"CA certificate {_subject(cert)} pathLenConstraint is too small")
    usage = _key_usage(cert)
    if usage is None or not usage.key_cert_sign:
        raise timestamp_failure(f"CA certificate {_subject(cert)} lacks the keyCertSign key usage")


def _validate_tsa_leaf(cert: x509.Certificate) -> None:
    constraints = _basic_constraints(cert)
    if constraints is not None and constraints.ca:
        raise timestamp_failure(f"TSA leaf {_subject(cert)} has basicConstraints cA=true")
    usage = _key_usage(cert)
    if usage is None or not usage.digital_signature:
        raise timestamp_failure(f"TSA leaf {_subject(cert)} lacks the digitalSignature key usage")
    if (
        usage.key_encipherment
        or usage.data_encipherment
        or usage.key_agreement
        or usage.key_cert_sign
        or usage.crl_sign
    ):
        raise timestamp_failure(f"TSA leaf {_subject(cert)} has a forbidden key usage")
    try:
        eku_ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise timestamp_failure(f"TSA leaf {_subject(cert)} lacks the timeStamping EKU") from exc
    if list(eku_ext.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise timestamp_failure(f"TSA leaf {_subject(cert)} must have exactly the timeStamping EKU")
    if not eku_ext.critical:
        raise timestamp_failure(f"TSA leaf {_subject(cert)} EKU extension must be critical")
    try:
        algorithm_for_key(cert.public_key())
    except VerificationFailed as exc:
        raise timestamp_failure(f"TSA leaf {_subject(cert)}: {exc.detail}") from exc


def _subject(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string())
