"""Code-signing certificate chain rules (docs/notation.md §6.1-6.2).

The chain carried in an envelope (leaf first) must be internally consistent *before* any trust
decision: notation-core-go's ``ValidateCodeSigningCertChain``, with no validity-period check at
verification time. Every violation is an **integrity** failure.

* One certificate: it must be self-signed (signature verifies with its own key, SHA-1 tolerated,
  MD5 not; raw subject == raw issuer) and satisfy the leaf rules.
* Two or more: the last must be a self-issued CA that verifies itself under Go's
  ``CheckSignatureFrom`` rules; no earlier certificate may be self-signed; each certificate must
  be signed by the next one (SHA-1/MD5 refused) and its raw issuer must equal the next raw
  subject.
* Leaf and CA profiles: :mod:`pullgate.verification.x509.profiles`.

Certificates are loaded, and the facts compared here (DER digests, raw Names) derived, by
:mod:`pullgate.verification.x509.loading`; its public names are re-exported here.

The helpers :func:`is_self_signed`, :func:`check_issued_by` and :func:`fingerprint_sha256` are
shared with the trust-store and timestamp code.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.cache import CertMemo
from pullgate.verification.x509.loading import (
    X509_DECODE_ERRORS,
    CertFacts,
    cert_facts,
    certificate_der,
    certificate_digest,
    fingerprint_sha256,
    load_certificate,
    names_chain,
)
from pullgate.verification.x509.profiles import (
    basic_constraints,
    key_usage,
    public_key_of,
    usage_bits,
    validate_ca,
    validate_leaf,
)

__all__ = [
    "X509_DECODE_ERRORS",
    "certificate_der",
    "certificate_digest",
    "check_issued_by",
    "fingerprint_sha256",
    "is_self_issued_ca",
    "is_self_signed",
    "load_certificate",
    "validate_signing_chain",
]

# Keys of :attr:`CertMemo.checks`: (check kind, child DER SHA-256, parent DER SHA-256) of
# certificate signatures that verified, and (profile kind, DER SHA-256, b"") of certificates that
# passed the leaf or CA rules.
_CA_LINK = "ca-link"
_SELF_SIGNATURE = "self-signature"
_PROFILE = "profile-at-index-"


def _fail(detail: str) -> VerificationFailed:
    return VerificationFailed(Reason.INTEGRITY, detail)


# --- signatures ------------------------------------------------------------------------------


def _verify_cert_signature(
    facts: CertFacts, issuer_key: CertificatePublicKeyTypes, *, allow_sha1: bool
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


def _check_signature_from(child: CertFacts, parent: CertFacts, memo: CertMemo | None) -> None:
    """Go's ``CheckSignatureFrom``: parent must be allowed to sign certificates.

    The outcome depends on the two DER encodings only, so a success is memoised by their
    digests; failures are always recomputed.
    """
    key = (_CA_LINK, child.digest, parent.digest)
    if memo is not None and memo.checks.get(key):
        return
    issuer = parent.cert
    constraints = basic_constraints(issuer)
    if constraints is None:
        try:
            version = issuer.version
        except X509_DECODE_ERRORS as exc:
            raise _fail("unsupported certificate version") from exc
        if version != x509.Version.v1:
            raise _fail("issuer is not a CA (no basicConstraints)")
    elif not constraints.ca:
        raise _fail("issuer is not a CA")
    usage = key_usage(issuer)
    if usage is not None and usage_bits(usage[0]) and not usage[0].key_cert_sign:
        raise _fail("issuer keyUsage lacks keyCertSign")
    _verify_cert_signature(child, public_key_of(issuer), allow_sha1=False)
    if memo is not None:
        memo.checks.put(key, True)


def _issued_by(child: CertFacts, parent: CertFacts, memo: CertMemo | None) -> bool:
    """:func:`check_issued_by` on facts. The free name comparison runs first."""
    try:
        if not names_chain(child, parent):
            return False
        _check_signature_from(child, parent, memo)
    except VerificationFailed:
        return False
    return True


def check_issued_by(
    child: x509.Certificate, parent: x509.Certificate, memo: CertMemo | None = None
) -> bool:
    """Go's ``isIssuedBy``: ``parent`` (a CA) signed ``child`` and the raw names chain.

    The parent must be a CA (basicConstraints ``cA=true``, or a v1 certificate), carry
    keyCertSign when it has a keyUsage, and the link must not be signed with SHA-1 or MD5.

    Returns:
        True when the signature verifies and ``child``'s raw issuer equals ``parent``'s raw
        subject; False otherwise (never raises for bad input).
    """
    return _issued_by(cert_facts(child, memo), cert_facts(parent, memo), memo)


def is_self_signed(cert: x509.Certificate, memo: CertMemo | None = None) -> bool:
    """Self-signed in the sense of a single-certificate envelope chain (§6.2).

    The signature verifies with the certificate's own key (SHA-1 tolerated, MD5 refused; no CA
    requirement) and the raw subject equals the raw issuer.
    """
    facts = cert_facts(cert, memo)
    try:
        if not names_chain(facts, facts):
            return False
        key = (_SELF_SIGNATURE, facts.digest, facts.digest)
        if memo is None or not memo.checks.get(key):
            _verify_cert_signature(facts, public_key_of(cert), allow_sha1=True)
            if memo is not None:
                memo.checks.put(key, True)
    except VerificationFailed:
        return False
    return True


def is_self_issued_ca(cert: x509.Certificate, memo: CertMemo | None = None) -> bool:
    """Self-signed *as a CA* (Go ``isSelfSigned``): :func:`check_issued_by` on itself."""
    facts = cert_facts(cert, memo)
    return _issued_by(facts, facts, memo)


# --- the chain -------------------------------------------------------------------------------


def _check_profile(facts: CertFacts, index: int, memo: CertMemo | None) -> None:
    """Leaf rules at index 0, CA rules (path length ``index - 1``) above; successes memoised."""
    key = (f"{_PROFILE}{index}", facts.digest, b"")
    if memo is not None and memo.checks.get(key):
        return
    if index == 0:
        validate_leaf(facts.cert)
    else:
        validate_ca(facts.cert, index - 1)
    if memo is not None:
        memo.checks.put(key, True)


def validate_signing_chain(certs: Sequence[x509.Certificate], memo: CertMemo | None = None) -> None:
    """Validate an envelope's code-signing chain (leaf first) per §6.2.

    Args:
        certs: The envelope's certificates, leaf first, root last.
        memo: The snapshot's certificate memos (None: nothing is memoised).

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` for any structural or profile violation.
    """
    if not certs:
        raise _fail("certificate chain must contain at least one certificate")
    if len(certs) == 1:
        leaf = certs[0]
        if not is_self_signed(leaf, memo):
            raise _fail("a single-certificate chain must be a self-signed certificate")
        validate_leaf(leaf)
        return
    chain = [cert_facts(cert, memo) for cert in certs]
    last = len(chain) - 1
    for index, facts in enumerate(chain):
        if index == last:
            _check_signature_from(facts, facts, memo)
            if not names_chain(facts, facts):
                raise _fail("root certificate is not self-issued")
        else:
            if _issued_by(facts, facts, memo):
                raise _fail(f"certificate {index} is self-signed but is not the last one")
            _check_signature_from(facts, chain[index + 1], memo)
            if not names_chain(facts, chain[index + 1]):
                raise _fail(f"certificate {index} issuer does not match the next subject")
        _check_profile(facts, index, memo)
