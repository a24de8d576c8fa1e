"""The transport against a hostile or broken server: slow drips, redirects, lying or huge
headers, endless bodies. Every case ends in a typed answer, within a bounded time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pullgate.errors import PullgateError, Reason
from pullgate.registry.model import RegistryError, RegistryLimits
from pullgate.registry.transport import Response, ResponseTooLarge
from tests.support.parts import build_transport
from tests.support.raw_http import RawConnection, RawServer
from tests.support.threads import JOIN, outcome_of

# Small bounds keep the tests fast; the drips stay under the read timeout on purpose.
LIMITS = RegistryLimits(connect_timeout=2.0, read_timeout=1.0, request_timeout=1.5)
DRIP = 0.05


def _reason(outcome: Any) -> Reason:
    assert isinstance(outcome, PullgateError), outcome
    return outcome.reason


def _answer(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---------------------------------------------------------------------------- slow drip


def _drip_headers(conn: RawConnection) -> None:
    conn.read_request()
    conn.drip(b"HTTP/1.1 200 OK\r\nX-Slow: ", interval=DRIP)


def _drip_body(conn: RawConnection) -> None:
    conn.read_request()
    conn.drip(_answer("200 OK", {"Content-Length": "1000000"}), interval=DRIP)


def _drip_tls_handshake(conn: RawConnection) -> None:
    conn.sock.recv(65536)  # the ClientHello
    conn.drip(b"\x16\x03\x03\x40\x00", interval=DRIP)  # a 16 KiB handshake record, slowly


@pytest.mark.parametrize(
    ("script", "scheme"),
    [(_drip_headers, "http"), (_drip_body, "http"), (_drip_tls_handshake, "https")],
    ids=["headers", "body", "tls-handshake"],
)
def test_slow_drip_ends_in_timeout_and_lets_go(
    script: Callable[[RawConnection], None], scheme: str
) -> None:
    with RawServer(script) as server:
        transport = build_transport(LIMITS)
        url = f"{scheme}://{server.host}/v2/app/blobs/x"
        outcome = outcome_of(
            lambda: transport.request(server.endpoint(scheme), "GET", url, cap=2_000_000)
        )
        assert _reason(outcome) is Reason.TIMEOUT
        assert server.wait_idle(JOIN)  # the connection was let go of, not left dripping


def test_caller_deadline_already_passed_sends_nothing() -> None:
    with RawServer(_drip_body) as server:
        transport = build_transport(LIMITS, deadline=0.0)
        url = f"{server.url}/v2/app/blobs/x"
        outcome = outcome_of(lambda: transport.request(server.endpoint(), "GET", url, cap=10))
        assert _reason(outcome) is Reason.TIMEOUT
        assert server.requests == []


# ---------------------------------------------------------------------------- redirects


class _Target:
    """A server answering 200 ``ok`` to anything, logging what it received."""

    def __call__(self, conn: RawConnection) -> None:
        while conn.read_request() is not None:
            conn.send(_answer("200 OK", {"Content-Length": "2"}, b"ok"))


def _redirect_to(location: str, status: str = "302 Found") -> Callable[[RawConnection], None]:
    def script(conn: RawConnection) -> None:
        while (request := conn.read_request()) is not None:
            if request.path.startswith("/landed"):
                conn.send(_answer("200 OK", {"Content-Length": "2"}, b"ok"))
            else:
                conn.send(_answer(status, {"Location": location, "Content-Length": "0"}))

    return script


def _get_with_credentials(origin: RawServer, **headers: str) -> Response:
    """A blob GET to ``origin`` carrying a bearer token and a hosts.toml ``X-Api-Key``."""
    endpoint = origin.endpoint(headers={"X-Api-Key": ("k3y",)})
    return build_transport(LIMITS).request(
        endpoint,
        "GET",
        f"{origin.url}/v2/app/blobs/x",
        headers={"Authorization": "Bearer t0ken", **headers},
        cap=10,
    )


def test_cross_origin_redirect_carries_no_credentials_nor_hosts_toml_headers() -> None:
    target = RawServer(_Target())
    with target, RawServer(_redirect_to(f"{target.url}/elsewhere")) as origin:
        response = _get_with_credentials(origin, Accept="application/json")
    assert (response.status, response.body) == (200, b"ok")
    (landed,) = target.requests
    assert "authorization" not in landed.headers
    assert "x-api-key" not in landed.headers
    assert landed.headers["accept"] == "application/json"


def test_backslash_location_is_judged_by_where_urllib3_connects() -> None:
    """``urllib.parse`` reads ``http://OTHER\\@ORIGIN/`` as the origin itself, but urllib3
    connects to OTHER: the origin check must follow urllib3, or the credentials and the
    hosts.toml headers go to OTHER."""
    with RawServer(_Target()) as target:
        script = _redirect_to("", "307 Temporary Redirect")
        with RawServer(script) as origin:
            location = f"http://{target.host}\\@{origin.host}/landed"
            # The Location names the origin's own port, known only once it listens.
            origin.script = _redirect_to(location, "307 Temporary Redirect")
            response = _get_with_credentials(origin)
    assert response.status == 200
    (landed,) = target.requests
    assert "authorization" not in landed.headers
    assert "x-api-key" not in landed.headers


def test_same_origin_redirect_keeps_the_headers() -> None:
    with RawServer(_redirect_to("/landed")) as origin:
        response = _get_with_credentials(origin)
    assert response.status == 200
    landed = origin.requests[-1]
    assert (landed.headers["authorization"], landed.headers["x-api-key"]) == ("Bearer t0ken", "k3y")


def test_cross_origin_307_with_a_body_is_not_followed() -> None:
    with RawServer(_Target()) as target:
        redirect = _redirect_to(f"{target.url}/token", "307 Temporary Redirect")
        with RawServer(redirect) as origin:
            response = build_transport(LIMITS).request(
                origin.endpoint(),
                "POST",
                f"{origin.url}/token",
                body=b"refresh_token=s3cr3t",
                cap=10,
            )
    assert response.status == 307
    assert target.requests == []


@pytest.mark.parametrize(
    "location", ["/v2/app/blobs/x", "ftp://127.0.0.1/x", "http://[::1/x"], ids=str
)
def test_redirect_loops_and_unusable_locations_are_registry_errors(location: str) -> None:
    with RawServer(_redirect_to(location)) as origin:
        url = f"{origin.url}/v2/app/blobs/x"
        outcome = outcome_of(
            lambda: build_transport(LIMITS).request(origin.endpoint(), "GET", url, cap=10)
        )
    assert _reason(outcome) is Reason.REGISTRY_ERROR
    assert len(origin.requests) <= 11


def test_endless_redirect_body_is_not_drained() -> None:
    def script(conn: RawConnection) -> None:
        request = conn.read_request()
        if request is not None and request.path.startswith("/landed"):
            conn.send(_answer("200 OK", {"Content-Length": "2"}, b"ok"))
            return
        head = _answer("302 Found", {"Location": "/landed", "Transfer-Encoding": "chunked"})
        conn.stream(head, b"4000\r\n" + b"z" * 0x4000 + b"\r\n")

    with RawServer(script) as origin:
        url = f"{origin.url}/v2/app/blobs/x"
        transport = build_transport(RegistryLimits(read_timeout=1.0, request_timeout=60.0))
        outcome = outcome_of(lambda: transport.request(origin.endpoint(), "GET", url, cap=10))
    assert not isinstance(outcome, BaseException), outcome
    assert (outcome.status, outcome.body) == (200, b"ok")


# ---------------------------------------------------------------------------- malformed


def _respond(raw: bytes) -> Callable[[RawConnection], None]:
    def script(conn: RawConnection) -> None:
        if conn.read_request() is not None:
            conn.send(raw)

    return script


@pytest.mark.parametrize(
    "raw",
    [
        _answer("200 OK", {"X-Huge": "h" * 70_000, "Content-Length": "0"}),
        _answer("200 OK", {**{f"X-{i}": "v" for i in range(150)}, "Content-Length": "0"}),
        _answer("200 OK", {"Content-Length": "100"}, b"short"),  # then the server closes
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
    ids=["huge-header-line", "too-many-headers", "body-shorter", "bad-chunk", "garbage"],
)
def test_malformed_responses_are_typed_registry_errors(raw: bytes) -> None:
    with RawServer(_respond(raw)) as server:
        url = f"{server.url}/v2/app/blobs/x"
        outcome = outcome_of(
            lambda: build_transport(LIMITS).request(server.endpoint(), "GET", url, cap=1000)
        )
    assert isinstance(outcome, RegistryError), outcome
    assert outcome.reason is Reason.REGISTRY_UNREACHABLE


def test_body_longer_than_content_length_is_cut_at_content_length() -> None:
    raw = _answer("200 OK", {"Content-Length": "3"}, b"abcdef")
    with RawServer(_respond(raw)) as server:
        response = build_transport(LIMITS).request(
            server.endpoint(), "GET", f"{server.url}/v2/app/blobs/x", cap=10
        )
    assert response.body == b"abc"  # and digest checks see exactly these bytes


def test_endless_chunked_body_stops_at_the_cap() -> None:
    def script(conn: RawConnection) -> None:
        conn.read_request()
        head = _answer("200 OK", {"Transfer-Encoding": "chunked"})
        conn.stream(head, b"400\r\n" + b"c" * 0x400 + b"\r\n")

    with RawServer(script) as server:
        url = f"{server.url}/v2/app/blobs/x"
        outcome = outcome_of(
            lambda: build_transport(LIMITS).request(server.endpoint(), "GET", url, cap=100_000)
        )
    assert isinstance(outcome, ResponseTooLarge), outcome
    assert outcome.reason is Reason.MALFORMED
    assert outcome.bytes_read <= 100_001
