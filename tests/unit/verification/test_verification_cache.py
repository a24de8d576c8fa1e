"""The certificate memos (pullgate.verification.cache.CertMemo) never turn a failure into a
success; every call here passes the one memo of the test, as a trust snapshot's verifications do."""

from __future__ import annotations

import pytest
from cryptography import x509

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.cache import CertMemo
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
)
from pullgate.verification.x509.names import parsed_dn
from tests.support.pki import CertSpec, Chain, KeySpec, Pki, ca_spec, issue


@pytest.fixture
def memo() -> CertMemo:
    return CertMemo()


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


def _fails(certs: list[x509.Certificate] | tuple[x509.Certificate, ...], memo: CertMemo) -> None:
    with pytest.raises(VerificationFailed) as info:
        validate_signing_chain(certs, memo)
    assert info.value.reason is Reason.INTEGRITY


def test_link_success_does_not_carry_over_to_another_parent(memo: CertMemo) -> None:
    first, second = _twin_chains()
    leaf, good_parent = first.x509[0], first.x509[1]
    assert check_issued_by(leaf, good_parent, memo)
    assert check_issued_by(leaf, good_parent, memo)  # memo hit
    assert not check_issued_by(leaf, second.x509[1], memo)


def test_validated_chain_does_not_validate_a_chain_with_a_swapped_intermediate(
    memo: CertMemo,
) -> None:
    first, second = _twin_chains()
    validate_signing_chain(first.x509, memo)
    validate_signing_chain(second.x509, memo)
    _fails([first.x509[0], second.x509[1], second.x509[2]], memo)
    _fails([second.x509[0], first.x509[1], first.x509[2]], memo)


def test_tampered_signature_fails_after_the_original_passed(memo: CertMemo) -> None:
    chain = Pki(name="memo").chain()
    validate_signing_chain(chain.x509, memo)
    der = chain.leaf.der
    tampered = load_certificate(_tamper(der, len(der) - 1), memo)  # last signature byte
    assert tampered.tbs_certificate_bytes == chain.x509[0].tbs_certificate_bytes
    assert not check_issued_by(tampered, chain.x509[1], memo)
    _fails([tampered, chain.x509[1], chain.x509[2]], memo)
    validate_signing_chain(chain.x509, memo)


def test_tampered_tbs_fails_after_the_original_passed(memo: CertMemo) -> None:
    chain = Pki(name="memo").chain()
    validate_signing_chain(chain.x509, memo)
    der = chain.leaf.der
    name = b"pullgate test signer"
    at = der.index(name)
    tampered = load_certificate(der[:at] + b"Pullgate test signer" + der[at + len(name) :], memo)
    assert not check_issued_by(tampered, chain.x509[1], memo)
    _fails([tampered, chain.x509[1], chain.x509[2]], memo)


def test_tampered_root_fails_its_self_signature_after_the_original_passed(memo: CertMemo) -> None:
    chain = Pki(name="memo").chain()
    validate_signing_chain(chain.x509, memo)
    assert is_self_issued_ca(chain.x509[2], memo)
    root_der = chain.root.der
    tampered_root = load_certificate(_tamper(root_der, len(root_der) - 1), memo)
    assert not is_self_issued_ca(tampered_root, memo)
    _fails([chain.x509[0], chain.x509[1], tampered_root], memo)


def test_self_signed_leaf_memo_is_per_certificate(memo: CertMemo) -> None:
    leaf = Pki(name="memo").chain(depth=1).leaf
    assert is_self_signed(leaf.cert, memo)
    assert is_self_signed(leaf.cert, memo)
    tampered = load_certificate(_tamper(leaf.der, len(leaf.der) - 1), memo)
    assert not is_self_signed(tampered, memo)
    _fails([tampered], memo)


def test_failure_is_not_remembered_as_success(memo: CertMemo) -> None:
    first, second = _twin_chains()
    mixed = [first.x509[0], second.x509[1], second.x509[2]]
    _fails(mixed, memo)
    _fails(mixed, memo)
    assert not check_issued_by(first.x509[0], second.x509[1], memo)


def test_profile_success_is_per_position(memo: CertMemo) -> None:
    """A CA accepted at index 1 (path length >= 0) is still checked again at index 2."""
    root = issue(ca_spec("memo root", KeySpec.rsa(2048, slot=1)))
    limited = issue(ca_spec("memo limited", KeySpec.rsa(2048, slot=2), path_length=0), root)
    validate_signing_chain([issue(CertSpec(), limited).cert, limited.cert, root.cert], memo)
    below = issue(ca_spec("memo below", KeySpec.rsa(2048, slot=3)), limited)
    _fails([issue(CertSpec(), below).cert, below.cert, limited.cert, root.cert], memo)


def test_load_certificate_memo_is_keyed_by_exact_bytes(memo: CertMemo) -> None:
    chain = Pki(name="memo").chain()
    der = chain.leaf.der
    assert load_certificate(der, memo) is load_certificate(bytes(der), memo)
    other = load_certificate(_tamper(der, len(der) - 1), memo)
    assert other is not load_certificate(der, memo)
    assert certificate_der(other, memo) != der


def test_rejected_certificate_is_rejected_again(memo: CertMemo) -> None:
    der = Pki(name="memo").chain().leaf.der
    broken = der[: len(der) // 2]
    for _ in range(2):
        with pytest.raises(VerificationFailed) as info:
            load_certificate(broken, memo)
        assert info.value.reason is Reason.INTEGRITY


def test_memoised_facts_match_the_certificate(memo: CertMemo) -> None:
    chain = Pki(name="memo").chain()
    for cert in chain.x509:
        for _ in range(2):
            assert certificate_der(cert, memo) == chain.certs[chain.x509.index(cert)].der
            assert certificate_subject(cert, memo) == go_name_string(cert.subject)
    assert fingerprint_sha256(chain.x509[0], memo) != fingerprint_sha256(chain.x509[1], memo)


def test_parsed_dn_memo_hands_out_read_only_maps(memo: CertMemo) -> None:
    text = "C=US, ST=WA, O=pullgate"
    parsed = parsed_dn(text, memo)
    with pytest.raises(TypeError):
        parsed["O"] = "attacker"  # type: ignore[index]
    assert parsed_dn(text, memo) is parsed
    assert parsed_dn(text, memo) == {"C": "US", "ST": "WA", "O": "pullgate"}


def test_invalid_dn_is_refused_every_time(memo: CertMemo) -> None:
    for _ in range(2):
        with pytest.raises(InvalidDistinguishedName) as info:
            parsed_dn("C=US, O=pullgate", memo)
        assert info.value.problem is DnProblem.MISSING_MANDATORY


def test_identity_match_depends_on_the_leaf_not_on_a_previous_success(memo: CertMemo) -> None:
    pki = Pki(name="memo")
    good = pki.chain().leaf.cert
    other = pki.chain(leaf=CertSpec(common_name="someone else")).leaf.cert
    identities = ("x509.subject: C=US, ST=WA, O=pullgate, CN=pullgate test signer",)
    match_trusted_identities(good, identities, "memo", memo)
    with pytest.raises(VerificationFailed) as info:
        match_trusted_identities(other, identities, "memo", memo)
    assert info.value.reason is Reason.IDENTITY_MISMATCH


def test_clear_empties_every_memo(memo: CertMemo) -> None:
    validate_signing_chain(Pki(name="memo").chain().x509, memo)
    assert any(info.size for info in memo.stats())
    memo.clear()
    assert all(info.size == 0 for info in memo.stats())
    assert all(info.capacity > 0 for info in memo.stats())


def test_checks_hit_the_memo_they_are_given(memo: CertMemo) -> None:
    """A second validation of a chain is answered by the memo passed in; another memo (another
    snapshot's) starts empty, and no memo at all still validates."""
    chain = Pki(name="memo").chain().x509
    validate_signing_chain(chain, memo)
    checks = memo.checks.stats()
    validate_signing_chain(chain, memo)
    again = memo.checks.stats()
    assert again.hits > checks.hits
    assert again.misses == checks.misses
    other = CertMemo()
    validate_signing_chain(chain, other)
    assert other.checks.stats().hits == 0
    assert other.checks.stats().size == checks.size
    validate_signing_chain(chain)  # without a memo: nothing is remembered anywhere
    assert memo.checks.stats().size == checks.size


def test_a_memo_is_bounded_by_its_size() -> None:
    small = CertMemo(1)
    for _ in range(3):
        validate_signing_chain(Pki(name="memo").chain().x509, small)
    assert all(info.size <= info.capacity for info in small.stats())
    assert small.loaded.capacity == 1
    assert small.checks.capacity == 4
    assert small.checks.stats().evictions > 0
    with pytest.raises(ValueError, match="must be > 0"):
        CertMemo(0)
