"""What the RuntimeService gate reads of a ``CreateContainerRequest``, and the pin it appends to
a tag-form one (:mod:`pullgate.cri.runtime_proxy`)."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from pullgate.common.descriptor import image_id
from pullgate.cri.containers import ContainerKey
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.errors import MalformedInput

__all__ = [
    "CreateRequest",
    "MountImage",
    "create_image",
    "names_tag",
    "parse_create_request",
    "pin_create_request",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class MountImage:
    """An image volume of a create (CRI ``Mount.image``, :mod:`pullgate.cri.mount_images`)."""

    image: str  # ImageSpec.image: an image ID or a reference
    asked: str  # user_specified_image, else image
    sub_path: str = ""  # Mount.image_sub_path: the part of the image mounted


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateRequest:
    """What the gate needs from one ``CreateContainerRequest``."""

    image: str  # ImageSpec.image: an image ID or a reference
    asked: str  # user_specified_image, else image
    pod: str  # "namespace/name"
    container: str
    key: ContainerKey  # the container's pod sandbox, name and attempt
    mounts: tuple[MountImage, ...] = ()  # the mounts that name an image, in request order


def parse_create_request(data: bytes) -> CreateRequest:
    """Decode a serialized ``CreateContainerRequest``.

    Raises:
        MalformedInput: undecodable bytes or no image.
    """
    request = _decoded(data)
    image, asked, key = _image_of(request)
    meta = request.sandbox_config.metadata
    name = meta.name
    return CreateRequest(
        image=image,
        asked=asked,
        pod=f"{meta.namespace}/{name}" if name else "",
        container=key.name,
        key=key,
        mounts=_mounts_of(request),
    )


def create_image(
    data: bytes,
) -> tuple[str, str, ContainerKey, tuple[MountImage, ...]] | None:
    """What a memory-only allow reads of a serialized ``CreateContainerRequest`` -- its
    ``CreateRequest.image``, ``.asked``, ``.key`` and ``.mounts`` -- and nothing else; None
    when :func:`parse_create_request` would raise."""
    try:
        request = _decoded(data)
        return (*_image_of(request), _mounts_of(request))
    except MalformedInput:
        return None


def _mounts_of(request: api_pb2.CreateContainerRequest) -> tuple[MountImage, ...]:
    """The mounts naming an image; one with an empty ``Mount.image.image`` is an ordinary
    mount, as the runtime reads it."""
    return tuple(
        MountImage(image=spec.image, asked=_asked(spec), sub_path=mount.image_sub_path)
        for mount in request.config.mounts
        if (spec := mount.image).image
    )


def _asked(spec: api_pb2.ImageSpec) -> str:
    """What the pod asked for: ``user_specified_image``, else ``image``; an image ID in
    ``sha256:`` form (CRI-O's bare hex too)."""
    asked = spec.user_specified_image or spec.image
    return image_id(asked) or asked


def _decoded(data: bytes) -> api_pb2.CreateContainerRequest:
    try:
        return api_pb2.CreateContainerRequest.FromString(data)
    except DecodeError as exc:
        raise MalformedInput("CreateContainerRequest does not decode") from exc


def _image_of(request: api_pb2.CreateContainerRequest) -> tuple[str, str, ContainerKey]:
    config = request.config
    spec = config.image
    image = spec.image
    if not image:
        raise MalformedInput("CreateContainerRequest has no image")
    container = config.metadata
    key = ContainerKey(request.pod_sandbox_id, container.name, container.attempt)
    return image, _asked(spec), key


def names_tag(data: bytes) -> bool:
    """True when a serialized ``CreateContainerRequest`` names its image by a reference, which
    the runtime resolves itself (False for an image ID, and for a request that does not decode:
    its verdict refuses it)."""
    try:
        return image_id(parse_create_request(data).image) is None
    except MalformedInput:
        return False


def pin_create_request(data: bytes, decided: str) -> bytes:
    """``data`` with ``ImageSpec.image`` set to the image ID ``decided`` when it names a tag, so
    the runtime creates the container from the very image the gate decided on (it would resolve
    the tag again, and the tag may have moved); ``user_specified_image`` keeps the reference.

    The original bytes are kept and an override is appended: a protobuf parser merges a
    repeated embedded message and keeps the last value of a scalar field
    (https://protobuf.dev/programming-guides/encoding/#last-one-wins), so nothing else of the
    request changes. Unchanged when it names an image ID or ``decided`` is none.
    """
    try:
        create = parse_create_request(data)
    except MalformedInput:
        return data
    pinned = image_id(decided)
    if image_id(create.image) is not None or pinned is None:
        return data
    spec = api_pb2.ImageSpec(image=pinned)
    if create.asked == create.image:  # user_specified_image may be empty: keep the reference
        spec.user_specified_image = create.image
    config = api_pb2.ContainerConfig(image=spec)
    return data + api_pb2.CreateContainerRequest(config=config).SerializeToString()
