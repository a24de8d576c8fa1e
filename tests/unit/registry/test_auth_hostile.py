"""The token flow against hostile challenges and token endpoints: every case is a typed
``REGISTRY_AUTH``, and nothing secret goes where it should not."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

from pullgate.common.clock import SystemClock
from pullgate.errors import Reason
from pullgate.registry.auth import Authenticator, Challenge, StaticCredentials
from pullgate.registry.model import Credentials, Endpoint, RegistryError, RegistryLimits
from tests.support.parts import build_transport
from tests.support.raw_http import RawConnection, RawServer

LIMITS = RegistryLimits(connect_timeout=2.0, read_timeout=2.0, request_timeout=10.0)
CREDS = Credentials(username="user", password="hunter2-password")
SCOPE = "repository:app:pull"


def _authenticator() -> Authenticator:
    return Authenticator(build_transport(LIMITS), StaticCredentials(CREDS), SystemClock())


def _bearer(realm: str) -> tuple[Challenge, ...]:
    return (Challenge(scheme="bearer", params={"realm": realm, "service": "svc"}),)


def _token_answer(body: bytes) -> Callable[[RawConnection], None]:
    def script(conn: RawConnection) -> None:
        while conn.read_request() is not None:
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            conn.send(head + body)

    return script


def test_https_endpoint_sends_nothing_to_a_plain_http_realm() -> None:
    with RawServer(_token_answer(json.dumps({"token": "t"}).encode())) as realm:
        endpoint = realm.endpoint("https", headers={"X-Api-Key": ("k3y",)})
        with pytest.raises(RegistryError) as caught:
            _authenticator().answer(endpoint, _bearer(f"{realm.url}/token"), SCOPE)
        assert caught.value.reason is Reason.REGISTRY_AUTH
        assert realm.requests == []


def test_plain_http_endpoint_may_use_a_plain_http_realm() -> None:
    with RawServer(_token_answer(json.dumps({"token": "t0k"}).encode())) as realm:
        value = _authenticator().answer(realm.endpoint(), _bearer(f"{realm.url}/token"), SCOPE)
    assert value == "Bearer t0k"


def _plain_http_only(script: Callable[[RawConnection], None]) -> Callable[[RawConnection], None]:
    """``script`` behind a plain-HTTP server's answer to a TLS ClientHello (a 400 in clear)."""

    def serve(conn: RawConnection) -> None:
        if conn.sock.recv(1, socket.MSG_PEEK) == b"\x16":  # a TLS handshake record
            conn.send(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            return
        script(conn)

    return serve


def test_https_first_endpoint_that_fell_back_may_use_a_plain_http_realm() -> None:
    """An ``http://`` host with TLS settings is tried in HTTPS first (containerd 2.x); once that
    failed and the host is spoken to in plain HTTP, a plain-HTTP realm exposes nothing more."""
    token = _token_answer(json.dumps({"token": "t0k"}).encode())
    with RawServer(_plain_http_only(token)) as realm:
        endpoint = realm.endpoint("https", https_then_http=True, skip_verify=True)
        authenticator = _authenticator()
        probe = authenticator.transport.request(endpoint, "GET", f"{endpoint.url}/", cap=100)
        value = authenticator.answer(endpoint, _bearer(f"{realm.url}/token"), SCOPE)
    assert probe.url.startswith("http://")  # the HTTPS attempt failed; plain HTTP answered
    assert value == "Bearer t0k"


@pytest.mark.parametrize("realm", ["http://[::1/token", "file:///etc/passwd", "//no-scheme"])
def test_unusable_realm_is_an_auth_error(realm: str) -> None:
    endpoint = Endpoint(url="http://r.test/v2", scheme="http", host="r.test", path="/v2")
    with pytest.raises(RegistryError) as caught:
        _authenticator().answer(endpoint, _bearer(realm), SCOPE)
    assert caught.value.reason is Reason.REGISTRY_AUTH


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"token": "t" * (2 * 1024 * 1024)}).encode(),  # over the 1 MiB cap
        json.dumps({"expires_in": 300}).encode(),
        json.dumps({"token": 42}).encode(),
        json.dumps({"token": "tök€n"}).encode(),  # not a header value
        json.dumps({"token": "a\r\nX-Injected: 1"}).encode(),
        b'{"token": "\xff\xfe"}',
        b"[" * 100_000 + b"]" * 100_000,
        b"<html>login</html>",
    ],
    ids=["huge", "no-token", "number", "non-ascii", "crlf", "non-utf8", "deep", "html"],
)
def test_unusable_token_response_is_an_auth_error(body: bytes) -> None:
    with RawServer(_token_answer(body)) as realm, pytest.raises(RegistryError) as caught:
        _authenticator().answer(realm.endpoint(), _bearer(f"{realm.url}/token"), SCOPE)
    assert caught.value.reason is Reason.REGISTRY_AUTH
