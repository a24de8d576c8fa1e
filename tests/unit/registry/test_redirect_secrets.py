"""Nothing of an endpoint's (credentials, hosts.toml headers, tokens) reaches an origin a
redirect named: not by answering its 401 challenge, not by following its pagination links."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pullgate.common.descriptor import Descriptor
from pullgate.errors import PullgateError, Reason
from pullgate.registry.auth import DockerConfigCredentials
from pullgate.registry.model import Credentials, ImageReference, RegistryLimits
from tests.support.fake_registry import hosts_for
from tests.support.parts import build_client
from tests.support.raw_http import RawConnection, RawServer

LIMITS = RegistryLimits(connect_timeout=2.0, read_timeout=2.0, request_timeout=10.0)
DIGEST = "sha256:" + "a" * 64
INDEX = "application/vnd.oci.image.index.v1+json"


def _redirecting_to(url: str) -> Callable[[RawConnection], None]:
    def script(conn: RawConnection) -> None:
        while conn.read_request() is not None:
            conn.send(
                f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {url}\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )

    return script


def test_a_redirect_targets_challenge_is_not_answered_with_the_endpoints_credentials() -> None:
    def realm_script(conn: RawConnection) -> None:
        while conn.read_request() is not None:
            body = json.dumps({"token": "t"}).encode()
            conn.send(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)

    with RawServer(realm_script) as realm:

        def cdn_script(conn: RawConnection) -> None:
            while conn.read_request() is not None:
                conn.send(
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
                    + f'WWW-Authenticate: Bearer realm="{realm.url}/token"\r\n\r\n'.encode()
                )

        with RawServer(cdn_script) as cdn, RawServer(_redirecting_to(f"{cdn.url}/blob")) as reg:
            creds = DockerConfigCredentials(
                {reg.host: Credentials(username="user", password="hunter2")}
            )
            client = build_client(
                hosts_for(reg.endpoint(), registry=reg.host), credentials=creds, limits=LIMITS
            )
            ref = ImageReference(registry=reg.host, repository="app", digest=DIGEST)
            desc = Descriptor(media_type="application/octet-stream", digest=DIGEST, size=3)
            with pytest.raises(PullgateError) as excinfo:
                client.fetch_blob(ref, desc, 1024)
            assert excinfo.value.reason is Reason.REGISTRY_AUTH
            assert realm.requests == []  # no token request at all, let alone with credentials
            assert [r for r in cdn.requests if "authorization" in r.headers] == []


def test_pagination_from_a_redirect_target_is_refused_and_gets_no_endpoint_headers() -> None:
    def other_script(conn: RawConnection) -> None:
        while (req := conn.read_request()) is not None:
            body = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": []}).encode()
            link = "" if "page2" in req.path else 'Link: </page2>; rel="next"\r\n'
            conn.send(
                f"HTTP/1.1 200 OK\r\nContent-Type: {INDEX}\r\n{link}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )

    with RawServer(other_script) as other, RawServer(_redirecting_to(f"{other.url}/page1")) as reg:
        endpoint = reg.endpoint(headers={"X-Api-Key": ("s3cret-key",)})
        client = build_client(hosts_for(endpoint, registry=reg.host), limits=LIMITS)
        ref = ImageReference(registry=reg.host, repository="app", tag="v1")
        target = Descriptor(
            media_type="application/vnd.oci.image.manifest.v1+json", digest=DIGEST, size=10
        )
        with pytest.raises(PullgateError) as excinfo:
            list(client.signatures(ref, target))
        assert excinfo.value.reason is Reason.REGISTRY_ERROR
        assert [r.path for r in other.requests] == ["/page1"]  # the redirect, without headers
        assert [r for r in other.requests if "x-api-key" in r.headers] == []
