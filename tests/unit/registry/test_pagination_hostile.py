"""A referrers page whose ``Link`` is not a URL fails that listing with a typed error (it raised
a bare ``ValueError`` from ``urljoin``: found by the ``link`` fuzz target)."""

from __future__ import annotations

import json

import pytest

from pullgate.common.descriptor import Descriptor
from pullgate.errors import PullgateError, Reason
from pullgate.registry.model import ImageReference, RegistryLimits
from tests.support.fake_registry import hosts_for
from tests.support.parts import build_client
from tests.support.raw_http import RawConnection, RawServer

LIMITS = RegistryLimits(connect_timeout=2.0, read_timeout=2.0, request_timeout=10.0)
INDEX = "application/vnd.oci.image.index.v1+json"
TARGET = Descriptor(
    media_type="application/vnd.oci.image.manifest.v1+json", digest="sha256:" + "a" * 64, size=10
)


@pytest.mark.parametrize(
    "link",
    [b"<https://[/v2/x>; rel=next", b'<http://\xff[\xff/p>; rel="next"', b"<//[::1/p>; rel=next"],
)
def test_an_unparsable_next_link_is_a_typed_registry_error(link: bytes) -> None:
    def script(conn: RawConnection) -> None:
        while conn.read_request() is not None:
            body = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": []}).encode()
            conn.send(
                f"HTTP/1.1 200 OK\r\nContent-Type: {INDEX}\r\n".encode()
                + f"Content-Length: {len(body)}\r\nLink: ".encode()
                + link
                + b"\r\n\r\n"
                + body
            )

    with RawServer(script) as reg:
        client = build_client(hosts_for(reg.endpoint(), registry=reg.host), limits=LIMITS)
        ref = ImageReference(registry=reg.host, repository="app", tag="v1")
        with pytest.raises(PullgateError) as excinfo:
            list(client.signatures(ref, TARGET))
        assert excinfo.value.reason is Reason.REGISTRY_ERROR
        assert len(reg.requests) == 1  # the first page only
