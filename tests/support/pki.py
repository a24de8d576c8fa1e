"""Test PKI factory on ``cryptography``: roots, intermediates, leaves, TSA chains, bad variants.

Every certificate is built from a :class:`CertSpec`, so a test states exactly how its
certificate deviates from a well-formed Notary code-signing or timestamping certificate::

    pki = Pki()
    chain = pki.chain(key=KeySpec.rsa(2048))            # leaf -> intermediate -> root
    bad = pki.chain(leaf=CertSpec(ca=True))              # leaf with the CA flag
    tsa = pki.tsa_chain()                                # TSA leaf -> TSA root
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

NOW = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
"""The instant test PKIs are built around (today, 00:00 UTC); pass ``FixedClock(NOW)`` to verifiers.

It follows the real date because end-to-end tests run the CLI and the daemon on the system clock,
so certificates must be valid *now*, not on the day the tests were written."""

_CURVES: dict[int, ec.EllipticCurve] = {
    256: ec.SECP256R1(),
    384: ec.SECP384R1(),
    521: ec.SECP521R1(),
}

_key_cache: dict[tuple[str, int, int], PrivateKey] = {}


@dataclass(frozen=True, slots=True)
class KeySpec:
    """Key type and size. ``slot`` distinguishes several keys of the same kind."""

    kind: str  # "rsa" | "ec"
    size: int
    slot: int = 0

    @classmethod
    def rsa(cls, bits: int = 2048, slot: int = 0) -> KeySpec:
        return cls("rsa", bits, slot)

    @classmethod
    def ec(cls, bits: int = 256, slot: int = 0) -> KeySpec:
        return cls("ec", bits, slot)

    def generate(self, *, fresh: bool = False) -> PrivateKey:
        """A private key; cached per (kind, size, slot) because RSA generation is slow."""
        key_id = (self.kind, self.size, self.slot)
        if not fresh and key_id in _key_cache:
            return _key_cache[key_id]
        key: PrivateKey
        if self.kind == "rsa":
            key = rsa.generate_private_key(public_exponent=65537, key_size=self.size)
        elif self.kind == "ec":
            key = ec.generate_private_key(_CURVES[self.size])
        else:
            raise ValueError(self.kind)
        if not fresh:
            _key_cache[key_id] = key
        return key


ALL_KEYS: tuple[KeySpec, ...] = (
    KeySpec.rsa(2048),
    KeySpec.rsa(3072),
    KeySpec.rsa(4096),
    KeySpec.ec(256),
    KeySpec.ec(384),
    KeySpec.ec(521),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CertSpec:
    """How to build one certificate. ``None`` for an extension means "omit it".

    Defaults produce a well-formed Notary code-signing leaf valid around :data:`NOW`.
    """

    common_name: str = "pullgate test signer"
    organization: str = "pullgate"
    state: str = "WA"
    country: str = "US"
    key: KeySpec = KeySpec("rsa", 2048)
    not_before: datetime = NOW - timedelta(days=30)
    not_after: datetime = NOW + timedelta(days=365)
    ca: bool | None = False  # basicConstraints cA; None omits the extension
    path_length: int | None = None
    key_usage: frozenset[str] | None = frozenset({"digital_signature"})
    key_usage_critical: bool = True
    eku: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.CODE_SIGNING,)
    eku_critical: bool = False
    ocsp_urls: tuple[str, ...] = ()
    crl_urls: tuple[str, ...] = ()
    serial: int | None = None
    hash_alg: str = "sha256"

    def subject(self) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, self.country),
                x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, self.state),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                x509.NameAttribute(NameOID.COMMON_NAME, self.common_name),
            ]
        )

    def replace(self, **changes: object) -> CertSpec:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def ca_spec(name: str, key: KeySpec | None = None, path_length: int | None = None) -> CertSpec:
    """A well-formed CA certificate spec."""
    return CertSpec(
        common_name=name,
        key=key or KeySpec.rsa(2048, slot=1),
        not_before=NOW - timedelta(days=365),
        not_after=NOW + timedelta(days=3650),
        ca=True,
        path_length=path_length,
        key_usage=frozenset({"key_cert_sign", "crl_sign"}),
        eku=None,
    )


def tsa_leaf_spec(name: str = "pullgate test TSA", key: KeySpec | None = None) -> CertSpec:
    """A well-formed RFC 3161 TSA signing certificate spec (EKU timeStamping, critical)."""
    return CertSpec(
        common_name=name,
        key=key or KeySpec.rsa(2048, slot=5),
        not_before=NOW - timedelta(days=365),
        not_after=NOW + timedelta(days=3650),
        eku=(ExtendedKeyUsageOID.TIME_STAMPING,),
        eku_critical=True,
    )


_serials = itertools.count(0x1000)

_HASHES: dict[str, hashes.SHA256 | hashes.SHA384 | hashes.SHA512] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate with its private key and the spec it was built from."""

    cert: x509.Certificate
    key: PrivateKey
    spec: CertSpec

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True, slots=True)
class Chain:
    """Leaf first, root last (the order notation puts in ``x5c`` / ``x5chain``)."""

    certs: tuple[Issued, ...]

    @property
    def leaf(self) -> Issued:
        return self.certs[0]

    @property
    def root(self) -> Issued:
        return self.certs[-1]

    @property
    def x509(self) -> tuple[x509.Certificate, ...]:
        return tuple(c.cert for c in self.certs)


def issue(spec: CertSpec, issuer: Issued | None = None, *, fresh_key: bool = False) -> Issued:
    """Build one certificate; self-signed when ``issuer`` is None."""
    key = spec.key.generate(fresh=fresh_key)
    subject = spec.subject()
    issuer_name = issuer.cert.subject if issuer else subject
    signing_key: CertificateIssuerPrivateKeyTypes = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(spec.serial if spec.serial is not None else next(_serials))
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
    )
    if spec.ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=spec.ca, path_length=spec.path_length if spec.ca else None),
            critical=True,
        )
    if spec.key_usage is not None:
        flags = {
            name: name in spec.key_usage
            for name in (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
            )
        }
        builder = builder.add_extension(
            x509.KeyUsage(**flags, encipher_only=False, decipher_only=False),
            critical=spec.key_usage_critical,
        )
    if spec.eku is not None:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(spec.eku)), critical=spec.eku_critical
        )
    if spec.ocsp_urls:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(u),
                    )
                    for u in spec.ocsp_urls
                ]
            ),
            critical=False,
        )
    if spec.crl_urls:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(u)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                    for u in spec.crl_urls
                ]
            ),
            critical=False,
        )
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    cert = builder.sign(signing_key, _HASHES[spec.hash_alg])
    return Issued(cert, key, spec)


# DER of the extension OIDs the hostile-certificate edits swap (same length, so no length moves).
_EKU_OID_DER = b"\x06\x03\x55\x1d\x25"  # 2.5.29.37 extKeyUsage
_KU_OID_DER = b"\x06\x03\x55\x1d\x0f"  # 2.5.29.15 keyUsage


def reissue_edited(issued: Issued, issuer: Issued | None, edit: Callable[[bytes], bytes]) -> Issued:
    """``issued`` with its TBSCertificate DER rewritten by ``edit``, signed again by ``issuer``
    (itself when None): certificates ``cryptography``'s builder refuses to make.

    The signature is valid, so only the edited content can make verification fail.
    """
    original = asn1_x509.Certificate.load(issued.der)
    tbs_der = edit(original["tbs_certificate"].dump())
    signer = issuer.key if issuer is not None else issued.key
    digest = _HASHES[issued.spec.hash_alg]
    if isinstance(signer, rsa.RSAPrivateKey):
        signature = signer.sign(tbs_der, padding.PKCS1v15(), digest)
    else:
        signature = signer.sign(tbs_der, ec.ECDSA(digest))
    rebuilt = asn1_x509.Certificate(
        {
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs_der),
            "signature_algorithm": original["signature_algorithm"],
            "signature_value": signature,
        }
    )
    return Issued(x509.load_der_x509_certificate(rebuilt.dump()), issued.key, issued.spec)


def eku_relabelled_as_key_usage(tbs: bytes) -> bytes:
    """An edit for :func:`reissue_edited`: the extKeyUsage extension's OID becomes keyUsage's.

    On a certificate that has a keyUsage extension already, that makes two (``cryptography``
    then refuses to read any extension: ``DuplicateExtension``); on one without, a single
    keyUsage whose value (a SEQUENCE of OIDs) is not the BIT STRING keyUsage is (``ValueError``
    when read).
    """
    if tbs.count(_EKU_OID_DER) != 1:
        raise ValueError("the certificate must carry exactly one extKeyUsage extension")
    return tbs.replace(_EKU_OID_DER, _KU_OID_DER)


def common_name_garbled(common_name: str) -> Callable[[bytes], bytes]:
    """An edit for :func:`reissue_edited`: the UTF8String ``common_name`` becomes invalid UTF-8.

    The length is kept, so only the string's bytes change. ``cryptography`` loads such a
    certificate and raises ``ValueError`` when its name is first read; Go refuses to parse it.
    The name must appear exactly once in the TBSCertificate (give the subject's CN of a
    certificate whose issuer is named differently).
    """
    value = common_name.encode()
    if len(value) >= 0x80:
        raise ValueError("common names of 128 bytes or more are not supported")
    original = bytes([0x0C, len(value)]) + value
    garbled = bytes([0x0C, len(value)]) + b"\xff" * len(value)

    def edit(tbs: bytes) -> bytes:
        if tbs.count(original) != 1:
            raise ValueError(f"the TBSCertificate must name {common_name!r} exactly once")
        return tbs.replace(original, garbled)

    return edit


def common_name_made_integer(common_name: str) -> Callable[[bytes], bytes]:
    """An edit for :func:`reissue_edited`: the UTF8String CN attribute ``common_name`` becomes
    an attribute of an unregistered type (1.2.3.4) whose value is an INTEGER, not a string.

    Lengths are kept. Go refuses such a name ("unsupported string type"); asn1crypto accepts it
    (the value of an unknown type is opaque); ``cryptography`` loads the certificate and raises
    ``ValueError`` when the name is first read.
    """
    value = common_name.encode()
    if len(value) >= 0x80:
        raise ValueError("common names of 128 bytes or more are not supported")
    original = b"\x06\x03\x55\x04\x03" + bytes([0x0C, len(value)]) + value
    made_integer = b"\x06\x03\x2a\x03\x04" + bytes([0x02, len(value)]) + value

    def edit(tbs: bytes) -> bytes:
        if tbs.count(original) != 1:
            raise ValueError(f"the TBSCertificate must name {common_name!r} exactly once")
        return tbs.replace(original, made_integer)

    return edit


def last_extension_duplicated(tbs: bytes) -> bytes:
    """An edit for :func:`reissue_edited`: the last extension appears twice.

    asn1crypto parses the result; ``cryptography`` raises ``x509.DuplicateExtension`` when the
    extensions are first read, and Go refuses the certificate.
    """
    parsed = asn1_x509.TbsCertificate.load(tbs)
    extensions = [asn1_x509.Extension.load(ext.dump()) for ext in parsed["extensions"]]
    if not extensions:
        raise ValueError("the certificate has no extension to duplicate")
    extensions.append(asn1_x509.Extension.load(extensions[-1].dump()))
    parsed["extensions"] = asn1_x509.Extensions(extensions)
    return bytes(parsed.dump())


@dataclass
class Pki:
    """Builds chains for one test; a fresh object is cheap (keys are cached per process)."""

    name: str = "pullgate test"
    issued: list[Issued] = field(default_factory=list)

    def root(self, spec: CertSpec | None = None) -> Issued:
        out = issue(spec or ca_spec(f"{self.name} root", KeySpec.rsa(2048, slot=1)))
        self.issued.append(out)
        return out

    def chain(
        self,
        *,
        key: KeySpec | None = None,
        leaf: CertSpec | None = None,
        intermediate: CertSpec | None = None,
        root: CertSpec | None = None,
        depth: int = 3,
    ) -> Chain:
        """A code-signing chain of ``depth`` certificates (1 = self-signed leaf)."""
        leaf_spec = leaf or CertSpec()
        if key is not None:
            leaf_spec = leaf_spec.replace(key=key)
        if depth == 1:
            out = Chain((issue(leaf_spec),))
            self.issued.extend(out.certs)
            return out
        root_issued = issue(root or ca_spec(f"{self.name} root", KeySpec.rsa(2048, slot=1)))
        certs: list[Issued] = [root_issued]
        parent = root_issued
        for level in range(depth - 2):
            spec = intermediate or ca_spec(
                f"{self.name} intermediate {level}", KeySpec.rsa(2048, slot=2 + level)
            )
            parent = issue(spec, parent)
            certs.append(parent)
        certs.append(issue(leaf_spec, parent))
        out = Chain(tuple(reversed(certs)))
        self.issued.extend(out.certs)
        return out

    def tsa_chain(self, *, leaf: CertSpec | None = None, root: CertSpec | None = None) -> Chain:
        """TSA leaf -> TSA root."""
        root_issued = issue(root or ca_spec(f"{self.name} TSA root", KeySpec.rsa(2048, slot=6)))
        leaf_issued = issue(leaf or tsa_leaf_spec(f"{self.name} TSA"), root_issued)
        return Chain((leaf_issued, root_issued))


def write_store(
    trust_dir: Path, store_type: str, name: str, certs: Sequence[x509.Certificate]
) -> Path:
    """Write ``certs`` as PEM files into ``truststore/x509/<type>/<name>/`` under ``trust_dir``."""
    store = trust_dir / "truststore" / "x509" / store_type / name
    store.mkdir(parents=True, exist_ok=True)
    for i, cert in enumerate(certs):
        (store / f"cert{i}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return store
