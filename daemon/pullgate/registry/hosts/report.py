"""What ``pullgate hosts [--hosts-dir DIR] REGISTRY`` prints: containerd's view of one registry.

Renders a :class:`~pullgate.registry.model.HostsConfig` (docs/containerd.md §1.5: the
endpoint list in the order containerd tries it) as a human table or as JSON. Values of
credential-like headers (``Authorization``, cookies, tokens, API keys) are redacted in both.
"""

from __future__ import annotations

import re
from typing import Any

from pullgate.registry.model import Capability, Endpoint, HostsConfig

REDACTED = "<redacted>"
_SECRET_HEADER = re.compile(
    r"auth|token|secret|cookie|password|passwd|api-?key|credential|session", re.IGNORECASE
)
_CAPABILITY_ORDER = tuple(Capability)


def is_secret_header(name: str) -> bool:
    """True for header names whose values must never be shown (``Authorization`` and kin)."""
    return bool(_SECRET_HEADER.search(name))


def _headers(endpoint: Endpoint) -> dict[str, list[str]]:
    return {
        name: [REDACTED if is_secret_header(name) else v for v in values]
        for name, values in endpoint.headers.items()
    }


def _capabilities(endpoint: Endpoint) -> list[str]:
    return [c.value for c in _CAPABILITY_ORDER if c in endpoint.capabilities]


def _endpoint_json(order: int, endpoint: Endpoint) -> dict[str, Any]:
    return {
        "order": order,
        "url": endpoint.url,
        "scheme": endpoint.scheme,
        "host": endpoint.host,
        "path": endpoint.path,
        "server": endpoint.is_server,
        "capabilities": _capabilities(endpoint),
        "ca": [str(p) for p in endpoint.ca_files],
        "client": [
            {"cert": str(c.cert), "key": None if c.key is None else str(c.key)}
            for c in endpoint.client_certificates
        ],
        "skip_verify": endpoint.skip_verify,
        "https_then_http": endpoint.https_then_http,
        "headers": _headers(endpoint),
        "dial_timeout": endpoint.dial_timeout,
    }


def hosts_json(config: HostsConfig) -> dict[str, Any]:
    """A JSON-ready description of ``config`` (secret header values redacted).

    Args:
        config: the result of :func:`pullgate.registry.hosts.load_hosts`.

    Returns:
        ``{"registry", "directory", "source", "endpoints": [...], "problems": [...]}``;
        endpoints carry ``order`` (1-based), ``url``, ``capabilities``, ``ca``, ``client``,
        ``skip_verify``, ``https_then_http``, ``headers``, ``dial_timeout`` (seconds or null).
    """
    return {
        "registry": config.registry,
        "directory": None if config.directory is None else str(config.directory),
        "source": config.source,
        "endpoints": [_endpoint_json(i, e) for i, e in enumerate(config.endpoints, start=1)],
        "problems": list(config.problems),
    }


def _seconds(value: float) -> str:
    return f"{value:g}s"


def render_hosts(config: HostsConfig) -> str:
    """A human-readable table of ``config``, one block per endpoint in containerd's order.

    Args:
        config: the result of :func:`pullgate.registry.hosts.load_hosts`.

    Returns:
        Multi-line text ending with a newline.
    """
    where = "(no certs.d directory)" if config.directory is None else str(config.directory)
    lines = [
        f"registry:  {config.registry}",
        f"directory: {where}",
        f"source:    {config.source}",
        "",
        f"{'#':<3} {'URL':<48} CAPABILITIES",
    ]
    for order, endpoint in enumerate(config.endpoints, start=1):
        role = "  (server, tried last)" if endpoint.is_server else ""
        caps = ",".join(_capabilities(endpoint)) or "-"
        lines.append(f"{order:<3} {endpoint.url:<48} {caps}{role}")
        detail: list[str] = []
        detail.extend(f"ca:           {p}" for p in endpoint.ca_files)
        for client in endpoint.client_certificates:
            key = "(in cert file)" if client.key is None else str(client.key)
            detail.append(f"client:       cert={client.cert} key={key}")
        if endpoint.skip_verify:
            detail.append("skip_verify:  true (no chain or hostname check)")
        if endpoint.https_then_http:
            detail.append("transport:    HTTPS first, falls back to plain HTTP")
        for name, values in _headers(endpoint).items():
            detail.extend(f"header:       {name}: {v}" for v in values)
        if endpoint.dial_timeout is not None:
            detail.append(f"dial_timeout: {_seconds(endpoint.dial_timeout)}")
        lines.extend(f"    {d}" for d in detail)
    if config.problems:
        lines.extend(["", "problems:"])
        lines.extend(f"  - {p}" for p in config.problems)
    return "\n".join(lines) + "\n"
