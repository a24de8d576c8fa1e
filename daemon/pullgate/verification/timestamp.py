"""RFC 3161 timestamp countersignatures (notary-verification.md §10 steps 2-7, §6.3).

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

Steps 1, 5, 8 and 9 (token presence, loading TSA stores, the signing-chain validity window and
TSA revocation) belong to the caller. Every failure raises
``VerificationFailed(Reason.TIMESTAMP, …)``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.algorithms import algorithm_for_key
from pullgate.verification.certs import check_issued_by, is_self_issued_ca, is_self_signed

__all__ = [
    "ETSI_BASELINE_POLICY",
    "TimestampInfo",
    "VerifiedTimestamp",
    "parse_timestamp_token",
    "validate_tsa_chain",
    "verify_timestamp_token",
]

ETSI_BASELINE_POLICY = "0.4.0.2023.1.1"
_ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"
_IMPRINT_HASHES = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_HASH_NAMES = frozenset(_IMPRINT_HASHES.values())
_MAX_PATH = 8
_MAX_SIGNATURE_CHECKS = 256  # bounds path building over hostile certificate sets
_FOREIGN_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


def _fail(detail: str) -> VerificationFailed:
    return VerificationFailed(Reason.TIMESTAMP, detail)


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
    token: bytes, signature_bytes: bytes, tsa_roots: Sequence[x509.Certificate]
) -> VerifiedTimestamp:
    """Verify a timestamp countersignature over ``signature_bytes`` (§10 steps 2-7).

    Args:
        token: The encoded ``TimeStampToken``.
        signature_bytes: The raw envelope signature the token must cover.
        tsa_roots: Trusted TSA root certificates (the ``tsa`` trust stores).

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
    except _FOREIGN_ERRORS as exc:
        raise _fail(f"malformed signerInfos: {exc}") from exc
    if not signer_infos:
        raise _fail("timestamp token has no signerInfo")
    first_error: VerificationFailed | None = None
    for signer_info in signer_infos:
        try:
            chain = _verify_signer(parsed, signer_info, tsa_roots)
        except VerificationFailed as exc:
            first_error = first_error or exc
            continue
        except _FOREIGN_ERRORS as exc:
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
        if content_type != _ID_CT_TSTINFO:
            raise _fail(f"unexpected content type: {content_type}; expected id-ct-TSTInfo")
        if isinstance(encap["content"], core.Void):
            raise _fail("timestamp token has no encapsulated TSTInfo")
        tst_der = bytes(encap["content"])
        certificates = _certificates(signed_data)
    except VerificationFailed:
        raise
    except _FOREIGN_ERRORS as exc:
        raise _fail(f"failed to parse timestamp countersignature: {exc}") from exc
    info = _parse_tst_info(tst_der, certificates)
    return _Token(signed_data=signed_data, tst_der=tst_der, info=info)


def _certificates(signed_data: Any) -> tuple[x509.Certificate, ...]:
    out: list[x509.Certificate] = []
    certs = signed_data["certificates"]
    if isinstance(certs, core.Void):
        return ()
    for choice in certs:
        if choice.name != "certificate":
            continue
        try:
            out.append(x509.load_der_x509_certificate(choice.chosen.dump(force=True)))
        except ValueError as exc:
            raise _fail(f"invalid certificate in timestamp token: {exc}") from exc
    return tuple(out)


def _parse_tst_info(tst_der: bytes, certificates: tuple[x509.Certificate, ...]) -> TimestampInfo:
    try:
        tst = tsp.TSTInfo.load(tst_der, strict=True)
        version = tst["version"].native
        if version != "v1":
            raise _fail(f"invalid TSTInfo: timestamp token info version must be 1, got {version}")
        imprint = tst["message_imprint"]
        hash_oid = imprint["hash_algorithm"]["algorithm"].dotted
        hash_name = _IMPRINT_HASHES.get(hash_oid)
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
    except _FOREIGN_ERRORS as exc:
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


# ---------------------------------------------------------------------------------------------
# SignerInfo verification (step 6)


def _verify_signer(
    token: _Token, signer_info: Any, roots: Sequence[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASH_NAMES:
        raise _fail(f"unsupported signerInfo digest algorithm {digest_name}")
    attrs = signer_info["signed_attrs"]
    if isinstance(attrs, core.Void) or not len(attrs):
        raise _fail("signerInfo has no signed attributes")
    content_type = _single_attr(attrs, "content_type")
    if content_type is None or content_type.dotted != _ID_CT_TSTINFO:
        raise _fail("signed content-type attribute missing or not id-ct-TSTInfo")
    message_digest = _single_attr(attrs, "message_digest")
    expected = hashlib.new(digest_name, token.tst_der).digest()
    if message_digest is None or not hmac.compare_digest(bytes(message_digest.native), expected):
        raise _fail("signed message-digest attribute missing or mismatched")
    signer = _signing_certificate(signer_info, attrs, token.info.certificates)
    _check_signature(signer, signer_info, digest_name, _signed_attrs_der(attrs))
    chain = _build_path(signer, token.info.certificates, roots, token.info.gen_time)
    signing_time = _single_attr(attrs, "signing_time")
    if signing_time is not None:
        when = signing_time.native
        if not isinstance(when, datetime) or any(
            not (c.not_valid_before_utc <= when <= c.not_valid_after_utc) for c in chain
        ):
            raise _fail("signed signing-time attribute is outside the TSA chain validity")
    validate_tsa_chain(chain)
    return chain


def _single_attr(attrs: Any, name: str) -> Any:
    found = [a for a in attrs if a["type"].native == name]
    if not found:
        return None
    if len(found) > 1 or len(found[0]["values"]) != 1:
        raise _fail(f"signed attribute {name} must appear once with one value")
    return found[0]["values"][0]


def _signed_attrs_der(attrs: Any) -> bytes:
    """The signed attributes as the DER ``SET OF`` the signature covers (sorted encodings)."""
    body = b"".join(sorted(a.dump() for a in attrs))
    return b"\x31" + _der_length(len(body)) + body


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _signing_certificate(
    signer_info: Any, attrs: Any, certs: tuple[x509.Certificate, ...]
) -> x509.Certificate:
    if not certs:
        raise _fail("signing certificate not found in the timestamp token")
    value = _single_attr(attrs, "signing_certificate_v2")
    if value is None:
        raise _fail("failed to get SigningCertificateV2 from signed attributes: not found")
    ess_certs = value["certs"]
    if not len(ess_certs):
        raise _fail("signingCertificateV2 does not contain any certificate")
    ess = ess_certs[0]
    hash_name = ess["hash_algorithm"]["algorithm"].native
    if hash_name not in _HASH_NAMES:
        raise _fail("unsupported certificate hash algorithm in SigningCertificateV2 attribute")
    candidates = [c for c in certs if _matches_sid(c, signer_info["sid"])]
    issuer_serial = ess["issuer_serial"]
    if not isinstance(issuer_serial, core.Void):
        names = [g for g in issuer_serial["issuer"] if g.name == "directory_name"]
        if not names:
            raise _fail("issuer name is missing in IssuerSerial")
        serial = int(issuer_serial["serial_number"].native)
        issuer_der = names[0].chosen.untag().dump()
        candidates = [
            c for c in certs if c.serial_number == serial and c.issuer.public_bytes() == issuer_der
        ]
    if not candidates:
        raise _fail("signing certificate not found in the timestamp token")
    cert = candidates[0]
    cert_hash = hashlib.new(hash_name, _der(cert)).digest()
    if not hmac.compare_digest(cert_hash, bytes(ess["cert_hash"].native)):
        raise _fail("signing certificate hash does not match CertHash in signed attribute")
    return cert


def _matches_sid(cert: x509.Certificate, sid: Any) -> bool:
    if sid.name == "issuer_and_serial_number":
        chosen = sid.chosen
        return bool(
            cert.serial_number == int(chosen["serial_number"].native)
            and cert.issuer.public_bytes() == chosen["issuer"].dump(force=True)
        )
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return False
    return ski == bytes(sid.chosen.native)


def _check_signature(
    cert: x509.Certificate, signer_info: Any, digest_name: str, signed: bytes
) -> None:
    algorithm = signer_info["signature_algorithm"]
    signature = bytes(signer_info["signature"].native)
    hash_alg = _hash(digest_name)
    try:
        kind = algorithm.signature_algo
        if kind != "rsassa_pss" and algorithm["algorithm"].native not in ("rsa", "ec"):
            try:
                if algorithm.hash_algo != digest_name:
                    raise _fail("signature algorithm hash differs from the digest algorithm")
            except ValueError:
                pass
        key = cert.public_key()
        if kind == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hash_alg)
        elif kind == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = algorithm["parameters"]
            if params["hash_algorithm"]["algorithm"].native != digest_name:
                raise _fail("RSASSA-PSS hash differs from the digest algorithm")
            salt = int(params["salt_length"].native)
            key.verify(signature, signed, padding.PSS(padding.MGF1(hash_alg), salt), hash_alg)
        elif kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(hash_alg))
        else:
            raise _fail(f"unsupported timestamp signature algorithm {kind}")
    except InvalidSignature as exc:
        raise _fail("cms verification failure: signature does not verify") from exc
    except (UnsupportedAlgorithm, *_FOREIGN_ERRORS) as exc:
        raise _fail(f"cms verification failure: {exc}") from exc


def _hash(name: str) -> hashes.HashAlgorithm:
    return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[name]


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


# ---------------------------------------------------------------------------------------------
# Path building (Go x509.Verify at genTime, EKU timeStamping)


def _build_path(
    leaf: x509.Certificate,
    pool: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
) -> tuple[x509.Certificate, ...]:
    builder = _PathBuilder(pool=tuple(pool), roots=tuple(roots), at=at)
    for path in builder.paths((leaf,)):
        if _eku_allows_timestamping(path):
            return path
    raise _fail(
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
    ) -> None:
        self._pool = pool
        self._roots = roots
        self._root_ders = {_der(r) for r in roots}
        self._at = at
        self._budget = _MAX_SIGNATURE_CHECKS

    def _valid(self, cert: x509.Certificate) -> bool:
        return cert.not_valid_before_utc <= self._at <= cert.not_valid_after_utc

    def _issued_by(self, child: x509.Certificate, parent: x509.Certificate) -> bool:
        if self._budget <= 0:
            return False
        self._budget -= 1
        return check_issued_by(child, parent)

    def paths(
        self, partial: tuple[x509.Certificate, ...]
    ) -> Iterator[tuple[x509.Certificate, ...]]:
        current = partial[-1]
        if not self._valid(current):
            return
        if _der(current) in self._root_ders:
            yield partial
            return
        if len(partial) >= _MAX_PATH:
            return
        seen = {_der(c) for c in partial}
        for root in self._roots:
            if self._valid(root) and self._issued_by(current, root):
                yield (*partial, root)
        for candidate in self._pool:
            der = _der(candidate)
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


def validate_tsa_chain(certs: Sequence[x509.Certificate]) -> None:
    """Apply notation's timestamping-chain rules (§6.3) to a leaf → root chain.

    Args:
        certs: The TSA chain, leaf first, root last.

    Raises:
        VerificationFailed: ``Reason.TIMESTAMP`` naming the first violated rule.
    """
    try:
        _validate_tsa_chain(certs)
    except x509.DuplicateExtension as exc:
        raise _fail(f"TSA certificate has a duplicate extension: {exc}") from exc
    except _FOREIGN_ERRORS as exc:
        raise _fail(f"TSA certificate cannot be parsed: {exc}") from exc


def _validate_tsa_chain(certs: Sequence[x509.Certificate]) -> None:
    if not certs:
        raise _fail("certificate chain must contain at least one certificate")
    if len(certs) == 1:
        if not is_self_signed(certs[0]):
            raise _fail("single TSA certificate is not a valid self-signed certificate")
        _validate_tsa_leaf(certs[0])
        return
    last = len(certs) - 1
    for index, cert in enumerate(certs):
        if index == last:
            if not is_self_issued_ca(cert):
                raise _fail(f"root certificate {_subject(cert)} is not a self-signed CA")
        else:
            if is_self_issued_ca(cert):
                raise _fail(f"non-root certificate {_subject(cert)} is self-signed")
            if not check_issued_by(cert, certs[index + 1]):
                raise _fail(
                    f"certificate {_subject(cert)} is not issued by {_subject(certs[index + 1])}"
                )
        if index == 0:
            _validate_tsa_leaf(cert)
        else:
            _validate_tsa_ca(cert, index - 1)


def _validate_tsa_ca(cert: x509.Certificate, cas_below: int) -> None:
    constraints = _basic_constraints(cert)
    if constraints is None or not constraints.ca:
        raise _fail(f"CA certificate {_subject(cert)} lacks basicConstraints cA=true")
    if constraints.path_length is not None and constraints.path_length < cas_below:
        raise _fail(f"CA certificate {_subject(cert)} pathLenConstraint is too small")
    usage = _key_usage(cert)
    if usage is None or not usage.key_cert_sign:
        raise _fail(f"CA certificate {_subject(cert)} lacks the keyCertSign key usage")


def _validate_tsa_leaf(cert: x509.Certificate) -> None:
    constraints = _basic_constraints(cert)
    if constraints is not None and constraints.ca:
        raise _fail(f"TSA leaf {_subject(cert)} has basicConstraints cA=true")
    usage = _key_usage(cert)
    if usage is None or not usage.digital_signature:
        raise _fail(f"TSA leaf {_subject(cert)} lacks the digitalSignature key usage")
    if (
        usage.key_encipherment
        or usage.data_encipherment
        or usage.key_agreement
        or usage.key_cert_sign
        or usage.crl_sign
    ):
        raise _fail(f"TSA leaf {_subject(cert)} has a forbidden key usage")
    try:
        eku_ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise _fail(f"TSA leaf {_subject(cert)} lacks the timeStamping EKU") from exc
    if list(eku_ext.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise _fail(f"TSA leaf {_subject(cert)} must have exactly the timeStamping EKU")
    if not eku_ext.critical:
        raise _fail(f"TSA leaf {_subject(cert)} EKU extension must be critical")
    try:
        algorithm_for_key(cert.public_key())
    except VerificationFailed as exc:
        raise _fail(f"TSA leaf {_subject(cert)}: {exc.detail}") from exc


def _subject(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string())
