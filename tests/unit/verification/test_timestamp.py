"""RFC 3161 timestamp verification (docs/notation.md §10 steps 2-7, §6.3)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.timestamp import (
    ETSI_BASELINE_POLICY,
    parse_timestamp_token,
    validate_tsa_chain,
    verify_timestamp_token,
)
from pullgate.verification.timestamp.chain import build_tsa_path
from tests.support.pki import (
    NOW,
    Chain,
    KeySpec,
    Pki,
    ca_spec,
    eku_relabelled_as_key_usage,
    reissue_edited,
    tsa_leaf_spec,
)
from tests.support.tsa import ID_DATA, TestTsa, TokenOptions, openssl_ts_reply

SIG = b"raw envelope signature bytes"
GEN = NOW - timedelta(days=2)

VECTORS = (
    (Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance" / "notation").resolve()
    / "tspclient-go"
    / "testdata"
)


def _fails(token: bytes, roots: list[x509.Certificate], message: bytes = SIG) -> None:
    with pytest.raises(VerificationFailed) as info:
        verify_timestamp_token(token, message, roots)
    assert info.value.reason is Reason.TIMESTAMP


def test_valid_token_yields_interval_and_chain(test_tsa: TestTsa) -> None:
    token = test_tsa.timestamp(SIG, gen_time=GEN, accuracy_seconds=3)
    stamp = verify_timestamp_token(token, SIG, [test_tsa.chain.root.cert])
    assert stamp.gen_time == GEN
    assert stamp.lower == GEN - timedelta(seconds=3)
    assert stamp.upper == GEN + timedelta(seconds=3)
    assert stamp.tsa_chain == test_tsa.chain.x509
    assert stamp.info.hash_algorithm == "sha256"


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_imprint_hashes_accepted(test_tsa: TestTsa, hash_name: str) -> None:
    token = test_tsa.timestamp(SIG, gen_time=GEN, hash_name=hash_name)
    stamp = verify_timestamp_token(token, SIG, [test_tsa.chain.root.cert])
    assert stamp.info.hash_algorithm == hash_name


def test_ec_tsa_key_and_sha384_signer_digest() -> None:
    chain = Pki().tsa_chain(leaf=tsa_leaf_spec(key=KeySpec.ec(384)))
    token = TestTsa(chain).timestamp(
        SIG, gen_time=GEN, options=TokenOptions(signer_digest="sha384")
    )
    assert verify_timestamp_token(token, SIG, [chain.root.cert]).tsa_chain == chain.x509


def test_imprint_mismatch(test_tsa: TestTsa) -> None:
    token = test_tsa.timestamp(SIG, gen_time=GEN)
    _fails(token, [test_tsa.chain.root.cert], message=b"other signature")


def test_wrong_root() -> None:
    pki = Pki()
    chain = pki.tsa_chain()
    other_root = pki.root(ca_spec("unrelated TSA root", KeySpec.rsa(2048, slot=9)))
    _fails(TestTsa(chain).timestamp(SIG, gen_time=GEN), [other_root.cert])


def test_no_tsa_roots(test_tsa: TestTsa) -> None:
    _fails(test_tsa.timestamp(SIG, gen_time=GEN), [])


def test_gen_time_outside_tsa_validity(test_tsa: TestTsa) -> None:
    expired_at = test_tsa.chain.leaf.cert.not_valid_after_utc
    token = test_tsa.timestamp(SIG, gen_time=expired_at + timedelta(days=1))
    _fails(token, [test_tsa.chain.root.cert])


def test_expired_tsa_certificate() -> None:
    leaf = tsa_leaf_spec().replace(
        not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=10)
    )
    chain = Pki().tsa_chain(leaf=leaf)
    _fails(TestTsa(chain).timestamp(SIG, gen_time=GEN), [chain.root.cert])


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(TokenOptions(ess="none"), id="no-ess-attribute"),
        pytest.param(TokenOptions(ess="v1"), id="ess-v1-only"),
        pytest.param(TokenOptions(ess_hash="sha1"), id="ess-sha1-cert-hash"),
        pytest.param(TokenOptions(ess_cert_hash=b"\x00" * 32), id="ess-cert-hash-mismatch"),
        pytest.param(TokenOptions(include_certs=False), id="no-certificates"),
        pytest.param(TokenOptions(content_type=ID_DATA), id="content-type-id-data"),
        pytest.param(TokenOptions(version=2), id="tstinfo-version-2"),
        pytest.param(TokenOptions(content_type_attr=False), id="no-content-type-attr"),
        pytest.param(TokenOptions(message_digest_attr=False), id="no-message-digest-attr"),
        pytest.param(TokenOptions(corrupt_signature=True), id="bad-signature"),
        pytest.param(TokenOptions(signer_digest="sha1"), id="sha1-signer-digest"),
        pytest.param(TokenOptions(accuracy_millis=1000), id="accuracy-millis-out-of-range"),
    ],
)
def test_malformed_tokens_fail(test_tsa: TestTsa, options: TokenOptions) -> None:
    token = test_tsa.timestamp(SIG, gen_time=GEN, options=options)
    _fails(token, [test_tsa.chain.root.cert])


def test_sha1_imprint_refused(test_tsa: TestTsa) -> None:
    _fails(test_tsa.timestamp(SIG, gen_time=GEN, hash_name="sha1"), [test_tsa.chain.root.cert])


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x30\x00", b"\x30\x80", b"not asn.1 at all", b"\x30\x03\x06\x01\x00"],
)
def test_garbage_is_a_typed_failure(garbage: bytes) -> None:
    with pytest.raises(VerificationFailed) as info:
        parse_timestamp_token(garbage)
    assert info.value.reason is Reason.TIMESTAMP


def test_truncated_token_is_a_typed_failure(test_tsa: TestTsa) -> None:
    token = test_tsa.timestamp(SIG, gen_time=GEN)
    for cut in (10, len(token) // 2, len(token) - 1):
        _fails(token[:cut], [test_tsa.chain.root.cert])


@pytest.mark.parametrize(
    ("policy", "expected"),
    [(ETSI_BASELINE_POLICY, timedelta(seconds=1)), ("1.3.6.1.4.1.99999.2", timedelta(0))],
)
def test_accuracy_default_depends_on_policy(
    test_tsa: TestTsa, policy: str, expected: timedelta
) -> None:
    token = test_tsa.timestamp(
        SIG, gen_time=GEN, accuracy_seconds=None, options=TokenOptions(policy=policy)
    )
    info = parse_timestamp_token(token)
    assert info.accuracy == expected
    assert info.policy_oid == policy


def test_accuracy_millis_counted(test_tsa: TestTsa) -> None:
    token = test_tsa.timestamp(
        SIG, gen_time=GEN, accuracy_seconds=2, options=TokenOptions(accuracy_millis=500)
    )
    assert parse_timestamp_token(token).accuracy == timedelta(seconds=2, milliseconds=500)


def test_parse_exposes_structure(test_tsa: TestTsa) -> None:
    info = parse_timestamp_token(test_tsa.timestamp(SIG, gen_time=GEN))
    assert info.gen_time == GEN
    assert set(info.certificates) == set(test_tsa.chain.x509)


def test_tsa_leaf_without_critical_eku_rejected() -> None:
    leaf = tsa_leaf_spec().replace(eku_critical=False)
    chain = Pki().tsa_chain(leaf=leaf)
    _fails(TestTsa(chain).timestamp(SIG, gen_time=GEN), [chain.root.cert])


def test_tsa_leaf_with_extra_eku_rejected() -> None:
    leaf = tsa_leaf_spec().replace(
        eku=(ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING)
    )
    chain = Pki().tsa_chain(leaf=leaf)
    _fails(TestTsa(chain).timestamp(SIG, gen_time=GEN), [chain.root.cert])


def test_validate_tsa_chain_rules() -> None:
    pki = Pki()
    validate_tsa_chain(pki.tsa_chain().x509)
    with pytest.raises(VerificationFailed) as empty:
        validate_tsa_chain([])
    assert empty.value.reason is Reason.TIMESTAMP
    code_signing = pki.chain(depth=2)
    with pytest.raises(VerificationFailed) as wrong_profile:
        validate_tsa_chain(code_signing.x509)
    assert wrong_profile.value.reason is Reason.TIMESTAMP
    tsa = pki.tsa_chain()
    with pytest.raises(VerificationFailed) as reversed_chain:
        validate_tsa_chain(tuple(reversed(tsa.x509)))
    assert reversed_chain.value.reason is Reason.TIMESTAMP


def test_tsa_leaf_with_unsupported_key_size_rejected() -> None:
    chain = Pki().tsa_chain(leaf=tsa_leaf_spec(key=KeySpec.rsa(1024, slot=3)))
    with pytest.raises(VerificationFailed) as info:
        validate_tsa_chain(chain.x509)
    assert info.value.reason is Reason.TIMESTAMP


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl binary not installed")
def test_openssl_ts_reply_interoperates(test_tsa: TestTsa, tmp_path: Path) -> None:
    token = openssl_ts_reply(test_tsa.chain, SIG, tmp_path / "tsa")
    stamp = verify_timestamp_token(token, SIG, [test_tsa.chain.root.cert])
    assert stamp.tsa_chain == test_tsa.chain.x509
    assert stamp.info.accuracy == timedelta(seconds=1)
    _fails(token, [test_tsa.chain.root.cert], message=b"different")


# --- notation / tspclient-go vectors (conformance vectors) ---------------------------------------

_VECTOR_VERDICTS = {
    "TimeStampToken.p7s": True,
    "TimeStampTokenWithValidAndInvalidSignerInfos.p7s": True,
    "TimeStampTokenWithoutCertificate.p7s": False,
    "TimeStampTokenWithInvalidSignature.p7s": False,
    "TimeStampTokenWithInvalidTSTInfo.p7s": False,
    "TimeStampTokenWithoutSigningCertificate.p7s": False,
    "TimeStampTokenWithSigningCertificateV1.p7s": False,
    "TimeStampTokenWithWrongSigningCertificateV2IssuerChoiceTag.p7s": False,
    "TimeStampTokenWithSHA1CertHash.p7s": False,
    "TimeStampTokenWithMismatchCertHash.p7s": False,
    "TimeStampTokenWithInvalidSigningCertificateV2.p7s": False,
    "TimeStampTokenWithSigningCertificateV2NoCert.p7s": False,
    "TimeStampTokenWithTSTInfoVersion2.p7s": False,
    "SHA1TimeStampToken.p7s": False,
    "TimeStampTokenWithInvalideContentType.p7s": False,
}


def _globalsign_root() -> x509.Certificate:
    raw = (VECTORS / "GlobalSignRootCA.crt").read_bytes()
    if b"-----BEGIN" in raw:
        return x509.load_pem_x509_certificate(raw)
    return x509.load_der_x509_certificate(raw)


@pytest.mark.conformance
@pytest.mark.parametrize(("name", "passes"), sorted(_VECTOR_VERDICTS.items()))
def test_tspclient_vectors(name: str, passes: bool) -> None:
    if not (VECTORS / name).is_file():
        pytest.skip(f"conformance vector {VECTORS / name} not present")
    token = (VECTORS / name).read_bytes()
    root = _globalsign_root()
    if passes:
        stamp = verify_timestamp_token(token, b"notation", [root])
        assert stamp.gen_time.isoformat() == "2021-09-17T14:09:10+00:00"
        assert stamp.info.accuracy == timedelta(seconds=1)
        assert stamp.tsa_chain[-1] == root
    else:
        _fails(token, [root], message=b"notation")


def _to_indefinite_ber(token: bytes) -> bytes:
    """Re-encode the outer ContentInfo SEQUENCE and its [0] wrapper with indefinite lengths."""

    def split(data: bytes) -> tuple[bytes, bytes, bytes]:
        tag, first = data[:1], data[1]
        if first < 0x80:
            return tag, data[2 : 2 + first], data[2 + first :]
        size = int.from_bytes(data[2 : 2 + (first & 0x7F)], "big")
        start = 2 + (first & 0x7F)
        return tag, data[start : start + size], data[start + size :]

    tag, body, rest = split(token)
    assert tag == b"\x30"
    assert rest == b""
    oid_tag, oid, after_oid = split(body)
    wrapper_tag, signed_data, _ = split(after_oid)
    oid_tlv = body[: len(body) - len(after_oid)]
    assert (oid_tag, wrapper_tag) == (b"\x06", b"\xa0")
    del oid
    return b"\x30\x80" + oid_tlv + b"\xa0\x80" + signed_data + b"\x00\x00" + b"\x00\x00"


def test_ber_indefinite_length_token_accepted(test_tsa: TestTsa) -> None:
    ber = _to_indefinite_ber(test_tsa.timestamp(SIG, gen_time=GEN))
    assert ber[:2] == b"\x30\x80"
    stamp = verify_timestamp_token(ber, SIG, [test_tsa.chain.root.cert])
    assert stamp.gen_time == GEN


@pytest.mark.parametrize("keep_key_usage", [True, False], ids=["duplicate", "malformed"])
def test_tsa_leaf_with_unreadable_extensions_is_a_typed_failure(keep_key_usage: bool) -> None:
    # A TSA certificate is attacker-chosen content: extensions that cannot be read must end as
    # a TIMESTAMP failure (today the token's certificate parsing is what refuses them).
    pki = Pki()
    spec = tsa_leaf_spec("hostile TSA")
    if not keep_key_usage:
        spec = spec.replace(key_usage=None)
    chain = pki.tsa_chain(leaf=spec)
    hostile = reissue_edited(chain.leaf, chain.root, eku_relabelled_as_key_usage)
    with pytest.raises((x509.DuplicateExtension, ValueError)):
        _ = hostile.cert.extensions  # the edit did make the extensions unreadable
    token = TestTsa(Chain((hostile, chain.root))).timestamp(SIG, gen_time=GEN)
    _fails(token, [chain.root.cert])
    with pytest.raises(VerificationFailed) as info:
        validate_tsa_chain([hostile.cert, chain.root.cert])
    assert info.value.reason is Reason.TIMESTAMP


def test_path_building_over_unreadable_certificates_is_a_typed_failure() -> None:
    # Token certificates are parsed (and such ones refused) before path building, and trust
    # stores refuse them at load; path building still must not let the decode error escape.
    pki = Pki()
    chain = pki.tsa_chain(leaf=tsa_leaf_spec("hostile TSA"))
    hostile = reissue_edited(chain.leaf, chain.root, eku_relabelled_as_key_usage)
    with pytest.raises(VerificationFailed) as info:
        build_tsa_path(hostile.cert, [], [chain.root.cert], GEN)
    assert info.value.reason is Reason.TIMESTAMP
