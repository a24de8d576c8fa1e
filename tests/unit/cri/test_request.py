"""Reading CRI PullImage requests: normalisation and AuthConfig (docs/containerd.md §3.2)."""

from __future__ import annotations

import base64

import pytest

from pullgate.cri.methods import grpc_target
from pullgate.cri.request import credentials_from_auth, parse_pull_request
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.errors import MalformedInput, Reason
from pullgate.registry.model import Credentials, ImageReference


def _request(image: str, auth: api_pb2.AuthConfig | None = None) -> bytes:
    request = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image))
    if auth is not None:
        request.auth.CopyFrom(auth)
    return request.SerializeToString()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            "nginx:latest",
            ImageReference(registry="docker.io", repository="library/nginx", tag="latest"),
        ),
        ("nginx", ImageReference(registry="docker.io", repository="library/nginx", tag="latest")),
        (
            "127.0.0.1:5000/team/app:v1",
            ImageReference(registry="127.0.0.1:5000", repository="team/app", tag="v1"),
        ),
    ],
)
def test_reference_is_normalised_like_the_runtime(image: str, expected: ImageReference) -> None:
    pull = parse_pull_request(_request(image))
    assert (pull.image, pull.reference, pull.credentials, pull.pod) == (image, expected, None, "")


def test_pod_comes_from_sandbox_metadata() -> None:
    request = api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image="nginx"),
        sandbox_config=api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name="web", namespace="prod")
        ),
    )
    assert parse_pull_request(request.SerializeToString()).pod == "prod/web"


def test_unknown_fields_do_not_disturb_parsing() -> None:
    # Field 99 (a future CRI addition) as a length-delimited string.
    data = _request("nginx") + bytes([(99 << 3 | 2) & 0x7F | 0x80, 99 >> 4, 3]) + b"new"
    assert parse_pull_request(data).reference.repository == "library/nginx"


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff",
        _request(""),
        _request("r.io/UPPER/case"),
        _request("a" * 64),
        _request("nginx", api_pb2.AuthConfig(auth="!!not base64!!")),
        _request("nginx", api_pb2.AuthConfig(auth=_b64("no-colon"))),
    ],
)
def test_bad_requests_are_typed_malformed(data: bytes) -> None:
    with pytest.raises(MalformedInput) as excinfo:
        parse_pull_request(data)
    assert excinfo.value.reason is Reason.MALFORMED


def test_username_password_win_over_auth() -> None:
    auth = api_pb2.AuthConfig(username="u", password="p", auth=_b64("x:y"), server_address="h")
    assert credentials_from_auth(auth) == Credentials(
        username="u", password="p", server_address="h"
    )


def test_auth_is_split_at_the_first_colon_and_nuls_trimmed() -> None:
    creds = credentials_from_auth(api_pb2.AuthConfig(auth=_b64("user:pa:ss\x00\x00")))
    assert creds == Credentials(username="user", password="pa:ss")


def test_identity_and_registry_tokens_are_carried() -> None:
    auth = api_pb2.AuthConfig(identity_token="id", registry_token="rt", auth=_b64("x:y"))
    assert credentials_from_auth(auth) == Credentials(identity_token="id", registry_token="rt")


def test_empty_auth_means_anonymous() -> None:
    assert credentials_from_auth(api_pb2.AuthConfig(server_address="h")) is None
    pull = parse_pull_request(_request("nginx", api_pb2.AuthConfig()))
    assert pull.credentials is None


def test_auth_reaches_the_parsed_request() -> None:
    pull = parse_pull_request(_request("nginx", api_pb2.AuthConfig(auth=_b64("a:b"))))
    assert pull.credentials == Credentials(username="a", password="b")


@pytest.mark.parametrize(
    ("upstream", "target"),
    [
        ("/run/containerd/containerd.sock", "unix:/run/containerd/containerd.sock"),
        ("unix:///run/containerd/containerd.sock", "unix:///run/containerd/containerd.sock"),
        ("unix:/run/c.sock", "unix:/run/c.sock"),
    ],
)
def test_upstream_forms(upstream: str, target: str) -> None:
    assert grpc_target(upstream) == target
