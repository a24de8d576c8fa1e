"""COSE envelope codec (docs/notation.md §4, media type ``application/cose``).

``COSE_Sign1_Tagged``: CBOR tag 18 around ``[protected bstr, unprotected map, payload bstr,
signature bstr]``. Decoding enforces the COSE-specific rules; the rules common to both formats
(§5) live in :mod:`pullgate.verification.envelope`.

* The blob must start with the literal bytes ``D2 84`` (tag 18 + definite array of 4) and hold
  nothing after the message; duplicate map keys and indefinite-length items are refused.
* Header labels are ints or text strings; protected and unprotected labels are disjoint.
* Protected header (§4.1): ``1`` alg one of -37/-38/-39/-7/-35/-36; ``2`` crit a non-empty array
  of labels present in the protected map that includes the signing scheme, the expiry (when
  present) and the authentic signing time (signingAuthority) - standard labels and repeats are
  allowed, unlike JWS; ``3`` content type must be a text string; the time headers must carry
  CBOR tag 1 (tag 0 and untagged values are refused). Only the time header that belongs to the
  scheme is read; the other one is ignored, as go-cose/notation do.
* Unprotected header (§4.2): ``33`` x5chain must be an array of bstr (a single bstr, or x5chain
  in the protected bucket, means "certificate chain is not present"); timestamp token bstr;
  signing agent tstr.
* ``Sig_structure = ["Signature1", protected bytes as received, h'', payload]`` (§4.3).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cbor2

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.model import (
    HEADER_AUTHENTIC_SIGNING_TIME,
    HEADER_EXPIRY,
    HEADER_SIGNING_AGENT,
    HEADER_SIGNING_SCHEME,
    HEADER_SIGNING_TIME,
    HEADER_TIMESTAMP_SIGNATURE,
    DecodedEnvelope,
    SignatureAlgorithm,
    SigningScheme,
)

COSE_SIGN1_PREFIX = b"\xd2\x84"
LABEL_ALG = 1
LABEL_CRIT = 2
LABEL_CONTENT_TYPE = 3
LABEL_X5CHAIN = 33
_SYSTEM_LABELS: tuple[int | str, ...] = (
    LABEL_ALG,
    LABEL_CRIT,
    LABEL_CONTENT_TYPE,
    HEADER_EXPIRY,
    HEADER_SIGNING_SCHEME,
    HEADER_SIGNING_TIME,
    HEADER_AUTHENTIC_SIGNING_TIME,
)
_SIGN1_TAG = 18
_EPOCH_TAG = 1
_DECODE_ERRORS = (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError)


def _fail(detail: str) -> VerificationFailed:
    return VerificationFailed(Reason.INTEGRITY, detail)


@dataclass(frozen=True, slots=True)
class _DateTag:
    """A tag 0 / tag 1 item kept undecoded so the tag number can be checked."""

    tag: int
    value: object


def _keep_tag0(value: object, _immutable: bool) -> _DateTag:
    return _DateTag(0, value)


def _keep_tag1(value: object, _immutable: bool) -> _DateTag:
    return _DateTag(_EPOCH_TAG, value)


def _decode_cbor(data: bytes, what: str) -> Any:
    """Decode exactly one CBOR item: definite lengths, unique keys, no trailing bytes."""
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            semantic_decoders={0: _keep_tag0, _EPOCH_TAG: _keep_tag1},
            allow_indefinite=False,
            allow_duplicate_keys=False,
            max_depth=64,
        )
        item = decoder.decode()
    except _DECODE_ERRORS as exc:
        raise _fail(f"{what} is not valid CBOR: {exc}") from exc
    if stream.tell() != len(data):
        raise _fail(f"{what} has trailing bytes after the CBOR item")
    return item


def _label_ok(label: object) -> bool:
    return (isinstance(label, int) and not isinstance(label, bool)) or isinstance(label, str)


def _header_map(value: object, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise _fail(f"{what} header is not a map")
    for label in value:
        if not _label_ok(label):
            raise _fail(f"{what} header label {label!r} is neither int nor tstr")
    return value


def _epoch_time(protected: Mapping[Any, Any], label: str) -> datetime:
    item = protected[label]
    if not isinstance(item, _DateTag) or item.tag != _EPOCH_TAG:
        raise _fail(f"{label}: only Tag `1` Datetime CBOR object is supported")
    value = item.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"{label}: tag 1 content must be an int or float")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(f"{label}: tag 1 content must be finite")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise _fail(f"{label}: time out of range") from exc


def _critical(protected: Mapping[Any, Any], scheme: SigningScheme) -> tuple[str, ...]:
    crit = protected.get(LABEL_CRIT)
    if not isinstance(crit, Sequence) or isinstance(crit, str | bytes) or not crit:
        raise _fail("crit header must be a non-empty array")
    for label in crit:
        if not _label_ok(label):
            raise _fail("crit entries must be int or tstr labels")
        if label not in protected:
            raise _fail(f"missing critical header {label!r}")
    must = {HEADER_SIGNING_SCHEME}
    if scheme is SigningScheme.SIGNING_AUTHORITY:
        must.add(HEADER_AUTHENTIC_SIGNING_TIME)
    if HEADER_EXPIRY in protected:
        must.add(HEADER_EXPIRY)
    missing = must.difference(label for label in crit if isinstance(label, str))
    if missing:
        raise _fail(f"these required headers are not marked as critical: {sorted(missing)}")
    return tuple(str(label) for label in crit)


def _public_value(value: object) -> object:
    if isinstance(value, _DateTag):
        return cbor2.CBORTag(value.tag, value.value)
    return value


def _certificates(unprotected: Mapping[Any, Any]) -> tuple[bytes, ...]:
    chain = unprotected.get(LABEL_X5CHAIN)
    if (
        not isinstance(chain, Sequence)
        or isinstance(chain, str | bytes)
        or not chain
        or not all(isinstance(cert, bytes) for cert in chain)
    ):
        raise _fail("certificate chain is not present")
    return tuple(chain)


def _scheme(protected: Mapping[Any, Any]) -> SigningScheme:
    raw = protected.get(HEADER_SIGNING_SCHEME)
    if not isinstance(raw, str):
        raise _fail("malformed signingScheme")
    try:
        return SigningScheme(raw)
    except ValueError as exc:
        raise _fail(f"unsupported signingScheme: {raw!r}") from exc


def decode_cose(data: bytes) -> DecodedEnvelope:
    """Decode and structurally validate a COSE_Sign1 envelope (no crypto, no chain rules).

    Args:
        data: The envelope blob.

    Returns:
        The decoded envelope with its ``Sig_structure`` bytes.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` on any malformed or non-conformant content.
    """
    if not data.startswith(COSE_SIGN1_PREFIX):
        raise _fail("not a tagged COSE_Sign1 message (expected prefix D2 84)")
    message = _decode_cbor(data, "COSE envelope")
    if not isinstance(message, cbor2.CBORTag) or message.tag != _SIGN1_TAG:
        raise _fail("not a tagged COSE_Sign1 message")
    parts = message.value
    if not isinstance(parts, Sequence) or len(parts) != 4:
        raise _fail("COSE_Sign1 must be an array of 4 items")
    protected_bytes, unprotected_raw, payload, signature = parts
    if not isinstance(protected_bytes, bytes):
        raise _fail("protected header must be a bstr")
    if not isinstance(payload, bytes):
        raise _fail("payload must be an embedded bstr")
    if not isinstance(signature, bytes) or not signature:
        raise _fail("signature must be a non-empty bstr")
    protected = _header_map(
        _decode_cbor(protected_bytes, "protected header") if protected_bytes else {},
        "protected",
    )
    unprotected = _header_map(unprotected_raw, "unprotected")
    if set(protected).intersection(unprotected):
        raise _fail("protected and unprotected header labels must be disjoint")

    raw_alg = protected.get(LABEL_ALG)
    algorithm = (
        SignatureAlgorithm.from_cose_id(raw_alg)
        if isinstance(raw_alg, int) and not isinstance(raw_alg, bool)
        else None
    )
    if algorithm is None:
        raise _fail(f"signature algorithm {raw_alg!r} is not supported")
    content_type = protected.get(LABEL_CONTENT_TYPE)
    if not isinstance(content_type, str):
        raise _fail("content type should be of 'tstr' type")
    scheme = _scheme(protected)
    critical = _critical(protected, scheme)
    time_label = (
        HEADER_SIGNING_TIME if scheme is SigningScheme.X509 else HEADER_AUTHENTIC_SIGNING_TIME
    )
    if time_label not in protected:
        raise _fail(f"{time_label!r} header is missing")
    signing_time = _epoch_time(protected, time_label)
    expiry = _epoch_time(protected, HEADER_EXPIRY) if HEADER_EXPIRY in protected else None
    extended = {
        str(label): _public_value(value)
        for label, value in protected.items()
        if label not in _SYSTEM_LABELS
    }

    ders = _certificates(unprotected)
    token = unprotected.get(HEADER_TIMESTAMP_SIGNATURE)
    if token is not None and not isinstance(token, bytes):
        raise _fail("timestamp signature must be a bstr")
    agent = unprotected.get(HEADER_SIGNING_AGENT)
    if agent is not None and not isinstance(agent, str):
        raise _fail("signing agent must be a tstr")
    signed_bytes = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    return DecodedEnvelope(
        algorithm=algorithm,
        scheme=scheme,
        signing_time=signing_time,
        expiry=expiry,
        content_type=content_type,
        critical=critical,
        extended_attributes=extended,
        payload=payload,
        signature=signature,
        certificate_ders=ders,
        timestamp_token=token,
        signing_agent=agent,
        signed_bytes=signed_bytes,
        pss_salt_auto=False,
    )
