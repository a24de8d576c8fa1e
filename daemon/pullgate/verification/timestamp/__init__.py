"""RFC 3161 timestamp countersignatures (docs/notation.md §10 steps 2-7, §6.3).

Steps, in the order :func:`verify_timestamp_token` applies them:

2. Parse the CMS ``ContentInfo``/``SignedData`` (BER accepted); the encapsulated content type
   must be ``id-ct-TSTInfo``.
3. Parse ``TSTInfo``: version 1; message-imprint hash in {SHA-256, SHA-384, SHA-512}; the
   imprint equals H(raw signature bytes).
4. Accuracy = seconds + millis + micros; when all are absent/zero and the policy is the ETSI
   baseline policy ``0.4.0.2023.1.1`` it defaults to 1 s. Interval = genTime ± accuracy.
6. For each ``SignerInfo`` (any one that verifies suffices): locate the signing certificate via
   the ESS ``signingCertificateV2`` attribute (v1 refused, SHA-1 certificate hash refused), check
   the content-type and message-digest signed attributes (and signing-time, if present), verify
   the signature over the DER ``SET OF`` signed attributes, then build a path from the signer
   through the token's certificates to a TSA root, valid at genTime, EKU timeStamping.
7. Re-validate the built chain with the TSA chain rules (:func:`validate_tsa_chain`, §6.3).

This module parses (steps 2-4) and drives the checks; step 6 is
:mod:`pullgate.verification.timestamp.signer`, path building and the step-7 rules are
:mod:`pullgate.verification.timestamp.chain`. Steps 1, 5, 8 and 9 (token presence, loading TSA
stores, the signing-chain validity window and TSA revocation) belong to the caller. Every
failure raises ``VerificationFailed(Reason.TIMESTAMP, …)``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import cms, core, tsp
from cryptography import x509

from pullgate.errors import VerificationFailed
from pullgate.verification.cache import CertMemo
from pullgate.verification.timestamp.chain import ASN1_ERRORS, validate_tsa_chain
from pullgate.verification.timestamp.chain import timestamp_failure as _fail
from pullgate.verification.timestamp.signer import ID_CT_TSTINFO, IMPRINT_HASHES, verify_signer
from pullgate.verification.x509.certs import X509_DECODE_ERRORS

__all__ = [
    "ETSI_BASELINE_POLICY",
    "TimestampInfo",
    "VerifiedTimestamp",
    "parse_timestamp_token",
    "validate_tsa_chain",
    "verify_timestamp_token",
]

ETSI_BASELINE_POLICY = "0.4.0.2023.1.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class TimestampInfo:
    """The structural content of a timestamp token (nothing here is verified yet)."""

    gen_time: datetime
    accuracy: timedelta
    hash_algorithm: str
    message_imprint: bytes
    policy_oid: str
    serial_number: int
    certificates: tuple[x509.Certificate, ...]

    @property
    def lower(self) -> datetime:
        """Earliest instant the token vouches for (genTime - accuracy)."""
        return self.gen_time - self.accuracy

    @property
    def upper(self) -> datetime:
        """Latest instant the token vouches for (genTime + accuracy)."""
        return self.gen_time + self.accuracy


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedTimestamp:
    """A token that passed §10 steps 2-7, with the TSA chain it was verified through."""

    info: TimestampInfo
    tsa_chain: tuple[x509.Certificate, ...]  # TSA leaf first, trusted root last

    @property
    def gen_time(self) -> datetime:
        """The token's genTime (UTC)."""
        return self.info.gen_time

    @property
    def lower(self) -> datetime:
        """Earliest instant the token vouches for (genTime - accuracy)."""
        return self.info.lower

    @property
    def upper(self) -> datetime:
        """Latest instant the token vouches for (genTime + accuracy)."""
        return self.info.upper


@dataclass(frozen=True, slots=True)
class _Token:
    signed_data: Any
    tst_der: bytes
    info: TimestampInfo


def parse_timestamp_token(token: bytes) -> TimestampInfo:
    """Parse a DER/BER ``TimeStampToken`` into :class:`TimestampInfo` (structure only).

    Args:
        token: The encoded CMS ``ContentInfo``.

    Returns:
        The token's TSTInfo fields and embedded certificates.

    Raises:
        VerificationFailed: ``Reason.TIMESTAMP`` for any structural problem.
    """
    return _parse(token).info


def verify_timestamp_token(
    token: bytes,
    signature_bytes: bytes,
    tsa_roots: Sequence[x509.Certificate],
    memo: CertMemo | None = None,
) -> VerifiedTimestamp:
    """Verify a timestamp countersignature over ``signature_bytes`` (§10 steps 2-7).

    Args:
        token: The encoded ``TimeStampToken``.
        signature_bytes: The raw envelope signature the token must cover.
        tsa_roots: Trusted TSA root certificates (the ``tsa`` trust stores).
        memo: The snapshot's certificate memos (None: nothing is memoised).

    Returns:
        The parsed info plus the TSA chain (leaf → root).

    Raises:
        VerificationFailed: ``Reason.TIMESTAMP`` on any failure.
    """
    parsed = _parse(token)
    info = parsed.info
    digest = hashlib.new(info.hash_algorithm, signature_bytes).digest()
    if not hmac.compare_digest(digest, info.message_imprint):
        raise _fail("invalid TSTInfo: mismatched message")
    if not tsa_roots:
        raise _fail("no trusted TSA certificate found in trust store")
    try:
        signer_infos = list(parsed.signed_data["signer_infos"])
    except ASN1_ERRORS as exc:
        raise _fail(f"malformed signerInfos: {exc}") from exc
    if not signer_infos:
        raise _fail("timestamp token has no signerInfo")
    first_error: VerificationFailed | None = None
    for signer_info in signer_infos:
        try:
            chain = verify_signer(
                signer_info,
                tst_der=parsed.tst_der,
                certificates=info.certificates,
                gen_time=info.gen_time,
                roots=tsa_roots,
                memo=memo,
            )
        except VerificationFailed as exc:
            first_error = first_error or exc
            continue
        except ASN1_ERRORS as exc:
            first_error = first_error or _fail(f"malformed signerInfo: {exc}")
            continue
        return VerifiedTimestamp(info=info, tsa_chain=chain)
    assert first_error is not None  # noqa: S101 — the loop ran at least once
    raise first_error


# ---------------------------------------------------------------------------------------------
# Parsing (steps 2-4)


def _parse(token: bytes) -> _Token:
    try:
        content_info = cms.ContentInfo.load(token, strict=True)
        if content_info["content_type"].dotted != "1.2.840.113549.1.7.2":
            raise _fail(f"unexpected CMS content type {content_info['content_type'].dotted}")
        signed_data = content_info["content"]
        encap = signed_data["encap_content_info"]
        content_type = encap["content_type"].dotted
        if content_type != ID_CT_TSTINFO:
            raise _fail(f"unexpected content type: {content_type}; expected id-ct-TSTInfo")
        if isinstance(encap["content"], core.Void):
            raise _fail("timestamp token has no encapsulated TSTInfo")
        tst_der = bytes(encap["content"])
        certificates = _certificates(signed_data)
    except VerificationFailed:
        raise
    except ASN1_ERRORS as exc:
        raise _fail(f"failed to parse timestamp countersignature: {exc}") from exc
    info = _parse_tst_info(tst_der, certificates)
    return _Token(signed_data=signed_data, tst_der=tst_der, info=info)


def _certificates(signed_data: Any) -> tuple[x509.Certificate, ...]:
    """The token's certificates, each with readable subject and issuer names.

    ``cryptography`` decodes names only when first read; reading them here refuses, like Go's
    certificate parser, a token carrying a certificate whose names do not decode (instead of
    failing later, while the chain is built or a subject is rendered).
    """
    out: list[x509.Certificate] = []
    certs = signed_data["certificates"]
    if isinstance(certs, core.Void):
        return ()
    for choice in certs:
        if choice.name != "certificate":
            continue
        try:
            cert = x509.load_der_x509_certificate(choice.chosen.dump(force=True))
            _ = cert.subject, cert.issuer
        except X509_DECODE_ERRORS as exc:
            raise _fail(f"invalid certificate in timestamp token: {exc}") from exc
        out.append(cert)
    return tuple(out)


def _parse_tst_info(tst_der: bytes, certificates: tuple[x509.Certificate, ...]) -> TimestampInfo:
    try:
        tst = tsp.TSTInfo.load(tst_der, strict=True)
        version = tst["version"].native
        if version != "v1":
            raise _fail(f"invalid TSTInfo: timestamp token info version must be 1, got {version}")
        imprint = tst["message_imprint"]
        hash_oid = imprint["hash_algorithm"]["algorithm"].dotted
        hash_name = IMPRINT_HASHES.get(hash_oid)
        if hash_name is None:
            raise _fail(f"invalid TSTInfo: unrecognized hash algorithm: {hash_oid}")
        hashed = bytes(imprint["hashed_message"].native)
        if len(hashed) != hashlib.new(hash_name).digest_size:
            raise _fail("invalid TSTInfo: message imprint has the wrong length")
        gen_time = tst["gen_time"].native
        if not isinstance(gen_time, datetime) or gen_time.tzinfo is None:
            raise _fail("invalid TSTInfo: genTime lacks a UTC designator")
        policy = tst["policy"].dotted
        accuracy = _accuracy(tst["accuracy"], policy)
        serial = int(tst["serial_number"].native)
    except VerificationFailed:
        raise
    except ASN1_ERRORS as exc:
        raise _fail(f"cannot unmarshal TSTInfo from timestamp token: {exc}") from exc
    return TimestampInfo(
        gen_time=gen_time.astimezone(UTC),
        accuracy=accuracy,
        hash_algorithm=hash_name,
        message_imprint=hashed,
        policy_oid=policy,
        serial_number=serial,
        certificates=certificates,
    )


def _accuracy(value: Any, policy: str) -> timedelta:
    parts = {"seconds": 0, "millis": 0, "micros": 0}
    if not isinstance(value, core.Void):
        for name in parts:
            field_value = value.native.get(name)
            if field_value is None:
                continue
            if field_value < 0 or (name != "seconds" and field_value > 999):
                raise _fail(f"invalid TSTInfo: accuracy {name} out of range")
            parts[name] = int(field_value)
    accuracy = timedelta(
        seconds=parts["seconds"], milliseconds=parts["millis"], microseconds=parts["micros"]
    )
    if not accuracy and policy == ETSI_BASELINE_POLICY:
        return timedelta(seconds=1)
    return accuracy
