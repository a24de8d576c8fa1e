"""Signature algorithms: key → algorithm mapping and raw signature verification.

Implements docs/notation.md §6.1 (the signing key decides the algorithm, exact key sizes
only) and the crypto halves of §3.3 (JWS) and §4.3 (COSE):

* RSASSA-PSS with MGF1 over the same hash. JWS verifies with any salt length (golang-jwt uses
  ``PSSSaltLengthAuto``); COSE requires salt length = hash length (go-cose, RFC 8230).
* ECDSA signatures are the raw fixed-width ``r || s`` encoding (32/48/66 bytes per coordinate);
  any other length is rejected before the curve maths runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.model import SignatureAlgorithm

_RSA_BY_BITS = MappingProxyType(
    {
        2048: SignatureAlgorithm.PS256,
        3072: SignatureAlgorithm.PS384,
        4096: SignatureAlgorithm.PS512,
    }
)

_EC_BY_CURVE: Mapping[str, SignatureAlgorithm] = MappingProxyType(
    {
        ec.SECP256R1.name: SignatureAlgorithm.ES256,
        ec.SECP384R1.name: SignatureAlgorithm.ES384,
        ec.SECP521R1.name: SignatureAlgorithm.ES512,
    }
)

_EC_COORDINATE_BYTES = MappingProxyType(
    {
        SignatureAlgorithm.ES256: 32,
        SignatureAlgorithm.ES384: 48,
        SignatureAlgorithm.ES512: 66,
    }
)


def hash_for(alg: SignatureAlgorithm) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    """The hash primitive that belongs to ``alg``.

    Args:
        alg: A Notary signature algorithm.

    Returns:
        A fresh ``cryptography`` hash instance (SHA-256, SHA-384 or SHA-512).
    """
    name = alg.hash_name
    if name == "sha256":
        return hashes.SHA256()
    if name == "sha384":
        return hashes.SHA384()
    return hashes.SHA512()


def algorithm_for_key(public_key: PublicKeyTypes) -> SignatureAlgorithm:
    """The signature algorithm notation derives from a signing (or TSA) key (§6.1).

    Only the exact sizes RSA 2048/3072/4096 and the NIST curves P-256/384/521 are accepted.
    The RSA size is measured as Go does (``key.Size() << 3``: the modulus length rounded up
    to whole bytes).

    Args:
        public_key: The certificate's public key.

    Returns:
        The algorithm implied by the key.

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` for any other key type or size.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = (public_key.key_size + 7) // 8 * 8
        alg = _RSA_BY_BITS.get(bits)
        if alg is None:
            raise VerificationFailed(Reason.INTEGRITY, f"rsa key size {bits} bits is not supported")
        return alg
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        ec_alg = _EC_BY_CURVE.get(public_key.curve.name)
        if ec_alg is None:
            raise VerificationFailed(
                Reason.INTEGRITY, f"ecdsa curve {public_key.curve.name} is not supported"
            )
        return ec_alg
    raise VerificationFailed(
        Reason.INTEGRITY, f"unsupported public key type {type(public_key).__name__}"
    )


def verify_signature(
    alg: SignatureAlgorithm,
    public_key: PublicKeyTypes,
    signature: bytes,
    data: bytes,
    *,
    pss_salt_auto: bool,
) -> None:
    """Verify ``signature`` over ``data`` with ``public_key`` under ``alg``.

    Args:
        alg: The envelope's signature algorithm.
        public_key: The leaf certificate's public key; its family must match ``alg``.
        signature: Raw signature bytes (PSS octets, or ECDSA ``r || s``).
        data: The signed bytes (JWS signing input or COSE ``Sig_structure``).
        pss_salt_auto: True to accept any PSS salt length (JWS), False to require
            salt length = hash length (COSE).

    Raises:
        VerificationFailed: ``Reason.INTEGRITY`` when the signature does not verify, has the
            wrong length, or the key does not fit the algorithm.
    """
    hash_alg = hash_for(alg)
    try:
        if alg.is_rsa:
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise VerificationFailed(Reason.INTEGRITY, f"{alg} requires an RSA key")
            salt = padding.PSS.AUTO if pss_salt_auto else hash_alg.digest_size
            public_key.verify(
                signature,
                data,
                padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=salt),
                hash_alg,
            )
            return
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise VerificationFailed(Reason.INTEGRITY, f"{alg} requires an EC key")
        width = _EC_COORDINATE_BYTES[alg]
        if len(signature) != 2 * width:
            raise VerificationFailed(
                Reason.INTEGRITY,
                f"{alg} signature must be {2 * width} bytes, got {len(signature)}",
            )
        r = int.from_bytes(signature[:width], "big")
        s = int.from_bytes(signature[width:], "big")
        public_key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(hash_alg))
    except InvalidSignature as exc:
        raise VerificationFailed(Reason.INTEGRITY, "signature is invalid") from exc
    except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
        raise VerificationFailed(Reason.INTEGRITY, f"signature check failed: {exc}") from exc
