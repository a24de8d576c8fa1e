"""``pullgate inspect``: what each signature says, without any trust decision.

Mirrors the fields of ``notation inspect``: algorithm, envelope type, signed attributes, user
defined attributes, unsigned attributes (signing agent, RFC 3161 timestamp), certificates with
SHA-256 fingerprints, and the signed artifact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pullgate.common.descriptor import Descriptor
from pullgate.errors import PullgateError
from pullgate.verification.envelope import parse_envelope
from pullgate.verification.model import EnvelopeContent
from pullgate.verification.timestamp import parse_timestamp_token
from pullgate.verification.verifier import SignatureBlob
from pullgate.verification.x509.certs import fingerprint_sha256
from pullgate.verification.x509.identity import go_name_string


def _timestamp_json(token: bytes) -> dict[str, Any]:
    try:
        info = parse_timestamp_token(token)
    except PullgateError as exc:
        return {"error": f"failed to parse timestamp countersignature: {exc}"}
    return {
        "timestamp": f"[{info.lower.isoformat()}, {info.upper.isoformat()}]",
        "certificates": [_cert_json(c) for c in info.certificates],
    }


def _cert_json(cert: Any) -> dict[str, str]:
    return {
        "SHA256Fingerprint": fingerprint_sha256(cert),
        "issuedTo": go_name_string(cert.subject),
        "issuedBy": go_name_string(cert.issuer),
        "expiry": cert.not_valid_after_utc.isoformat(),
    }


def content_json(digest: str, content: EnvelopeContent) -> dict[str, Any]:
    """One parsed signature in ``notation inspect --output json`` shape."""
    signed: dict[str, Any] = {
        "contentType": content.content_type,
        "signingScheme": content.scheme.value,
        "signingTime": content.signing_time.isoformat(),
    }
    if content.expiry is not None:
        signed["expiry"] = content.expiry.isoformat()
    for key, value in content.extended_attributes.items():
        signed[str(key)] = str(value)
    unsigned: dict[str, Any] = {}
    if content.signing_agent:
        unsigned["signingAgent"] = content.signing_agent
    if content.timestamp_token:
        unsigned["timestampSignature"] = _timestamp_json(content.timestamp_token)
    return {
        "digest": digest,
        "signatureAlgorithm": content.algorithm.display_name,
        "signatureEnvelopeType": content.format.value,
        "signedAttributes": signed,
        "userDefinedAttributes": dict(content.target.annotations),
        "unsignedAttributes": unsigned,
        "certificates": [_cert_json(c) for c in content.certificates],
        "signedArtifact": {
            "mediaType": content.target.media_type,
            "digest": content.target.digest,
            "size": content.target.size,
        },
    }


def inspect_signatures(
    target: Descriptor, blobs: Iterable[SignatureBlob]
) -> tuple[dict[str, Any], list[str]]:
    """Inspect every signature; returns the JSON document and per-signature parse errors."""
    sigs: list[dict[str, Any]] = []
    errors: list[str] = []
    for blob in blobs:
        try:
            content = parse_envelope(blob.media_type, blob.envelope)
        except PullgateError as exc:
            errors.append(f"signature {blob.manifest_digest}: {exc}")
            continue
        sigs.append(content_json(blob.manifest_digest, content))
    return {"mediaType": target.media_type, "digest": target.digest, "signatures": sigs}, errors


def render_tree(reference: str, doc: dict[str, Any]) -> str:
    """A tree view like ``notation inspect``'s default output."""
    lines = [reference]
    sigs = doc["signatures"]
    if not sigs:
        return f"{reference} has no associated signature"
    lines.append("└── application/vnd.cncf.notary.signature")
    for i, sig in enumerate(sigs):
        last = i == len(sigs) - 1
        lead, pad = ("    └── ", "        ") if last else ("    ├── ", "    │   ")
        lines.append(lead + sig["digest"])
        body = [
            ("signature algorithm", sig["signatureAlgorithm"]),
            ("signature envelope type", sig["signatureEnvelopeType"]),
        ]
        for k, v in body:
            lines.append(f"{pad}├── {k}: {v}")
        lines.append(f"{pad}├── signed attributes")
        for k, v in sig["signedAttributes"].items():
            lines.append(f"{pad}│   ├── {k}: {v}")
        lines.append(f"{pad}├── user defined attributes")
        if sig["userDefinedAttributes"]:
            for k, v in sig["userDefinedAttributes"].items():
                lines.append(f"{pad}│   ├── {k}: {v}")
        else:
            lines.append(f"{pad}│   └── (empty)")
        lines.append(f"{pad}├── unsigned attributes")
        for k, v in sig["unsignedAttributes"].items():
            if isinstance(v, dict):
                lines.append(f"{pad}│   ├── {k}")
                for k2, v2 in v.items():
                    if k2 == "certificates":
                        for cert in v2:
                            fp = cert["SHA256Fingerprint"]
                            lines.append(f"{pad}│   │   ├── certificate {fp}")
                            lines.append(f"{pad}│   │   │   ├── issued to: {cert['issuedTo']}")
                    else:
                        lines.append(f"{pad}│   │   ├── {k2}: {v2}")
            else:
                lines.append(f"{pad}│   ├── {k}: {v}")
        lines.append(f"{pad}├── certificates")
        for cert in sig["certificates"]:
            lines.append(f"{pad}│   ├── SHA256 fingerprint: {cert['SHA256Fingerprint']}")
            lines.append(f"{pad}│   │   ├── issued to: {cert['issuedTo']}")
            lines.append(f"{pad}│   │   ├── issued by: {cert['issuedBy']}")
            lines.append(f"{pad}│   │   └── expiry: {cert['expiry']}")
        art = sig["signedArtifact"]
        lines.append(f"{pad}└── signed artifact")
        lines.append(f"{pad}    ├── media type: {art['mediaType']}")
        lines.append(f"{pad}    ├── digest: {art['digest']}")
        lines.append(f"{pad}    └── size: {art['size']}")
    return "\n".join(lines)
