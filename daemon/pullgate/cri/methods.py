"""Which gRPC method paths the CRI proxy serves, and how it names them.

Implements the routing facts of docs/containerd.md §3: the method path is normalised
the way grpc-go (containerd's server) routes it -- at most one leading ``/`` is dropped, and
what remains must be exactly ``<service>/<method>``, both parts proto identifiers -- and only
the ``runtime.v1.ImageService`` service is served: it is all the kubelet sends to its
``imageServiceEndpoint`` (§3.3). ``runtime.v1.RuntimeService`` (``ExecSync``,
``CreateContainer``, ``RunPodSandbox``...) is refused: forwarded, it would make the proxy's
socket as powerful as the runtime's own, for everyone allowed to talk to pullgate.
"""

from __future__ import annotations

import re

from pullgate.errors import MalformedInput

__all__ = [
    "CREATE_CONTAINER",
    "CRI_SERVICE",
    "IMAGE_STATUS",
    "LIST_CONTAINERS",
    "LIST_IMAGES",
    "PULL_IMAGE",
    "REMOVE_CONTAINER",
    "REMOVE_IMAGE",
    "RUNTIME_SERVICE",
    "SERVER_STREAMING",
    "SHOWN_PATH",
    "START_CONTAINER",
    "grpc_target",
    "is_cri_method",
    "normalise_method",
]

CRI_SERVICE = "runtime.v1.ImageService"
RUNTIME_SERVICE = "runtime.v1.RuntimeService"
CREATE_CONTAINER = "/runtime.v1.RuntimeService/CreateContainer"
LIST_CONTAINERS = "/runtime.v1.RuntimeService/ListContainers"
REMOVE_CONTAINER = "/runtime.v1.RuntimeService/RemoveContainer"
START_CONTAINER = "/runtime.v1.RuntimeService/StartContainer"
LIST_IMAGES = "/runtime.v1.ImageService/ListImages"
PULL_IMAGE = "/runtime.v1.ImageService/PullImage"
IMAGE_STATUS = "/runtime.v1.ImageService/ImageStatus"
REMOVE_IMAGE = "/runtime.v1.ImageService/RemoveImage"
# Server-streaming CRI methods (forwarded as such); anything else unknown is unary-unary.
SERVER_STREAMING = frozenset(
    {
        "/runtime.v1.ImageService/StreamImages",
        "/runtime.v1.RuntimeService/GetContainerEvents",
        "/runtime.v1.RuntimeService/StreamContainers",
        "/runtime.v1.RuntimeService/StreamPodSandboxes",
        "/runtime.v1.RuntimeService/StreamPodSandboxMetrics",
    }
)
SHOWN_PATH = 256  # characters of a refused path that reach logs and audit records

# A proto service (dotted identifiers) and method (one identifier), as grpc-go splits a path.
_SERVICE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_METHOD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def normalise_method(raw: object) -> str:
    """The canonical ``/<service>/<method>`` form of a gRPC ``:path``.

    grpc-go drops one leading ``/`` and routes on the rest, so ``runtime.v1.ImageService/PullImage``
    reaches the runtime as ``PullImage``; the proxy must see it the same way.

    Raises:
        MalformedInput: not text, empty service or method part, more than one ``/`` after the
            leading one, or a part that is not a proto identifier.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise MalformedInput("gRPC method path is not ASCII") from exc
    if not isinstance(raw, str):
        raise MalformedInput("gRPC method path is not text")
    body = raw[1:] if raw.startswith("/") else raw
    service, sep, name = body.partition("/")
    if not sep or not _SERVICE.fullmatch(service) or not _METHOD.fullmatch(name):
        raise MalformedInput(f"gRPC method path {raw[:SHOWN_PATH]!r} is not /<service>/<method>")
    return f"/{service}/{name}"


def is_cri_method(method: str, service: str = CRI_SERVICE) -> bool:
    """True for a normalised path of ``service`` (default ``runtime.v1.ImageService``, the only
    one the image proxy serves); any method of it, known or not."""
    return method.startswith(f"/{service}/")


def grpc_target(upstream: str) -> str:
    """A gRPC target for the runtime: ``unix:///run/x.sock``, ``unix:/run/x.sock`` or a path."""
    return upstream if upstream.startswith("unix:") else f"unix:{upstream}"
