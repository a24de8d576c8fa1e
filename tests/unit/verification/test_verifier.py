"""The verifier pipeline: levels x checks, overrides, timestamps, schemes, signature bounds.

Each test states what notation does at each level — deny (``enforce``) or only log — and checks
pullgate's typed reason and action. Signatures come from the test signer, chains from the PKI
factory, timestamps from the in-process test TSA; time and revocation are injected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from pullgate.common.clock import FixedClock
from pullgate.common.descriptor import Descriptor
from pullgate.errors import MalformedInput, PullgateError, Reason, VerificationInconclusive
from pullgate.verification.cache import CertMemo
from pullgate.verification.model import (
    HEADER_VERIFICATION_PLUGIN,
    MEDIA_TYPE_COSE,
    MEDIA_TYPE_JWS,
    SignatureAlgorithm,
    SigningScheme,
)
from pullgate.verification.outcome import CheckAction, CheckType, VerificationOutcome
from pullgate.verification.policy import TrustPolicyStatement, parse_oci_policy
from pullgate.verification.revocation import (
    RevocationChecker,
    RevocationStatus,
    StaticRevocationChecker,
)
from pullgate.verification.truststore import TrustStore
from pullgate.verification.verifier import Verifier
from tests.support.pki import (
    NOW,
    CertSpec,
    Chain,
    KeySpec,
    Pki,
    eku_relabelled_as_key_usage,
    reissue_edited,
    write_store,
)
from tests.support.signing import sign_cose, sign_jws
from tests.support.statements import Source, oci_statement, signature_blob
from tests.support.tsa import TestTsa

TARGET = Descriptor(
    media_type="application/vnd.oci.image.manifest.v1+json",
    digest="sha256:" + "12" * 32,
    size=321,
)
REF = f"registry.example/app@{TARGET.digest}"
LEVELS = ("strict", "permissive", "audit")


@dataclass
class World:
    tmp: Path
    chain: Chain
    tsa: TestTsa
    revocation: RevocationChecker = field(
        default_factory=lambda: StaticRevocationChecker(RevocationStatus.GOOD)
    )
    tsa_revocation: RevocationChecker | None = None

    def verifier(self, max_signatures: int = 100) -> Verifier:
        return Verifier(
            trust_store=TrustStore(self.tmp),
            revocation=self.revocation,
            tsa_revocation=self.tsa_revocation,
            clock=FixedClock(NOW),
            max_signatures=max_signatures,
            memo=CertMemo(),
        )

    def verify(
        self,
        statement: TrustPolicyStatement,
        *envelopes: bytes,
        media_type: str = MEDIA_TYPE_JWS,
        metadata: dict[str, str] | None = None,
        target: Descriptor = TARGET,
    ) -> VerificationOutcome:
        source = Source([signature_blob(e, media_type, i) for i, e in enumerate(envelopes)])
        return self.verifier().verify_artifact(
            reference=REF,
            target=target,
            statement=statement,
            source=source,
            user_metadata=metadata,
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    pki = Pki(name="verifier")
    chain = pki.chain(key=KeySpec.ec(256))
    tsa = TestTsa(pki.tsa_chain())
    write_store(tmp_path, "ca", "main", [chain.root.cert])
    write_store(tmp_path, "signingAuthority", "sa", [chain.root.cert])
    write_store(tmp_path, "tsa", "tsa", [tsa.chain.root.cert])
    return World(tmp_path, chain, tsa)


def _logged(outcome: VerificationOutcome, check: CheckType) -> Reason | None:
    sig = outcome.signatures[0]
    for r in sig.results:
        if r.check is check and not r.passed:
            assert r.action is CheckAction.LOG
            return r.reason
    return None


# ----------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("fmt", ["jws", "cose"])
def test_valid_signature_allowed_at_every_level(world: World, level: str, fmt: str) -> None:
    signer, mt = (sign_jws, MEDIA_TYPE_JWS) if fmt == "jws" else (sign_cose, MEDIA_TYPE_COSE)
    outcome = world.verify(oci_statement(level), signer(world.chain, TARGET), media_type=mt)
    assert outcome.allowed
    assert outcome.reason is Reason.VERIFIED
    assert outcome.signatures[0].warnings == ()


def test_skip_level_fetches_nothing(world: World) -> None:
    doc = {
        "version": "1.0",
        "trustPolicies": [
            {"name": "s", "registryScopes": ["*"], "signatureVerification": {"level": "skip"}}
        ],
    }
    statement = parse_oci_policy(json.dumps(doc).encode()).statements[0]
    source = Source([signature_blob(b"garbage")])
    outcome = world.verifier().verify_artifact(
        reference=REF, target=TARGET, statement=statement, source=source
    )
    assert (outcome.allowed, outcome.reason, source.pulled) == (True, Reason.SKIPPED_BY_POLICY, 0)


# ----------------------------------------------------------------------- integrity: every level


def _tampers(world: World) -> dict[str, tuple[bytes, str]]:
    chain = world.chain
    good = sign_jws(chain, TARGET)
    doc = json.loads(good)
    payload_flip = dict(
        doc, payload=("A" if doc["payload"][0] != "A" else "B") + doc["payload"][1:]
    )
    protected_flip = dict(
        doc, protected=("e" if doc["protected"][0] != "e" else "f") + doc["protected"][1:]
    )
    pki = Pki(name="tamper")
    stranger = Pki(name="stranger").chain(key=KeySpec.ec(256, slot=3), depth=1)
    ca_leaf = pki.chain(leaf=CertSpec(ca=True, key_usage=frozenset({"digital_signature"})))
    server_auth = pki.chain(leaf=CertSpec(eku=(ExtendedKeyUsageOID.SERVER_AUTH,)))
    rsa1024 = pki.chain(leaf=CertSpec(key=KeySpec.rsa(1024)))
    reordered = [chain.certs[1].cert, chain.certs[0].cert, chain.certs[2].cert]
    # Leaves whose extensions cryptography cannot read (validly signed by the intermediate).
    duplicate_ext = Chain(
        (reissue_edited(chain.leaf, chain.certs[1], eku_relabelled_as_key_usage), *chain.certs[1:])
    )
    no_key_usage = pki.chain(key=KeySpec.ec(256), leaf=CertSpec(key_usage=None))
    malformed_ext = Chain(
        (
            reissue_edited(no_key_usage.leaf, no_key_usage.certs[1], eku_relabelled_as_key_usage),
            *no_key_usage.certs[1:],
        )
    )
    return {
        "payload byte": (json.dumps(payload_flip).encode(), MEDIA_TYPE_JWS),
        "protected header byte": (json.dumps(protected_flip).encode(), MEDIA_TYPE_JWS),
        "alg swapped": (sign_jws(chain, TARGET, alg=SignatureAlgorithm.ES384), MEDIA_TYPE_JWS),
        "crit entry missing": (
            sign_jws(chain, TARGET, crit_remove=("io.cncf.notary.signingScheme",)),
            MEDIA_TYPE_JWS,
        ),
        "crit entry extra": (sign_jws(chain, TARGET, crit_add=("no.such.header",)), MEDIA_TYPE_JWS),
        "signing time absent": (sign_jws(chain, TARGET, omit_signing_time=True), MEDIA_TYPE_JWS),
        "chain reordered": (sign_jws(chain, TARGET, certificates=reordered), MEDIA_TYPE_JWS),
        "extra unrelated cert": (
            sign_jws(chain, TARGET, extra_certs=[stranger.leaf.cert]),
            MEDIA_TYPE_JWS,
        ),
        "leaf with CA flag": (sign_jws(ca_leaf, TARGET), MEDIA_TYPE_JWS),
        "serverAuth instead of codeSigning": (sign_jws(server_auth, TARGET), MEDIA_TYPE_JWS),
        "RSA-1024 leaf": (sign_jws(rsa1024, TARGET), MEDIA_TYPE_JWS),
        "leaf extensions duplicated": (sign_jws(duplicate_ext, TARGET), MEDIA_TYPE_JWS),
        "leaf extension malformed": (sign_cose(malformed_ext, TARGET), MEDIA_TYPE_COSE),
        "untagged COSE": (sign_cose(chain, TARGET, untagged=True), MEDIA_TYPE_COSE),
        "x5chain in protected bucket": (
            sign_cose(chain, TARGET, x5chain_protected=True),
            MEDIA_TYPE_COSE,
        ),
        "expiry not after signing time": (
            sign_jws(chain, TARGET, expiry=NOW - timedelta(days=1)),
            MEDIA_TYPE_JWS,
        ),
    }


TAMPERS = (
    "payload byte",
    "protected header byte",
    "alg swapped",
    "crit entry missing",
    "crit entry extra",
    "signing time absent",
    "chain reordered",
    "extra unrelated cert",
    "leaf with CA flag",
    "serverAuth instead of codeSigning",
    "RSA-1024 leaf",
    "leaf extensions duplicated",
    "leaf extension malformed",
    "untagged COSE",
    "x5chain in protected bucket",
    "expiry not after signing time",
)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("tamper", TAMPERS)
def test_integrity_tamper_denied_at_every_level(world: World, tamper: str, level: str) -> None:
    envelope, mt = _tampers(world)[tamper]
    outcome = world.verify(oci_statement(level), envelope, media_type=mt)
    assert not outcome.allowed
    assert outcome.reason is Reason.INTEGRITY
    assert outcome.failing_check is CheckType.INTEGRITY


# ----------------------------------------------------------------------- level-governed checks


def _expired_signature(world: World) -> bytes:
    return sign_jws(
        world.chain,
        TARGET,
        signing_time=NOW - timedelta(days=3),
        expiry=NOW - timedelta(days=1),
    )


@pytest.mark.parametrize(
    ("level", "denied"), [("strict", True), ("permissive", False), ("audit", False)]
)
def test_expired_signature(world: World, level: str, denied: bool) -> None:
    outcome = world.verify(oci_statement(level), _expired_signature(world))
    assert outcome.allowed is not denied
    if denied:
        assert (outcome.reason, outcome.failing_check) == (Reason.EXPIRED, CheckType.EXPIRY)
    else:
        assert _logged(outcome, CheckType.EXPIRY) is Reason.EXPIRED


@pytest.mark.parametrize(
    ("level", "denied"), [("strict", True), ("permissive", True), ("audit", False)]
)
def test_untrusted_signer(world: World, level: str, denied: bool) -> None:
    stranger = Pki(name="stranger").chain(key=KeySpec.ec(256, slot=3), depth=1)
    outcome = world.verify(oci_statement(level), sign_jws(stranger, TARGET))
    assert outcome.allowed is not denied
    if denied:
        assert outcome.reason is Reason.UNTRUSTED
    else:
        assert _logged(outcome, CheckType.AUTHENTICITY) is Reason.UNTRUSTED


@pytest.mark.parametrize(
    ("level", "denied"), [("strict", True), ("permissive", True), ("audit", False)]
)
def test_identity_mismatch(world: World, level: str, denied: bool) -> None:
    statement = oci_statement(level, identities=["x509.subject: C=US, ST=WA, O=someone-else"])
    outcome = world.verify(statement, sign_jws(world.chain, TARGET))
    assert outcome.allowed is not denied
    if denied:
        assert outcome.reason is Reason.IDENTITY_MISMATCH
    else:
        assert _logged(outcome, CheckType.AUTHENTICITY) is Reason.IDENTITY_MISMATCH


def test_identity_match_allows(world: World) -> None:
    statement = oci_statement(identities=["x509.subject: C=US, ST=WA, O=pullgate"])
    assert world.verify(statement, sign_jws(world.chain, TARGET)).allowed


def test_missing_store_is_an_authenticity_failure(world: World) -> None:
    outcome = world.verify(oci_statement(stores=["ca:nope"]), sign_jws(world.chain, TARGET))
    assert (outcome.allowed, outcome.reason) == (False, Reason.UNTRUSTED)
    audit = world.verify(oci_statement("audit", stores=["ca:nope"]), sign_jws(world.chain, TARGET))
    assert audit.allowed


def _expired_cert_chain() -> Chain:
    return Pki(name="expired").chain(
        leaf=CertSpec(
            key=KeySpec.ec(256, slot=7),
            not_before=NOW - timedelta(days=10),
            not_after=NOW - timedelta(days=5),
        )
    )


@pytest.mark.parametrize(
    ("level", "denied"), [("strict", True), ("permissive", False), ("audit", False)]
)
def test_expired_certificate_without_timestamp(world: World, level: str, denied: bool) -> None:
    chain = _expired_cert_chain()
    write_store(world.tmp, "ca", "main", [chain.root.cert, world.chain.root.cert])
    envelope = sign_jws(chain, TARGET, signing_time=NOW - timedelta(days=7))
    outcome = world.verify(oci_statement(level), envelope)
    assert outcome.allowed is not denied
    if denied:
        assert (outcome.reason, outcome.failing_check) == (
            Reason.TIMESTAMP,
            CheckType.AUTHENTIC_TIMESTAMP,
        )
    else:
        assert _logged(outcome, CheckType.AUTHENTIC_TIMESTAMP) is Reason.TIMESTAMP


@pytest.mark.parametrize(
    ("level", "denied"), [("strict", True), ("permissive", False), ("audit", False)]
)
def test_revoked(world: World, level: str, denied: bool) -> None:
    world.revocation = StaticRevocationChecker(RevocationStatus.REVOKED)
    outcome = world.verify(oci_statement(level), sign_jws(world.chain, TARGET))
    assert outcome.allowed is not denied
    if denied:
        assert (outcome.reason, outcome.inconclusive) == (Reason.REVOKED, False)
    else:
        assert _logged(outcome, CheckType.REVOCATION) is Reason.REVOKED


def test_revocation_unknown_is_inconclusive(world: World) -> None:
    world.revocation = StaticRevocationChecker(RevocationStatus.UNKNOWN)
    outcome = world.verify(oci_statement(), sign_jws(world.chain, TARGET))
    assert (outcome.allowed, outcome.reason, outcome.inconclusive) == (
        False,
        Reason.REVOCATION_UNKNOWN,
        True,
    )


def test_override_revocation_skip(world: World) -> None:
    world.revocation = StaticRevocationChecker(RevocationStatus.REVOKED)
    outcome = world.verify(
        oci_statement(override={"revocation": "skip"}), sign_jws(world.chain, TARGET)
    )
    assert outcome.allowed
    rev = [r for r in outcome.signatures[0].results if r.check is CheckType.REVOCATION]
    assert rev[0].action is CheckAction.SKIP


def test_override_expiry_log_in_strict(world: World) -> None:
    outcome = world.verify(oci_statement(override={"expiry": "log"}), _expired_signature(world))
    assert outcome.allowed
    assert _logged(outcome, CheckType.EXPIRY) is Reason.EXPIRED


def test_override_authenticity_enforce_in_audit(world: World) -> None:
    stranger = Pki(name="stranger").chain(key=KeySpec.ec(256, slot=3), depth=1)
    outcome = world.verify(
        oci_statement("audit", override={"authenticity": "enforce"}), sign_jws(stranger, TARGET)
    )
    assert (outcome.allowed, outcome.reason) == (False, Reason.UNTRUSTED)


# ----------------------------------------------------------------------- out-of-table checks


@pytest.mark.parametrize("level", LEVELS)
def test_descriptor_mismatch_denied_at_every_level(world: World, level: str) -> None:
    other = Descriptor(media_type=TARGET.media_type, digest="sha256:" + "34" * 32, size=321)
    outcome = world.verify(oci_statement(level), sign_jws(world.chain, other))
    assert (outcome.allowed, outcome.reason) == (False, Reason.DESCRIPTOR_MISMATCH)
    assert outcome.failing_check is CheckType.DESCRIPTOR


@pytest.mark.parametrize("field_name", ["media_type", "size"])
def test_descriptor_compares_media_type_and_size(world: World, field_name: str) -> None:
    changes: dict[str, Any] = {"media_type": "application/other", "size": 999}
    other = Descriptor(
        media_type=changes["media_type"] if field_name == "media_type" else TARGET.media_type,
        digest=TARGET.digest,
        size=changes["size"] if field_name == "size" else TARGET.size,
    )
    outcome = world.verify(oci_statement(), sign_jws(world.chain, other))
    assert outcome.reason is Reason.DESCRIPTOR_MISMATCH


@pytest.mark.parametrize("level", LEVELS)
def test_verification_plugin_fails_at_every_level(world: World, level: str) -> None:
    envelope = sign_jws(
        world.chain,
        TARGET,
        extra_protected={HEADER_VERIFICATION_PLUGIN: "com.example.plugin"},
        extra_critical=(HEADER_VERIFICATION_PLUGIN,),
    )
    outcome = world.verify(oci_statement(level), envelope)
    assert (outcome.allowed, outcome.reason) == (False, Reason.PLUGIN_REQUIRED)


def test_user_metadata(world: World) -> None:
    envelope = sign_jws(world.chain, TARGET, annotations={"team": "web", "build": "7"})
    assert world.verify(oci_statement(), envelope, metadata={"team": "web"}).allowed
    outcome = world.verify(oci_statement(), envelope, metadata={"team": "db"})
    assert (outcome.allowed, outcome.reason) == (False, Reason.USER_METADATA)
    outcome = world.verify(oci_statement(), envelope, metadata={"missing": "x"})
    assert outcome.reason is Reason.USER_METADATA


# ----------------------------------------------------------------------- timestamps


def _timestamped(world: World, gen_offset_days: int, *, fmt: str = "jws") -> tuple[bytes, str]:
    chain = _expired_cert_chain()
    write_store(world.tmp, "ca", "main", [chain.root.cert])

    def stamp(raw: bytes) -> bytes:
        return world.tsa.timestamp(raw, gen_time=NOW + timedelta(days=gen_offset_days))

    signer, mt = (sign_jws, MEDIA_TYPE_JWS) if fmt == "jws" else (sign_cose, MEDIA_TYPE_COSE)
    envelope = signer(chain, TARGET, signing_time=NOW - timedelta(days=7), timestamper=stamp)
    return envelope, mt


@pytest.mark.parametrize("fmt", ["jws", "cose"])
def test_expired_cert_rescued_by_valid_timestamp(world: World, fmt: str) -> None:
    envelope, mt = _timestamped(world, -7, fmt=fmt)
    outcome = world.verify(oci_statement(stores=["ca:main", "tsa:tsa"]), envelope, media_type=mt)
    assert (outcome.allowed, outcome.reason) == (True, Reason.VERIFIED)
    assert outcome.signatures[0].warnings == ()


def test_timestamp_ignored_without_tsa_store(world: World) -> None:
    envelope, _ = _timestamped(world, -7)
    outcome = world.verify(oci_statement(stores=["ca:main"]), envelope)
    assert (outcome.allowed, outcome.reason) == (False, Reason.TIMESTAMP)


def test_timestamp_outside_certificate_validity(world: World) -> None:
    envelope, _ = _timestamped(world, -2)  # the leaf expired 5 days ago
    outcome = world.verify(oci_statement(stores=["ca:main", "tsa:tsa"]), envelope)
    assert (outcome.allowed, outcome.reason) == (False, Reason.TIMESTAMP)


def test_timestamp_missing_when_tsa_required(world: World) -> None:
    chain = _expired_cert_chain()
    write_store(world.tmp, "ca", "main", [chain.root.cert])
    envelope = sign_jws(chain, TARGET, signing_time=NOW - timedelta(days=7))
    outcome = world.verify(oci_statement(stores=["ca:main", "tsa:tsa"]), envelope)
    assert (outcome.allowed, outcome.reason) == (False, Reason.TIMESTAMP)


def test_timestamp_from_untrusted_tsa(world: World) -> None:
    envelope, _ = _timestamped(world, -7)
    other = TestTsa(Pki(name="other-tsa").tsa_chain())
    write_store(world.tmp, "tsa", "tsa", [other.chain.root.cert])
    outcome = world.verify(oci_statement(stores=["ca:main", "tsa:tsa"]), envelope)
    assert (outcome.allowed, outcome.reason) == (False, Reason.TIMESTAMP)


def test_tsa_revocation_is_checked_even_when_revocation_is_skipped(world: World) -> None:
    envelope, _ = _timestamped(world, -7)
    world.tsa_revocation = StaticRevocationChecker(RevocationStatus.REVOKED)
    statement = oci_statement(stores=["ca:main", "tsa:tsa"], override={"revocation": "skip"})
    outcome = world.verify(statement, envelope)
    assert (outcome.allowed, outcome.reason) == (False, Reason.TIMESTAMP)


def test_after_cert_expiry_does_not_need_a_token_for_valid_chain(world: World) -> None:
    statement = oci_statement(stores=["ca:main", "tsa:tsa"], verify_timestamp="afterCertExpiry")
    assert world.verify(statement, sign_jws(world.chain, TARGET)).allowed
    always = oci_statement(stores=["ca:main", "tsa:tsa"])
    outcome = world.verify(always, sign_jws(world.chain, TARGET))
    assert (outcome.allowed, outcome.reason) == (False, Reason.TIMESTAMP)


# ----------------------------------------------------------------------- signing authority


def test_signing_authority_scheme_uses_its_own_store(world: World) -> None:
    envelope = sign_jws(world.chain, TARGET, scheme=SigningScheme.SIGNING_AUTHORITY)
    assert world.verify(oci_statement(stores=["signingAuthority:sa"]), envelope).allowed
    outcome = world.verify(oci_statement(stores=["ca:main"]), envelope)
    assert (outcome.allowed, outcome.reason) == (False, Reason.UNTRUSTED)
    x509_sig = sign_jws(world.chain, TARGET)
    outcome = world.verify(oci_statement(stores=["signingAuthority:sa"]), x509_sig)
    assert (outcome.allowed, outcome.reason) == (False, Reason.UNTRUSTED)


def test_authentic_signing_time_outside_validity(world: World) -> None:
    envelope = sign_jws(
        world.chain,
        TARGET,
        scheme=SigningScheme.SIGNING_AUTHORITY,
        signing_time=NOW - timedelta(days=400),  # before the leaf's notBefore
    )
    outcome = world.verify(oci_statement(stores=["signingAuthority:sa"]), envelope)
    assert (outcome.allowed, outcome.reason) == (False, Reason.TIMESTAMP)


# ----------------------------------------------------------------------- artifact level


def test_first_passing_signature_stops_evaluation(world: World) -> None:
    good = sign_jws(world.chain, TARGET)
    source = Source(
        [signature_blob(b"{}", n=0), signature_blob(good, n=1), signature_blob(good, n=2)]
    )
    outcome = world.verifier().verify_artifact(
        reference=REF, target=TARGET, statement=oci_statement(), source=source
    )
    assert outcome.allowed
    assert source.pulled == 2
    assert [s.passed for s in outcome.signatures] == [False, True]


def test_deny_reports_first_signature_failure(world: World) -> None:
    stranger = Pki(name="stranger").chain(key=KeySpec.ec(256, slot=3), depth=1)
    outcome = world.verify(oci_statement(), sign_jws(stranger, TARGET), b"not json")
    assert outcome.reason is Reason.UNTRUSTED
    assert len(outcome.signatures) == 2


def test_no_signature(world: World) -> None:
    outcome = world.verify(oci_statement())
    assert (outcome.allowed, outcome.reason) == (False, Reason.NO_SIGNATURE)


def test_signature_limit(world: World) -> None:
    bad = [signature_blob(b"{}", n=i) for i in range(5)]
    good = signature_blob(sign_jws(world.chain, TARGET), n=9)
    source = Source([*bad, good])
    outcome = world.verifier(max_signatures=3).verify_artifact(
        reference=REF, target=TARGET, statement=oci_statement(), source=source
    )
    assert (outcome.allowed, outcome.reason) == (False, Reason.TOO_MANY_SIGNATURES)
    assert len(outcome.signatures) == 3
    with pytest.raises(ValueError, match="max_signatures"):
        world.verifier(max_signatures=0)


@pytest.mark.parametrize(
    ("error", "inconclusive"),
    [
        (MalformedInput("signature manifest has 2 layers"), False),
        (VerificationInconclusive(Reason.REGISTRY_UNREACHABLE, "registry down"), True),
    ],
)
def test_retrieval_failure_aborts(world: World, error: PullgateError, inconclusive: bool) -> None:
    stranger = Pki(name="stranger").chain(key=KeySpec.ec(256, slot=3), depth=1)
    source = Source([signature_blob(sign_jws(stranger, TARGET))], error=error)
    outcome = world.verifier().verify_artifact(
        reference=REF, target=TARGET, statement=oci_statement(), source=source
    )
    assert (outcome.allowed, outcome.reason, outcome.inconclusive) == (
        False,
        error.reason,
        inconclusive,
    )


def test_signer_details_recorded(world: World) -> None:
    outcome = world.verify(oci_statement(), sign_jws(world.chain, TARGET))
    sig = outcome.signatures[0]
    leaf: x509.Certificate = world.chain.leaf.cert
    assert sig.signer_fingerprint == leaf.fingerprint(hashes.SHA256()).hex()
    assert sig.signer_subject is not None
    assert "O=pullgate" in sig.signer_subject
