"""Signature envelopes: the entry points used by the verifier and ``pullgate inspect``.

Implements docs/notation.md §2 (payload), §5 (validation common to JWS and COSE) and the
integrity half of §3/§4 by delegating format decoding to :mod:`.jws` and :mod:`.cose`:

1. decode the envelope for its media type (unsupported type → integrity failure);
2. parse every certificate (leaf first) and the payload (a JSON object whose ``targetArtifact``
   is an OCI descriptor; its annotations are the user metadata);
3. content type must be ``application/vnd.cncf.notary.payload.v1+json``; expiry, if present,
   strictly after the signing time;
4. (:func:`verify_envelope` only) the algorithm implied by the leaf key must equal the envelope
   algorithm, the signature must verify with the leaf key, and the chain must satisfy §6.2.

Every failure is ``VerificationFailed(Reason.INTEGRITY)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from pullgate.common.descriptor import Descriptor
from pullgate.errors import MalformedInput, Reason, VerificationFailed
from pullgate.verification.algorithms import algorithm_for_key, verify_signature
from pullgate.verification.cache import CertMemo
from pullgate.verification.envelope.cose import decode_cose
from pullgate.verification.envelope.jws import decode_jws, fold_fields, load_json
from pullgate.verification.model import (
    HEADER_VERIFICATION_PLUGIN,
    HEADER_VERIFICATION_PLUGIN_MIN_VERSION,
    MEDIA_TYPE_PAYLOAD,
    DecodedEnvelope,
    EnvelopeContent,
    EnvelopeFormat,
)
from pullgate.verification.x509.certs import load_certificate, validate_signing_chain

_DESCRIPTOR_FIELDS = ("mediaType", "digest", "size", "artifactType", "annotations")


def _fail(detail: str) -> VerificationFailed:
    return VerificationFailed(Reason.INTEGRITY, detail)


def _decode(media_type: str, data: bytes) -> tuple[EnvelopeFormat, DecodedEnvelope]:
    if media_type == EnvelopeFormat.JWS:
        return EnvelopeFormat.JWS, decode_jws(data)
    if media_type == EnvelopeFormat.COSE:
        return EnvelopeFormat.COSE, decode_cose(data)
    raise _fail(f'signature envelope format with media type "{media_type}" is not supported')


def _certificates(ders: tuple[bytes, ...], memo: CertMemo | None) -> tuple[x509.Certificate, ...]:
    certs = []
    for index, der in enumerate(ders):
        try:
            certs.append(load_certificate(der, memo))
        except VerificationFailed as exc:
            what = "malformed leaf certificate" if index == 0 else f"malformed certificate {index}"
            raise _fail(f"{what}: {exc.detail}") from exc
    return tuple(certs)


def _target(payload: bytes) -> Descriptor:
    document = load_json(payload, "payload")
    if not isinstance(document, dict):
        raise _fail("payload is not a JSON object")
    target = fold_fields(document, ("targetArtifact",), "payload").get("targetArtifact")
    if not isinstance(target, dict):
        raise _fail("payload has no targetArtifact object")
    fields = fold_fields(target, _DESCRIPTOR_FIELDS, "targetArtifact")
    try:
        return Descriptor.from_json(fields)
    except MalformedInput as exc:
        raise _fail(f"payload targetArtifact is invalid: {exc.detail}") from exc


def _critical_string(
    extended: Mapping[str, object], critical: tuple[str, ...], name: str
) -> str | None:
    """A plugin header counts only when marked critical (notation-go); it must be a string."""
    if name not in extended or name not in critical:
        return None
    value = extended[name]
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"attribute {name!r} from extended attributes is not a valid string")
    return value


def _content(
    envelope_format: EnvelopeFormat, decoded: DecodedEnvelope, memo: CertMemo | None = None
) -> EnvelopeContent:
    if decoded.content_type != MEDIA_TYPE_PAYLOAD:
        raise _fail(f'payload content type "{decoded.content_type}" not supported')
    if not decoded.payload:
        raise _fail("payload is empty")
    if decoded.expiry is not None and decoded.expiry <= decoded.signing_time:
        raise _fail("expiry cannot be equal or before the signing time")
    extended: dict[str, Any] = dict(decoded.extended_attributes)
    return EnvelopeContent(
        format=envelope_format,
        algorithm=decoded.algorithm,
        scheme=decoded.scheme,
        signing_time=decoded.signing_time,
        expiry=decoded.expiry,
        certificates=_certificates(decoded.certificate_ders, memo),
        raw_signature=decoded.signature,
        payload=decoded.payload,
        target=_target(decoded.payload),
        content_type=decoded.content_type,
        timestamp_token=decoded.timestamp_token,
        signing_agent=decoded.signing_agent,
        critical=decoded.critical,
        extended_attributes=extended,
        verification_plugin=_critical_string(
            extended, decoded.critical, HEADER_VERIFICATION_PLUGIN
        ),
        verification_plugin_min_version=_critical_string(
            extended, decoded.critical, HEADER_VERIFICATION_PLUGIN_MIN_VERSION
        ),
    )


def parse_envelope(media_type: str, data: bytes) -> EnvelopeContent:
    """Decode an envelope's structure without checking its signature or chain.

    Header rules (scheme, crit, times, content type) and payload shape are still enforced,
    because :class:`EnvelopeContent` cannot be filled otherwise.

    Args:
        media_type: The signature layer's media type (JWS or COSE).
        data: The envelope blob.

    Returns:
        The decoded content.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` for malformed input or an unsupported type.
    """
    envelope_format, decoded = _decode(media_type, data)
    return _content(envelope_format, decoded)


def verify_envelope(media_type: str, data: bytes, memo: CertMemo | None = None) -> EnvelopeContent:
    """Decode an envelope and run notation's whole integrity check (§3-§6.2).

    Args:
        media_type: The signature layer's media type (JWS or COSE).
        data: The envelope blob.
        memo: The snapshot's certificate memos (None: nothing is memoised).

    Returns:
        The integrity-checked content.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` for every failure.
    """
    envelope_format, decoded = _decode(media_type, data)
    content = _content(envelope_format, decoded, memo)
    leaf = content.certificates[0]
    try:
        leaf_key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _fail("unsupported leaf certificate public key") from exc
    key_algorithm = algorithm_for_key(leaf_key)
    if key_algorithm is not content.algorithm:
        raise _fail(
            "mismatch between signature algorithm derived from signing certificate "
            f"({key_algorithm}) and signing algorithm specified ({content.algorithm})"
        )
    verify_signature(
        content.algorithm,
        leaf_key,
        decoded.signature,
        decoded.signed_bytes,
        pss_salt_auto=decoded.pss_salt_auto,
    )
    validate_signing_chain(content.certificates, memo)
    return content
