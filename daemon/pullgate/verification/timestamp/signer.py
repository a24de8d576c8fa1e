"""CMS SignerInfo verification of a timestamp token (docs/notation.md §10 step 6).

For one ``SignerInfo``: the digest algorithm is one of SHA-256/384/512; the content-type and
message-digest signed attributes must be present once and match the encapsulated TSTInfo; the
signing certificate is located through the ESS ``signingCertificateV2`` attribute (issuer and
serial, or the SignerIdentifier; SHA-1 certificate hashes refused) and its hash must match; the
signature must verify over the DER ``SET OF`` signed attributes; a path to a trusted TSA root must
exist at genTime (:func:`~pullgate.verification.timestamp.chain.build_tsa_path`); an optional
signing-time attribute must fall inside the chain's validity; and the chain must pass the §6.3
rules (:func:`~pullgate.verification.timestamp.chain.validate_tsa_chain`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pullgate.verification.cache import CertMemo
from pullgate.verification.timestamp.chain import (
    ASN1_ERRORS,
    build_tsa_path,
    der_of,
    validate_tsa_chain,
)
from pullgate.verification.timestamp.chain import timestamp_failure as _fail
from pullgate.verification.x509.certs import X509_DECODE_ERRORS

__all__ = ["HASH_NAMES", "ID_CT_TSTINFO", "IMPRINT_HASHES", "verify_signer"]

ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"
IMPRINT_HASHES: Mapping[str, str] = MappingProxyType(
    {
        "2.16.840.1.101.3.4.2.1": "sha256",
        "2.16.840.1.101.3.4.2.2": "sha384",
        "2.16.840.1.101.3.4.2.3": "sha512",
    }
)
"""Hash OIDs a token may use (message imprint, signer digest, ESS cert hash) → hashlib name."""
HASH_NAMES = frozenset(IMPRINT_HASHES.values())


def verify_signer(
    signer_info: Any,
    *,
    tst_der: bytes,
    certificates: tuple[x509.Certificate, ...],
    gen_time: datetime,
    roots: Sequence[x509.Certificate],
    memo: CertMemo | None = None,
) -> tuple[x509.Certificate, ...]:
    """Verify one ``SignerInfo`` of a token; the TSA chain (leaf → root) it verifies through.

    Args:
        signer_info: The asn1crypto ``SignerInfo``.
        tst_der: The encapsulated TSTInfo bytes (what the message-digest attribute covers).
        certificates: The token's certificates.
        gen_time: The token's genTime (the instant the chain must be valid at).
        roots: Trusted TSA roots.
        memo: The snapshot's certificate memos (None: nothing is memoised).

    Raises:
        VerificationFailed: ``Reason.TIMESTAMP`` on any failure.
    """
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in HASH_NAMES:
        raise _fail(f"unsupported signerInfo digest algorithm {digest_name}")
    attrs = signer_info["signed_attrs"]
    if isinstance(attrs, core.Void) or not len(attrs):
        raise _fail("signerInfo has no signed attributes")
    content_type = _single_attr(attrs, "content_type")
    if content_type is None or content_type.dotted != ID_CT_TSTINFO:
        raise _fail("signed content-type attribute missing or not id-ct-TSTInfo")
    message_digest = _single_attr(attrs, "message_digest")
    expected = hashlib.new(digest_name, tst_der).digest()
    if message_digest is None or not hmac.compare_digest(bytes(message_digest.native), expected):
        raise _fail("signed message-digest attribute missing or mismatched")
    signer = _signing_certificate(signer_info, attrs, certificates)
    _check_signature(signer, signer_info, digest_name, _signed_attrs_der(attrs))
    chain = build_tsa_path(signer, certificates, roots, gen_time, memo)
    signing_time = _single_attr(attrs, "signing_time")
    if signing_time is not None:
        when = signing_time.native
        if not isinstance(when, datetime) or any(
            not (c.not_valid_before_utc <= when <= c.not_valid_after_utc) for c in chain
        ):
            raise _fail("signed signing-time attribute is outside the TSA chain validity")
    validate_tsa_chain(chain, memo)
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
    if hash_name not in HASH_NAMES:
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
    cert_hash = hashlib.new(hash_name, der_of(cert)).digest()
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
    except X509_DECODE_ERRORS as exc:
        raise _fail(f"timestamp token certificate extensions cannot be read: {exc}") from exc
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
    except (UnsupportedAlgorithm, *ASN1_ERRORS) as exc:
        raise _fail(f"cms verification failure: {exc}") from exc


def _hash(name: str) -> hashes.HashAlgorithm:
    return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[name]
