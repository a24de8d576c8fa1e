"""Revocation against real components: ``openssl ocsp`` and a local CRL HTTP server.

Acceptance: OCSP good / revoked / unknown against ``openssl ocsp`` started by the test; CRL
good / revoked / expired-then-refetched from a local HTTP server; the CRL cache is used on the
second run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import urllib3

from pullgate.common.clock import FixedClock
from pullgate.common.descriptor import Descriptor
from pullgate.errors import Reason
from pullgate.verification.cache import CertMemo
from pullgate.verification.outcome import VerificationOutcome
from pullgate.verification.revocation import (
    CrlCache,
    NetworkRevocationChecker,
    Purpose,
    RevocationFetchError,
    RevocationStatus,
    Urllib3Fetcher,
)
from pullgate.verification.truststore import TrustStore
from pullgate.verification.verifier import Verifier
from tests.support.crl_server import CrlServer, build_crl
from tests.support.ocsp import OpenSslOcspResponder, free_port, ocsp_responder_cert
from tests.support.parts import build_fetcher
from tests.support.pki import NOW, CertSpec, Chain, Issued, Pki, issue, write_store
from tests.support.signing import sign_jws
from tests.support.statements import Source, oci_statement, signature_blob

pytestmark = pytest.mark.integration

GOOD, REVOKED, UNKNOWN = RevocationStatus.GOOD, RevocationStatus.REVOKED, RevocationStatus.UNKNOWN
TARGET = Descriptor(
    media_type="application/vnd.oci.image.manifest.v1+json", digest="sha256:" + "ab" * 32, size=99
)


@pytest.fixture
def fetcher() -> Iterator[Urllib3Fetcher]:
    pool = urllib3.PoolManager(retries=False)
    yield build_fetcher(pool)
    pool.clear()


# --- OCSP against openssl ocsp -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OcspWorld:
    ca: Issued
    good: Issued
    revoked: Issued
    unknown: Issued


@pytest.fixture
def ocsp_world(tmp_path: Path) -> Iterator[OcspWorld]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl binary not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ca = Pki(name="ocsp test").root()
    world = OcspWorld(
        ca=ca,
        good=issue(CertSpec(common_name="ocsp good", ocsp_urls=(url,)), ca),
        revoked=issue(CertSpec(common_name="ocsp revoked", ocsp_urls=(url,)), ca),
        unknown=issue(CertSpec(common_name="ocsp unknown", ocsp_urls=(url,)), ca),
    )
    responder = OpenSslOcspResponder(
        ca=ca,
        responder=ocsp_responder_cert(ca),
        workdir=tmp_path / "ocsp",
        port=port,
        good=[world.good.cert],
        revoked=[world.revoked.cert],
    )
    with responder:
        yield world


@pytest.mark.parametrize(
    ("which", "expected"), [("good", GOOD), ("revoked", REVOKED), ("unknown", UNKNOWN)]
)
def test_ocsp_against_openssl(
    ocsp_world: OcspWorld, fetcher: Urllib3Fetcher, which: str, expected: RevocationStatus
) -> None:
    # openssl stamps thisUpdate/nextUpdate (now + 5 min) with the real clock.
    checker = NetworkRevocationChecker(fetcher, FixedClock(datetime.now(UTC)))
    leaf: Issued = getattr(ocsp_world, which)
    result = checker.check(
        [leaf.cert, ocsp_world.ca.cert],
        purpose=Purpose.CODE_SIGNING,
        authentic_signing_time=None,
    )
    assert result.status is expected
    assert result.method == "OCSP"


def test_ocsp_response_expires_with_the_clock(
    ocsp_world: OcspWorld, fetcher: Urllib3Fetcher
) -> None:
    later = FixedClock(datetime.now(UTC) + timedelta(minutes=10))  # past -nmin 5
    result = NetworkRevocationChecker(fetcher, later).check(
        [ocsp_world.revoked.cert, ocsp_world.ca.cert],
        purpose=Purpose.CODE_SIGNING,
        authentic_signing_time=None,
    )
    assert result.status is UNKNOWN


# --- CRL from a local HTTP server ----------------------------------------------------------------


def _crl_chain(server: CrlServer) -> Chain:
    return Pki(name="crl test").chain(depth=2, leaf=CertSpec(crl_urls=(server.url("/leaf.crl"),)))


def _run(checker: NetworkRevocationChecker, chain: Chain) -> RevocationStatus:
    return checker.check(
        chain.x509, purpose=Purpose.CODE_SIGNING, authentic_signing_time=None
    ).status


@pytest.mark.parametrize(("revoked", "expected"), [(False, GOOD), (True, REVOKED)])
def test_crl_good_and_revoked(
    crl_server: CrlServer, fetcher: Urllib3Fetcher, revoked: bool, expected: RevocationStatus
) -> None:
    chain = _crl_chain(crl_server)
    serials = [chain.leaf.cert.serial_number] if revoked else []
    crl_server.routes["/leaf.crl"] = build_crl(chain.root, serials)
    assert _run(NetworkRevocationChecker(fetcher, FixedClock(NOW)), chain) is expected


def test_crl_cache_used_then_expired_crl_refetched(
    crl_server: CrlServer, fetcher: Urllib3Fetcher, tmp_path: Path
) -> None:
    chain = _crl_chain(crl_server)
    cache = CrlCache(tmp_path / "crl-cache")
    crl_server.routes["/leaf.crl"] = build_crl(chain.root, next_update=NOW + timedelta(hours=1))

    assert _run(NetworkRevocationChecker(fetcher, FixedClock(NOW), cache), chain) is GOOD
    assert crl_server.hits("/leaf.crl") == 1
    # Second run, new checker (as after a restart): served from the on-disk cache.
    assert _run(NetworkRevocationChecker(fetcher, FixedClock(NOW), cache), chain) is GOOD
    assert crl_server.hits("/leaf.crl") == 1
    assert cache.hits == 1

    # The CA publishes a new CRL revoking the leaf; once the cached CRL's NextUpdate has
    # passed the checker downloads it again and sees the revocation.
    crl_server.routes["/leaf.crl"] = build_crl(
        chain.root,
        [chain.leaf.cert.serial_number],
        last_update=NOW + timedelta(hours=1),
        next_update=NOW + timedelta(days=1),
        crl_number=2,
    )
    later = FixedClock(NOW + timedelta(hours=2))
    assert _run(NetworkRevocationChecker(fetcher, later, cache), chain) is REVOKED
    assert crl_server.hits("/leaf.crl") == 2
    assert _run(NetworkRevocationChecker(fetcher, later, cache), chain) is REVOKED
    assert crl_server.hits("/leaf.crl") == 2


def test_expired_crl_from_server_is_unknown(crl_server: CrlServer, fetcher: Urllib3Fetcher) -> None:
    chain = _crl_chain(crl_server)
    crl_server.routes["/leaf.crl"] = build_crl(
        chain.root, last_update=NOW - timedelta(days=2), next_update=NOW - timedelta(days=1)
    )
    assert _run(NetworkRevocationChecker(fetcher, FixedClock(NOW)), chain) is UNKNOWN


def test_missing_crl_is_unknown(crl_server: CrlServer, fetcher: Urllib3Fetcher) -> None:
    chain = _crl_chain(crl_server)
    assert _run(NetworkRevocationChecker(fetcher, FixedClock(NOW)), chain) is UNKNOWN
    assert crl_server.hits("/leaf.crl") == 1


# --- Urllib3Fetcher ------------------------------------------------------------------------------


def test_fetcher_reads_body(crl_server: CrlServer, fetcher: Urllib3Fetcher) -> None:
    crl_server.routes["/blob"] = b"x" * 1000
    assert fetcher.get(crl_server.url("/blob"), timeout=2, max_bytes=1000) == b"x" * 1000


def _fetch_case(server: CrlServer, fetcher: Urllib3Fetcher, case: str) -> bytes:
    if case == "too-large":
        return fetcher.get(server.url("/blob"), timeout=2, max_bytes=1000)
    if case == "not-found":
        return fetcher.get(server.url("/missing"), timeout=2, max_bytes=1000)
    if case == "https":
        return fetcher.get(f"https://127.0.0.1:{server.port}/blob", timeout=2, max_bytes=10)
    if case == "ftp":
        return fetcher.get("ftp://127.0.0.1/blob", timeout=2, max_bytes=10)
    if case == "refused":
        return fetcher.get(f"http://127.0.0.1:{free_port()}/blob", timeout=2, max_bytes=10)
    return fetcher.post(
        server.url("/blob"),
        b"req",
        content_type="application/ocsp-request",
        timeout=2,
        max_bytes=10_000,
    )


@pytest.mark.parametrize(
    "case", ["too-large", "not-found", "https", "ftp", "refused", "post-not-allowed"]
)
def test_fetcher_errors_are_typed(
    crl_server: CrlServer, fetcher: Urllib3Fetcher, case: str
) -> None:
    crl_server.routes["/blob"] = b"x" * 1001
    with pytest.raises(RevocationFetchError) as info:
        _fetch_case(crl_server, fetcher, case)
    assert info.value.reason is Reason.REVOCATION_UNKNOWN


# --- several OCSP responders: the first answer ends the loop, as notation-core-go reads it -------


@dataclass(frozen=True, slots=True)
class TwoResponders:
    chain: Chain
    trust_dir: Path


def _signed_by_leaf_with(urls: tuple[str, ...], tmp: Path) -> TwoResponders:
    pki = Pki(name="two responders")
    chain = pki.chain(leaf=CertSpec(common_name="two responders leaf", ocsp_urls=urls), depth=2)
    trust_dir = tmp / "trust"
    write_store(trust_dir, "ca", "main", [chain.root.cert])
    return TwoResponders(chain, trust_dir)


def _verify_strict(world: TwoResponders, fetcher: Urllib3Fetcher) -> VerificationOutcome:
    verifier = Verifier(
        trust_store=TrustStore(world.trust_dir),
        revocation=NetworkRevocationChecker(fetcher, FixedClock(datetime.now(UTC))),
        clock=FixedClock(datetime.now(UTC)),
        memo=CertMemo(),
    )
    source = Source([signature_blob(sign_jws(world.chain, TARGET))])
    return verifier.verify_artifact(
        reference=f"registry.example/app@{TARGET.digest}",
        target=TARGET,
        statement=oci_statement("strict"),
        source=source,
        user_metadata=None,
    )


def _responder(
    world: TwoResponders, tmp: Path, port: int, *, knows_leaf: bool
) -> OpenSslOcspResponder:
    ca = world.chain.root
    return OpenSslOcspResponder(
        ca=ca,
        responder=ocsp_responder_cert(ca),
        workdir=tmp / f"ocsp-{port}",
        port=port,
        good=[world.chain.leaf.cert] if knows_leaf else [],
    )


@pytest.fixture
def openssl() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl binary not installed")


@pytest.mark.usefixtures("openssl")
def test_unknown_from_the_first_responder_is_the_answer(
    tmp_path: Path, fetcher: Urllib3Fetcher
) -> None:
    first, second = free_port(), free_port()
    urls = (f"http://127.0.0.1:{first}", f"http://127.0.0.1:{second}")
    world = _signed_by_leaf_with(urls, tmp_path)
    unknown = _responder(world, tmp_path, first, knows_leaf=False)
    good = _responder(world, tmp_path, second, knows_leaf=True)
    with unknown, good:
        outcome = _verify_strict(world, fetcher)
        assert (outcome.allowed, outcome.reason) == (False, Reason.REVOCATION_UNKNOWN)
        assert (unknown.requests, good.requests) == (1, 0)


@pytest.mark.usefixtures("openssl")
def test_an_unreachable_first_responder_moves_on_to_the_next(
    tmp_path: Path, fetcher: Urllib3Fetcher
) -> None:
    nobody, second = free_port(), free_port()  # nothing listens on ``nobody``
    urls = (f"http://127.0.0.1:{nobody}", f"http://127.0.0.1:{second}")
    world = _signed_by_leaf_with(urls, tmp_path)
    with _responder(world, tmp_path, second, knows_leaf=True) as good:
        outcome = _verify_strict(world, fetcher)
        assert outcome.allowed, outcome.reason
        assert good.requests == 1
