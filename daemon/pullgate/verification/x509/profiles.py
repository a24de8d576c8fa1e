"""Leaf and CA certificate profiles of a code-signing chain (docs/notation.md §6.1-6.2).

* Leaf: basicConstraints, if present, ``cA=false``; keyUsage present and critical with
  digitalSignature and none of keyEncipherment, dataEncipherment, keyAgreement, keyCertSign,
  cRLSign, encipherOnly, decipherOnly; EKU, if present, without serverAuth, clientAuth,
  emailProtection, timeStamping, OCSPSigning (anyExtendedKeyUsage is tolerated, as in Go);
  key per §6.1.
* CA at index ``i``: basicConstraints ``cA=true``; keyUsage present and critical with
  keyCertSign; ``pathLenConstraint``, if present, ≥ ``i - 1``.

Also the extension and public-key readers those rules share with the issuer checks of
:mod:`pullgate.verification.x509.certs`. Every violation, and every field that cannot be decoded, is
an **integrity** failure.
"""

from __future__ import annotations

from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.algorithms import algorithm_for_key
from pullgate.verification.x509.loading import X509_DECODE_ERRORS

__all__ = [
    "basic_constraints",
    "key_usage",
    "public_key_of",
    "usage_bits",
    "validate_ca",
    "validate_leaf",
]

_FORBIDDEN_LEAF_EKUS = MappingProxyType(
    {
        ExtendedKeyUsageOID.SERVER_AUTH: "ServerAuth",
        ExtendedKeyUsageOID.CLIENT_AUTH: "ClientAuth",
        ExtendedKeyUsageOID.EMAIL_PROTECTION: "EmailProtection",
        ExtendedKeyUsageOID.TIME_STAMPING: "TimeStamping",
        ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    }
)


def _fail(detail: str) -> VerificationFailed:
    return VerificationFailed(Reason.INTEGRITY, detail)


def public_key_of(cert: x509.Certificate) -> CertificatePublicKeyTypes:
    """The certificate's public key; an undecodable key is an integrity failure."""
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


def basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    """The basicConstraints extension, or None when absent (malformed: integrity failure)."""
    ext = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if ext is None:
        return None
    if not isinstance(ext.value, x509.BasicConstraints):
        raise _fail("malformed basicConstraints")
    return ext.value


def key_usage(cert: x509.Certificate) -> tuple[x509.KeyUsage, bool] | None:
    """The keyUsage extension and its critical flag, or None when absent."""
    ext = _extension(cert, ExtensionOID.KEY_USAGE)
    if ext is None:
        return None
    if not isinstance(ext.value, x509.KeyUsage):
        raise _fail("malformed keyUsage")
    return ext.value, ext.critical


def usage_bits(ku: x509.KeyUsage) -> frozenset[str]:
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


def validate_leaf(cert: x509.Certificate) -> None:
    """The leaf (signing certificate) rules.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` for the first rule the leaf breaks.
    """
    constraints = basic_constraints(cert)
    if constraints is not None and constraints.ca:
        raise _fail("leaf certificate must not be a CA")
    usage = key_usage(cert)
    if usage is None:
        raise _fail("leaf keyUsage extension must be present")
    ku, critical = usage
    if not critical:
        raise _fail("leaf keyUsage extension must be marked critical")
    if not ku.digital_signature:
        raise _fail("leaf keyUsage must include digitalSignature")
    if usage_bits(ku) - _LEAF_USAGE_BITS:
        raise _fail("leaf keyUsage must be digitalSignature only")
    eku_ext = _extension(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    if eku_ext is not None:
        if not isinstance(eku_ext.value, x509.ExtendedKeyUsage):
            raise _fail("malformed extendedKeyUsage")
        for oid in eku_ext.value:
            if oid in _FORBIDDEN_LEAF_EKUS:
                raise _fail(f"leaf extended key usage must not contain {_FORBIDDEN_LEAF_EKUS[oid]}")
    algorithm_for_key(public_key_of(cert))


def validate_ca(cert: x509.Certificate, expected_path_len: int) -> None:
    """The CA rules for a chain certificate that must allow ``expected_path_len`` below it.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` for the first rule the CA breaks.
    """
    constraints = basic_constraints(cert)
    if constraints is None or not constraints.ca:
        raise _fail("CA certificate must have basicConstraints cA=true")
    if constraints.path_length is not None and constraints.path_length < expected_path_len:
        raise _fail(
            f"CA path length {constraints.path_length} is below the required {expected_path_len}"
        )
    usage = key_usage(cert)
    if usage is None:
        raise _fail("CA keyUsage extension must be present")
    if not usage[1]:
        raise _fail("CA keyUsage extension must be marked critical")
    if not usage[0].key_cert_sign:
        raise _fail("CA keyUsage must include keyCertSign")
