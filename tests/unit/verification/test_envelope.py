"""Envelope integrity (docs/notation.md §2-§6.2): sign with tests.support.signing, verify."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from pullgate.common.descriptor import Descriptor
from pullgate.errors import PullgateError, Reason, VerificationFailed
from pullgate.verification.envelope import parse_envelope, verify_envelope
from pullgate.verification.model import (
    HEADER_AUTHENTIC_SIGNING_TIME,
    HEADER_EXPIRY,
    HEADER_SIGNING_SCHEME,
    HEADER_VERIFICATION_PLUGIN,
    HEADER_VERIFICATION_PLUGIN_MIN_VERSION,
    MEDIA_TYPE_COSE,
    MEDIA_TYPE_JWS,
    EnvelopeFormat,
    SignatureAlgorithm,
    SigningScheme,
)
from tests.support.pki import ALL_KEYS, NOW, CertSpec, Chain, KeySpec, Pki
from tests.support.signing import sign_cose, sign_jws

TARGET = Descriptor(
    media_type="application/vnd.oci.image.manifest.v1+json",
    digest="sha256:" + "ab" * 32,
    size=1234,
)
Signer = Callable[..., bytes]
FORMATS: list[tuple[str, Signer, str]] = [
    ("jws", sign_jws, MEDIA_TYPE_JWS),
    ("cose", sign_cose, MEDIA_TYPE_COSE),
]
EXPECTED_ALG = {
    ("rsa", 2048): SignatureAlgorithm.PS256,
    ("rsa", 3072): SignatureAlgorithm.PS384,
    ("rsa", 4096): SignatureAlgorithm.PS512,
    ("ec", 256): SignatureAlgorithm.ES256,
    ("ec", 384): SignatureAlgorithm.ES384,
    ("ec", 521): SignatureAlgorithm.ES512,
}
VECTORS = Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance" / "notation"


def _fails(media_type: str, envelope: bytes) -> None:
    with pytest.raises(VerificationFailed) as info:
        verify_envelope(media_type, envelope)
    assert info.value.reason is Reason.INTEGRITY


def _passes(media_type: str, envelope: bytes) -> None:
    assert verify_envelope(media_type, envelope).target.same_target(TARGET)


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Pki().chain(key=KeySpec.ec(256))


# --- happy path -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ALL_KEYS, ids=lambda k: f"{k.kind}{k.size}")
@pytest.mark.parametrize(("name", "signer", "media_type"), FORMATS, ids=[f[0] for f in FORMATS])
@pytest.mark.parametrize("scheme", list(SigningScheme))
def test_every_algorithm_signs_and_verifies(
    key: KeySpec, name: str, signer: Signer, media_type: str, scheme: SigningScheme
) -> None:
    chain = Pki().chain(key=key)
    expiry = NOW + timedelta(days=1)
    envelope = signer(chain, TARGET, scheme=scheme, expiry=expiry, annotations={"build": "7"})
    content = verify_envelope(media_type, envelope)
    assert content.format is EnvelopeFormat(media_type)
    assert content.algorithm is EXPECTED_ALG[(key.kind, key.size)]
    assert content.scheme is scheme
    assert content.signing_time == NOW
    assert content.expiry == expiry
    assert content.certificates == chain.x509
    assert content.target.same_target(TARGET)
    assert dict(content.target.annotations) == {"build": "7"}
    assert content.signing_agent == "pullgate-tests/1.0"
    assert HEADER_SIGNING_SCHEME in content.critical
    assert HEADER_EXPIRY in content.critical
    assert (HEADER_AUTHENTIC_SIGNING_TIME in content.critical) == (
        scheme is SigningScheme.SIGNING_AUTHORITY
    )
    assert content.timestamp_token is None


@pytest.mark.parametrize(("name", "signer", "media_type"), FORMATS, ids=[f[0] for f in FORMATS])
def test_timestamper_receives_the_raw_signature(
    chain: Chain, name: str, signer: Signer, media_type: str
) -> None:
    seen: list[bytes] = []

    def timestamper(signature: bytes) -> bytes:
        seen.append(signature)
        return b"token:" + signature[:4]

    content = verify_envelope(media_type, signer(chain, TARGET, timestamper=timestamper))
    assert seen == [content.raw_signature]
    assert content.timestamp_token == b"token:" + content.raw_signature[:4]


@pytest.mark.parametrize(("name", "signer", "media_type"), FORMATS, ids=[f[0] for f in FORMATS])
def test_self_signed_leaf_and_plugin_attributes(name: str, signer: Signer, media_type: str) -> None:
    chain = Pki().chain(key=KeySpec.rsa(3072), depth=1)
    envelope = signer(
        chain,
        TARGET,
        extra_protected={
            HEADER_VERIFICATION_PLUGIN: "acme",
            HEADER_VERIFICATION_PLUGIN_MIN_VERSION: "1.2.0",
            "note": "informational",
        },
        extra_critical=(HEADER_VERIFICATION_PLUGIN, HEADER_VERIFICATION_PLUGIN_MIN_VERSION),
        signing_agent=None,
    )
    content = verify_envelope(media_type, envelope)
    assert content.verification_plugin == "acme"
    assert content.verification_plugin_min_version == "1.2.0"
    assert content.extended_attributes["note"] == "informational"
    assert "note" not in content.critical
    assert content.signing_agent is None


@pytest.mark.parametrize(("name", "signer", "media_type"), FORMATS, ids=[f[0] for f in FORMATS])
def test_non_critical_plugin_header_is_not_a_plugin_requirement(
    chain: Chain, name: str, signer: Signer, media_type: str
) -> None:
    envelope = signer(chain, TARGET, extra_protected={HEADER_VERIFICATION_PLUGIN: "acme"})
    content = verify_envelope(media_type, envelope)
    assert content.verification_plugin is None
    assert content.extended_attributes[HEADER_VERIFICATION_PLUGIN] == "acme"


def test_jws_verifies_pss_with_any_salt_but_cose_requires_hash_length() -> None:
    chain = Pki().chain(key=KeySpec.rsa(2048))
    _passes(MEDIA_TYPE_JWS, sign_jws(chain, TARGET, pss_salt_length=0))
    _passes(MEDIA_TYPE_JWS, sign_jws(chain, TARGET, pss_salt_length=64))
    _fails(MEDIA_TYPE_COSE, sign_cose(chain, TARGET, pss_salt_length=0))
    _fails(MEDIA_TYPE_COSE, sign_cose(chain, TARGET, pss_salt_length=64))


def test_cose_allows_standard_labels_in_crit_but_jws_does_not(chain: Chain) -> None:
    _passes(MEDIA_TYPE_COSE, sign_cose(chain, TARGET, crit_add=(1,)))
    _fails(MEDIA_TYPE_JWS, sign_jws(chain, TARGET, crit_add=("alg",)))


def test_other_time_header_rejected_by_jws_ignored_by_cose(chain: Chain) -> None:
    other = {HEADER_AUTHENTIC_SIGNING_TIME: "2026-11-22T00:00:00Z"}
    _fails(MEDIA_TYPE_JWS, sign_jws(chain, TARGET, extra_protected=other))
    cose_other = {HEADER_AUTHENTIC_SIGNING_TIME: cbor2.CBORTag(1, 1)}
    _passes(MEDIA_TYPE_COSE, sign_cose(chain, TARGET, extra_protected=cose_other))


def test_jws_keys_are_matched_case_insensitively_outside_the_protected_header(
    chain: Chain,
) -> None:
    envelope = json.loads(sign_jws(chain, TARGET))
    envelope["Header"] = envelope.pop("header")
    envelope["Header"]["io.cncf.notary.SigningAgent"] = envelope["Header"].pop(
        "io.cncf.notary.signingAgent"
    )
    content = verify_envelope(MEDIA_TYPE_JWS, json.dumps(envelope).encode())
    assert content.signing_agent == "pullgate-tests/1.0"


def test_jws_ambiguous_and_duplicate_keys_are_rejected(chain: Chain) -> None:
    envelope = json.loads(sign_jws(chain, TARGET))
    envelope["Signature"] = envelope["signature"]
    _fails(MEDIA_TYPE_JWS, json.dumps(envelope).encode())
    text = sign_jws(chain, TARGET).decode()
    _fails(MEDIA_TYPE_JWS, text.replace('{"payload"', '{"payload":"e30","payload"', 1).encode())


# --- tamper matrix ----------------------------------------------------------------------------


def _mutate_jws(envelope: bytes, field: str, change: Callable[[bytes], bytes]) -> bytes:
    document = json.loads(envelope)
    raw = base64.urlsafe_b64decode(document[field] + "=" * (-len(document[field]) % 4))
    document[field] = base64.urlsafe_b64encode(change(raw)).rstrip(b"=").decode()
    return json.dumps(document).encode()


def _mutate_cose(envelope: bytes, index: int, change: Callable[[Any], Any]) -> bytes:
    message = cbor2.loads(envelope)
    parts = list(message.value)
    parts[index] = change(parts[index])
    return cbor2.dumps(cbor2.CBORTag(18, parts))


def _shift_cose_time(protected: bytes) -> bytes:
    encoded = cbor2.dumps(cbor2.CBORTag(1, int(NOW.timestamp())))
    assert encoded in protected
    return protected.replace(encoded, cbor2.dumps(cbor2.CBORTag(1, int(NOW.timestamp()) + 1)))


def _flip_digest(payload: bytes) -> bytes:
    return payload.replace(b"abab", b"abac", 1)


def _tampers() -> dict[str, tuple[Callable[[Chain], bytes], Callable[[Chain], bytes]]]:
    other_root = Pki(name="stranger").root()
    later = NOW + timedelta(hours=1)
    return {
        "payload byte": (
            lambda c: _mutate_jws(sign_jws(c, TARGET), "payload", _flip_digest),
            lambda c: _mutate_cose(sign_cose(c, TARGET), 2, _flip_digest),
        ),
        "protected header byte": (
            lambda c: _mutate_jws(
                sign_jws(c, TARGET), "protected", lambda b: b.replace(b"2026", b"2027")
            ),
            lambda c: _mutate_cose(sign_cose(c, TARGET), 0, _shift_cose_time),
        ),
        "signature byte": (
            lambda c: _mutate_jws(
                sign_jws(c, TARGET), "signature", lambda b: bytes([b[0] ^ 1]) + b[1:]
            ),
            lambda c: _mutate_cose(sign_cose(c, TARGET), 3, lambda b: bytes([b[0] ^ 1]) + b[1:]),
        ),
        "alg swapped": (
            lambda c: sign_jws(c, TARGET, alg=SignatureAlgorithm.ES384),
            lambda c: sign_cose(c, TARGET, alg=SignatureAlgorithm.ES384),
        ),
        "alg family swapped": (
            lambda c: sign_jws(c, TARGET, alg=SignatureAlgorithm.PS256),
            lambda c: sign_cose(c, TARGET, alg=SignatureAlgorithm.PS256),
        ),
        "crit missing scheme": (
            lambda c: sign_jws(c, TARGET, expiry=later, crit_remove=(HEADER_SIGNING_SCHEME,)),
            lambda c: sign_cose(c, TARGET, expiry=later, crit_remove=(HEADER_SIGNING_SCHEME,)),
        ),
        "crit missing expiry": (
            lambda c: sign_jws(c, TARGET, expiry=later, crit_remove=(HEADER_EXPIRY,)),
            lambda c: sign_cose(c, TARGET, expiry=later, crit_remove=(HEADER_EXPIRY,)),
        ),
        "crit missing authentic signing time": (
            lambda c: sign_jws(
                c,
                TARGET,
                scheme=SigningScheme.SIGNING_AUTHORITY,
                crit_remove=(HEADER_AUTHENTIC_SIGNING_TIME,),
            ),
            lambda c: sign_cose(
                c,
                TARGET,
                scheme=SigningScheme.SIGNING_AUTHORITY,
                crit_remove=(HEADER_AUTHENTIC_SIGNING_TIME,),
            ),
        ),
        "crit empty": (
            lambda c: sign_jws(c, TARGET, crit_remove=(HEADER_SIGNING_SCHEME,)),
            lambda c: sign_cose(c, TARGET, crit_remove=(HEADER_SIGNING_SCHEME,)),
        ),
        "crit extra absent header": (
            lambda c: sign_jws(c, TARGET, crit_add=("io.example.absent",)),
            lambda c: sign_cose(c, TARGET, crit_add=("io.example.absent",)),
        ),
        "signing time absent": (
            lambda c: sign_jws(c, TARGET, omit_signing_time=True),
            lambda c: sign_cose(c, TARGET, omit_signing_time=True),
        ),
        "authentic signing time absent": (
            lambda c: sign_jws(
                c, TARGET, scheme=SigningScheme.SIGNING_AUTHORITY, omit_signing_time=True
            ),
            lambda c: sign_cose(
                c, TARGET, scheme=SigningScheme.SIGNING_AUTHORITY, omit_signing_time=True
            ),
        ),
        "unknown scheme": (
            lambda c: sign_jws(c, TARGET, extra_protected={HEADER_SIGNING_SCHEME: "notary.v2"}),
            lambda c: sign_cose(c, TARGET, extra_protected={HEADER_SIGNING_SCHEME: "notary.v2"}),
        ),
        "wrong content type": (
            lambda c: sign_jws(c, TARGET, content_type="application/json"),
            lambda c: sign_cose(c, TARGET, content_type="application/json"),
        ),
        "expiry equals signing time": (
            lambda c: sign_jws(c, TARGET, expiry=NOW),
            lambda c: sign_cose(c, TARGET, expiry=NOW),
        ),
        "expiry before signing time": (
            lambda c: sign_jws(c, TARGET, expiry=NOW - timedelta(seconds=1)),
            lambda c: sign_cose(c, TARGET, expiry=NOW - timedelta(seconds=1)),
        ),
        "chain reordered": (
            lambda c: sign_jws(c, TARGET, certificates=tuple(reversed(c.x509))),
            lambda c: sign_cose(c, TARGET, certificates=tuple(reversed(c.x509))),
        ),
        "chain without root": (
            lambda c: sign_jws(c, TARGET, certificates=c.x509[:-1]),
            lambda c: sign_cose(c, TARGET, certificates=c.x509[:-1]),
        ),
        "extra unrelated cert": (
            lambda c: sign_jws(c, TARGET, extra_certs=(other_root.cert,)),
            lambda c: sign_cose(c, TARGET, extra_certs=(other_root.cert,)),
        ),
        "payload not an object": (
            lambda c: sign_jws(c, TARGET, payload_override=b"[]"),
            lambda c: sign_cose(c, TARGET, payload_override=b"[]"),
        ),
        "payload without target": (
            lambda c: sign_jws(c, TARGET, payload_override=b'{"other":{}}'),
            lambda c: sign_cose(c, TARGET, payload_override=b'{"other":{}}'),
        ),
        "payload target incomplete": (
            lambda c: sign_jws(c, TARGET, payload_override=b'{"targetArtifact":{"size":1}}'),
            lambda c: sign_cose(c, TARGET, payload_override=b'{"targetArtifact":{"size":1}}'),
        ),
    }


TAMPERS = _tampers()


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
@pytest.mark.parametrize("fmt", [0, 1], ids=["jws", "cose"])
def test_single_tamper_fails_integrity(chain: Chain, tamper: str, fmt: int) -> None:
    envelope = TAMPERS[tamper][fmt](chain)
    _fails(FORMATS[fmt][2], envelope)


BAD_LEAVES = {
    "leaf with CA flag": CertSpec(ca=True),
    "serverAuth instead of codeSigning": CertSpec(eku=(ExtendedKeyUsageOID.SERVER_AUTH,)),
    "RSA-1024 leaf": CertSpec(key=KeySpec.rsa(1024)),
    "keyUsage not critical": CertSpec(key_usage_critical=False),
}


@pytest.mark.parametrize("leaf", sorted(BAD_LEAVES))
@pytest.mark.parametrize(("name", "signer", "media_type"), FORMATS, ids=[f[0] for f in FORMATS])
def test_bad_leaf_certificate_fails_integrity(
    leaf: str, name: str, signer: Signer, media_type: str
) -> None:
    chain = Pki().chain(leaf=BAD_LEAVES[leaf])
    envelope = signer(chain, TARGET)
    _fails(media_type, envelope)
    assert parse_envelope(media_type, envelope).certificates == chain.x509


@pytest.mark.parametrize(
    "knob",
    [
        {"untagged": True},
        {"x5chain_protected": True},
        {"x5chain_single_bstr": True},
        {"cose_time_tag": 0},
        {"cose_time_tag": None},
    ],
    ids=lambda k: next(iter(k)) + "=" + str(next(iter(k.values()))),
)
def test_cose_structure_tampers_fail_integrity(knob: dict[str, Any]) -> None:
    chain = Pki().chain(key=KeySpec.ec(384), depth=1)
    envelope = sign_cose(chain, TARGET, **knob)
    _fails(MEDIA_TYPE_COSE, envelope)
    with pytest.raises(VerificationFailed):
        parse_envelope(MEDIA_TYPE_COSE, envelope)


def test_cose_trailing_bytes_and_duplicate_keys_fail(chain: Chain) -> None:
    envelope = sign_cose(chain, TARGET)
    _fails(MEDIA_TYPE_COSE, envelope + b"\x00")
    message = cbor2.loads(envelope)
    protected = message.value[0]
    # Re-encode the protected map with its alg entry repeated (maps of n+1 pairs).
    count = protected[0] & 0x1F
    doubled = bytes([0xA0 | (count + 1)]) + protected[1:] + b"\x01\x26"
    parts = [doubled, *message.value[1:]]
    _fails(MEDIA_TYPE_COSE, cbor2.dumps(cbor2.CBORTag(18, parts)))


def test_jws_base64_strictness(chain: Chain) -> None:
    document = json.loads(sign_jws(chain, TARGET))
    padded = dict(
        document, signature=document["signature"] + "=" * (-len(document["signature"]) % 4 or 4)
    )
    _fails(MEDIA_TYPE_JWS, json.dumps(padded).encode())
    header = dict(document["header"], x5c=[c.rstrip("=") + "!" for c in document["header"]["x5c"]])
    _fails(MEDIA_TYPE_JWS, json.dumps(dict(document, header=header)).encode())
    _fails(MEDIA_TYPE_JWS, json.dumps(dict(document, header={})).encode())


def test_ecdsa_signature_of_wrong_width_fails() -> None:
    chain = Pki().chain(key=KeySpec.ec(256))
    envelope = _mutate_jws(sign_jws(chain, TARGET), "signature", lambda b: b"\x00" + b)
    _fails(MEDIA_TYPE_JWS, envelope)


def test_jws_rejects_duplicate_required_crit_entry(chain: Chain) -> None:
    _fails(MEDIA_TYPE_JWS, sign_jws(chain, TARGET, crit_add=(HEADER_SIGNING_SCHEME,)))
    _passes(MEDIA_TYPE_COSE, sign_cose(chain, TARGET, crit_add=(HEADER_SIGNING_SCHEME,)))


def test_parse_envelope_skips_crypto_and_chain_rules(chain: Chain) -> None:
    envelope = _mutate_jws(
        sign_jws(chain, TARGET), "signature", lambda b: bytes([b[0] ^ 1]) + b[1:]
    )
    content = parse_envelope(MEDIA_TYPE_JWS, envelope)
    assert content.target.same_target(TARGET)
    _fails(MEDIA_TYPE_JWS, envelope)


@pytest.mark.parametrize("data", [b"", b"{}", b"null", b"\xd2\x84", b"\xff" * 8, b"[1,2]"])
@pytest.mark.parametrize("media_type", [MEDIA_TYPE_JWS, MEDIA_TYPE_COSE])
def test_garbage_is_a_typed_error(data: bytes, media_type: str) -> None:
    for entry in (parse_envelope, verify_envelope):
        with pytest.raises(PullgateError) as info:
            entry(media_type, data)
        assert info.value.reason is Reason.INTEGRITY


def test_unsupported_media_type_fails_integrity(chain: Chain) -> None:
    _fails("application/vnd.example+json", sign_jws(chain, TARGET))


# --- notation vectors -------------------------------------------------------------------------

_INTEGRITY_OK = [
    ("notation-go/internal/mock/testdata/ca_valid_sig_env.json", MEDIA_TYPE_JWS),
    ("notation-go/internal/mock/testdata/sa_valid_sig_env.json", MEDIA_TYPE_JWS),
    ("notation-go/internal/mock/testdata/ca_expired_sig_env.json", MEDIA_TYPE_JWS),
    ("notation-go/internal/mock/testdata/ca_plugin_sig_env.json", MEDIA_TYPE_JWS),
    ("notation-go/internal/mock/testdata/sig_env_with_metadata.json", MEDIA_TYPE_JWS),
    ("notation-go/verifier/testdata/timestamp/sigEnv/jwsWithTimestamp.sig", MEDIA_TYPE_JWS),
    ("notation-go/verifier/testdata/timestamp/sigEnv/coseWithTimestamp.sig", MEDIA_TYPE_COSE),
    ("notation-go/verifier/testdata/timestamp/sigEnv/jwsExpiredWithTimestamp.sig", MEDIA_TYPE_JWS),
    (
        "notation-go/verifier/testdata/timestamp/sigEnv/coseExpiredWithTimestamp.sig",
        MEDIA_TYPE_COSE,
    ),
    ("notation-go/verifier/testdata/timestamp/sigEnv/timestampBeforeNotBefore.sig", MEDIA_TYPE_JWS),
    ("notation-go/verifier/testdata/timestamp/sigEnv/timestampAfterNotAfter.sig", MEDIA_TYPE_COSE),
    ("notation-go/verifier/testdata/timestamp/sigEnv/withoutTimestamp.sig", MEDIA_TYPE_JWS),
    ("notation-go/_extracted_from_examples/localVerify.cose.sig", MEDIA_TYPE_COSE),
    ("notation-go/_extracted_from_examples/verifyBlob.jws.sig", MEDIA_TYPE_JWS),
    ("notation-go/internal/testdata/jws_signature.sig", MEDIA_TYPE_JWS),
    ("notation-go/internal/testdata/cose_signature.sig", MEDIA_TYPE_COSE),
]


def _vector(path: str) -> bytes:
    if not VECTORS.is_dir():
        pytest.skip(f"notation conformance vectors not found at {VECTORS}")
    return (VECTORS / path).read_bytes()


@pytest.mark.conformance
@pytest.mark.parametrize(("path", "media_type"), _INTEGRITY_OK, ids=[p for p, _ in _INTEGRITY_OK])
def test_notation_vector_integrity_ok(path: str, media_type: str) -> None:
    content = verify_envelope(media_type, _vector(path))
    assert content.certificates
    assert content.raw_signature


@pytest.mark.conformance
def test_notation_vector_fields() -> None:
    content = verify_envelope(
        MEDIA_TYPE_JWS, _vector("notation-go/internal/mock/testdata/ca_plugin_sig_env.json")
    )
    assert content.algorithm is SignatureAlgorithm.PS384
    assert content.signing_agent == "Notation/1.0.0"  # read through "io.cncf.notary.SigningAgent"
    assert content.verification_plugin == "plugin-name"
    assert content.target.digest == (
        "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e"
    )
    assert content.expiry is not None
    assert content.expiry.year == 2120
    sa = verify_envelope(
        MEDIA_TYPE_JWS, _vector("notation-go/internal/mock/testdata/sa_valid_sig_env.json")
    )
    assert sa.scheme is SigningScheme.SIGNING_AUTHORITY
    cose = verify_envelope(
        MEDIA_TYPE_COSE,
        _vector("notation-go/verifier/testdata/timestamp/sigEnv/coseWithTimestamp.sig"),
    )
    assert cose.timestamp_token
    assert cose.signing_time.timestamp() == 1718692031


@pytest.mark.conformance
@pytest.mark.parametrize("name", ["ca_invalid_sig_env.json", "sa_invalid_sig_env.json"])
def test_notation_invalid_vectors_fail_integrity(name: str) -> None:
    _fails(MEDIA_TYPE_JWS, _vector(f"notation-go/internal/mock/testdata/{name}"))


@pytest.mark.conformance
def test_signer_reproduces_notation_headers_byte_for_byte() -> None:
    reference = json.loads(_vector("notation-go/internal/testdata/jws_signature.sig"))
    target = Descriptor(
        media_type="application/vnd.oci.image.manifest.v1+json",
        digest="sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0",
        size=481,
    )
    eight = timezone(timedelta(hours=8))
    mine = json.loads(
        sign_jws(
            Pki().chain(key=KeySpec.rsa(2048), depth=1),
            target,
            signing_time=datetime(2023, 3, 14, 16, 10, 2, tzinfo=eight),
        )
    )
    assert mine["protected"] == reference["protected"]
    assert mine["payload"] == reference["payload"]
    assert list(mine) == list(reference)

    cose_ref = cbor2.loads(_vector("notation-go/_extracted_from_examples/localVerify.cose.sig"))
    cose_target = Descriptor(
        media_type="application/vnd.docker.distribution.manifest.v2+json",
        digest="sha256:c0d488a800e4127c334ad20d61d7bc21b4097540327217dfab52262adc02380c",
        size=528,
    )
    cose_mine = cbor2.loads(
        sign_cose(
            Pki().chain(key=KeySpec.rsa(2048), depth=1),
            cose_target,
            signing_time=datetime.fromtimestamp(1673227654, UTC),
        )
    )
    assert cose_mine.value[0] == cose_ref.value[0]
    assert cose_mine.value[2] == cose_ref.value[2]
