"""Hostile certificate, CRL and OCSP fields that ``cryptography`` only decodes when first read.

``cryptography`` loads a certificate, CRL or OCSP response without decoding its names and
extensions; a malformed or duplicated one raises (``ValueError``, ``x509.DuplicateExtension``,
``x509.InvalidVersion``) only when it is read. Every such structure that reaches pullgate from
outside (envelope chains, timestamp tokens, CRLs and OCSP responses fetched over HTTP) must end
in a typed error or a revocation *unknown*, never as an untyped exception:

* envelope certificates (docs/notation.md §6.2) and timestamp-token certificates (§10)
  whose subject or issuer name does not decode are refused when they are loaded, as Go's
  parser refuses them: integrity resp. timestamp failures, also for ``inspect``;
* a timestamp signer identified by subjectKeyIdentifier next to a token certificate whose
  extensions cannot be read fails the timestamp check;
* hostile CRLs (duplicated or malformed CRL and entry extensions, an undecodable issuer name,
  an unknown CRL version) and OCSP responses are *unknown* (§12), a corrupt cached CRL is
  fetched again, and a chain whose subject does not decode can still be reported.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509 import ocsp

from pullgate.cli.signatures import inspect_signatures
from pullgate.common.clock import FixedClock
from pullgate.common.descriptor import Descriptor
from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.cache import CertMemo
from pullgate.verification.model import MEDIA_TYPE_JWS
from pullgate.verification.outcome import CheckType
from pullgate.verification.policy import TrustPolicyStatement
from pullgate.verification.revocation import (
    CrlCache,
    Purpose,
    RevocationStatus,
    StaticRevocationChecker,
)
from pullgate.verification.timestamp import parse_timestamp_token, verify_timestamp_token
from pullgate.verification.truststore import TrustStore
from pullgate.verification.verifier import SignatureBlob, Verifier
from pullgate.verification.x509.certs import load_certificate
from tests.support.crl_server import RevokedEntry, build_crl, reissue_crl_edited
from tests.support.pki import (
    NOW,
    CertSpec,
    Chain,
    KeySpec,
    Pki,
    common_name_garbled,
    common_name_made_integer,
    eku_relabelled_as_key_usage,
    last_extension_duplicated,
    reissue_edited,
    write_store,
)
from tests.support.signing import sign_jws
from tests.support.statements import Source, oci_statement, signature_blob
from tests.support.tsa import TestTsa
from tests.unit.verification.test_revocation import (
    CRL1,
    DELTA,
    OCSP1,
    UNKNOWN,
    FakeFetcher,
    _check,
    _checker,
    _ocsp_response,
    _responder,
)
from tests.unit.verification.test_revocation_entries import _multi_response, _single

TARGET = Descriptor(
    media_type="application/vnd.oci.image.manifest.v1+json",
    digest="sha256:" + "34" * 32,
    size=123,
)
REF = f"registry.example/app@{TARGET.digest}"
SIGNER_CN = "pullgate test signer"  # CertSpec's default common name
LEVELS = ("strict", "permissive", "audit")
GEN = NOW - timedelta(days=1)

# DER of the OIDs the CRL edits swap (all the same length, so no length moves).
_CRL_NUMBER = b"\x06\x03\x55\x1d\x14"  # 2.5.29.20
_FRESHEST_CRL = b"\x06\x03\x55\x1d\x2e"  # 2.5.29.46
_CRL_REASON = b"\x06\x03\x55\x1d\x15"  # 2.5.29.21
_INVALIDITY_DATE = b"\x06\x03\x55\x1d\x18"  # 2.5.29.24
_V2 = b"\x02\x01\x01"  # TBSCertList version v2 (the first INTEGER of the TBS)
_CERT_V3 = b"\xa0\x03\x02\x01\x02"  # TBSCertificate [0] version v3


def _version_5_certificate(der: bytes) -> bytes:
    """``der`` with its version field set to 5 (no such X.509 version; the signature breaks)."""
    assert der[8:13] == _CERT_V3  # SEQUENCE, SEQUENCE (both with 2-byte lengths), [0] v3
    return der[:8] + b"\xa0\x03\x02\x01\x05" + der[13:]


def _garbled_leaf(chain: Chain) -> Chain:
    """``chain`` with its leaf's CN made invalid UTF-8 (still validly signed)."""
    leaf = reissue_edited(chain.leaf, chain.certs[1], common_name_garbled(SIGNER_CN))
    return Chain((leaf, *chain.certs[1:]))


def _garbled_intermediate(pki: Pki, chain: Chain) -> Chain:
    """``chain`` whose intermediate subject (and so the leaf's issuer) is invalid UTF-8.

    The raw names still chain and every signature verifies.
    """
    edit = common_name_garbled(f"{pki.name} intermediate 0")
    intermediate = reissue_edited(chain.certs[1], chain.root, edit)
    leaf = reissue_edited(chain.leaf, intermediate, edit)
    return Chain((leaf, intermediate, chain.root))


def _verify(
    tmp: Path,
    envelope: bytes,
    statement: TrustPolicyStatement,
    *,
    tsa_revocation: RevocationStatus = RevocationStatus.GOOD,
) -> tuple[bool, Reason, CheckType | None]:
    verifier = Verifier(
        trust_store=TrustStore(tmp),
        revocation=StaticRevocationChecker(RevocationStatus.GOOD),
        tsa_revocation=StaticRevocationChecker(tsa_revocation),
        clock=FixedClock(NOW),
        memo=CertMemo(),
    )
    outcome = verifier.verify_artifact(
        reference=REF, target=TARGET, statement=statement, source=Source([signature_blob(envelope)])
    )
    return outcome.allowed, outcome.reason, outcome.failing_check


# --- envelope certificates --------------------------------------------------------------------


def test_load_certificate_refuses_an_undecodable_subject() -> None:
    chain = _garbled_leaf(Pki(name="hostile").chain(key=KeySpec.ec(256)))
    with pytest.raises(VerificationFailed) as caught:
        load_certificate(chain.leaf.der)
    assert caught.value.reason is Reason.INTEGRITY


def test_load_certificate_refuses_an_undecodable_issuer() -> None:
    pki = Pki(name="hostile")
    chain = _garbled_intermediate(pki, pki.chain(key=KeySpec.ec(256)))
    with pytest.raises(VerificationFailed) as caught:
        load_certificate(chain.leaf.der)  # its subject is fine, its issuer is not
    assert caught.value.reason is Reason.INTEGRITY


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("where", ["leaf", "intermediate"])
def test_envelope_certificate_with_undecodable_name_is_an_integrity_failure(
    tmp_path: Path, level: str, where: str
) -> None:
    pki = Pki(name="hostile")
    chain = pki.chain(key=KeySpec.ec(256))
    hostile = _garbled_leaf(chain) if where == "leaf" else _garbled_intermediate(pki, chain)
    write_store(tmp_path, "ca", "main", [chain.root.cert])
    result = _verify(tmp_path, sign_jws(hostile, TARGET), oci_statement(level))
    assert result == (False, Reason.INTEGRITY, CheckType.INTEGRITY)


def test_inspect_lists_an_envelope_with_undecodable_names_as_a_parse_error() -> None:
    chain = _garbled_leaf(Pki(name="hostile").chain(key=KeySpec.ec(256)))
    blob = SignatureBlob(
        manifest_digest="sha256:" + "00" * 32,
        media_type=MEDIA_TYPE_JWS,
        envelope=sign_jws(chain, TARGET),
    )
    doc, errors = inspect_signatures(TARGET, [blob])
    assert (len(doc["signatures"]), len(errors)) == (0, 1)


# --- timestamp tokens -------------------------------------------------------------------------


def _garbled_tsa() -> TestTsa:
    """A TSA whose leaf subject has an INTEGER-valued attribute (validly signed by its root).

    Not invalid UTF-8: the token parser re-encodes certificates with asn1crypto, which already
    refuses that; an INTEGER under an unregistered attribute type passes asn1crypto but not
    ``cryptography`` (nor Go).
    """
    pki = Pki(name="hostile")
    tsa_chain = pki.tsa_chain()
    edit = common_name_made_integer(f"{pki.name} TSA")
    leaf = reissue_edited(tsa_chain.leaf, tsa_chain.root, edit)
    return TestTsa(Chain((leaf, tsa_chain.root)))


def test_timestamp_token_certificate_with_undecodable_name_is_refused() -> None:
    tsa = _garbled_tsa()
    token = tsa.timestamp(b"signature", gen_time=GEN)
    for check in (
        lambda: parse_timestamp_token(token),
        lambda: verify_timestamp_token(token, b"signature", [tsa.chain.root.cert]),
    ):
        with pytest.raises(VerificationFailed) as caught:
            check()
        assert caught.value.reason is Reason.TIMESTAMP


def test_timestamp_token_certificate_with_invalid_version_is_refused() -> None:
    tsa = TestTsa(Pki(name="hostile").tsa_chain())
    token = tsa.timestamp(b"signature", gen_time=GEN)
    leaf_der = tsa.chain.leaf.der
    assert token.count(leaf_der) == 1
    hostile = token.replace(leaf_der, _version_5_certificate(leaf_der))
    with pytest.raises(VerificationFailed) as caught:
        parse_timestamp_token(hostile)
    assert caught.value.reason is Reason.TIMESTAMP


def test_ski_signer_next_to_a_certificate_with_unreadable_extensions_is_refused() -> None:
    tsa = TestTsa(Pki(name="hostile").tsa_chain())
    token = tsa.timestamp(b"signature", gen_time=GEN)
    stranger = Pki(name="stranger").chain(key=KeySpec.ec(256))
    unreadable = reissue_edited(stranger.leaf, stranger.certs[1], last_extension_duplicated)
    content_info = cms.ContentInfo.load(token)
    signed_data = content_info["content"]
    ski = tsa.chain.leaf.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    signed_data["signer_infos"][0]["sid"] = cms.SignerIdentifier(
        name="subject_key_identifier", value=ski.value.digest
    )
    signed_data["certificates"] = [
        *(asn1_x509.Certificate.load(c.der) for c in tsa.chain.certs),
        asn1_x509.Certificate.load(unreadable.der),
    ]
    hostile = content_info.dump()
    with pytest.raises(VerificationFailed) as caught:
        verify_timestamp_token(hostile, b"signature", [tsa.chain.root.cert])
    assert caught.value.reason is Reason.TIMESTAMP


@pytest.mark.parametrize("tsa_revocation", [RevocationStatus.GOOD, RevocationStatus.UNKNOWN])
def test_tsa_leaf_with_undecodable_name_is_a_timestamp_failure(
    tmp_path: Path, tsa_revocation: RevocationStatus
) -> None:
    chain = Pki(name="hostile").chain(key=KeySpec.ec(256))
    tsa = _garbled_tsa()
    write_store(tmp_path, "ca", "main", [chain.root.cert])
    write_store(tmp_path, "tsa", "tsa", [tsa.chain.root.cert])
    envelope = sign_jws(chain, TARGET, timestamper=lambda raw: tsa.timestamp(raw, gen_time=GEN))
    statement = oci_statement(stores=("ca:main", "tsa:tsa"))
    result = _verify(tmp_path, envelope, statement, tsa_revocation=tsa_revocation)
    assert result == (False, Reason.TIMESTAMP, CheckType.AUTHENTIC_TIMESTAMP)


def test_inspect_reports_a_timestamp_with_undecodable_names_as_an_error() -> None:
    chain = Pki(name="hostile").chain(key=KeySpec.ec(256))
    tsa = _garbled_tsa()
    envelope = sign_jws(chain, TARGET, timestamper=lambda raw: tsa.timestamp(raw, gen_time=GEN))
    blob = SignatureBlob(
        manifest_digest="sha256:" + "00" * 32, media_type=MEDIA_TYPE_JWS, envelope=envelope
    )
    doc, errors = inspect_signatures(TARGET, [blob])
    assert errors == []
    timestamp = doc["signatures"][0]["unsignedAttributes"]["timestampSignature"]
    assert set(timestamp) == {"error"}


# --- revocation: naming a certificate ---------------------------------------------------------


def test_revocation_result_names_a_certificate_with_undecodable_subject() -> None:
    chain = _garbled_leaf(Pki().chain(leaf=CertSpec(ocsp_urls=(OCSP1,))))
    result = _check(_checker(FakeFetcher()), chain)  # the responder is unreachable
    assert result.status is UNKNOWN
    assert isinstance(result.subject, str)
    assert result.subject
    static = StaticRevocationChecker(RevocationStatus.REVOKED).check(
        chain.x509, purpose=Purpose.CODE_SIGNING, authentic_signing_time=None
    )
    assert static.status is RevocationStatus.REVOKED
    assert isinstance(static.subject, str)
    assert static.subject


def test_certificate_with_unreadable_extensions_is_unknown() -> None:
    chain = Pki().chain(leaf=CertSpec(ocsp_urls=(OCSP1,)))
    hostile = Chain(
        (reissue_edited(chain.leaf, chain.certs[1], eku_relabelled_as_key_usage), *chain.certs[1:])
    )
    assert _check(_checker(FakeFetcher()), hostile).status is UNKNOWN


# --- revocation: hostile CRLs -----------------------------------------------------------------


def _crl_chain() -> Chain:
    return Pki().chain(leaf=CertSpec(crl_urls=(CRL1,)))


def _version_5(tbs: bytes) -> bytes:
    assert tbs[4:7] == _V2 or tbs[3:6] == _V2
    return tbs.replace(_V2, b"\x02\x01\x05", 1)


def _relabel(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def edit(tbs: bytes) -> bytes:
        assert tbs.count(old) == 1
        return tbs.replace(old, new)

    return edit


def _hostile_crls(chain: Chain) -> dict[str, bytes]:
    issuer, serial = chain.certs[1], chain.leaf.cert.serial_number
    entry = RevokedEntry(
        serial=serial,
        reason=x509.ReasonFlags.key_compromise,
        invalidity_date=NOW - timedelta(days=5),
    )
    reason_only = RevokedEntry(serial=serial, reason=x509.ReasonFlags.key_compromise)
    with_freshest = build_crl(issuer, [entry], freshest_urls=(DELTA,))
    plain = build_crl(issuer, [reason_only])
    key_compromise = b"\x0a\x01\x01"  # ENUMERATED keyCompromise
    intermediate_cn = "pullgate test intermediate 0"
    edits: dict[str, tuple[bytes, Callable[[bytes], bytes]]] = {
        "CRL extensions duplicated": (with_freshest, _relabel(_FRESHEST_CRL, _CRL_NUMBER)),
        "Freshest-CRL malformed": (plain, _relabel(_CRL_NUMBER, _FRESHEST_CRL)),
        "entry extensions duplicated": (with_freshest, _relabel(_INVALIDITY_DATE, _CRL_REASON)),
        "entry invalidity date malformed": (plain, _relabel(_CRL_REASON, _INVALIDITY_DATE)),
        "entry reason code unknown": (plain, _relabel(key_compromise, b"\x0a\x01\x63")),
        "issuer name undecodable": (plain, common_name_garbled(intermediate_cn)),
        "CRL version 5": (plain, _version_5),
    }
    return {name: reissue_crl_edited(der, issuer, edit) for name, (der, edit) in edits.items()}


HOSTILE_CRLS = (
    "CRL extensions duplicated",
    "Freshest-CRL malformed",
    "entry extensions duplicated",
    "entry invalidity date malformed",
    "entry reason code unknown",
    "issuer name undecodable",
    "CRL version 5",
)


@pytest.mark.parametrize("variant", HOSTILE_CRLS)
def test_hostile_crl_is_unknown(variant: str) -> None:
    chain = _crl_chain()
    fetcher = FakeFetcher(files={CRL1: _hostile_crls(chain)[variant]})
    assert _check(_checker(fetcher), chain).status is UNKNOWN


@pytest.mark.parametrize("variant", ["CRL extensions duplicated", "CRL version 5"])
def test_hostile_delta_crl_is_unknown(variant: str) -> None:
    chain = _crl_chain()
    issuer = chain.certs[1]
    base = build_crl(issuer, crl_number=5, freshest_urls=(DELTA,))
    delta = _hostile_crls(chain)[variant]
    fetcher = FakeFetcher(files={CRL1: base, DELTA: delta})
    assert _check(_checker(fetcher), chain).status is UNKNOWN


def test_cached_crl_that_cannot_be_loaded_is_fetched_again(tmp_path: Path) -> None:
    chain = _crl_chain()
    fetcher = FakeFetcher(files={CRL1: build_crl(chain.certs[1])})
    cache = CrlCache(tmp_path)
    assert _check(_checker(fetcher, cache=cache), chain).status is RevocationStatus.GOOD
    entry = tmp_path / hashlib.sha256(CRL1.encode()).hexdigest()
    assert entry.is_file()
    hostile = _hostile_crls(chain)["CRL version 5"]
    document = {"url": CRL1, "base": base64.b64encode(hostile).decode(), "delta": None}
    entry.write_text(json.dumps(document))
    assert _check(_checker(fetcher, cache=cache), chain).status is RevocationStatus.GOOD
    assert fetcher.count(CRL1) == 2


# --- revocation: hostile OCSP responses -------------------------------------------------------


def test_ocsp_responder_certificate_with_unreadable_extensions_is_unknown() -> None:
    chain = Pki().chain(leaf=CertSpec(ocsp_urls=(OCSP1,)))
    issuer = chain.certs[1]
    responder = reissue_edited(_responder(issuer), issuer, eku_relabelled_as_key_usage)
    body = _ocsp_response(chain.leaf, issuer, ocsp.OCSPCertStatus.GOOD, signer=responder)
    fetcher = FakeFetcher(ocsp={OCSP1: lambda _request: body})
    assert _check(_checker(fetcher), chain).status is UNKNOWN


@pytest.mark.parametrize("variant", ["CertID hash unknown", "responder certificate version 5"])
def test_hostile_ocsp_response_is_unknown(variant: str) -> None:
    chain = Pki().chain(leaf=CertSpec(ocsp_urls=(OCSP1,)))
    issuer = chain.certs[1]
    responder = _responder(issuer)
    body = _ocsp_response(chain.leaf, issuer, ocsp.OCSPCertStatus.GOOD, signer=responder)
    if variant == "CertID hash unknown":
        sha1 = b"\x06\x05\x2b\x0e\x03\x02\x1a"  # 1.3.14.3.2.26
        assert body.count(sha1) == 1
        body = body.replace(sha1, b"\x06\x05\x2b\x0e\x03\x02\x7f")
    else:
        der = responder.der
        assert body.count(der) == 1
        body = body.replace(der, _version_5_certificate(der))
    fetcher = FakeFetcher(ocsp={OCSP1: lambda _request: body})
    assert _check(_checker(fetcher), chain).status is UNKNOWN


def test_ocsp_revocation_with_malformed_invalidity_date_is_unknown() -> None:
    chain = Pki().chain(leaf=CertSpec(ocsp_urls=(OCSP1,)))
    single = _single(chain.certs[1], chain.leaf.cert.serial_number, None)
    single["single_extensions"] = [
        {
            "extn_id": "invalidity_date",
            "critical": False,
            "extn_value": core.ParsableOctetString(b"\x18\x03abc"),  # not a GeneralizedTime
        }
    ]
    body = _multi_response(chain, [single])
    fetcher = FakeFetcher(ocsp={OCSP1: lambda _request: body})
    assert _check(_checker(fetcher), chain, NOW - timedelta(days=10)).status is UNKNOWN
