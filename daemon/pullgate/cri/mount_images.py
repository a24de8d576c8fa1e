"""Image volumes at ``CreateContainer``: every image a container mounts is decided like its own.

An image volume (https://kep.k8s.io/4639; CRI ``Mount.image``, with ``Mount.image_sub_path``)
puts an OCI image's content into the container, read-only, and the container can execute it.
So each mount that names an image (``Mount.image.image`` non-empty, as the runtime reads it) needs
a current allow by the rules of the container's image
(:meth:`pullgate.start.gate.StartGate.check`: critical images, a current allow, else
verification now through the runtime's ``ImageStatus`` names, then break-glass). The create is
allowed only when the container's image and every mounted image are; the first mounted image
denied answers it, its reason kept and its message naming the mount (docs/decisions.md,
"Container start"). Each decided image is counted and audited once, as its own ``start.create``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from pullgate.common.descriptor import image_id
from pullgate.cri.container_start import StartAnswer, StartChecks, image_names
from pullgate.cri.create_request import MountImage
from pullgate.cri.denial import Denial
from pullgate.cri.pin import RuntimeImages
from pullgate.cri.relay import error_text
from pullgate.cri.splice.settle import Settle
from pullgate.errors import Reason

__all__ = ["MountDenied", "decide_image", "decide_mounts", "quick_mounts"]


def decide_image(
    gate: StartChecks, images: RuntimeImages, image: str, asked: str, *, front: str
) -> StartAnswer:
    """The gate's answer for one image of a create. An image ID (the kubelet's form; CRI-O's
    bare hex too) is decided on as is, and the runtime's ``ImageStatus`` is asked only when
    verification needs its names; a reference is resolved to its image ID through
    ``ImageStatus`` first (one the runtime does not know is denied ``IMAGE_UNKNOWN``)."""
    by_id = image_id(image)
    if by_id is not None:
        return gate.check(by_id, asked, front=front, names=image_names(images, by_id))
    try:
        record = images.status(image)
    except (grpc.RpcError, DecodeError) as exc:
        detail = f"ImageStatus failed: {error_text(exc)}"
        return gate.deny_unknown(image, asked, detail, front=front)
    found = image_id(record.id) if record is not None else None
    if record is None or found is None:
        return gate.deny_unknown(image, asked, "no such image", front=front)
    return gate.check(found, asked, list(record.repo_digests), list(record.repo_tags), front=front)


@dataclass(frozen=True, slots=True)
class MountDenied:
    """A mounted image's denial as the create's answer: its reason, its message prefixed with
    the mount it is about."""

    answer: StartAnswer
    mount: MountImage

    @property
    def allowed(self) -> bool:
        return False

    @property
    def reason(self) -> Reason:
        return self.answer.reason

    @property
    def image_id(self) -> str:
        return self.answer.image_id

    @property
    def reference(self) -> str:
        return self.answer.reference

    @property
    def critical(self) -> bool:
        return self.answer.critical

    @property
    def break_glass(self) -> bool:
        return self.answer.break_glass

    @property
    def denial(self) -> Denial:
        sub = f" (sub path {self.mount.sub_path!r})" if self.mount.sub_path else ""
        message = f"mounted image {self.mount.image!r}{sub}: {self.answer.denial.message}"
        return Denial(reason=self.answer.reason, message=message)


def decide_mounts(
    gate: StartChecks, images: RuntimeImages, mounts: Sequence[MountImage], *, front: str
) -> MountDenied | None:
    """The first mounted image :func:`decide_image` denies (None: every one is allowed).
    Each distinct image is decided once."""
    for mount in _distinct(mounts):
        answer = decide_image(gate, images, mount.image, mount.asked, front=front)
        if not answer.allowed:
            return MountDenied(answer, mount)
    return None


def quick_mounts(
    gate: StartChecks, mounts: Sequence[MountImage], *, front: str
) -> list[Settle] | None:
    """What settles the memory-only allows of every mounted image
    (:meth:`pullgate.start.gate.StartGate.current_allow`); None when one is named by a
    reference or has no current allow (the full check decides the create)."""
    settles: list[Settle] = []
    for mount in _distinct(mounts):
        decided = image_id(mount.image)
        if decided is None:
            return None
        settle = gate.current_allow(decided, mount.asked, front=front)
        if settle is None:
            return None
        settles.append(settle)
    return settles


def _distinct(mounts: Sequence[MountImage]) -> list[MountImage]:
    """The first mount of each image (as named and as asked for): an image mounted at several
    sub paths is decided, counted and audited once."""
    first: dict[tuple[str, str], MountImage] = {}
    for mount in mounts:
        first.setdefault((mount.image, mount.asked), mount)
    return list(first.values())
