"""Envelope certificates and the per-certificate facts the chain rules read (docs/notation.md §6.2).

:func:`load_certificate` applies the DER pre-checks that Go's parser enforces and
``cryptography`` does not (a positive serial number, a signatureValue BIT STRING without unused
bits, decodable subject and issuer names); every refusal is an **integrity** failure.
:func:`cert_facts` derives (once per certificate object, with a memo) the DER encoding, its
SHA-256 and the raw TBS issuer and subject Names that notation compares byte for byte
(:func:`names_chain`).

The chain rules that use these facts live in :mod:`pullgate.verification.x509.certs`.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.cache import CertFacts, CertMemo

__all__ = [
    "X509_DECODE_ERRORS",
    "CertFacts",
    "cert_facts",
    "certificate_der",
    "certificate_digest",
    "fingerprint_sha256",
    "load_certificate",
    "names_chain",
]

X509_DECODE_ERRORS = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.InvalidVersion,  # not a ValueError
)
"""What ``cryptography`` raises while loading or lazily decoding certificates, CRLs and OCSP
responses (names, extensions and signature parameters are decoded when first read)."""


def _fail(detail: str) -> VerificationFailed:
    return VerificationFailed(Reason.INTEGRITY, detail)


def fingerprint_sha256(cert: x509.Certificate, memo: CertMemo | None = None) -> str:
    """Lowercase hex SHA-256 of the certificate's DER encoding (notation's thumbprint)."""
    return certificate_digest(cert, memo).hex()


# --- DER pre-checks and loading --------------------------------------------------------------


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """Read one DER TLV header at ``pos``: (tag byte, content start, content end)."""
    if pos + 2 > len(data):
        raise _fail("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _fail("high-tag-number DER tags are not expected in a TBSCertificate")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise _fail("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise _fail("truncated DER")
    return tag, pos, end


def _signature_bits_whole(der: bytes) -> bool:
    """True when the outer signatureValue BIT STRING has no unused bits."""
    _, pos, _ = _read_tlv(der, 0)  # Certificate
    _, _, pos = _read_tlv(der, pos)  # skip TBSCertificate
    _, _, pos = _read_tlv(der, pos)  # skip signatureAlgorithm
    tag, start, end = _read_tlv(der, pos)
    return tag == 0x03 and end > start and der[start] == 0


def _serial_is_positive(der: bytes) -> bool:
    """True when the DER certificate's serialNumber INTEGER is > 0 (read before parsing)."""
    _, pos, _ = _read_tlv(der, 0)  # Certificate
    _, pos, _ = _read_tlv(der, pos)  # TBSCertificate
    tag, start, end = _read_tlv(der, pos)
    if tag == 0xA0:  # explicit version
        tag, start, end = _read_tlv(der, end)
    if tag != 0x02 or start == end:
        return False
    content = der[start:end]
    return content[0] < 0x80 and any(content)


def load_certificate(der: bytes, memo: CertMemo | None = None) -> x509.Certificate:
    """Parse one DER certificate, refusing what Go's parser refuses that matters here.

    Non-positive serial numbers are refused up front (Go >= 1.23 rejects negative ones;
    ``cryptography`` would only warn), and so is a signatureValue BIT STRING with unused bits
    (``cryptography`` silently ignores them, so a re-encoded certificate would still verify).
    The subject and issuer names are read here, because ``cryptography`` decodes them only when
    first used: a name Go's parser refuses (an invalid string value) fails now, as an integrity
    error, instead of later while a message or an identity is being rendered.

    With a ``memo``, certificates that were accepted are memoised by their DER bytes (a
    certificate object is immutable), so the same bytes yield the same object.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` when the bytes are not a usable certificate.
    """
    if memo is not None:
        known = memo.loaded.get(der)
        if known is not None:
            return known
    if not _serial_is_positive(der):
        raise _fail("certificate serial number is missing or not positive")
    if not _signature_bits_whole(der):
        raise _fail("certificate signature BIT STRING has unused bits")
    try:
        cert = x509.load_der_x509_certificate(der)
        _ = cert.subject, cert.issuer
    except X509_DECODE_ERRORS as exc:
        raise _fail(f"malformed certificate: {exc}") from exc
    if memo is not None:
        memo.loaded.put(bytes(der), cert)
    return cert


def _tbs_and_names(der: bytes) -> tuple[bytes, tuple[bytes, bytes] | None]:
    """The TBSCertificate TLV of a certificate's DER, and its raw (issuer, subject) Names.

    The names are None when the TBS does not have the expected shape.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` when the outer structure is not readable.
    """
    _, pos, _ = _read_tlv(der, 0)  # Certificate
    _, start, end = _read_tlv(der, pos)  # TBSCertificate
    tbs = der[pos:end]
    offset = start - pos
    fields: list[bytes] = []
    try:
        at, stop = offset, len(tbs)
        while at < stop and len(fields) < 6:
            _, _, after = _read_tlv(tbs, at)
            fields.append(tbs[at:after])
            at = after
    except VerificationFailed:
        return tbs, None
    # With an explicit [0] version: version, serial, sigalg, issuer, validity, subject.
    if fields and fields[0][:1] == b"\xa0":
        fields = fields[1:]
    if len(fields) < 5:
        return tbs, None
    return tbs, (fields[2], fields[4])


def cert_facts(cert: x509.Certificate, memo: CertMemo | None = None) -> CertFacts:
    """The :class:`CertFacts` of ``cert``; with a ``memo``, one DER serialisation per
    certificate object (keyed by ``id``, confirmed with ``is``)."""
    if memo is not None:
        found = memo.facts.get(id(cert))
        if found is not None and found.cert is cert:
            return found
    der = cert.public_bytes(serialization.Encoding.DER)
    try:
        tbs, names = _tbs_and_names(der)
    except VerificationFailed:
        tbs, names = cert.tbs_certificate_bytes, None
    facts = CertFacts(cert=cert, der=der, digest=hashlib.sha256(der).digest(), tbs=tbs, names=names)
    if memo is not None:
        memo.facts.put(id(cert), facts)
    return facts


def certificate_der(cert: x509.Certificate, memo: CertMemo | None = None) -> bytes:
    """The DER encoding of ``cert`` (memoised per certificate object with a ``memo``)."""
    return cert_facts(cert, memo).der


def certificate_digest(cert: x509.Certificate, memo: CertMemo | None = None) -> bytes:
    """SHA-256 of the DER encoding of ``cert`` (memoised per certificate object with a
    ``memo``)."""
    return cert_facts(cert, memo).digest


def _raw_names(facts: CertFacts) -> tuple[bytes, bytes]:
    """The exact DER bytes of the issuer and subject Names as they appear in the TBS."""
    if facts.names is None:
        raise _fail("malformed TBSCertificate")
    return facts.names


def names_chain(child: CertFacts, parent: CertFacts) -> bool:
    """True when the child's raw issuer equals the parent's raw subject."""
    return _raw_names(child)[0] == _raw_names(parent)[1]
