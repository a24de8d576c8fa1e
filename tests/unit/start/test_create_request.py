"""Reading CreateContainer requests as the runtime receives them."""

from __future__ import annotations

import pytest

from pullgate.cri.runtime.v1 import api_pb2
from pullgate.cri.runtime_proxy import parse_create_request
from pullgate.errors import MalformedInput, Reason


def test_image_and_requested_reference_are_read() -> None:
    request = api_pb2.CreateContainerRequest(
        pod_sandbox_id="p",
        config=api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="app"),
            image=api_pb2.ImageSpec(image="sha256:" + "a" * 64, user_specified_image="nginx:1"),
        ),
        sandbox_config=api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name="web", namespace="prod")
        ),
    )
    parsed = parse_create_request(request.SerializeToString())
    assert (parsed.image, parsed.asked, parsed.pod, parsed.container) == (
        "sha256:" + "a" * 64,
        "nginx:1",
        "prod/web",
        "app",
    )


def test_requested_reference_defaults_to_the_image() -> None:
    request = api_pb2.CreateContainerRequest(
        config=api_pb2.ContainerConfig(image=api_pb2.ImageSpec(image="busybox"))
    )
    assert parse_create_request(request.SerializeToString()).asked == "busybox"


@pytest.mark.parametrize(
    "data", [b"\xff\xff", api_pb2.CreateContainerRequest().SerializeToString()]
)
def test_undecodable_or_imageless_requests_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedInput) as err:
        parse_create_request(data)
    assert err.value.reason is Reason.MALFORMED
