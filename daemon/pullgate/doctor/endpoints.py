"""A kubelet CRI endpoint string as the socket path the kubelet dials.

The kubelet parses ``containerRuntimeEndpoint`` and ``imageServiceEndpoint`` as URLs
(``k8s.io/kubernetes/pkg/kubelet/util/util_unix.go``, ``parseEndpointWithFallbackProtocol``):
``unix`` gives the URL's (decoded) path, so ``unix:///p`` and ``unix:/p`` are the same socket; a
string without a scheme is retried as ``unix://`` + the string (so ``/p`` is ``unix:///p``); any
other scheme is not a unix socket. Equal here means the kubelet dials the same path.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["endpoint_path", "same_socket"]


def endpoint_path(endpoint: str) -> str | None:
    """The unix socket path the kubelet dials for ``endpoint``; None when it is not one."""
    try:
        parts = urlsplit(endpoint)
        if not parts.scheme:
            parts = urlsplit("unix://" + endpoint)
    except ValueError:  # the kubelet refuses what Go's url.Parse refuses
        return None
    if parts.scheme != "unix":
        return None
    if not parts.netloc and not parts.path.startswith("/"):
        return None  # ``unix:rel``: Go reads an opaque URL with an empty path
    return unquote(parts.path) or None


def same_socket(endpoint: str | None, socket: Path) -> bool:
    """Whether the kubelet, given ``endpoint``, dials ``socket`` (paths compared normalised)."""
    if endpoint is None:
        return False
    path = endpoint_path(endpoint)
    return path is not None and os.path.normpath(path) == os.path.normpath(str(socket))
