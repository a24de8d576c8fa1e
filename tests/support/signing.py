"""A Notary signer for tests: notation-format JWS and COSE envelopes from a ``pki.Chain``.

The happy path reproduces what notation writes, byte for byte apart from the randomised
signature value (docs/notation.md §3, §4; checked against the notation vectors):

* JWS: protected header and payload are compact JSON with sorted keys and Go's HTML escaping;
  times are RFC 3339 (seconds precision, ``Z`` for UTC, the offset otherwise); ``crit`` is
  ``[signingScheme, (authenticSigningTime), <critical extended>..., (expiry)]``; the unprotected
  header is ``{timestampSignature?, x5c, signingAgent?}``.
* COSE: header maps are sorted by their encoded keys (RFC 8949 core deterministic, as go-cose);
  times are tag 1 integers; ``crit`` is ``[signingScheme, (authenticSigningTime), (expiry),
  <critical extended>...]``; the payload JSON keeps OCI descriptor field order.
* RSASSA-PSS with salt length = hash length; ECDSA as raw fixed-width ``r || s``.

:class:`SignOptions` also carries the tamper knobs the test matrix needs; every knob defaults to
"behave like notation".
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from pullgate.common.descriptor import Descriptor
from pullgate.verification.model import (
    HEADER_AUTHENTIC_SIGNING_TIME,
    HEADER_EXPIRY,
    HEADER_SIGNING_AGENT,
    HEADER_SIGNING_SCHEME,
    HEADER_SIGNING_TIME,
    HEADER_TIMESTAMP_SIGNATURE,
    MEDIA_TYPE_PAYLOAD,
    SignatureAlgorithm,
    SigningScheme,
)
from tests.support.pki import NOW, Chain, PrivateKey

Label = str | int


@dataclass(frozen=True, slots=True, kw_only=True)
class SignOptions:
    """How to sign. Defaults produce a notation-identical ``notary.x509`` envelope.

    Tamper knobs (all off by default):
        alg: header algorithm override; the signature uses its hash when the key family fits.
        crit_add / crit_remove: entries appended to / removed from the ``crit`` list.
        omit_signing_time: leave out the scheme's time header.
        certificates: the exact certificate list to embed (reorder, drop, add unrelated ones).
        extra_certs: certificates appended after the chain.
        x5chain_protected: COSE only, put x5chain in the protected bucket.
        x5chain_single_bstr: COSE only, encode a one-cert chain as a bare bstr.
        untagged: COSE only, omit tag 18.
        cose_time_tag: COSE time tag number (None = untagged epoch number).
        pss_salt_length: PSS salt length (None = hash length, like notation).
        payload_override: raw payload bytes instead of the notation payload.
    """

    scheme: SigningScheme = SigningScheme.X509
    signing_time: datetime = NOW
    expiry: datetime | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    timestamper: Callable[[bytes], bytes] | None = None
    signing_agent: str | None = "pullgate-tests/1.0"
    extra_protected: Mapping[Label, object] = field(default_factory=dict)
    extra_critical: tuple[Label, ...] = ()
    content_type: str = MEDIA_TYPE_PAYLOAD
    alg: SignatureAlgorithm | None = None
    crit_add: tuple[Label, ...] = ()
    crit_remove: tuple[Label, ...] = ()
    omit_signing_time: bool = False
    certificates: Sequence[x509.Certificate] | None = None
    extra_certs: Sequence[x509.Certificate] = ()
    x5chain_protected: bool = False
    x5chain_single_bstr: bool = False
    untagged: bool = False
    cose_time_tag: int | None = 1
    pss_salt_length: int | None = None
    payload_override: bytes | None = None

    def replace(self, **changes: Any) -> SignOptions:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_EC_WIDTH = {256: 32, 384: 48, 521: 66}


def key_algorithm(key: PrivateKey) -> SignatureAlgorithm:
    """The algorithm notation picks for a signing key (independent of the verifier's code).

    Sizes notation refuses (RSA-1024, ...) map to the nearest algorithm so that tests can
    still produce an envelope for them.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 3072:
            return SignatureAlgorithm.PS256
        return SignatureAlgorithm.PS384 if key.key_size < 4096 else SignatureAlgorithm.PS512
    if key.curve.key_size < 384:
        return SignatureAlgorithm.ES256
    return SignatureAlgorithm.ES384 if key.curve.key_size < 521 else SignatureAlgorithm.ES512


def raw_sign(
    key: PrivateKey, alg: SignatureAlgorithm, data: bytes, *, salt_length: int | None = None
) -> bytes:
    """Sign ``data``: PSS (salt = hash length unless given) or raw ``r || s`` ECDSA."""
    hash_alg = _HASHES[alg.hash_name]()
    if isinstance(key, rsa.RSAPrivateKey):
        if not alg.is_rsa:
            alg = key_algorithm(key)
            hash_alg = _HASHES[alg.hash_name]()
        salt = hash_alg.digest_size if salt_length is None else salt_length
        return key.sign(data, padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=salt), hash_alg)
    if alg.is_rsa:
        alg = key_algorithm(key)
        hash_alg = _HASHES[alg.hash_name]()
    r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hash_alg)))
    width = (key.curve.key_size + 7) // 8
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


def go_json(value: object, *, sort_keys: bool) -> bytes:
    """Compact JSON the way Go's ``encoding/json`` writes it (HTML-safe escaping)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode()


def rfc3339(moment: datetime) -> str:
    """Go ``time.RFC3339`` at seconds precision: ``Z`` for UTC, else the numeric offset."""
    moment = moment.replace(microsecond=0)
    offset = moment.utcoffset()
    if offset is None or not offset:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.isoformat()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(target: Descriptor, opts: SignOptions, *, sorted_keys: bool) -> bytes:
    if opts.payload_override is not None:
        return opts.payload_override
    artifact: dict[str, object] = {
        "mediaType": target.media_type,
        "digest": target.digest,
        "size": target.size,
    }
    annotations = {**target.annotations, **opts.annotations}
    if annotations:
        artifact["annotations"] = dict(sorted(annotations.items()))
    return go_json({"targetArtifact": artifact}, sort_keys=sorted_keys)


def _crit(opts: SignOptions, *, cose: bool) -> list[Label]:
    crit: list[Label] = [HEADER_SIGNING_SCHEME]
    if opts.scheme is SigningScheme.SIGNING_AUTHORITY:
        crit.append(HEADER_AUTHENTIC_SIGNING_TIME)
    if cose:
        if opts.expiry is not None:
            crit.append(HEADER_EXPIRY)
        crit.extend(opts.extra_critical)
    else:
        crit.extend(opts.extra_critical)
        if opts.expiry is not None:
            crit.append(HEADER_EXPIRY)
    crit = [c for c in crit if c not in opts.crit_remove]
    crit.extend(opts.crit_add)
    return crit


def _time_label(opts: SignOptions) -> str:
    if opts.scheme is SigningScheme.X509:
        return HEADER_SIGNING_TIME
    return HEADER_AUTHENTIC_SIGNING_TIME


def _chain_ders(chain: Chain, opts: SignOptions) -> list[bytes]:
    certs = list(opts.certificates) if opts.certificates is not None else list(chain.x509)
    certs.extend(opts.extra_certs)
    return [c.public_bytes(serialization.Encoding.DER) for c in certs]


def _algorithm(chain: Chain, opts: SignOptions) -> SignatureAlgorithm:
    return opts.alg or key_algorithm(chain.leaf.key)


def sign_jws(chain: Chain, target: Descriptor, **opts: Any) -> bytes:
    """A flattened JWS envelope over ``target`` signed by ``chain.leaf``.

    ``opts`` are :class:`SignOptions` fields.
    """
    options = SignOptions(**opts)
    alg = _algorithm(chain, options)
    header: dict[str, object] = {
        "alg": alg.value,
        "crit": _crit(options, cose=False),
        "cty": options.content_type,
        HEADER_SIGNING_SCHEME: options.scheme.value,
    }
    if not options.omit_signing_time:
        header[_time_label(options)] = rfc3339(options.signing_time)
    if options.expiry is not None:
        header[HEADER_EXPIRY] = rfc3339(options.expiry)
    header.update({str(k): v for k, v in options.extra_protected.items()})
    protected = _b64url(go_json(header, sort_keys=True))
    payload = _b64url(_payload(target, options, sorted_keys=True))
    signature = raw_sign(
        chain.leaf.key,
        alg,
        f"{protected}.{payload}".encode(),
        salt_length=options.pss_salt_length,
    )
    unprotected: dict[str, object] = {}
    if options.timestamper is not None:
        token = options.timestamper(signature)
        unprotected[HEADER_TIMESTAMP_SIGNATURE] = base64.b64encode(token).decode()
    unprotected["x5c"] = [base64.b64encode(der).decode() for der in _chain_ders(chain, options)]
    if options.signing_agent is not None:
        unprotected[HEADER_SIGNING_AGENT] = options.signing_agent
    envelope = {
        "payload": payload,
        "protected": protected,
        "header": unprotected,
        "signature": _b64url(signature),
    }
    return go_json(envelope, sort_keys=False)


def cbor_map(items: Mapping[Label, object]) -> dict[Label, object]:
    """``items`` ordered by encoded key bytes (RFC 8949 core deterministic, as go-cose)."""
    return dict(sorted(items.items(), key=lambda kv: cbor2.dumps(kv[0])))


def _cose_time(moment: datetime, opts: SignOptions) -> object:
    if opts.cose_time_tag == 0:
        return cbor2.CBORTag(0, rfc3339(moment))
    seconds = int(moment.timestamp())
    if opts.cose_time_tag is None:
        return seconds
    return cbor2.CBORTag(opts.cose_time_tag, seconds)


def sign_cose(chain: Chain, target: Descriptor, **opts: Any) -> bytes:
    """A COSE_Sign1 envelope over ``target`` signed by ``chain.leaf``.

    ``opts`` are :class:`SignOptions` fields.
    """
    options = SignOptions(**opts)
    alg = _algorithm(chain, options)
    ders = _chain_ders(chain, options)
    x5chain: object = ders[0] if options.x5chain_single_bstr else ders
    protected: dict[Label, object] = {
        1: alg.cose_id,
        2: _crit(options, cose=True),
        3: options.content_type,
        HEADER_SIGNING_SCHEME: options.scheme.value,
    }
    if not options.omit_signing_time:
        protected[_time_label(options)] = _cose_time(options.signing_time, options)
    if options.expiry is not None:
        protected[HEADER_EXPIRY] = _cose_time(options.expiry, options)
    protected.update(options.extra_protected)
    if options.x5chain_protected:
        protected[33] = x5chain
    protected_bytes = cbor2.dumps(cbor_map(protected))
    payload = _payload(target, options, sorted_keys=False)
    to_be_signed = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    signature = raw_sign(chain.leaf.key, alg, to_be_signed, salt_length=options.pss_salt_length)
    unprotected: dict[Label, object] = {}
    if not options.x5chain_protected:
        unprotected[33] = x5chain
    if options.signing_agent is not None:
        unprotected[HEADER_SIGNING_AGENT] = options.signing_agent
    if options.timestamper is not None:
        unprotected[HEADER_TIMESTAMP_SIGNATURE] = options.timestamper(signature)
    message = [protected_bytes, cbor_map(unprotected), payload, signature]
    if options.untagged:
        return cbor2.dumps(message)
    return cbor2.dumps(cbor2.CBORTag(18, message))
