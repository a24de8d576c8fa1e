"""Code-signing chain rules (docs/notation.md §6.1-6.2) and the certificate helpers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.algorithms import algorithm_for_key
from pullgate.verification.model import SignatureAlgorithm
from pullgate.verification.x509.certs import (
    check_issued_by,
    fingerprint_sha256,
    is_self_signed,
    validate_signing_chain,
)
from tests.support.pki import (
    ALL_KEYS,
    CertSpec,
    Chain,
    Issued,
    KeySpec,
    Pki,
    PrivateKey,
    ca_spec,
    issue,
)


def _fails(certs: tuple[x509.Certificate, ...] | list[x509.Certificate]) -> None:
    with pytest.raises(VerificationFailed) as info:
        validate_signing_chain(certs)
    assert info.value.reason is Reason.INTEGRITY


def _resign(
    cert: x509.Certificate,
    key: PrivateKey,
    hash_alg: hashes.HashAlgorithm,
    *,
    issuer: x509.Name | None = None,
) -> x509.Certificate:
    """Rebuild ``cert`` with the same fields, signed by ``key`` with ``hash_alg``."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(issuer or cert.issuer)
        .public_key(cert.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    for ext in cert.extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    return builder.sign(key, hash_alg)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Case:
    leaf: CertSpec | None = None
    intermediate: CertSpec | None = None
    root: CertSpec | None = None
    depth: int = 3


# --- valid chains ------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_well_formed_chains_pass(depth: int) -> None:
    validate_signing_chain(Pki().chain(depth=depth).x509)


@pytest.mark.parametrize("key", ALL_KEYS, ids=lambda k: f"{k.kind}{k.size}")
def test_every_supported_leaf_key_passes(key: KeySpec) -> None:
    validate_signing_chain(Pki().chain(key=key).x509)


VALID = {
    "no EKU": Case(leaf=CertSpec(eku=None)),
    "anyExtendedKeyUsage tolerated": Case(
        leaf=CertSpec(eku=(ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,))
    ),
    "codeSigning plus unknown EKU": Case(
        leaf=CertSpec(eku=(ExtendedKeyUsageOID.CODE_SIGNING, x509.ObjectIdentifier("1.2.3.4")))
    ),
    "contentCommitment tolerated": Case(
        leaf=CertSpec(key_usage=frozenset({"digital_signature", "content_commitment"}))
    ),
    "leaf without basicConstraints": Case(leaf=CertSpec(ca=None)),
    "root pathLen 1 above one intermediate": Case(
        root=ca_spec("pullgate test root", KeySpec.rsa(2048, slot=1), path_length=1)
    ),
    "intermediate pathLen 0": Case(
        intermediate=ca_spec("pullgate test int", KeySpec.rsa(2048, slot=2), path_length=0)
    ),
    "leaf with the root's DN": Case(leaf=CertSpec(common_name="pullgate test root"), depth=2),
    "self-signed leaf without basicConstraints": Case(leaf=CertSpec(ca=None), depth=1),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_tolerated_variants_pass(name: str) -> None:
    case = VALID[name]
    chain = Pki().chain(
        leaf=case.leaf, intermediate=case.intermediate, root=case.root, depth=case.depth
    )
    validate_signing_chain(chain.x509)


# --- invalid chains ----------------------------------------------------------------------------

INVALID = {
    "leaf is CA": Case(leaf=CertSpec(ca=True)),
    "self-signed leaf is CA": Case(
        leaf=CertSpec(ca=True, key_usage=frozenset({"digital_signature"})), depth=1
    ),
    "leaf keyUsage missing": Case(leaf=CertSpec(key_usage=None)),
    "leaf keyUsage not critical": Case(leaf=CertSpec(key_usage_critical=False)),
    "leaf keyUsage without digitalSignature": Case(
        leaf=CertSpec(key_usage=frozenset({"content_commitment"}))
    ),
    "leaf keyUsage keyEncipherment": Case(
        leaf=CertSpec(key_usage=frozenset({"digital_signature", "key_encipherment"}))
    ),
    "leaf keyUsage dataEncipherment": Case(
        leaf=CertSpec(key_usage=frozenset({"digital_signature", "data_encipherment"}))
    ),
    "leaf keyUsage keyAgreement": Case(
        leaf=CertSpec(key_usage=frozenset({"digital_signature", "key_agreement"}))
    ),
    "leaf keyUsage keyCertSign": Case(
        leaf=CertSpec(key_usage=frozenset({"digital_signature", "key_cert_sign"}))
    ),
    "leaf keyUsage cRLSign": Case(
        leaf=CertSpec(key_usage=frozenset({"digital_signature", "crl_sign"}))
    ),
    "leaf EKU serverAuth": Case(leaf=CertSpec(eku=(ExtendedKeyUsageOID.SERVER_AUTH,))),
    "leaf EKU clientAuth": Case(
        leaf=CertSpec(eku=(ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.CLIENT_AUTH))
    ),
    "leaf EKU emailProtection": Case(leaf=CertSpec(eku=(ExtendedKeyUsageOID.EMAIL_PROTECTION,))),
    "leaf EKU timeStamping": Case(leaf=CertSpec(eku=(ExtendedKeyUsageOID.TIME_STAMPING,))),
    "leaf EKU OCSPSigning": Case(leaf=CertSpec(eku=(ExtendedKeyUsageOID.OCSP_SIGNING,))),
    "leaf RSA-1024": Case(leaf=CertSpec(key=KeySpec.rsa(1024))),
    "self-signed leaf RSA-1024": Case(leaf=CertSpec(key=KeySpec.rsa(1024)), depth=1),
    "intermediate not a CA": Case(
        intermediate=CertSpec(
            common_name="not a ca", ca=False, key_usage=frozenset({"key_cert_sign"}), eku=None
        )
    ),
    "intermediate without basicConstraints": Case(
        intermediate=CertSpec(
            common_name="no bc", ca=None, key_usage=frozenset({"key_cert_sign"}), eku=None
        )
    ),
    "intermediate without keyCertSign": Case(
        intermediate=ca_spec("int", KeySpec.rsa(2048, slot=2)).replace(
            key_usage=frozenset({"crl_sign"})
        )
    ),
    "intermediate keyUsage not critical": Case(
        intermediate=ca_spec("int", KeySpec.rsa(2048, slot=2)).replace(key_usage_critical=False)
    ),
    "intermediate keyUsage missing": Case(
        intermediate=ca_spec("int", KeySpec.rsa(2048, slot=2)).replace(key_usage=None)
    ),
    "root pathLen 0 above an intermediate": Case(
        root=ca_spec("pullgate test root", KeySpec.rsa(2048, slot=1), path_length=0)
    ),
    "root pathLen 1 above two intermediates": Case(
        root=ca_spec("pullgate test root", KeySpec.rsa(2048, slot=1), path_length=1), depth=4
    ),
    "root keyUsage not critical": Case(
        root=ca_spec("pullgate test root", KeySpec.rsa(2048, slot=1)).replace(
            key_usage_critical=False
        ),
        depth=2,
    ),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_profile_violations_fail(name: str) -> None:
    case = INVALID[name]
    chain = Pki().chain(
        leaf=case.leaf, intermediate=case.intermediate, root=case.root, depth=case.depth
    )
    _fails(chain.x509)


def test_shape_violations_fail() -> None:
    chain = Pki().chain(depth=3)
    leaf, intermediate, root = chain.x509
    stranger = Pki(name="stranger").root().cert
    _fails([])
    _fails([leaf])  # single certificate that is not self-signed
    _fails([leaf, intermediate])  # no root
    _fails([root, intermediate, leaf])  # reversed
    _fails([leaf, root, intermediate])  # wrong order
    _fails([leaf, intermediate, root, root])  # redundant root
    _fails([leaf, intermediate, root, stranger])  # unrelated extra certificate
    _fails([leaf, intermediate, stranger])  # wrong root


def test_same_name_different_key_root_fails() -> None:
    chain = Pki().chain(depth=2)
    impostor = issue(ca_spec("pullgate test root", KeySpec.rsa(2048, slot=9)))
    assert impostor.cert.subject == chain.root.cert.subject
    _fails([chain.leaf.cert, impostor.cert])


_SHA256_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
_SHA1_RSA = bytes.fromhex("300d06092a864886f70d0101050500")


def _sha1_resign(cert: x509.Certificate, key: PrivateKey) -> x509.Certificate:
    """``cert`` re-signed with sha1WithRSAEncryption (``cryptography`` refuses to build one).

    Both AlgorithmIdentifiers have the same length and an RSA-2048 signature keeps its size, so
    the DER can be patched in place.
    """
    assert isinstance(key, rsa.RSAPrivateKey)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(_SHA256_RSA) == 2
    patched = der.replace(_SHA256_RSA, _SHA1_RSA)
    tbs = x509.load_der_x509_certificate(patched).tbs_certificate_bytes
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    assert len(signature) == len(cert.signature)
    out = x509.load_der_x509_certificate(patched[: -len(signature)] + signature)
    assert isinstance(out.signature_hash_algorithm, hashes.SHA1)
    return out


def test_sha1_is_tolerated_only_on_a_single_self_signed_certificate() -> None:
    single = Pki().chain(depth=1).leaf
    validate_signing_chain([_sha1_resign(single.cert, single.key)])

    chain = Pki().chain(depth=2)
    _fails([_sha1_resign(chain.leaf.cert, chain.root.key), chain.root.cert])
    root = chain.root
    _fails([chain.leaf.cert, _sha1_resign(root.cert, root.key)])


def test_issuer_name_must_match_byte_for_byte() -> None:
    chain = Pki().chain(depth=2)
    renamed = x509.Name(list(chain.root.cert.subject)[::-1])  # same attributes, other order
    leaf = _resign(chain.leaf.cert, chain.root.key, hashes.SHA256(), issuer=renamed)
    _fails([leaf, chain.root.cert])


# --- helpers -----------------------------------------------------------------------------------


def test_helpers() -> None:
    chain: Chain = Pki().chain(depth=3)
    leaf, intermediate, root = chain.x509
    single: Issued = Pki().chain(depth=1).leaf
    assert is_self_signed(single.cert)
    assert is_self_signed(root)
    assert not is_self_signed(leaf)
    assert check_issued_by(leaf, intermediate)
    assert check_issued_by(intermediate, root)
    assert check_issued_by(root, root)
    assert not check_issued_by(leaf, root)
    assert not check_issued_by(single.cert, single.cert)  # not a CA
    der = leaf.public_bytes(serialization.Encoding.DER)
    assert fingerprint_sha256(leaf) == hashlib.sha256(der).hexdigest()
    assert fingerprint_sha256(leaf) == fingerprint_sha256(leaf).lower()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (KeySpec.rsa(2048), SignatureAlgorithm.PS256),
        (KeySpec.rsa(3072), SignatureAlgorithm.PS384),
        (KeySpec.rsa(4096), SignatureAlgorithm.PS512),
        (KeySpec.ec(256), SignatureAlgorithm.ES256),
        (KeySpec.ec(384), SignatureAlgorithm.ES384),
        (KeySpec.ec(521), SignatureAlgorithm.ES512),
    ],
)
def test_algorithm_for_key(key: KeySpec, expected: SignatureAlgorithm) -> None:
    assert algorithm_for_key(key.generate().public_key()) is expected


@pytest.mark.parametrize(
    "make",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(),  # noqa: S505
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2304).public_key(),
        lambda: ec.generate_private_key(ec.SECP224R1()).public_key(),
        lambda: ec.generate_private_key(ec.SECP256K1()).public_key(),
        lambda: ed25519.Ed25519PrivateKey.generate().public_key(),
    ],
    ids=["rsa1024", "rsa2304", "p224", "secp256k1", "ed25519"],
)
def test_algorithm_for_unsupported_key_fails(make: object) -> None:
    assert callable(make)
    with pytest.raises(VerificationFailed) as info:
        algorithm_for_key(make())
    assert info.value.reason is Reason.INTEGRITY
