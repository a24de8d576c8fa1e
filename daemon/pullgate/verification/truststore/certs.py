"""The certificates of one trust store file (docs/notation.md §7, rules 4-6).

* :func:`parse_certificates`: one or more PEM ``CERTIFICATE`` blocks or, when the file has no
  PEM block at all, concatenated DER certificates (rule 4).
* :func:`is_ca` and :func:`self_signature_ok`: every certificate is a CA or verifies its own
  signature (rule 5).
* :func:`root_ca_error`: why a ``tsa`` store certificate is not a self-issued root that can sign
  itself as a CA (rule 6).

:class:`pullgate.verification.truststore.TrustStore` applies these to each file of a store.
"""

from __future__ import annotations

import re

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from pullgate.verification.x509.identity import go_name_string

__all__ = ["is_ca", "parse_certificates", "root_ca_error", "self_signature_ok"]

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([^\r\n-]*)-----\r?\n(.*?)-----END ([^\r\n-]*)-----", re.DOTALL
)


def _split_der(data: bytes) -> list[bytes]:
    """Cut concatenated DER values apart by their outer TLV lengths."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError("truncated DER")
        first = data[pos + 1]
        header = 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or pos + 2 + count > len(data):
                raise ValueError("unsupported DER length")
            length = int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
            header += count
        end = pos + header + length
        if end > len(data):
            raise ValueError("truncated DER")
        out.append(data[pos:end])
        pos = end
    return out


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates of one trust store file: PEM ``CERTIFICATE`` blocks, else concatenated DER.

    Raises:
        ValueError: the data holds no certificate or one does not parse.
    """
    blocks = _PEM_BLOCK.findall(data)
    certs: list[x509.Certificate] = []
    if blocks:
        for begin, _body, end in blocks:
            if begin != end:
                raise ValueError("mismatched PEM armour")
        for match in _PEM_BLOCK.finditer(data):
            if match.group(1) == b"CERTIFICATE":
                certs.append(x509.load_pem_x509_certificate(match.group(0)))
    else:
        certs.extend(x509.load_der_x509_certificate(der) for der in _split_der(data))
    if not certs:
        raise ValueError("no certificates found")
    return certs


def self_signature_ok(cert: x509.Certificate, *, allow_sha1: bool) -> bool:
    """True when ``cert``'s signature verifies with its own public key."""
    try:
        hash_alg = cert.signature_hash_algorithm
        if isinstance(hash_alg, hashes.MD5) or (
            isinstance(hash_alg, hashes.SHA1) and not allow_sha1
        ):
            return False
        key = cert.public_key()
        sig, tbs = cert.signature, cert.tbs_certificate_bytes
        params = cert.signature_algorithm_parameters
        if isinstance(key, rsa.RSAPublicKey):
            if hash_alg is None or not isinstance(params, padding.PKCS1v15 | padding.PSS):
                return False
            key.verify(sig, tbs, params, hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                return False
            key.verify(sig, tbs, params)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(sig, tbs)
        elif isinstance(key, dsa.DSAPublicKey) and hash_alg is not None:
            key.verify(sig, tbs, hash_alg)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    """True when ``cert`` has basicConstraints with ``cA=true``."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return ext.value.ca


def root_ca_error(cert: x509.Certificate) -> str | None:
    """Why ``cert`` is not a self-issued root CA, or None.

    Mirrors Go's ``cert.CheckSignatureFrom(cert)`` (CA constraints, keyCertSign, signature
    without SHA-1) followed by the raw issuer == raw subject comparison.
    """
    cannot_sign = "x509: invalid signature: parent certificate cannot sign this kind of certificate"
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if (cert.version is x509.Version.v3 and constraints is None) or (
        constraints is not None and not constraints.ca
    ):
        return cannot_sign
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        return cannot_sign
    if not self_signature_ok(cert, allow_sha1=False):
        return "x509: invalid signature: certificate does not verify its own signature"
    try:
        tbs = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))["tbs_certificate"]
        self_issued = tbs["subject"].contents == tbs["issuer"].contents
    except (ValueError, TypeError, KeyError) as exc:
        return f"certificate cannot be decoded: {exc}"
    if not self_issued:
        return (
            f"issuer ({go_name_string(cert.issuer)}) and subject "
            f"({go_name_string(cert.subject)}) are not the same"
        )
    return None
