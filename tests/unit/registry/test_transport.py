"""Transport and TLS: retries, Retry-After ceiling, caps, mTLS, CA handling, error mapping."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from pullgate.common.clock import FixedClock
from pullgate.errors import Reason
from pullgate.registry.http_errors import redact_url
from pullgate.registry.model import ClientCertificate, Endpoint, RegistryError, RegistryLimits
from pullgate.registry.tls import TlsContextCache, ssl_context_for
from pullgate.registry.transport import (
    RequestRecord,
    ResponseTooLarge,
    Transport,
    parse_retry_after,
)
from tests.support.fake_registry import FakeRegistry, ServerTls, make_tls, refused_endpoint
from tests.support.parts import build_transport
from tests.support.pki import NOW

BLOB = b"x" * 5000


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="module")
def server_tls(tls_dir: Path) -> ServerTls:
    return make_tls(tls_dir / "a", require_client_cert=True)


def _transport(limits: RegistryLimits | None = None) -> tuple[Transport, list[float]]:
    sleeps: list[float] = []
    transport = build_transport(
        limits or RegistryLimits(), clock=FixedClock(NOW), sleep=sleeps.append
    )
    return transport, sleeps


def _blob_url(reg: FakeRegistry) -> str:
    desc = reg.put_blob("app", BLOB)
    return f"{reg.url}/v2/app/blobs/{desc.digest}"


# ---------------------------------------------------------------------------- retries


def test_429_retried_after_retry_after_seconds(reg: FakeRegistry) -> None:
    url = _blob_url(reg)
    reg.behaviour.throttle = [429, 503]
    reg.behaviour.retry_after = "2"
    transport, sleeps = _transport()
    response = transport.request(reg.endpoint(), "GET", url, cap=10_000)
    assert response.status == 200
    assert response.body == BLOB
    assert sleeps == [2.0, 2.0]
    assert transport.request_count == 3


def test_retry_after_above_ceiling_is_not_waited_for(reg: FakeRegistry) -> None:
    url = _blob_url(reg)
    reg.behaviour.throttle = [429]
    reg.behaviour.retry_after = "3600"
    transport, sleeps = _transport(RegistryLimits(max_retry_after=5))
    response = transport.request(reg.endpoint(), "GET", url, cap=10_000)
    assert response.status == 429
    assert sleeps == []


def test_retries_are_bounded(reg: FakeRegistry) -> None:
    url = _blob_url(reg)
    reg.behaviour.throttle = [503] * 10
    transport, sleeps = _transport(RegistryLimits(max_retries=2))
    response = transport.request(reg.endpoint(), "GET", url, cap=10_000)
    assert response.status == 503
    assert len(sleeps) == 2
    assert len(reg.requests("blobs")) == 3


def test_retry_after_http_date() -> None:
    clock = FixedClock(NOW)
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=3), usegmt=True), clock) == 3
    assert parse_retry_after("7", clock) == 7
    assert parse_retry_after("soon", clock) is None
    assert parse_retry_after(None, clock) is None


# ---------------------------------------------------------------------------- caps, headers, log


def test_streaming_cap_reads_at_most_cap_plus_one(reg: FakeRegistry) -> None:
    url = _blob_url(reg)
    reg.behaviour.oversize.add(url.rsplit("/", 1)[1])
    reg.behaviour.oversize_content_length = False
    transport, _ = _transport()
    with pytest.raises(ResponseTooLarge) as err:
        transport.request(reg.endpoint(), "GET", url, cap=1000)
    assert err.value.reason is Reason.MALFORMED
    assert err.value.bytes_read == 1001


def test_content_length_over_cap_refused_before_reading(reg: FakeRegistry) -> None:
    url = _blob_url(reg)
    transport, _ = _transport()
    with pytest.raises(ResponseTooLarge) as err:
        transport.request(reg.endpoint(), "GET", url, cap=1000)
    assert err.value.bytes_read == 0


def test_endpoint_headers_and_request_log(reg: FakeRegistry) -> None:
    url = _blob_url(reg) + "?ns=registry.test&X-Amz-Signature=secretsig"
    records: list[RequestRecord] = []
    transport = build_transport(RegistryLimits(), request_log=records.append)
    endpoint = reg.endpoint(headers={"X-Mirror": ("a", "b")})
    transport.request(endpoint, "GET", url, cap=10_000)
    seen = reg.requests("blobs")[0].headers
    assert seen.get("X-Mirror") == "a, b"  # repeated header, both values sent
    (record,) = records
    assert (record.method, record.status, record.size) == ("GET", 200, len(BLOB))
    assert "secretsig" not in record.url
    assert "ns=registry.test" in record.url


def test_redact_url() -> None:
    out = redact_url("https://user:pw@h:5000/v2/x?ns=a&token=abc")
    assert "pw" not in out
    assert "abc" not in out
    assert "ns=a" in out


def test_connection_refused_is_unreachable() -> None:
    endpoint = refused_endpoint()
    transport, _ = _transport()
    with pytest.raises(RegistryError) as err:
        transport.request(endpoint, "GET", endpoint.url + "/", cap=100)
    assert err.value.reason is Reason.REGISTRY_UNREACHABLE
    assert err.value.endpoint == endpoint.url


# ---------------------------------------------------------------------------- TLS


def _tls_get(reg: FakeRegistry, endpoint: Endpoint) -> int:
    url = _blob_url(reg)
    transport, _ = _transport()
    try:
        return transport.request(endpoint, "GET", url, cap=10_000).status
    finally:
        transport.close()


def test_mtls_with_client_cert(server_tls: ServerTls) -> None:
    with FakeRegistry(tls=server_tls) as reg:
        assert _tls_get(reg, reg.endpoint()) == 200
        combined = (ClientCertificate(cert=server_tls.client_combined),)
        assert _tls_get(reg, reg.endpoint(client_certificates=combined)) == 200


def test_mtls_without_client_cert_is_tls_error(server_tls: ServerTls) -> None:
    with FakeRegistry(tls=server_tls) as reg:
        endpoint = reg.endpoint(client_certificates=())
        with pytest.raises(RegistryError) as err:
            _tls_get(reg, endpoint)
    assert err.value.reason is Reason.REGISTRY_TLS
    assert err.value.endpoint == endpoint.url
    assert endpoint.url in str(err.value)


def test_wrong_ca_is_tls_error(tls_dir: Path) -> None:
    server = make_tls(tls_dir / "b")
    other = make_tls(tls_dir / "c", name="other")
    with FakeRegistry(tls=server) as reg:
        endpoint = reg.endpoint(ca_files=(other.ca,))
        with pytest.raises(RegistryError) as err:
            _tls_get(reg, endpoint)
        assert err.value.reason is Reason.REGISTRY_TLS
        assert err.value.endpoint == endpoint.url
        # skip_verify accepts the unknown chain
        assert _tls_get(reg, reg.endpoint(ca_files=(), skip_verify=True)) == 200


def test_https_first_never_drops_tls_over_a_refused_certificate(tls_dir: Path) -> None:
    """containerd falls back to HTTP only when the server answers the handshake in clear text;
    a certificate the client refuses (what an attacker in the path presents) stays a TLS error."""
    server = make_tls(tls_dir / "d")
    other = make_tls(tls_dir / "e", name="other")
    with FakeRegistry(tls=server) as reg:
        endpoint = reg.endpoint(ca_files=(other.ca,), https_then_http=True)
        transport, _ = _transport()
        with pytest.raises(RegistryError) as err:
            transport.request(endpoint, "GET", _blob_url(reg), cap=10_000)
    assert err.value.reason is Reason.REGISTRY_TLS
    assert not transport.reached_over_http(endpoint)


@pytest.mark.parametrize("problem", ["missing", "garbage", "no-cert"])
def test_bad_ca_file_is_tls_error(tmp_path: Path, problem: str) -> None:
    ca = tmp_path / "ca.pem"
    if problem == "garbage":
        ca.write_bytes(b"\x00\x01 not pem")
    elif problem == "no-cert":
        ca.write_text("-----BEGIN NOTHING-----\n-----END NOTHING-----\n")
    endpoint = Endpoint(
        url="https://127.0.0.1:1/v2",
        scheme="https",
        host="127.0.0.1:1",
        path="/v2",
        ca_files=(ca,),
    )
    with pytest.raises(RegistryError) as err:
        ssl_context_for(endpoint)
    assert err.value.reason is Reason.REGISTRY_TLS
    assert err.value.endpoint == endpoint.url


def test_client_key_missing_is_tls_error(server_tls: ServerTls, tmp_path: Path) -> None:
    endpoint = Endpoint(
        url="https://127.0.0.1:1/v2",
        scheme="https",
        host="127.0.0.1:1",
        path="/v2",
        client_certificates=(ClientCertificate(cert=server_tls.client_cert),),  # no key inside
    )
    with pytest.raises(RegistryError) as err:
        ssl_context_for(endpoint)
    assert err.value.reason is Reason.REGISTRY_TLS


def test_context_cache_reuses_and_rebuilds(server_tls: ServerTls, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(server_tls.ca.read_bytes())
    endpoint = Endpoint(url="https://h/v2", scheme="https", host="h", path="/v2", ca_files=(ca,))
    cache = TlsContextCache()
    first = cache.get(endpoint)
    assert cache.get(endpoint) is first
    ca.write_bytes(server_tls.ca.read_bytes() + b"\n")  # rotated (size changes)
    assert cache.get(endpoint) is not first
