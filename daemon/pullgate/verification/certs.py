"""Code-signing certificate chain rules (notary-verification.md §6.1-6.2).

The chain carried in an envelope (leaf first) must be internally consistent *before* any trust
decision: notation-core-go's ``ValidateCodeSigningCertChain``, with no validity-period check at
verification time. Every violation is an **integrity** failure.

* One certificate: it must be self-signed (signature verifies with its own key, SHA-1 tolerated,
  MD5 not; raw subject == raw issuer) and satisfy the leaf rules.
* Two or more: the last must be a self-issued CA that verifies itself under Go's
  ``CheckSignatureFrom`` rules; no earlier certificate may be self-signed; each certificate must
  be signed by the next one (SHA-1/MD5 refused) and its raw issuer must equal the next raw
  subject.
* Leaf: basicConstraints, if present, ``cA=false``; keyUsage present and critical with
  digitalSignature and none of keyEncipherment, dataEncipherment, keyAgreement, keyCertSign,
  cRLSign, encipherOnly, decipherOnly; EKU, if present, without serverAuth, clientAuth,
  emailProtection, timeStamping, OCSPSigning (anyExtendedKeyUsage is tolerated, as in Go);
  key per §6.1.
* CA at index ``i``: basicConstraints ``cA=true``; keyUsage present and critical with
  keyCertSign; ``pathLenConstraint``, if present, ≥ ``i - 1``.

The helpers :func:`is_self_signed`, :func:`check_issued_by` and :func:`fingerprint_sha256` are
shared with the trust-store and timestamp code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.algorithms import algorithm_for_key
from pullgate.verification.cache import BoundedMemo, memo

_FORBIDDEN_LEAF_EKUS = {
    ExtendedKeyUsageOID.SERVER_AUTH: "ServerAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "ClientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "EmailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "TimeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}

X509_DECODE_ERRORS = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.InvalidVersion,  # not a ValueError
)
"""What ``cryptography`` raises while loading or lazily decoding certificates, CRLs and OCSP
responses (names, extensions and signature parameters are decoded when first read)."""


def _fail(detail: str) -> VerificationFailed:
    return VerificationFailed(Reason.INTEGRITY, detail)


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's DER encoding (notation's thumbprint)."""
    return certificate_digest(cert).hex()


# --- raw names -------------------------------------------------------------------------------


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """Read one DER TLV header at ``pos``: (tag byte, content start, content end)."""
    if pos + 2 > len(data):
        raise _fail("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _fail("high-tag-number DER tags are not expected in a TBSCertificate")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise _fail("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise _fail("truncated DER")
    return tag, pos, end


def _signature_bits_whole(der: bytes) -> bool:
    """True when the outer signatureValue BIT STRING has no unused bits."""
    _, pos, _ = _read_tlv(der, 0)  # Certificate
    _, _, pos = _read_tlv(der, pos)  # skip TBSCertificate
    _, _, pos = _read_tlv(der, pos)  # skip signatureAlgorithm
    tag, start, end = _read_tlv(der, pos)
    return tag == 0x03 and end > start and der[start] == 0


def _serial_is_positive(der: bytes) -> bool:
    """True when the DER certificate's serialNumber INTEGER is > 0 (read before parsing)."""
    _, pos, _ = _read_tlv(der, 0)  # Certificate
    _, pos, _ = _read_tlv(der, pos)  # TBSCertificate
    tag, start, end = _read_tlv(der, pos)
    if tag == 0xA0:  # explicit version
        tag, start, end = _read_tlv(der, end)
    if tag != 0x02 or start == end:
        return False
    content = der[start:end]
    return content[0] < 0x80 and any(content)


def load_certificate(der: bytes) -> x509.Certificate:
    """Parse one DER certificate, refusing what Go's parser refuses that matters here.

    Non-positive serial numbers are refused up front (Go >= 1.23 rejects negative ones;
    ``cryptography`` would only warn), and so is a signatureValue BIT STRING with unused bits
    (``cryptography`` silently ignores them, so a re-encoded certificate would still verify).
    The subject and issuer names are read here, because ``cryptography`` decodes them only when
    first used: a name Go's parser refuses (an invalid string value) fails now, as an integrity
    error, instead of later while a message or an identity is being rendered.

    Certificates that were accepted are memoised by their DER bytes (a certificate object is
    immutable), so the same bytes yield the same object.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` when the bytes are not a usable certificate.
    """
    known = _LOADED.get(der)
    if known is not None:
        return known
    if not _serial_is_positive(der):
        raise _fail("certificate serial number is missing or not positive")
    if not _signature_bits_whole(der):
        raise _fail("certificate signature BIT STRING has unused bits")
    try:
        cert = x509.load_der_x509_certificate(der)
        _ = cert.subject, cert.issuer
    except X509_DECODE_ERRORS as exc:
        raise _fail(f"malformed certificate: {exc}") from exc
    _LOADED.put(bytes(der), cert)
    return cert


def _tbs_and_names(der: bytes) -> tuple[bytes, tuple[bytes, bytes] | None]:
    """The TBSCertificate TLV of a certificate's DER, and its raw (issuer, subject) Names.

    The names are None when the TBS does not have the expected shape.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` when the outer structure is not readable.
    """
    _, pos, _ = _read_tlv(der, 0)  # Certificate
    _, start, end = _read_tlv(der, pos)  # TBSCertificate
    tbs = der[pos:end]
    offset = start - pos
    fields: list[bytes] = []
    try:
        at, stop = offset, len(tbs)
        while at < stop and len(fields) < 6:
            _, _, after = _read_tlv(tbs, at)
            fields.append(tbs[at:after])
            at = after
    except VerificationFailed:
        return tbs, None
    # With an explicit [0] version: version, serial, sigalg, issuer, validity, subject.
    if fields and fields[0][:1] == b"\xa0":
        fields = fields[1:]
    if len(fields) < 5:
        return tbs, None
    return tbs, (fields[2], fields[4])


@dataclass(frozen=True, slots=True, kw_only=True)
class _Facts:
    """What the chain rules need from one certificate object, derived once.

    ``cert`` is held so that the object stays alive (and its ``id`` unique) while memoised.
    """

    cert: x509.Certificate
    der: bytes
    digest: bytes
    tbs: bytes
    names: tuple[bytes, bytes] | None


# Facts per live certificate object, keyed by ``id`` and confirmed with ``is``.
_FACTS: BoundedMemo[int, _Facts] = memo("certificate facts (by object)", 512)
# DER -> parsed certificate, for certificates that passed :func:`load_certificate`.
_LOADED: BoundedMemo[bytes, x509.Certificate] = memo("loaded certificates (by DER)", 256)
# (check kind, child DER SHA-256, parent DER SHA-256) of certificate signatures that verified,
# and (profile kind, DER SHA-256, b"") of certificates that passed the leaf or CA rules.
_VERIFIED: BoundedMemo[tuple[str, bytes, bytes], bool] = memo(
    "passed certificate checks (by DER digests)", 1024
)
_CA_LINK = "ca-link"
_SELF_SIGNATURE = "self-signature"
_PROFILE = "profile-at-index-"


def _facts(cert: x509.Certificate) -> _Facts:
    """The memoised :class:`_Facts` of ``cert`` (one DER serialisation per certificate)."""
    found = _FACTS.get(id(cert))
    if found is not None and found.cert is cert:
        return found
    der = cert.public_bytes(serialization.Encoding.DER)
    try:
        tbs, names = _tbs_and_names(der)
    except VerificationFailed:
        tbs, names = cert.tbs_certificate_bytes, None
    facts = _Facts(cert=cert, der=der, digest=hashlib.sha256(der).digest(), tbs=tbs, names=names)
    _FACTS.put(id(cert), facts)
    return facts


def certificate_der(cert: x509.Certificate) -> bytes:
    """The DER encoding of ``cert`` (memoised per certificate object)."""
    return _facts(cert).der


def certificate_digest(cert: x509.Certificate) -> bytes:
    """SHA-256 of the DER encoding of ``cert`` (memoised per certificate object)."""
    return _facts(cert).digest


def _raw_names(facts: _Facts) -> tuple[bytes, bytes]:
    """The exact DER bytes of the issuer and subject Names as they appear in the TBS."""
    if facts.names is None:
        raise _fail("malformed TBSCertificate")
    return facts.names


def _names_chain(child: _Facts, parent: _Facts) -> bool:
    """True when the child's raw issuer equals the parent's raw subject."""
    return _raw_names(child)[0] == _raw_names(parent)[1]


# --- signatures ------------------------------------------------------------------------------


def _verify_cert_signature(
    facts: _Facts, issuer_key: CertificatePublicKeyTypes, *, allow_sha1: bool
) -> None:
    """Check the certificate's signature with ``issuer_key`` (raises on any problem)."""
    cert = facts.cert
    try:
        hash_alg = cert.signature_hash_algorithm
        params = cert.signature_algorithm_parameters
    except X509_DECODE_ERRORS as exc:
        raise _fail(f"unsupported certificate signature algorithm: {exc}") from exc
    if isinstance(hash_alg, hashes.MD5) or (isinstance(hash_alg, hashes.SHA1) and not allow_sha1):
        raise _fail(f"insecure certificate signature algorithm {hash_alg.name}")
    signature = cert.signature
    data = facts.tbs
    try:
        if isinstance(issuer_key, rsa.RSAPublicKey):
            if issuer_key.key_size < 1024:  # Go >= 1.24 refuses to verify with such keys
                raise _fail("issuer RSA key is shorter than 1024 bits")
            if not isinstance(params, padding.PSS | padding.PKCS1v15) or hash_alg is None:
                raise _fail("certificate signature does not fit an RSA issuer key")
            issuer_key.verify(signature, data, params, hash_alg)
        elif isinstance(issuer_key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                raise _fail("certificate signature does not fit an EC issuer key")
            issuer_key.verify(signature, data, params)
        elif isinstance(issuer_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            if hash_alg is not None:
                raise _fail("certificate signature does not fit an EdDSA issuer key")
            issuer_key.verify(signature, data)
        else:
            raise _fail("unsupported issuer key type")
    except InvalidSignature as exc:
        raise _fail("certificate signature does not verify") from exc
    except X509_DECODE_ERRORS as exc:
        raise _fail(f"certificate signature check failed: {exc}") from exc


def _public_key(cert: x509.Certificate) -> CertificatePublicKeyTypes:
    try:
        return cert.public_key()
    except X509_DECODE_ERRORS as exc:
        raise _fail(f"unsupported certificate public key: {exc}") from exc


def _extension(
    cert: x509.Certificate, oid: x509.ObjectIdentifier
) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    except X509_DECODE_ERRORS as exc:
        raise _fail(f"malformed certificate extensions: {exc}") from exc


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    ext = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if ext is None:
        return None
    if not isinstance(ext.value, x509.BasicConstraints):
        raise _fail("malformed basicConstraints")
    return ext.value


def _key_usage(cert: x509.Certificate) -> tuple[x509.KeyUsage, bool] | None:
    ext = _extension(cert, ExtensionOID.KEY_USAGE)
    if ext is None:
        return None
    if not isinstance(ext.value, x509.KeyUsage):
        raise _fail("malformed keyUsage")
    return ext.value, ext.critical


def _check_signature_from(child: _Facts, parent: _Facts) -> None:
    """Go's ``CheckSignatureFrom``: parent must be allowed to sign certificates.

    The outcome depends on the two DER encodings only, so a success is memoised by their
    digests; failures are always recomputed.
    """
    key = (_CA_LINK, child.digest, parent.digest)
    if _VERIFIED.get(key):
        return
    issuer = parent.cert
    constraints = _basic_constraints(issuer)
    if constraints is None:
        try:
            version = issuer.version
        except X509_DECODE_ERRORS as exc:
            raise _fail("unsupported certificate version") from exc
        if version != x509.Version.v1:
            raise _fail("issuer is not a CA (no basicConstraints)")
    elif not constraints.ca:
        raise _fail("issuer is not a CA")
    usage = _key_usage(issuer)
    if usage is not None and _usage_bits(usage[0]) and not usage[0].key_cert_sign:
        raise _fail("issuer keyUsage lacks keyCertSign")
    _verify_cert_signature(child, _public_key(issuer), allow_sha1=False)
    _VERIFIED.put(key, True)


def _usage_bits(ku: x509.KeyUsage) -> frozenset[str]:
    """The names of the keyUsage bits that are set.

    cryptography lets encipherOnly/decipherOnly be read only when keyAgreement is set.
    """
    bits = {
        "digitalSignature": ku.digital_signature,
        "contentCommitment": ku.content_commitment,
        "keyEncipherment": ku.key_encipherment,
        "dataEncipherment": ku.data_encipherment,
        "keyAgreement": ku.key_agreement,
        "keyCertSign": ku.key_cert_sign,
        "cRLSign": ku.crl_sign,
    }
    if ku.key_agreement:
        bits["encipherOnly"] = ku.encipher_only
        bits["decipherOnly"] = ku.decipher_only
    return frozenset(name for name, on in bits.items() if on)


# The only keyUsage bits a signing leaf may carry.
_LEAF_USAGE_BITS = frozenset({"digitalSignature", "contentCommitment"})


def _issued_by(child: _Facts, parent: _Facts) -> bool:
    """:func:`check_issued_by` on facts. The free name comparison runs first."""
    try:
        if not _names_chain(child, parent):
            return False
        _check_signature_from(child, parent)
    except VerificationFailed:
        return False
    return True


def check_issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Go's ``isIssuedBy``: ``parent`` (a CA) signed ``child`` and the raw names chain.

    The parent must be a CA (basicConstraints ``cA=true``, or a v1 certificate), carry
    keyCertSign when it has a keyUsage, and the link must not be signed with SHA-1 or MD5.

    Returns:
        True when the signature verifies and ``child``'s raw issuer equals ``parent``'s raw
        subject; False otherwise (never raises for bad input).
    """
    return _issued_by(_facts(child), _facts(parent))


def is_self_signed(cert: x509.Certificate) -> bool:
    """Self-signed in the sense of a single-certificate envelope chain (§6.2).

    The signature verifies with the certificate's own key (SHA-1 tolerated, MD5 refused; no CA
    requirement) and the raw subject equals the raw issuer.
    """
    facts = _facts(cert)
    try:
        if not _names_chain(facts, facts):
            return False
        key = (_SELF_SIGNATURE, facts.digest, facts.digest)
        if not _VERIFIED.get(key):
            _verify_cert_signature(facts, _public_key(cert), allow_sha1=True)
            _VERIFIED.put(key, True)
    except VerificationFailed:
        return False
    return True


def is_self_issued_ca(cert: x509.Certificate) -> bool:
    """Self-signed *as a CA* (Go ``isSelfSigned``): :func:`check_issued_by` on itself."""
    facts = _facts(cert)
    return _issued_by(facts, facts)


# --- leaf and CA profiles --------------------------------------------------------------------


def _validate_leaf(cert: x509.Certificate) -> None:
    constraints = _basic_constraints(cert)
    if constraints is not None and constraints.ca:
        raise _fail("leaf certificate must not be a CA")
    usage = _key_usage(cert)
    if usage is None:
        raise _fail("leaf keyUsage extension must be present")
    ku, critical = usage
    if not critical:
        raise _fail("leaf keyUsage extension must be marked critical")
    if not ku.digital_signature:
        raise _fail("leaf keyUsage must include digitalSignature")
    if _usage_bits(ku) - _LEAF_USAGE_BITS:
        raise _fail("leaf keyUsage must be digitalSignature only")
    eku_ext = _extension(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    if eku_ext is not None:
        if not isinstance(eku_ext.value, x509.ExtendedKeyUsage):
            raise _fail("malformed extendedKeyUsage")
        for oid in eku_ext.value:
            if oid in _FORBIDDEN_LEAF_EKUS:
                raise _fail(f"leaf extended key usage must not contain {_FORBIDDEN_LEAF_EKUS[oid]}")
    algorithm_for_key(_public_key(cert))


def _validate_ca(cert: x509.Certificate, expected_path_len: int) -> None:
    constraints = _basic_constraints(cert)
    if constraints is None or not constraints.ca:
        raise _fail("CA certificate must have basicConstraints cA=true")
    if constraints.path_length is not None and constraints.path_length < expected_path_len:
        raise _fail(
            f"CA path length {constraints.path_length} is below the required {expected_path_len}"
        )
    usage = _key_usage(cert)
    if usage is None:
        raise _fail("CA keyUsage extension must be present")
    if not usage[1]:
        raise _fail("CA keyUsage extension must be marked critical")
    if not usage[0].key_cert_sign:
        raise _fail("CA keyUsage must include keyCertSign")


def _check_profile(facts: _Facts, index: int) -> None:
    """Leaf rules at index 0, CA rules (path length ``index - 1``) above; successes memoised."""
    key = (f"{_PROFILE}{index}", facts.digest, b"")
    if _VERIFIED.get(key):
        return
    if index == 0:
        _validate_leaf(facts.cert)
    else:
        _validate_ca(facts.cert, index - 1)
    _VERIFIED.put(key, True)


def validate_signing_chain(certs: Sequence[x509.Certificate]) -> None:
    """Validate an envelope's code-signing chain (leaf first) per §6.2.

    Args:
        certs: The envelope's certificates, leaf first, root last.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` for any structural or profile violation.
    """
    if not certs:
        raise _fail("certificate chain must contain at least one certificate")
    if len(certs) == 1:
        leaf = certs[0]
        if not is_self_signed(leaf):
            raise _fail("a single-certificate chain must be a self-signed certificate")
        _validate_leaf(leaf)
        return
    chain = [_facts(cert) for cert in certs]
    last = len(chain) - 1
    for index, facts in enumerate(chain):
        if index == last:
            _check_signature_from(facts, facts)
            if not _names_chain(facts, facts):
                raise _fail("root certificate is not self-issued")
        else:
            if _issued_by(facts, facts):
                raise _fail(f"certificate {index} is self-signed but is not the last one")
            _check_signature_from(facts, chain[index + 1])
            if not _names_chain(facts, chain[index + 1]):
                raise _fail(f"certificate {index} issuer does not match the next subject")
        _check_profile(facts, index)
