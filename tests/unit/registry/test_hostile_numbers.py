"""Numbers in hostile headers: only ASCII digits are numbers (``"²"`` passes ``str.isdigit``
and then makes ``int()`` raise a bare ``ValueError``: a crash instead of a typed error and a
fallback to the next endpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullgate.common.textnum import ascii_int
from pullgate.registry.hosts import load_hosts
from pullgate.registry.model import ImageReference, RegistryLimits
from pullgate.registry.reference import parse_reference
from tests.support.fake_registry import FakeRegistry, hosts_for
from tests.support.parts import build_client, build_transport
from tests.support.raw_http import RawConnection, RawServer

LIMITS = RegistryLimits(connect_timeout=2.0, read_timeout=2.0, request_timeout=10.0)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        (" 42 ", 42),
        ("007", 7),
        ("²", None),
        ("٣", None),
        ("", None),
        ("-1", None),
        # Past Go's int64: refused, not a ValueError (over 4300 digits) or a float overflow.
        ("9" * 5000, None),
        ("9" * 400, None),
        (str(2**63), None),
        (str(2**63 - 1), 2**63 - 1),
        ("0" * 5000 + "7", 7),
    ],
)
def test_ascii_int(text: str, value: int | None) -> None:
    assert ascii_int(text) == value


@pytest.mark.parametrize("length", [b"\xb2", b"9" * 5000])
def test_a_mirror_with_an_unreadable_content_length_is_skipped_for_the_next(
    length: bytes,
) -> None:
    def script(conn: RawConnection) -> None:
        while conn.read_request() is not None:
            conn.send(
                b"HTTP/1.1 200 OK\r\n"
                b"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                b"Docker-Content-Digest: sha256:" + b"c" * 64 + b"\r\n"
                b"Content-Length: " + length + b"\r\n\r\n"
            )

    with RawServer(script) as mirror, FakeRegistry() as upstream:
        target = upstream.put_image("app", tag="v1")
        client = build_client(
            hosts_for(mirror.endpoint(), upstream.endpoint(), registry="registry.test"),
            limits=LIMITS,
        )
        ref = ImageReference(registry="registry.test", repository="app", tag="v1")
        assert client.resolve(ref).digest == target.digest


@pytest.mark.parametrize(
    "header",
    [
        b"Retry-After: \xb2",
        b"Retry-After: \xd9\xa3",
        b"Retry-After: " + b"9" * 400,  # float() of it overflowed
        b"Retry-After: " + b"9" * 5000,  # int() of it raised ValueError
        # HTTP dates whose year, day or zone offset overflow datetime (OverflowError).
        b"Retry-After: Wed, 21 Oct 30444444444444804444444444412 07:00 01",
        b"Retry-After: Wed, 2888888888888888881 Oct 2015 027:00",
        b"Retry-After: Wed, 21 Oct 3802 07:00 444444444444442",
    ],
)
def test_an_unreadable_retry_after_is_no_delay_not_a_crash(header: bytes) -> None:
    def script(conn: RawConnection) -> None:
        while conn.read_request() is not None:
            conn.send(b"HTTP/1.1 429 Too Many\r\n" + header + b"\r\nContent-Length: 0\r\n\r\n")

    waits: list[float] = []
    with RawServer(script) as server:
        transport = build_transport(LIMITS, sleep=waits.append)
        response = transport.request(server.endpoint(), "GET", f"{server.url}/v2/", cap=10)
    assert response.status == 429
    assert all(wait <= LIMITS.max_retry_after for wait in waits)


def test_a_mirror_with_a_negative_dial_timeout_is_skipped_as_containerd_does(
    tmp_path: Path,
) -> None:
    with FakeRegistry() as upstream:
        target = upstream.put_image("app", tag="v1")
        hosts = tmp_path / "registry.test"
        hosts.mkdir()
        (hosts / "hosts.toml").write_text(
            f'server = "{upstream.url}"\n[host."http://127.0.0.1:9"]\n  dial_timeout = "-1s"\n'
        )
        client = build_client(lambda r: load_hosts(r, [tmp_path]), limits=LIMITS)
        assert client.resolve(parse_reference("registry.test/app:v1")).digest == target.digest
