"""``StartContainer`` on the RuntimeService gate: a container starts only while a current allow
covers the image it holds.

A container created while its image had a current allow (or under break-glass) may be started
much later: after a trust reload removed its CA, a certificate was revoked or the break-glass
file expired. So the start is decided again, by the rules of the create
(:meth:`pullgate.start.gate.StartGate.check`: a current allow, else verification now, then
break-glass): the container's image ID and its pod's reference are read from the runtime
(:mod:`pullgate.cri.containers`), and the image's names from its ``ImageStatus`` only when
verification needs them.

Content the create did not decide on: a create that names its image by a tag is pinned to the
image ID it was decided on (:func:`pullgate.cri.runtime_proxy.pin_create_request`); as a second
line, :class:`CreatedImages` remembers, per container key (pod sandbox, name, attempt), the image
ID each allowed create was decided on, and a container whose image differs is refused at start,
``CONTENT_MISMATCH``, and removed (docs/decisions.md, "Container start").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import grpc
from google.protobuf.message import DecodeError

from pullgate.common.descriptor import image_id
from pullgate.common.lru import Lru
from pullgate.cri.containers import (
    ContainerKey,
    RuntimeContainers,
    asked_reference,
    container_image,
    key_of,
    parse_start_request,
)
from pullgate.cri.denial import Denial
from pullgate.cri.pin import RuntimeImages
from pullgate.cri.relay import error_text
from pullgate.errors import MalformedInput, Reason

__all__ = [
    "CREATED_CAPACITY",
    "START_FRONT",
    "ContainerStart",
    "CreatedImages",
    "Names",
    "StartAnswer",
    "StartChecks",
    "image_names",
]

log = logging.getLogger(__name__)

START_FRONT = "runtime-start"  # the front-end name of StartContainer answers (audit, logs)
CREATED_CAPACITY = 4096  # created containers whose decided image is remembered, at most

Names = Callable[[], tuple[Sequence[str], Sequence[str]]]


class StartAnswer(Protocol):
    """The start gate's answer for one container, as the RuntimeService gate reads it."""

    @property
    def allowed(self) -> bool: ...
    @property
    def reason(self) -> Reason: ...
    @property
    def image_id(self) -> str: ...
    @property
    def reference(self) -> str: ...
    @property
    def critical(self) -> bool: ...
    @property
    def break_glass(self) -> bool: ...
    @property
    def denial(self) -> Denial: ...


class StartChecks(Protocol):
    """The start gate (:class:`pullgate.start.gate.StartGate`): the start package builds on
    this one, so the RuntimeService gate names the gate by what it calls."""

    def check(
        self,
        image_id: str,
        reference: str,
        repo_digests: Sequence[str] = (),
        repo_tags: Sequence[str] = (),
        *,
        front: str = ...,
        names: Names | None = None,
    ) -> StartAnswer: ...

    def deny_unknown(
        self, image: str, reference: str, detail: str, *, front: str
    ) -> StartAnswer: ...

    def current_allow(
        self, image_id: str, reference: str, *, front: str
    ) -> Callable[[], StartAnswer] | None: ...

    def refuse(
        self, image_id: str, reference: str, reason: Reason, message: str, *, front: str
    ) -> StartAnswer: ...


def image_names(images: RuntimeImages, image: str) -> Names:
    """The runtime's repo digests and tags of ``image``, read when called (none when its
    ``ImageStatus`` fails or knows no such image)."""

    def names() -> tuple[list[str], list[str]]:
        try:
            record = images.status(image)
        except (grpc.RpcError, DecodeError) as exc:
            log.warning("ImageStatus of %s failed: %s", image, error_text(exc))
            return [], []
        if record is None:
            return [], []
        return list(record.repo_digests), list(record.repo_tags)

    return names


class CreatedImages:
    """The image ID each allowed create was decided on, by container key (bounded, LRU;
    thread-safe)."""

    def __init__(self, capacity: int = CREATED_CAPACITY) -> None:
        self._decided: Lru[ContainerKey, str] = Lru(capacity, name="created-images")

    def remember(self, key: ContainerKey, image: str) -> None:
        """A create of ``key`` was allowed on ``image``."""
        self._decided.put(key, image)

    def forget(self, key: ContainerKey) -> None:
        """A create of ``key`` was refused: nothing of it will start."""
        self._decided.pop(key)

    def take(self, key: ContainerKey) -> str | None:
        """The image the create of ``key`` was decided on (None: none remembered); forgotten."""
        return self._decided.pop(key)


class ContainerStart:
    """Decides one ``StartContainer`` (see the module docstring).

    Args:
        gate: the start gate.
        containers: the runtime's containers (``ListContainers``, ``RemoveContainer``).
        images: the runtime's images (``ImageStatus``).
        created: the decided images of creates seen by this gate.
    """

    def __init__(
        self,
        gate: StartChecks,
        containers: RuntimeContainers,
        images: RuntimeImages,
        created: CreatedImages,
    ) -> None:
        self._gate = gate
        self._containers = containers
        self._images = images
        self._created = created

    def verdict(self, request: bytes) -> StartAnswer:
        """The gate's answer for one serialized ``StartContainerRequest`` (logged)."""
        try:
            container_id = parse_start_request(request)
        except MalformedInput as exc:
            return self._logged(self._gate.deny_unknown("", "", exc.detail, front=START_FRONT), "")
        return self._logged(self._decide(container_id), container_id)

    def _decide(self, container_id: str) -> StartAnswer:
        gate = self._gate
        try:
            container = self._containers.get(container_id)
        except (grpc.RpcError, DecodeError) as exc:
            detail = f"ListContainers of container {container_id} failed: {error_text(exc)}"
            return gate.deny_unknown("", "", detail, front=START_FRONT)
        if container is None:
            detail = f"no container {container_id}"
            return gate.deny_unknown("", "", detail, front=START_FRONT)
        image = container_image(container)
        asked = asked_reference(container, image)
        decided = self._created.take(key_of(container))
        if decided is not None and decided != image:
            message = (
                f"container {container_id} holds image {image}, but its create was decided on "
                f"{decided} (the tag moved in between)"
            )
            answer = gate.refuse(image, asked, Reason.CONTENT_MISMATCH, message, front=START_FRONT)
            if not answer.allowed:
                self._containers.remove(container_id)
            return answer
        if image_id(image) is None:  # the runtime reports no image ID: resolve what it names
            try:
                record = self._images.status(image)
            except (grpc.RpcError, DecodeError) as exc:
                detail = f"ImageStatus failed: {error_text(exc)}"
                return gate.deny_unknown(image, asked, detail, front=START_FRONT)
            found = image_id(record.id) if record is not None else None
            if found is None:
                return gate.deny_unknown(image, asked, "no such image", front=START_FRONT)
            image = found
        return gate.check(image, asked, front=START_FRONT, names=image_names(self._images, image))

    @staticmethod
    def _logged(answer: StartAnswer, container_id: str) -> StartAnswer:
        if not answer.allowed:
            log.warning(
                "StartContainer of %s (%r) denied: %s",
                container_id,
                answer.reference,
                answer.denial.text,
            )
        elif answer.break_glass or answer.critical:
            log.warning(
                "container %s (%r) started under %s",
                container_id,
                answer.reference,
                answer.reason.value,
            )
        return answer
