"""The verification memos (pullgate.verification.cache) never turn a failure into a success."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.cache import cache_info, clear_caches
from pullgate.verification.x509.certs import (
    certificate_der,
    check_issued_by,
    fingerprint_sha256,
    is_self_issued_ca,
    is_self_signed,
    load_certificate,
    validate_signing_chain,
)
from pullgate.verification.x509.identity import (
    DnProblem,
    InvalidDistinguishedName,
    certificate_subject,
    go_name_string,
    match_trusted_identities,
    parse_dn,
)
from tests.support.pki import CertSpec, Chain, KeySpec, Pki, ca_spec, issue


@pytest.fixture(autouse=True)
def _fresh_memos() -> Iterator[None]:
    clear_caches()
    yield
    clear_caches()


def _twin_chains() -> tuple[Chain, Chain]:
    """Two chains whose intermediates share a subject (and so raw names) but not a key."""
    pki = Pki(name="memo")
    first = pki.chain()
    second = pki.chain(intermediate=ca_spec("memo intermediate 0", KeySpec.rsa(2048, slot=7)))
    assert first.x509[1].subject == second.x509[1].subject
    assert certificate_der(first.x509[1]) != certificate_der(second.x509[1])
    return first, second


def _tamper(der: bytes, offset: int) -> bytes:
    data = bytearray(der)
    data[offset] ^= 0x01
    return bytes(data)


def _fails(certs: list[x509.Certificate] | tuple[x509.Certificate, ...]) -> None:
    with pytest.raises(VerificationFailed) as info:
        validate_signing_chain(certs)
    assert info.value.reason is Reason.INTEGRITY


def test_link_success_does_not_carry_over_to_another_parent() -> None:
    first, second = _twin_chains()
    leaf, good_parent = first.x509[0], first.x509[1]
    assert check_issued_by(leaf, good_parent)
    assert check_issued_by(leaf, good_parent)  # memo hit
    assert not check_issued_by(leaf, second.x509[1])


def test_validated_chain_does_not_validate_a_chain_with_a_swapped_intermediate() -> None:
    first, second = _twin_chains()
    validate_signing_chain(first.x509)
    validate_signing_chain(second.x509)
    _fails([first.x509[0], second.x509[1], second.x509[2]])
    _fails([second.x509[0], first.x509[1], first.x509[2]])


def test_tampered_signature_fails_after_the_original_passed() -> None:
    chain = Pki(name="memo").chain()
    validate_signing_chain(chain.x509)
    der = chain.leaf.der
    tampered = load_certificate(_tamper(der, len(der) - 1))  # last signature byte
    assert tampered.tbs_certificate_bytes == chain.x509[0].tbs_certificate_bytes
    assert not check_issued_by(tampered, chain.x509[1])
    _fails([tampered, chain.x509[1], chain.x509[2]])
    validate_signing_chain(chain.x509)


def test_tampered_tbs_fails_after_the_original_passed() -> None:
    chain = Pki(name="memo").chain()
    validate_signing_chain(chain.x509)
    der = chain.leaf.der
    name = b"pullgate test signer"
    at = der.index(name)
    tampered = load_certificate(der[:at] + b"Pullgate test signer" + der[at + len(name) :])
    assert not check_issued_by(tampered, chain.x509[1])
    _fails([tampered, chain.x509[1], chain.x509[2]])


def test_tampered_root_fails_its_self_signature_after_the_original_passed() -> None:
    chain = Pki(name="memo").chain()
    validate_signing_chain(chain.x509)
    assert is_self_issued_ca(chain.x509[2])
    root_der = chain.root.der
    tampered_root = load_certificate(_tamper(root_der, len(root_der) - 1))
    assert not is_self_issued_ca(tampered_root)
    _fails([chain.x509[0], chain.x509[1], tampered_root])


def test_self_signed_leaf_memo_is_per_certificate() -> None:
    leaf = Pki(name="memo").chain(depth=1).leaf
    assert is_self_signed(leaf.cert)
    assert is_self_signed(leaf.cert)
    tampered = load_certificate(_tamper(leaf.der, len(leaf.der) - 1))
    assert not is_self_signed(tampered)
    _fails([tampered])


def test_failure_is_not_remembered_as_success() -> None:
    first, second = _twin_chains()
    mixed = [first.x509[0], second.x509[1], second.x509[2]]
    _fails(mixed)
    _fails(mixed)
    assert not check_issued_by(first.x509[0], second.x509[1])


def test_profile_success_is_per_position() -> None:
    """A CA accepted at index 1 (path length >= 0) is still checked again at index 2."""
    root = issue(ca_spec("memo root", KeySpec.rsa(2048, slot=1)))
    limited = issue(ca_spec("memo limited", KeySpec.rsa(2048, slot=2), path_length=0), root)
    validate_signing_chain([issue(CertSpec(), limited).cert, limited.cert, root.cert])
    below = issue(ca_spec("memo below", KeySpec.rsa(2048, slot=3)), limited)
    _fails([issue(CertSpec(), below).cert, below.cert, limited.cert, root.cert])


def test_load_certificate_memo_is_keyed_by_exact_bytes() -> None:
    chain = Pki(name="memo").chain()
    der = chain.leaf.der
    assert load_certificate(der) is load_certificate(bytes(der))
    other = load_certificate(_tamper(der, len(der) - 1))
    assert other is not load_certificate(der)
    assert certificate_der(other) != der


def test_rejected_certificate_is_rejected_again() -> None:
    der = Pki(name="memo").chain().leaf.der
    broken = der[: len(der) // 2]
    for _ in range(2):
        with pytest.raises(VerificationFailed) as info:
            load_certificate(broken)
        assert info.value.reason is Reason.INTEGRITY


def test_memoised_facts_match_the_certificate() -> None:
    chain = Pki(name="memo").chain()
    for cert in chain.x509:
        for _ in range(2):
            assert certificate_der(cert) == chain.certs[chain.x509.index(cert)].der
            assert certificate_subject(cert) == go_name_string(cert.subject)
    assert fingerprint_sha256(chain.x509[0]) != fingerprint_sha256(chain.x509[1])


def test_parsed_dn_cache_hands_out_independent_copies() -> None:
    text = "C=US, ST=WA, O=pullgate"
    parsed = parse_dn(text)
    parsed["O"] = "attacker"
    assert parse_dn(text) == {"C": "US", "ST": "WA", "O": "pullgate"}


def test_invalid_dn_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidDistinguishedName) as info:
            parse_dn("C=US, O=pullgate")
        assert info.value.problem is DnProblem.MISSING_MANDATORY


def test_identity_match_depends_on_the_leaf_not_on_a_previous_success() -> None:
    pki = Pki(name="memo")
    good = pki.chain().leaf.cert
    other = pki.chain(leaf=CertSpec(common_name="someone else")).leaf.cert
    identities = ("x509.subject: C=US, ST=WA, O=pullgate, CN=pullgate test signer",)
    match_trusted_identities(good, identities, "memo")
    with pytest.raises(VerificationFailed) as info:
        match_trusted_identities(other, identities, "memo")
    assert info.value.reason is Reason.IDENTITY_MISMATCH


def test_clear_caches_empties_every_memo() -> None:
    validate_signing_chain(Pki(name="memo").chain().x509)
    assert any(info.size for info in cache_info())
    clear_caches()
    assert all(info.size == 0 for info in cache_info())
    assert all(info.capacity > 0 for info in cache_info())
