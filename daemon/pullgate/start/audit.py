"""The node audit: every image in the runtime and every running container, with its verdict now.

Shared by ``pullgate images`` and the daemon (which runs it at start and after every trust
reload). Each image is judged as a container start of it would be
(:meth:`pullgate.start.gate.StartGate.check`, without break-glass): *allowed* when an allow under
the current trust configuration covers its image ID (recorded, or verified now), *denied* with
the engine's reason, or *never verified* when the runtime knows it by no name that could be
verified (``NOT_VERIFIED``). Each running container is judged by its image ID and the reference
its pod asked for. A running container without a current allow makes the audit fail (``pullgate
images`` exits 1): it runs content that no current trust decision covers, so it should be
restarted or removed.

The runtime is read through CRI ``ListImages`` and ``ListContainers`` (state RUNNING), on the
runtime's own socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import grpc

from pullgate.common.descriptor import image_id
from pullgate.cri.containers import asked_reference, container_image
from pullgate.cri.methods import LIST_CONTAINERS, LIST_IMAGES, grpc_target
from pullgate.cri.relay import identity
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.errors import Reason
from pullgate.start.gate import StartGate

__all__ = [
    "ALLOWED",
    "DENIED",
    "NEVER_VERIFIED",
    "ContainerFinding",
    "CriLister",
    "ImageFinding",
    "NodeAudit",
    "audit_node",
]

ALLOWED, DENIED, NEVER_VERIFIED = "allowed", "denied", "never-verified"


class RuntimeLister(Protocol):
    """What the audit reads of the runtime."""

    def images(self) -> Sequence[api_pb2.Image]: ...

    def running(self) -> Sequence[api_pb2.Container]: ...


class CriLister:
    """:class:`RuntimeLister` over the runtime's CRI socket (``unix:///…``)."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        self._channel = grpc.insecure_channel(grpc_target(endpoint))
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: bytes) -> bytes:
        stub = self._channel.unary_unary(
            method, request_serializer=identity, response_deserializer=identity
        )
        response: bytes = stub(request, timeout=self._timeout)
        return response

    def images(self) -> Sequence[api_pb2.Image]:
        raw = self._call(LIST_IMAGES, api_pb2.ListImagesRequest().SerializeToString())
        return list(api_pb2.ListImagesResponse.FromString(raw).images)

    def running(self) -> Sequence[api_pb2.Container]:
        state = api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING)
        request = api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(state=state))
        raw = self._call(LIST_CONTAINERS, request.SerializeToString())
        return list(api_pb2.ListContainersResponse.FromString(raw).containers)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageFinding:
    """One image in the runtime."""

    image_id: str
    names: tuple[str, ...]  # repo tags, then repo digests
    status: str  # ALLOWED | DENIED | NEVER_VERIFIED
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerFinding:
    """One running container."""

    container_id: str
    name: str
    pod_sandbox_id: str
    image_id: str
    reference: str  # what its pod asked for
    status: str
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeAudit:
    """The whole audit."""

    images: tuple[ImageFinding, ...]
    containers: tuple[ContainerFinding, ...]

    @property
    def unverified_images(self) -> int:
        return sum(f.status != ALLOWED for f in self.images)

    @property
    def unverified_containers(self) -> int:
        return sum(f.status != ALLOWED for f in self.containers)

    def to_json(self) -> dict[str, object]:
        return {
            "images": [asdict(f) for f in self.images],
            "containers": [asdict(f) for f in self.containers],
            "unverified_images": self.unverified_images,
            "unverified_containers": self.unverified_containers,
        }

    def findings(self) -> list[dict[str, object]]:
        """One audit record per image or running container without a current allow."""
        out: list[dict[str, object]] = []
        for image in self.images:
            if image.status != ALLOWED:
                out.append({"event": "node.audit", "kind": "image", **asdict(image)})
        for container in self.containers:
            if container.status != ALLOWED:
                out.append({"event": "node.audit", "kind": "container", **asdict(container)})
        return out


def _status(allowed: bool, reason: Reason) -> str:
    if allowed:
        return ALLOWED
    return NEVER_VERIFIED if reason is Reason.NOT_VERIFIED else DENIED


def audit_node(lister: RuntimeLister, gate: StartGate) -> NodeAudit:
    """Judge every image and running container the runtime reports (may verify now)."""
    images = lister.images()
    by_id = {image_id(image.id) or image.id: image for image in images}
    image_findings: list[ImageFinding] = []
    for known, image in by_id.items():
        names = (*image.repo_tags, *image.repo_digests)
        asked = names[0] if names else known
        answer = gate.check(
            known, asked, list(image.repo_digests), list(image.repo_tags), enforce=False
        )
        image_findings.append(
            ImageFinding(
                image_id=known,
                names=tuple(names),
                status=_status(answer.allowed, answer.reason),
                reason=answer.reason,
                message=answer.message,
            )
        )
    container_findings: list[ContainerFinding] = []
    for container in lister.running():
        held = container_image(container)
        asked = asked_reference(container, held)
        record = by_id.get(held)
        digests = list(record.repo_digests) if record is not None else []
        tags = list(record.repo_tags) if record is not None else []
        answer = gate.check(held, asked, digests, tags, enforce=False)
        container_findings.append(
            ContainerFinding(
                container_id=container.id,
                name=container.metadata.name,
                pod_sandbox_id=container.pod_sandbox_id,
                image_id=held,
                reference=asked,
                status=_status(answer.allowed, answer.reason),
                reason=answer.reason,
                message=answer.message,
            )
        )
    return NodeAudit(images=tuple(image_findings), containers=tuple(container_findings))


def render_text(audit: NodeAudit) -> str:
    """The audit as a table for people."""
    lines = ["IMAGES"]
    for image in audit.images:
        shown = image.names[0] if image.names else "(no name)"
        lines.append(
            f"  {image.status:<15} {image.reason.value:<20} {image.image_id[:19]}  {shown}"
        )
    lines.append("RUNNING CONTAINERS")
    for c in audit.containers:
        lines.append(
            f"  {c.status:<15} {c.reason.value:<20} {c.container_id[:13]}  {c.name}  {c.reference}"
        )
    lines.append(
        f"{audit.unverified_containers} running container(s) and {audit.unverified_images} "
        "image(s) without a current allow"
    )
    return "\n".join(lines)
