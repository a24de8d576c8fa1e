"""Revocation entries that must not be overlooked (docs/notation.md §12).

* CRL: an entry whose invalidity date is after the signing time is ignored *alone*; a later
  (delta CRL) entry for the same certificate still counts.
* OCSP: the invalidity date is read from the single response that matched the certificate, not
  from the first one of a multi-certificate response.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support.crl_server import RevokedEntry, build_crl
from tests.support.pki import NOW, Chain, Issued
from tests.unit.verification.test_revocation import (
    CRL1,
    DELTA,
    GOOD,
    OCSP1,
    REVOKED,
    FakeFetcher,
    _chain,
    _check,
    _checker,
)

SIGNED = NOW - timedelta(days=10)


def _crl_world(base: list[RevokedEntry], delta: list[RevokedEntry]) -> tuple[Chain, FakeFetcher]:
    chain = _chain(crl_urls=(CRL1,))
    issuer, serial = chain.certs[1], chain.leaf.cert.serial_number
    entries = [
        [RevokedEntry(serial=serial, reason=e.reason, invalidity_date=e.invalidity_date) for e in x]
        for x in (base, delta)
    ]
    files = {
        CRL1: build_crl(issuer, entries[0], crl_number=5, freshest_urls=(DELTA,)),
        DELTA: build_crl(issuer, entries[1], crl_number=6, delta_of=5),
    }
    return chain, FakeFetcher(files=files)


NOT_YET = RevokedEntry(  # serial filled in by _crl_world
    serial=0,
    reason=x509.ReasonFlags.key_compromise,
    invalidity_date=NOW - timedelta(days=5),  # after the signing time: not in force then
)


def test_crl_delta_entry_revokes_after_a_base_entry_not_yet_in_force() -> None:
    revoking = RevokedEntry(serial=0, reason=x509.ReasonFlags.key_compromise)
    chain, fetcher = _crl_world([NOT_YET], [revoking])
    assert _check(_checker(fetcher), chain, SIGNED).status is REVOKED


def test_crl_delta_hold_after_a_base_entry_not_yet_in_force_is_revoked() -> None:
    hold = RevokedEntry(serial=0, reason=x509.ReasonFlags.certificate_hold)
    chain, fetcher = _crl_world([NOT_YET], [hold])
    assert _check(_checker(fetcher), chain, SIGNED).status is REVOKED


def test_crl_entry_not_yet_in_force_alone_is_good() -> None:
    chain, fetcher = _crl_world([NOT_YET], [])
    assert _check(_checker(fetcher), chain, SIGNED).status is GOOD


# --- OCSP ------------------------------------------------------------------------------------


def _single(issuer: Issued, serial: int, invalidity: datetime | None) -> dict[str, object]:
    spki = asn1_x509.Certificate.load(issuer.cert.public_bytes(Encoding.DER))["tbs_certificate"][
        "subject_public_key_info"
    ]["public_key"]
    name = issuer.cert.subject.public_bytes()
    single: dict[str, object] = {
        "cert_id": {
            "hash_algorithm": {"algorithm": "sha1"},
            "issuer_name_hash": hashlib.sha1(name).digest(),  # noqa: S324 - OCSP CertID
            "issuer_key_hash": hashlib.sha1(spki.contents[1:]).digest(),  # noqa: S324
            "serial_number": serial,
        },
        "cert_status": asn1_ocsp.CertStatus(
            name="revoked",
            value={"revocation_time": NOW - timedelta(days=20), "revocation_reason": None},
        ),
        "this_update": NOW - timedelta(hours=1),
        "next_update": NOW + timedelta(hours=1),
    }
    if invalidity is not None:
        single["single_extensions"] = [
            {
                "extn_id": "invalidity_date",
                "critical": False,
                "extn_value": core.GeneralizedTime(invalidity),
            }
        ]
    return single


def _multi_response(chain: Chain, singles: list[dict[str, object]]) -> bytes:
    issuer = chain.certs[1]
    tbs = asn1_ocsp.ResponseData(
        {
            "responder_id": asn1_ocsp.ResponderId(
                name="by_name",
                value=asn1_x509.Name.load(issuer.cert.subject.public_bytes()),
            ),
            "produced_at": NOW - timedelta(minutes=5),
            "responses": singles,
        }
    )
    key = issuer.key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(tbs.dump(), ec.ECDSA(hashes.SHA256()))
        algorithm = "sha256_ecdsa"
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(tbs.dump(), padding.PKCS1v15(), hashes.SHA256())
        algorithm = "sha256_rsa"
    basic = asn1_ocsp.BasicOCSPResponse(
        {
            "tbs_response_data": tbs,
            "signature_algorithm": {"algorithm": algorithm},
            "signature": signature,
        }
    )
    response = asn1_ocsp.OCSPResponse(
        {
            "response_status": "successful",
            "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
        }
    )
    return bytes(response.dump())


def _ocsp_check(chain: Chain, singles: list[dict[str, object]]) -> object:
    body = _multi_response(chain, singles)
    fetcher = FakeFetcher(ocsp={OCSP1: lambda _request: body})
    return _check(_checker(fetcher), chain, SIGNED).status


def test_ocsp_invalidity_date_of_another_certificate_does_not_unrevoke() -> None:
    chain = _chain(ocsp_urls=(OCSP1,))
    issuer, serial = chain.certs[1], chain.leaf.cert.serial_number
    later = NOW - timedelta(days=5)  # after the signing time
    singles = [_single(issuer, serial + 1, later), _single(issuer, serial, None)]
    assert _ocsp_check(chain, singles) is REVOKED


def test_ocsp_invalidity_date_of_the_matched_response_is_used() -> None:
    chain = _chain(ocsp_urls=(OCSP1,))
    issuer, serial = chain.certs[1], chain.leaf.cert.serial_number
    later = NOW - timedelta(days=5)
    singles = [_single(issuer, serial + 1, None), _single(issuer, serial, later)]
    assert _ocsp_check(chain, singles) is GOOD
    assert _ocsp_check(chain, [_single(issuer, serial, later)]) is GOOD
    assert _ocsp_check(chain, [_single(issuer, serial, NOW - timedelta(days=15))]) is REVOKED
