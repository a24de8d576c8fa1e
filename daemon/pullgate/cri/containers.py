"""The runtime's containers as the start gate reads them: which image a container will run and
which reference its pod asked for, and what ``StartContainer`` names.

A container's image is read from CRI ``ListContainers`` filtered by its ID, the call the node
audit makes too: containerd reports the image ID there (``image_id``, or ``image_ref`` when that
is ID-shaped), where its ``ContainerStatus`` may put a repo digest instead; CRI-O's bare-hex IDs
are read as ``sha256:<hex>`` (:func:`pullgate.common.descriptor.image_id`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from pullgate.common.descriptor import image_id
from pullgate.cri.methods import LIST_CONTAINERS, REMOVE_CONTAINER
from pullgate.cri.pin import Control
from pullgate.cri.relay import error_text
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.errors import MalformedInput

__all__ = [
    "IMAGE_NAME_ANNOTATION",
    "ContainerKey",
    "RuntimeContainers",
    "asked_reference",
    "container_image",
    "parse_start_request",
]

log = logging.getLogger(__name__)

IMAGE_NAME_ANNOTATION = "io.kubernetes.cri.image-name"


@dataclass(frozen=True, slots=True)
class ContainerKey:
    """What names one container before the runtime gives it an ID: its pod sandbox, name and
    attempt (the runtime refuses a second container with the same three)."""

    sandbox: str
    name: str
    attempt: int


def container_image(container: api_pb2.Container) -> str:
    """The image ID the runtime reports for ``container`` (its image string when it reports
    none that is ID-shaped)."""
    for value in (container.image_id, container.image_ref):
        found = image_id(value)
        if found is not None:
            return found
    return container.image.image


def asked_reference(container: api_pb2.Container, image: str) -> str:
    """The reference the container's pod asked for, as far as the runtime reports it (else the
    image ID ``image``, which binds no repository)."""
    asked = (
        container.image.user_specified_image
        or container.annotations.get(IMAGE_NAME_ANNOTATION)
        or container.image.image
    )
    if not asked:
        return image
    return image_id(asked) or asked


def key_of(container: api_pb2.Container) -> ContainerKey:
    """The container's :class:`ContainerKey`."""
    meta = container.metadata
    return ContainerKey(container.pod_sandbox_id, meta.name, meta.attempt)


def parse_start_request(data: bytes) -> str:
    """The container ID of a serialized ``StartContainerRequest``.

    Raises:
        MalformedInput: undecodable bytes or no container ID.
    """
    try:
        request = api_pb2.StartContainerRequest.FromString(data)
    except DecodeError as exc:
        raise MalformedInput("StartContainerRequest does not decode") from exc
    if not request.container_id:
        raise MalformedInput("StartContainerRequest names no container")
    return request.container_id


class RuntimeContainers:
    """The runtime's container records, read and removed through ``control`` calls."""

    def __init__(self, control: Control) -> None:
        self._control = control

    def get(self, container_id: str) -> api_pb2.Container | None:
        """The runtime's record of ``container_id`` (None when it lists none by that ID).

        Raises:
            grpc.RpcError: the runtime's ListContainers failed.
            DecodeError: its answer does not parse.
        """
        request = api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(id=container_id))
        raw = self._control(LIST_CONTAINERS, request.SerializeToString())
        for container in api_pb2.ListContainersResponse.FromString(raw).containers:
            if container.id == container_id:
                return container
        return None

    def remove(self, container_id: str) -> None:
        """Remove a container that must not start; a failure is logged at CRITICAL, never
        raised (the start is refused either way)."""
        request = api_pb2.RemoveContainerRequest(container_id=container_id)
        try:
            self._control(REMOVE_CONTAINER, request.SerializeToString())
        except Exception as exc:  # noqa: BLE001 - a failed removal must be loud, never a crash
            log.critical("could not remove container %s: %s", container_id, error_text(exc))
