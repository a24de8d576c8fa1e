"""JWS envelope codec (docs/notation.md §3, media type ``application/jose+json``).

Flattened JWS JSON serialization only. Decoding enforces the JWS-specific rules; the rules common
to both envelope formats (§5: payload, content type, expiry order, certificate chain) live in
:mod:`pullgate.verification.envelope`.

* ``protected``, ``payload`` and ``signature`` are base64url **without padding**; ``x5c``
  entries and ``io.cncf.notary.timestampSignature`` are standard, padded base64.
* Protected header (§3.1): ``alg`` one of PS256/384/512, ES256/384/512; ``cty`` a string;
  ``crit`` a non-empty list that names ``io.cncf.notary.signingScheme``, the expiry (when
  present) and ``io.cncf.notary.authenticSigningTime`` (signingAuthority), where every other
  entry must name a present *extended* header (so standard headers and duplicates are refused);
  ``io.cncf.notary.signingTime`` required for ``notary.x509`` and forbidden for signingAuthority,
  ``io.cncf.notary.authenticSigningTime`` the other way round; times are RFC 3339.
* The signing input is ``<protected>.<payload>`` exactly as received (§3.3); the payload must be
  a JSON object (golang-jwt parses it as claims).

Go's ``encoding/json`` matches object keys case-insensitively. Top-level and unprotected-header
keys are matched the same way here (the notation vectors use ``io.cncf.notary.SigningAgent``);
two keys that fold to the same field are refused as ambiguous. Protected-header names are
matched exactly, and a protected key that only case-folds to a standard header name is refused.
Duplicate keys anywhere are refused.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

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

_STANDARD_HEADERS = (
    "alg",
    "cty",
    "crit",
    HEADER_SIGNING_SCHEME,
    HEADER_SIGNING_TIME,
    HEADER_EXPIRY,
    HEADER_AUTHENTIC_SIGNING_TIME,
)

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})"
)


def _fail(detail: str) -> VerificationFailed:
    return VerificationFailed(Reason.INTEGRITY, detail)


# --- primitive decoders ----------------------------------------------------------------------


def b64url_decode(value: str, what: str) -> bytes:
    """Strict base64url without padding (the JWS compact/flattened alphabet).

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` on padding, foreign characters or a length
            that no encoding produces.
    """
    if not _B64URL_RE.fullmatch(value) or len(value) % 4 == 1:
        raise _fail(f"{what} is not unpadded base64url")
    std = value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4)
    try:
        return binascii.a2b_base64(std.encode("ascii"), strict_mode=True)
    except binascii.Error as exc:
        raise _fail(f"{what} is not unpadded base64url") from exc


def b64std_decode(value: str, what: str) -> bytes:
    """Strict standard base64 with padding (Go ``base64.StdEncoding`` for ``[]byte``)."""
    try:
        return binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise _fail(f"{what} is not padded standard base64") from exc


def parse_rfc3339(value: object, what: str) -> datetime:
    """Parse an RFC 3339 date-time (offset required, fractional seconds allowed).

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` if ``value`` is not such a string.
    """
    if not isinstance(value, str):
        raise _fail(f"{what} must be an RFC 3339 string")
    match = _RFC3339_RE.fullmatch(value)
    if match is None:
        raise _fail(f"{what} is not an RFC 3339 date-time: {value!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        if offset == "Z":
            tz: timezone = UTC
        else:
            sign = 1 if offset[0] == "+" else -1
            delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
            if int(offset[4:6]) > 59:
                raise ValueError("offset minutes out of range")
            tz = timezone(sign * delta)
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz
        )
    except (ValueError, OverflowError) as exc:
        raise _fail(f"{what} is not a valid date-time: {value!r}") from exc


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _fail(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _reject_constant(token: str) -> Any:
    raise _fail(f"non-standard JSON constant {token}")


# A decoder holds no per-call state; building one per call is measurable on the hot path.
_STRICT_JSON = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
)


def load_json(data: bytes | str, what: str) -> Any:
    """Decode strict JSON (UTF-8, no duplicate keys, no NaN/Infinity).

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` on any decoding problem.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if text.startswith("\ufeff"):  # json.loads refuses a BOM; JSONDecoder.decode does not
            raise json.JSONDecodeError("Unexpected UTF-8 BOM", text, 0)
        return _STRICT_JSON.decode(text)
    except VerificationFailed:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _fail(f"{what} is not valid JSON") from exc


def fold_fields(obj: Mapping[str, Any], names: tuple[str, ...], what: str) -> dict[str, Any]:
    """Pick ``names`` out of ``obj`` the way Go's ``encoding/json`` does (case-insensitive).

    Keys that match no name are ignored; two keys that fold to the same name are refused.
    """
    wanted = {name.lower(): name for name in names}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = wanted.get(key.lower())
        if name is None:
            continue
        if name in out:
            raise _fail(f"{what} has ambiguous keys for {name!r}")
        out[name] = value
    return out


# --- decoding --------------------------------------------------------------------------------


def _str_field(obj: Mapping[str, Any], name: str, what: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise _fail(f"{what}: {name!r} missing or not a string")
    return value


def _decode_protected(header: dict[str, Any]) -> dict[str, Any]:
    lowered = {name.lower(): name for name in _STANDARD_HEADERS}
    for key in header:
        standard = lowered.get(key.lower())
        if standard is not None and standard != key:
            raise _fail(f"protected header key {key!r} differs from {standard!r} only by case")
    return header


def _critical(header: Mapping[str, Any], scheme: SigningScheme) -> tuple[str, ...]:
    crit = header.get("crit")
    if crit is None or (isinstance(crit, list) and not crit):
        raise _fail('missing "crit" header')
    if not isinstance(crit, list) or not all(isinstance(c, str) for c in crit):
        raise _fail('"crit" header must be a list of strings')
    must = {HEADER_SIGNING_SCHEME}
    if HEADER_EXPIRY in header:
        must.add(HEADER_EXPIRY)
    if scheme is SigningScheme.SIGNING_AUTHORITY:
        must.add(HEADER_AUTHENTIC_SIGNING_TIME)
    for entry in crit:
        if entry in must:
            must.discard(entry)
        elif entry in _STANDARD_HEADERS or entry not in header:
            raise _fail(f"{entry!r} header is marked critical but not present")
    if must:
        raise _fail(f"these required headers are not marked as critical: {sorted(must)}")
    return tuple(crit)


def _scheme_and_time(header: Mapping[str, Any]) -> tuple[SigningScheme, datetime]:
    raw_scheme = header.get(HEADER_SIGNING_SCHEME)
    try:
        scheme = SigningScheme(raw_scheme) if isinstance(raw_scheme, str) else None
    except ValueError:
        scheme = None
    if scheme is None:
        raise _fail(f"unsupported SigningScheme: {raw_scheme!r}")
    if scheme is SigningScheme.X509:
        present, absent = HEADER_SIGNING_TIME, HEADER_AUTHENTIC_SIGNING_TIME
    else:
        present, absent = HEADER_AUTHENTIC_SIGNING_TIME, HEADER_SIGNING_TIME
    if absent in header:
        raise _fail(f"{absent!r} header must not be present for {scheme} signing scheme")
    if present not in header:
        raise _fail(f"{present!r} header is missing")
    return scheme, parse_rfc3339(header[present], present)


def _unprotected(
    envelope: Mapping[str, Any],
) -> tuple[tuple[bytes, ...], bytes | None, str | None]:
    header = envelope.get("header")
    if not isinstance(header, dict):
        raise _fail("certificate chain is not present")
    fields = fold_fields(
        header, ("x5c", HEADER_TIMESTAMP_SIGNATURE, HEADER_SIGNING_AGENT), "unprotected header"
    )
    x5c = fields.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise _fail("certificate chain is not present")
    if not all(isinstance(entry, str) for entry in x5c):
        raise _fail("x5c entries must be base64 strings")
    ders = tuple(b64std_decode(entry, "x5c certificate") for entry in x5c)
    token: bytes | None = None
    raw_token = fields.get(HEADER_TIMESTAMP_SIGNATURE)
    if raw_token is not None:
        if not isinstance(raw_token, str):
            raise _fail("timestamp signature must be a base64 string")
        token = b64std_decode(raw_token, "timestamp signature")
    agent = fields.get(HEADER_SIGNING_AGENT)
    if agent is not None and not isinstance(agent, str):
        raise _fail("signing agent must be a string")
    return ders, token, agent


def decode_jws(data: bytes) -> DecodedEnvelope:
    """Decode and structurally validate a flattened JWS envelope (no crypto, no chain rules).

    Args:
        data: The envelope blob.

    Returns:
        The decoded envelope with its signing input.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` on any malformed or non-conformant content.
    """
    envelope = load_json(data, "JWS envelope")
    if not isinstance(envelope, dict):
        raise _fail("JWS envelope is not a JSON object")
    top = fold_fields(envelope, ("payload", "protected", "header", "signature"), "JWS envelope")
    protected_b64 = _str_field(top, "protected", "JWS envelope")
    payload_b64 = _str_field(top, "payload", "JWS envelope")
    signature_b64 = _str_field(top, "signature", "JWS envelope")
    ders, token, agent = _unprotected(top)

    header = load_json(b64url_decode(protected_b64, "protected header"), "protected header")
    if not isinstance(header, dict):
        raise _fail("protected header is not a JSON object")
    header = _decode_protected(header)
    raw_alg = header.get("alg")
    try:
        algorithm = SignatureAlgorithm(raw_alg) if isinstance(raw_alg, str) else None
    except ValueError:
        algorithm = None
    if algorithm is None:
        raise _fail(f"signature algorithm {raw_alg!r} is not supported")
    content_type = _str_field(header, "cty", "protected header")
    scheme, signing_time = _scheme_and_time(header)
    expiry = (
        parse_rfc3339(header[HEADER_EXPIRY], HEADER_EXPIRY) if HEADER_EXPIRY in header else None
    )
    critical = _critical(header, scheme)
    extended = {k: v for k, v in header.items() if k not in _STANDARD_HEADERS}

    payload = b64url_decode(payload_b64, "payload")
    if not isinstance(load_json(payload, "payload"), dict):
        raise _fail("JWS payload is not a JSON object")
    signature = b64url_decode(signature_b64, "signature")
    if not signature:
        raise _fail("signature is empty")
    try:
        signed_bytes = f"{protected_b64}.{payload_b64}".encode("ascii")
    except UnicodeEncodeError as exc:  # unreachable after the base64url checks
        raise _fail("signing input is not ASCII") from exc
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
        pss_salt_auto=True,
    )
