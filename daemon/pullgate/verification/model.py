"""Envelope-level vocabulary shared by the JWS and COSE codecs and the verifier.

Facts from the Notary Project signature specification (``signature-specification.md``,
``signature-envelope-jws.md``, ``signature-envelope-cose.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from cryptography import x509

from pullgate.common.descriptor import Descriptor

MEDIA_TYPE_JWS = "application/jose+json"
MEDIA_TYPE_COSE = "application/cose"
MEDIA_TYPE_PAYLOAD = "application/vnd.cncf.notary.payload.v1+json"
ARTIFACT_TYPE_SIGNATURE = "application/vnd.cncf.notary.signature"
MEDIA_TYPE_EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"

HEADER_SIGNING_SCHEME = "io.cncf.notary.signingScheme"
HEADER_SIGNING_TIME = "io.cncf.notary.signingTime"
HEADER_AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
HEADER_EXPIRY = "io.cncf.notary.expiry"
HEADER_VERIFICATION_PLUGIN = "io.cncf.notary.verificationPlugin"
HEADER_VERIFICATION_PLUGIN_MIN_VERSION = "io.cncf.notary.verificationPluginMinVersion"
HEADER_TIMESTAMP_SIGNATURE = "io.cncf.notary.timestampSignature"
HEADER_SIGNING_AGENT = "io.cncf.notary.signingAgent"


class EnvelopeFormat(StrEnum):
    """Envelope media types notation understands."""

    JWS = MEDIA_TYPE_JWS
    COSE = MEDIA_TYPE_COSE


class SigningScheme(StrEnum):
    """``io.cncf.notary.signingScheme`` values."""

    X509 = "notary.x509"
    SIGNING_AUTHORITY = "notary.x509.signingAuthority"


class SignatureAlgorithm(StrEnum):
    """The six Notary signature algorithms, named by their JWS ``alg``."""

    PS256 = "PS256"
    PS384 = "PS384"
    PS512 = "PS512"
    ES256 = "ES256"
    ES384 = "ES384"
    ES512 = "ES512"

    @property
    def hash_name(self) -> str:
        """``sha256`` / ``sha384`` / ``sha512``."""
        return {"256": "sha256", "384": "sha384", "512": "sha512"}[self.value[2:]]

    @property
    def is_rsa(self) -> bool:
        """RSASSA-PSS (else ECDSA)."""
        return self.value.startswith("PS")

    @property
    def cose_id(self) -> int:
        """COSE algorithm identifier (RFC 9053 / RFC 8230)."""
        return _COSE_IDS[self]

    @property
    def display_name(self) -> str:
        """notation's human name (``RSASSA-PSS-SHA-256``, ``ECDSA-SHA-384``)."""
        family = "RSASSA-PSS" if self.is_rsa else "ECDSA"
        return f"{family}-SHA-{self.value[2:]}"

    @classmethod
    def from_cose_id(cls, value: int) -> SignatureAlgorithm | None:
        """Inverse of :attr:`cose_id`; None when unknown."""
        for alg, ident in _COSE_IDS.items():
            if ident == value:
                return alg
        return None


_COSE_IDS = MappingProxyType(
    {
        SignatureAlgorithm.PS256: -37,
        SignatureAlgorithm.PS384: -38,
        SignatureAlgorithm.PS512: -39,
        SignatureAlgorithm.ES256: -7,
        SignatureAlgorithm.ES384: -35,
        SignatureAlgorithm.ES512: -36,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeContent:
    """A parsed (and, when produced by ``verify_envelope``, integrity-checked) envelope.

    ``signing_time`` holds ``io.cncf.notary.signingTime`` for ``notary.x509`` and
    ``io.cncf.notary.authenticSigningTime`` for ``notary.x509.signingAuthority``.
    ``certificates`` is leaf first. ``raw_signature`` is the signature bytes that an RFC 3161
    countersignature's message imprint covers.
    """

    format: EnvelopeFormat
    algorithm: SignatureAlgorithm
    scheme: SigningScheme
    signing_time: datetime
    expiry: datetime | None
    certificates: tuple[x509.Certificate, ...]
    raw_signature: bytes
    payload: bytes
    target: Descriptor
    content_type: str
    timestamp_token: bytes | None = None
    signing_agent: str | None = None
    critical: tuple[str, ...] = ()
    extended_attributes: Mapping[str, object] = field(default_factory=dict)
    verification_plugin: str | None = None
    verification_plugin_min_version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodedEnvelope:
    """A structurally valid JWS or COSE envelope; nothing cryptographic has been checked yet.

    ``signed_bytes`` is what the signature covers (the JWS signing input or the COSE
    ``Sig_structure``); ``pss_salt_auto`` says whether RSASSA-PSS accepts any salt length (JWS,
    as golang-jwt verifies) or only the hash length (COSE, as go-cose does).
    """

    algorithm: SignatureAlgorithm
    scheme: SigningScheme
    signing_time: datetime
    expiry: datetime | None
    content_type: str
    critical: tuple[str, ...]
    extended_attributes: Mapping[str, object]
    payload: bytes
    signature: bytes
    certificate_ders: tuple[bytes, ...]
    timestamp_token: bytes | None
    signing_agent: str | None
    signed_bytes: bytes
    pss_salt_auto: bool
