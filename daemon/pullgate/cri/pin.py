"""Pinning what was verified to what the runtime pulled.

After the runtime's pull of a tag returns, ``ImageStatus`` must list
``<registry>/<repository>@<verified digest>`` among the image's repo digests. If the tag moved
between verification and pull, the image is removed again and the pull denied
(:func:`check_pin`). A pull that names the image by the very digest pullgate verified needs no
such check (:func:`pinned_by_request`): the runtime fetches content by digest and checks it, so
it can only have pulled exactly that. A tag pull that failed or was cancelled is checked too
(:func:`clean_up`), because the runtime may have stored the image anyway: at once, and again
in the background for ~30 s (:mod:`pullgate.cri.reconcile`), because containerd may store it
only after the proxy's call ended (a cancelled pull goes on in containerd for a while).

Every removal that fails is logged at CRITICAL and never raised: the caller's answer is a
denial either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
from google.protobuf.message import DecodeError

from pullgate.cri.denial import Denial
from pullgate.cri.methods import IMAGE_STATUS, REMOVE_IMAGE
from pullgate.cri.relay import error_text
from pullgate.cri.request import PullRequest
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.errors import Reason

__all__ = [
    "Control",
    "RuntimeImages",
    "check_pin",
    "clean_up",
    "pinned_by_request",
    "pulled_image",
]

log = logging.getLogger(__name__)

Control = Callable[[str, bytes], bytes]
"""One control call to the runtime: method path and request bytes in, response bytes out
(raises ``grpc.RpcError`` when the runtime answers with an error status)."""


class RuntimeImages:
    """The runtime's image records, read and removed through ``control`` calls."""

    def __init__(self, control: Control) -> None:
        self._control = control

    def status(self, image: str) -> api_pb2.Image | None:
        """The runtime's record of ``image`` (None when it has none).

        Raises:
            grpc.RpcError: the runtime's ImageStatus failed.
            DecodeError: its answer does not parse.
        """
        request = api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image))
        raw = self._control(IMAGE_STATUS, request.SerializeToString())
        status = api_pb2.ImageStatusResponse.FromString(raw)
        return status.image if status.HasField("image") else None

    def remove(self, image: str) -> None:
        """Remove ``image``; a failure is logged at CRITICAL, never raised."""
        request = api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image))
        try:
            self._control(REMOVE_IMAGE, request.SerializeToString())
        except Exception as exc:  # noqa: BLE001 - a failed removal must be loud, never a crash
            log.critical("could not remove unverified image %s: %s", image, error_text(exc))


def pinned_by_request(pull: PullRequest, verified: str) -> bool:
    """True when the request itself names the verified digest (the pull is content-addressed).

    The runtime resolves a ``name@digest`` reference to exactly that manifest and checks the bytes
    against the digest, so what it pulls is what pullgate verified; a tag (``name:tag``) may move
    between verification and pull, and is checked after the pull instead.
    """
    return bool(pull.reference.digest) and pull.reference.digest == verified


def pulled_image(response: bytes) -> str:
    """The image a ``PullImageResponse`` names (its ``image_ref``; empty when it names none)."""
    try:
        return api_pb2.PullImageResponse.FromString(response).image_ref
    except DecodeError:
        return ""


def check_pin(
    images: RuntimeImages, pull: PullRequest, digest: str, response: bytes
) -> Denial | None:
    """None when the runtime pulled ``digest``; else the image is removed and the denial returned.

    Args:
        images: the runtime's image records.
        pull: the pull that was allowed.
        digest: the digest pullgate verified for it.
        response: the runtime's ``PullImageResponse`` bytes (its ``image_ref`` names the image).
    """
    target = pulled_image(response) or str(pull.reference)
    expected = f"{pull.reference.locator}@{digest}"
    try:
        image = images.status(target)
    except (grpc.RpcError, DecodeError) as exc:
        images.remove(target)
        return Denial(
            reason=Reason.INTERNAL,
            message=f"could not confirm that the runtime pulled {expected}: {error_text(exc)}",
        )
    repo_digests = list(image.repo_digests) if image is not None else []
    if expected in repo_digests:
        return None
    images.remove(target)
    return Denial(
        reason=Reason.DESCRIPTOR_MISMATCH,
        message=(
            f"{pull.reference} moved during the pull: pullgate verified {expected} but the "
            f"runtime pulled {', '.join(repo_digests) or 'something else'}; "
            "the pulled image was removed"
        ),
    )


def clean_up(images: RuntimeImages, pull: PullRequest, digest: str) -> None:
    """After a tag pull that failed or was cancelled: containerd may have stored the image
    anyway (the pull completed just as the kubelet gave up, or failed after the image was
    recorded), possibly from a tag that moved after verification. If the tag now names an
    image whose repo digests lack the verified digest, remove it: fail closed, even if that
    image is an older one verified by an earlier pull (the kubelet pulls it again)."""
    target = str(pull.reference)
    expected = f"{pull.reference.locator}@{digest}"
    try:
        image = images.status(target)
    except (grpc.RpcError, DecodeError) as exc:
        log.error(
            "could not check %s after its pull failed: %s; an unverified image may remain",
            target,
            error_text(exc),
        )
        return
    if image is None or expected in image.repo_digests:
        return
    log.warning("removing %s after its pull failed: it is not %s", target, expected)
    images.remove(image.id or target)
