"""Reading a CRI ``PullImageRequest`` (docs/containerd.md §3.2).

* ``image.image`` is the pod's image string as the kubelet sends it (``nginx:latest``, not
  normalised); it is normalised here exactly as the runtime does (``parse_reference``).
* ``auth`` becomes :class:`~pullgate.registry.model.Credentials` with containerd's precedence
  (CRI ``ParseAuth``): ``username``/``password`` when a username is set, else an
  ``identity_token``, else ``auth`` = base64(``user:password``) split at the first ``:`` with NUL
  characters trimmed from the password. ``registry_token`` and ``server_address`` are carried.
* ``sandbox_config.metadata`` names the pod that triggered the pull (audit only).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from pullgate.cri.runtime.v1 import api_pb2
from pullgate.errors import MalformedInput
from pullgate.registry.model import Credentials, ImageReference
from pullgate.registry.reference import parse_reference


@dataclass(frozen=True, slots=True, kw_only=True)
class PullRequest:
    """What the proxy needs from one ``PullImageRequest``."""

    image: str  # as sent by the kubelet
    reference: ImageReference  # normalised like the runtime does
    credentials: Credentials | None
    pod: str  # "namespace/name", "" when the kubelet sent no sandbox config


def credentials_from_auth(auth: api_pb2.AuthConfig) -> Credentials | None:
    """The registry credentials carried by a CRI ``AuthConfig`` (None when it carries none).

    Raises:
        MalformedInput: ``auth`` is not base64 of ``user:password``.
    """
    username, password = auth.username, auth.password
    if not username and not auth.identity_token and auth.auth:
        try:
            decoded = base64.b64decode(auth.auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise MalformedInput("CRI AuthConfig.auth is not valid base64") from exc
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise MalformedInput("CRI AuthConfig.auth does not decode to user:password")
        username, password = user, secret.strip("\x00")
    creds = Credentials(
        username=username,
        password=password,
        identity_token=auth.identity_token,
        registry_token=auth.registry_token,
        server_address=auth.server_address,
    )
    if not (creds.username or creds.password or creds.identity_token or creds.registry_token):
        return None
    return creds


def parse_pull_request(data: bytes) -> PullRequest:
    """Decode and normalise a serialized ``PullImageRequest``.

    Raises:
        MalformedInput: undecodable bytes, a missing or invalid image reference, or bad auth.
    """
    try:
        request = api_pb2.PullImageRequest.FromString(data)
    except DecodeError as exc:
        raise MalformedInput("PullImageRequest does not decode") from exc
    image = request.image.image
    if not image:
        raise MalformedInput("PullImageRequest has no image reference")
    reference = parse_reference(image)
    credentials = credentials_from_auth(request.auth) if request.HasField("auth") else None
    meta = request.sandbox_config.metadata
    pod = f"{meta.namespace}/{meta.name}" if meta.name else ""
    return PullRequest(image=image, reference=reference, credentials=credentials, pod=pod)
