"""OCSP / CRL revocation semantics (docs/notation.md §12) against a fake fetcher."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from pullgate.common.clock import FixedClock
from pullgate.errors import Reason
from pullgate.verification.revocation import (
    CrlCache,
    NetworkRevocationChecker,
    Purpose,
    RevocationFetchError,
    RevocationResult,
    RevocationStatus,
    StaticRevocationChecker,
)
from tests.support.crl_server import RevokedEntry, build_crl
from tests.support.pki import NOW, CertSpec, Chain, Issued, KeySpec, Pki, ca_spec, issue

OCSP1 = "http://ocsp-1.test"
OCSP2 = "http://ocsp-2.test"
CRL1 = "http://crl.test/1.crl"
CRL2 = "http://crl.test/2.crl"
DELTA = "http://crl.test/delta.crl"
GOOD, REVOKED, UNKNOWN = RevocationStatus.GOOD, RevocationStatus.REVOKED, RevocationStatus.UNKNOWN

OcspHandler = Callable[[bytes], bytes]
_DER = Encoding.DER


@dataclass
class FakeFetcher:
    """In-memory HttpFetcher: static bodies by URL, OCSP handlers by responder URL."""

    files: dict[str, bytes] = field(default_factory=dict)
    ocsp: dict[str, OcspHandler] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def get(self, url: str, *, timeout: float, max_bytes: int) -> bytes:
        self.calls.append(("GET", url))
        if url in self.files:
            return self.files[url]
        base, _, encoded = url.rpartition("/")
        if base in self.ocsp:
            return self.ocsp[base](base64.b64decode(urllib.parse.unquote(encoded)))
        raise RevocationFetchError(f"404 {url}")

    def post(
        self, url: str, body: bytes, *, content_type: str, timeout: float, max_bytes: int
    ) -> bytes:
        self.calls.append(("POST", url))
        if url in self.ocsp:
            return self.ocsp[url](body)
        raise RevocationFetchError(f"404 {url}")

    def count(self, url: str) -> int:
        return sum(1 for _, called in self.calls if called == url or called.startswith(url + "/"))


def _chain(*, ocsp_urls: tuple[str, ...] = (), crl_urls: tuple[str, ...] = ()) -> Chain:
    """leaf (with the given URLs) -> intermediate (non-revokable) -> root."""
    return Pki().chain(leaf=CertSpec(ocsp_urls=ocsp_urls, crl_urls=crl_urls))


def _ocsp_response(
    cert: Issued,
    issuer: Issued,
    status: ocsp.OCSPCertStatus,
    *,
    signer: Issued | None = None,
    include_signer: bool = True,
    next_update: datetime | None = NOW + timedelta(hours=1),
) -> bytes:
    signer = signer or issuer
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert.cert,
        issuer=issuer.cert,
        algorithm=hashes.SHA1(),  # noqa: S303 - OCSP CertID
        cert_status=status,
        this_update=NOW - timedelta(hours=1),
        next_update=next_update,
        revocation_time=NOW - timedelta(days=1) if status is ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    if include_signer and signer is not issuer:
        builder = builder.certificates([signer.cert])
    response = builder.sign(signer.key, hashes.SHA256())
    return response.public_bytes(_DER)


def _stranger_ca() -> Issued:
    """A CA unrelated to :func:`_chain`'s (different name and key)."""
    return (
        Pki(name="stranger")
        .chain(intermediate=ca_spec("stranger CA", KeySpec.rsa(2048, slot=4)))
        .certs[1]
    )


def _responder(issuer: Issued, *, eku: bool = True) -> Issued:
    usages = (ExtendedKeyUsageOID.OCSP_SIGNING,) if eku else (ExtendedKeyUsageOID.CODE_SIGNING,)
    spec = CertSpec(common_name="responder", key=KeySpec.rsa(2048, slot=7), eku=usages)
    return issue(spec, issuer)


def _checker(
    fetcher: FakeFetcher, *, cache: CrlCache | None = None, now: datetime = NOW
) -> NetworkRevocationChecker:
    return NetworkRevocationChecker(fetcher, FixedClock(now), crl_cache=cache)


def _check(
    checker: NetworkRevocationChecker,
    chain: Chain,
    signing_time: datetime | None = None,
) -> RevocationResult:
    return checker.check(
        chain.x509, purpose=Purpose.CODE_SIGNING, authentic_signing_time=signing_time
    )


def _answer(chain: Chain, status: ocsp.OCSPCertStatus, **knobs: object) -> OcspHandler:
    body = _ocsp_response(chain.leaf, chain.certs[1], status, **knobs)  # type: ignore[arg-type]
    return lambda _request: body


# --- structure ---------------------------------------------------------------------------------


def test_non_revokable_chain_is_good_without_network() -> None:
    fetcher = FakeFetcher()
    result = _check(_checker(fetcher), _chain())
    assert result.status is GOOD
    assert fetcher.calls == []


def test_root_is_never_checked() -> None:
    pki = Pki()
    root_spec = ca_spec("root with urls").replace(ocsp_urls=(OCSP1,), crl_urls=(CRL1,))
    chain = pki.chain(depth=2, root=root_spec)
    fetcher = FakeFetcher()
    assert _check(_checker(fetcher), chain).status is GOOD
    assert fetcher.calls == []


def test_single_self_signed_certificate_is_good() -> None:
    chain = Pki().chain(depth=1, leaf=CertSpec(ocsp_urls=(OCSP1,)))
    assert _check(_checker(FakeFetcher()), chain).status is GOOD


def test_empty_or_broken_chain_is_unknown() -> None:
    checker = _checker(FakeFetcher())
    empty = checker.check([], purpose=Purpose.TIMESTAMPING, authentic_signing_time=None)
    assert empty.status is UNKNOWN
    a = _chain()
    stranger = _stranger_ca()
    broken = checker.check(
        [a.leaf.cert, stranger.cert, a.root.cert],
        purpose=Purpose.CODE_SIGNING,
        authentic_signing_time=None,
    )
    assert broken.status is UNKNOWN


# --- OCSP --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (ocsp.OCSPCertStatus.GOOD, GOOD),
        (ocsp.OCSPCertStatus.REVOKED, REVOKED),
        (ocsp.OCSPCertStatus.UNKNOWN, UNKNOWN),
    ],
)
def test_ocsp_statuses(answer: ocsp.OCSPCertStatus, expected: RevocationStatus) -> None:
    chain = _chain(ocsp_urls=(OCSP1,))
    fetcher = FakeFetcher(ocsp={OCSP1: _answer(chain, answer)})
    result = _check(_checker(fetcher), chain)
    assert result.status is expected
    assert result.method == "OCSP"
    assert fetcher.calls[0][0] == "GET"
    if expected is not GOOD:
        assert result.subject == chain.leaf.cert.subject.rfc4514_string()


def test_ocsp_delegated_responder_accepted() -> None:
    chain = _chain(ocsp_urls=(OCSP1,))
    responder = _responder(chain.certs[1])
    handler = _answer(chain, ocsp.OCSPCertStatus.REVOKED, signer=responder)
    result = _check(_checker(FakeFetcher(ocsp={OCSP1: handler})), chain)
    assert result.status is REVOKED


@pytest.mark.parametrize(
    "variant",
    ["responder-without-eku", "responder-from-other-ca", "signed-by-stranger", "stale", "no-next"],
)
def test_untrustworthy_ocsp_answers_are_unknown(variant: str) -> None:
    chain = _chain(ocsp_urls=(OCSP1,))
    issuer = chain.certs[1]
    other = Pki().chain(intermediate=ca_spec("other CA", KeySpec.rsa(2048, slot=4)))
    knobs: dict[str, object] = {
        "responder-without-eku": {"signer": _responder(issuer, eku=False)},
        "responder-from-other-ca": {"signer": _responder(other.certs[1])},
        "signed-by-stranger": {"signer": other.certs[1], "include_signer": False},
        "stale": {"next_update": NOW - timedelta(minutes=1)},
        "no-next": {"next_update": None},
    }[variant]  # type: ignore[assignment]
    handler = _answer(chain, ocsp.OCSPCertStatus.REVOKED, **knobs)
    result = _check(_checker(FakeFetcher(ocsp={OCSP1: handler})), chain)
    assert result.status is UNKNOWN


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(
            _DER
        ),
    ],
)
def test_bad_ocsp_bodies_are_unknown(body: bytes) -> None:
    chain = _chain(ocsp_urls=(OCSP1,))
    result = _check(_checker(FakeFetcher(ocsp={OCSP1: lambda _r: body})), chain)
    assert result.status is UNKNOWN


def test_ocsp_response_for_another_certificate_is_unknown() -> None:
    chain = _chain(ocsp_urls=(OCSP1,))
    sibling = issue(CertSpec(common_name="sibling"), chain.certs[1])
    body = _ocsp_response(sibling, chain.certs[1], ocsp.OCSPCertStatus.REVOKED)
    result = _check(_checker(FakeFetcher(ocsp={OCSP1: lambda _r: body})), chain)
    assert result.status is UNKNOWN


def test_ocsp_falls_through_to_next_server() -> None:
    chain = _chain(ocsp_urls=(OCSP1, OCSP2))
    fetcher = FakeFetcher(ocsp={OCSP2: _answer(chain, ocsp.OCSPCertStatus.GOOD)})
    assert _check(_checker(fetcher), chain).status is GOOD
    assert fetcher.count(OCSP1) == 1
    assert fetcher.count(OCSP2) == 1


def test_ocsp_unknown_is_an_answer_that_ends_the_loop() -> None:
    """notation-core-go's OCSP CertCheckStatus: a valid ``unknown`` is the result; the next
    responder is not asked."""
    chain = _chain(ocsp_urls=(OCSP1, OCSP2))
    fetcher = FakeFetcher(
        ocsp={
            OCSP1: _answer(chain, ocsp.OCSPCertStatus.UNKNOWN),
            OCSP2: _answer(chain, ocsp.OCSPCertStatus.REVOKED),
        }
    )
    assert _check(_checker(fetcher), chain).status is UNKNOWN
    assert (fetcher.count(OCSP1), fetcher.count(OCSP2)) == (1, 0)


def test_definitive_ocsp_answer_stops_the_loop() -> None:
    chain = _chain(ocsp_urls=(OCSP1, OCSP2))
    fetcher = FakeFetcher(
        ocsp={
            OCSP1: _answer(chain, ocsp.OCSPCertStatus.GOOD),
            OCSP2: _answer(chain, ocsp.OCSPCertStatus.REVOKED),
        }
    )
    assert _check(_checker(fetcher), chain).status is GOOD
    assert fetcher.count(OCSP2) == 0


def test_https_ocsp_url_is_refused_without_a_request() -> None:
    chain = _chain(ocsp_urls=("https://ocsp.test",))
    fetcher = FakeFetcher()
    assert _check(_checker(fetcher), chain).status is UNKNOWN
    assert fetcher.calls == []


def test_long_ocsp_request_uses_post() -> None:
    chain = _chain(ocsp_urls=(OCSP1,))
    fetcher = FakeFetcher(ocsp={OCSP1: _answer(chain, ocsp.OCSPCertStatus.GOOD)})
    checker = _checker(fetcher)
    checker._ocsp_exchange(OCSP1, b"\x00" * 200)  # base64 length 268 >= 255
    assert fetcher.calls == [("POST", OCSP1)]


# --- OCSP -> CRL fallback -----------------------------------------------------------------------


@pytest.mark.parametrize(("revoked", "expected"), [(False, GOOD), (True, REVOKED)])
def test_ocsp_unknown_falls_back_to_crl(revoked: bool, expected: RevocationStatus) -> None:
    chain = _chain(ocsp_urls=(OCSP1,), crl_urls=(CRL1,))
    serials = [chain.leaf.cert.serial_number] if revoked else []
    fetcher = FakeFetcher(files={CRL1: build_crl(chain.certs[1], serials)})
    result = _check(_checker(fetcher), chain)
    assert result.status is expected
    assert result.method == "OCSPFallbackCRL"


def test_ocsp_good_does_not_touch_crl() -> None:
    chain = _chain(ocsp_urls=(OCSP1,), crl_urls=(CRL1,))
    fetcher = FakeFetcher(ocsp={OCSP1: _answer(chain, ocsp.OCSPCertStatus.GOOD)})
    assert _check(_checker(fetcher), chain).status is GOOD
    assert fetcher.count(CRL1) == 0


# --- CRL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("revoked", "expected"), [(False, GOOD), (True, REVOKED)])
def test_crl_basic(revoked: bool, expected: RevocationStatus) -> None:
    chain = _chain(crl_urls=(CRL1,))
    other_serial = chain.leaf.cert.serial_number + 1000
    serials = [other_serial] + ([chain.leaf.cert.serial_number] if revoked else [])
    fetcher = FakeFetcher(files={CRL1: build_crl(chain.certs[1], serials)})
    result = _check(_checker(fetcher), chain)
    assert result.status is expected
    assert result.method == "CRL"


def test_every_crl_url_must_succeed() -> None:
    chain = _chain(crl_urls=(CRL1, CRL2))
    fetcher = FakeFetcher(files={CRL1: build_crl(chain.certs[1])})
    assert _check(_checker(fetcher), chain).status is UNKNOWN
    fetcher.files[CRL2] = build_crl(chain.certs[1])
    assert _check(_checker(fetcher), chain).status is GOOD


def test_revoked_on_second_crl_url() -> None:
    chain = _chain(crl_urls=(CRL1, CRL2))
    fetcher = FakeFetcher(
        files={
            CRL1: build_crl(chain.certs[1]),
            CRL2: build_crl(chain.certs[1], [chain.leaf.cert.serial_number]),
        }
    )
    assert _check(_checker(fetcher), chain).status is REVOKED


@pytest.mark.parametrize(
    "variant", ["wrong-signer", "wrong-issuer", "expired", "critical-ext", "garbage", "is-delta"]
)
def test_invalid_crls_are_unknown(variant: str) -> None:
    chain = _chain(crl_urls=(CRL1,))
    issuer = chain.certs[1]
    stranger = _stranger_ca()
    revoked = [chain.leaf.cert.serial_number]
    builders: dict[str, Callable[[], bytes]] = {
        "wrong-signer": lambda: build_crl(issuer, revoked, signer=stranger),
        "wrong-issuer": lambda: build_crl(stranger, revoked),
        "expired": lambda: build_crl(issuer, revoked, next_update=NOW - timedelta(seconds=1)),
        "critical-ext": lambda: build_crl(issuer, revoked, critical_unknown_extension=True),
        "garbage": lambda: b"\x30\x03\x02\x01\x00",
        "is-delta": lambda: build_crl(issuer, revoked, delta_of=1, crl_number=2),
    }
    body = builders[variant]()
    assert _check(_checker(FakeFetcher(files={CRL1: body})), chain).status is UNKNOWN


def test_https_crl_url_is_unknown() -> None:
    chain = _chain(crl_urls=("https://crl.test/x.crl",))
    fetcher = FakeFetcher()
    assert _check(_checker(fetcher), chain).status is UNKNOWN
    assert fetcher.calls == []


def test_crl_entry_with_unknown_critical_extension_is_unknown() -> None:
    chain = _chain(crl_urls=(CRL1,))
    entry = RevokedEntry(serial=chain.leaf.cert.serial_number, critical_unknown_extension=True)
    fetcher = FakeFetcher(files={CRL1: build_crl(chain.certs[1], [entry])})
    assert _check(_checker(fetcher), chain).status is UNKNOWN


@pytest.mark.parametrize(
    ("signing_time", "expected"),
    [
        (NOW - timedelta(days=10), GOOD),  # signed before the key was compromised
        (NOW - timedelta(days=1), REVOKED),  # signed after the invalidity date
        (None, REVOKED),  # no authentic signing time (notary.x509): invalidity ignored
    ],
)
def test_crl_invalidity_date_vs_signing_time(
    signing_time: datetime | None, expected: RevocationStatus
) -> None:
    chain = _chain(crl_urls=(CRL1,))
    entry = RevokedEntry(
        serial=chain.leaf.cert.serial_number,
        reason=x509.ReasonFlags.key_compromise,
        invalidity_date=NOW - timedelta(days=5),
    )
    fetcher = FakeFetcher(files={CRL1: build_crl(chain.certs[1], [entry])})
    assert _check(_checker(fetcher), chain, signing_time).status is expected


def test_certificate_hold_is_revoked() -> None:
    chain = _chain(crl_urls=(CRL1,))
    entry = RevokedEntry(
        serial=chain.leaf.cert.serial_number, reason=x509.ReasonFlags.certificate_hold
    )
    fetcher = FakeFetcher(files={CRL1: build_crl(chain.certs[1], [entry])})
    assert _check(_checker(fetcher), chain).status is REVOKED


# --- delta CRLs ----------------------------------------------------------------------------------


def _delta_setup(
    base_entries: list[int | RevokedEntry], delta_entries: list[int | RevokedEntry], **delta: int
) -> tuple[Chain, FakeFetcher]:
    chain = _chain(crl_urls=(CRL1,))
    issuer = chain.certs[1]
    base = build_crl(issuer, base_entries, crl_number=5, freshest_urls=(DELTA,))
    delta_crl = build_crl(
        issuer,
        delta_entries,
        crl_number=delta.get("crl_number", 6),
        delta_of=delta.get("delta_of", 5),
    )
    return chain, FakeFetcher(files={CRL1: base, DELTA: delta_crl})


def test_delta_crl_revocation_is_seen() -> None:
    chain, fetcher = _delta_setup([], [])
    assert _check(_checker(fetcher), chain).status is GOOD
    assert fetcher.count(DELTA) == 1
    chain2 = _chain(crl_urls=(CRL1,))
    issuer = chain2.certs[1]
    fetcher.files[CRL1] = build_crl(issuer, [], crl_number=5, freshest_urls=(DELTA,))
    fetcher.files[DELTA] = build_crl(
        issuer, [chain2.leaf.cert.serial_number], crl_number=6, delta_of=5
    )
    assert _check(_checker(fetcher), chain2).status is REVOKED


def test_hold_in_base_removed_by_delta() -> None:
    chain = _chain(crl_urls=(CRL1,))
    serial = chain.leaf.cert.serial_number
    hold = RevokedEntry(serial=serial, reason=x509.ReasonFlags.certificate_hold)
    remove = RevokedEntry(serial=serial, reason=x509.ReasonFlags.remove_from_crl)
    issuer = chain.certs[1]
    fetcher = FakeFetcher(
        files={
            CRL1: build_crl(issuer, [hold], crl_number=5, freshest_urls=(DELTA,)),
            DELTA: build_crl(issuer, [remove], crl_number=6, delta_of=5),
        }
    )
    assert _check(_checker(fetcher), chain).status is GOOD


@pytest.mark.parametrize("knobs", [{"crl_number": 5}, {"delta_of": 6, "crl_number": 7}])
def test_inconsistent_delta_is_unknown(knobs: dict[str, int]) -> None:
    chain, fetcher = _delta_setup([], [], **knobs)
    assert _check(_checker(fetcher), chain).status is UNKNOWN


def test_unreachable_delta_is_unknown() -> None:
    chain, fetcher = _delta_setup([], [])
    del fetcher.files[DELTA]
    assert _check(_checker(fetcher), chain).status is UNKNOWN


def test_certificate_with_freshest_crl_but_no_delta_is_unknown() -> None:
    pki = Pki()
    base_chain = pki.chain(depth=2)
    issuer = base_chain.root
    leaf_key = KeySpec.rsa(2048).generate()
    builder = (
        x509.CertificateBuilder()
        .subject_name(CertSpec().subject())
        .issuer_name(issuer.cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(0x7777)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(CRL1)], None, None, None)]
            ),
            critical=False,
        )
        .add_extension(
            x509.FreshestCRL(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(DELTA)], None, None, None)]
            ),
            critical=False,
        )
    )
    leaf = builder.sign(issuer.key, hashes.SHA256())
    fetcher = FakeFetcher(files={CRL1: build_crl(issuer)})
    result = _checker(fetcher).check(
        [leaf, issuer.cert], purpose=Purpose.CODE_SIGNING, authentic_signing_time=None
    )
    assert result.status is UNKNOWN


# --- cache -------------------------------------------------------------------------------------


def test_crl_cache_hit_then_expiry_refetch(tmp_path: Path) -> None:
    chain = _chain(crl_urls=(CRL1,))
    fetcher = FakeFetcher(
        files={CRL1: build_crl(chain.certs[1], next_update=NOW + timedelta(hours=1))}
    )
    cache = CrlCache(tmp_path / "crl")
    assert _check(_checker(fetcher, cache=cache), chain).status is GOOD
    assert _check(_checker(fetcher, cache=cache), chain).status is GOOD
    assert fetcher.count(CRL1) == 1
    assert (cache.hits, cache.misses) == (1, 1)
    fetcher.files[CRL1] = build_crl(chain.certs[1], next_update=NOW + timedelta(days=2))
    later = _checker(fetcher, cache=cache, now=NOW + timedelta(hours=2))
    assert _check(later, chain).status is GOOD
    assert fetcher.count(CRL1) == 2
    assert cache.misses == 2


def test_corrupt_cache_entry_is_refetched(tmp_path: Path) -> None:
    chain = _chain(crl_urls=(CRL1,))
    fetcher = FakeFetcher(files={CRL1: build_crl(chain.certs[1])})
    cache = CrlCache(tmp_path)
    _check(_checker(fetcher, cache=cache), chain)
    entries = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    for corrupt in (b"{not json", b'{"url": "x"}', b"[]", b'{"url": "%s", "base": "!!"}'):
        entries[0].write_bytes(corrupt.replace(b"%s", CRL1.encode()))
        assert _check(_checker(fetcher, cache=cache), chain).status is GOOD
    assert fetcher.count(CRL1) == 5
    assert cache.hits == 0


def test_cached_crl_from_another_issuer_is_not_trusted(tmp_path: Path) -> None:
    chain = _chain(crl_urls=(CRL1,))
    cache = CrlCache(tmp_path)
    other = Pki().chain(intermediate=ca_spec("other CA", KeySpec.rsa(2048, slot=4)))
    fetcher = FakeFetcher(files={CRL1: build_crl(other.certs[1])})
    assert _check(_checker(fetcher, cache=cache), other).status is GOOD
    fetcher.files[CRL1] = build_crl(chain.certs[1], [chain.leaf.cert.serial_number])
    assert _check(_checker(fetcher, cache=cache), chain).status is REVOKED


# --- aggregation ---------------------------------------------------------------------------------


def test_aggregation_prefers_revoked_then_leaf_most() -> None:
    pki = Pki()
    intermediate = ca_spec("revokable intermediate", KeySpec.rsa(2048, slot=2)).replace(
        crl_urls=(CRL2,)
    )
    chain = pki.chain(leaf=CertSpec(ocsp_urls=(OCSP1,)), intermediate=intermediate)
    fetcher = FakeFetcher(
        files={CRL2: build_crl(chain.root, [chain.certs[1].cert.serial_number])},
        ocsp={OCSP1: _answer(chain, ocsp.OCSPCertStatus.UNKNOWN)},
    )
    result = _check(_checker(fetcher), chain)
    assert result.status is REVOKED
    assert result.subject == chain.certs[1].cert.subject.rfc4514_string()

    fetcher.files[CRL2] = build_crl(chain.root)
    result = _check(_checker(fetcher), chain)
    assert result.status is UNKNOWN
    assert result.subject == chain.leaf.cert.subject.rfc4514_string()


# --- static checker and errors -------------------------------------------------------------------


@pytest.mark.parametrize("status", list(RevocationStatus))
def test_static_checker(status: RevocationStatus) -> None:
    chain = _chain()
    result = StaticRevocationChecker(status).check(
        chain.x509, purpose=Purpose.TIMESTAMPING, authentic_signing_time=None
    )
    assert result.status is status
    assert (result.subject is None) == (status is GOOD)


def test_fetch_error_is_inconclusive_revocation_unknown() -> None:
    error = RevocationFetchError("boom")
    assert error.reason is Reason.REVOCATION_UNKNOWN
