"""Types shared by the registry layer: image references, endpoints, credentials, limits.

Facts from containerd's ``docs/hosts.md`` / ``remotes/docker/config/hosts.go`` and the OCI
distribution specification; see docs/containerd.md §1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pullgate.errors import Reason, VerificationInconclusive


class Capability(StrEnum):
    """hosts.toml ``capabilities`` values."""

    PULL = "pull"
    RESOLVE = "resolve"
    PUSH = "push"
    REFERRERS = "referrers"


ALL_CAPABILITIES = frozenset(Capability)


_DOCKER_HUB_ALIASES = frozenset({"index.docker.io", "registry-1.docker.io"})
_HTTPS_PORT = 443


def _canonical_host(host: str) -> str:
    """A host (no port) lower-cased; a bracketed IPv6 address in RFC 5952 form, and an
    IPv4-mapped one as the IPv4 address Go dials for it."""
    host = host.lower()
    if not (host.startswith("[") and host.endswith("]")):
        return host
    try:
        address = ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        return host
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else f"[{address.compressed}]"


def canonical_registry(host: str) -> str:
    """A registry ``host[:port]`` as trust-policy scopes should name it: the one spelling of
    the address containerd dials.

    Host names are case-insensitive; ports are decimal numbers whose leading zeros Go's dialer
    ignores (``:05000`` is port 5000) and ``:443`` is the HTTPS default; IPv6 addresses have
    many spellings (``[0:0::1]`` is ``[::1]``); Docker Hub's aliases are ``docker.io``. certs.d
    lookups do NOT use this form: containerd looks its directory up by the host as written.
    """
    name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not colon or not port.isdigit():
        name, port = host, ""
    canonical = _canonical_host(name)
    if port and int(port) != _HTTPS_PORT:
        canonical += f":{int(port)}"
    return "docker.io" if canonical in _DOCKER_HUB_ALIASES else canonical


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageReference:
    """A normalised image reference (``docker.io/library/nginx:latest``)."""

    registry: str  # as containerd's Spec.Hostname(): "docker.io", "host:5000", "[::1]:5000"
    repository: str  # "library/nginx"
    tag: str | None = None
    digest: str | None = None

    @property
    def locator(self) -> str:
        """``registry/repository`` as written (what containerd's certs.d lookup uses)."""
        return f"{self.registry}/{self.repository}"

    @property
    def policy_locator(self) -> str:
        """``registry/repository`` with the registry in canonical form, for trust-policy scopes.

        Spellings that reach the same registry must select the same statement, or a workload
        could dodge a strict scope by writing ``REGISTRY.example.com`` or ``:443``.
        """
        return f"{canonical_registry(self.registry)}/{self.repository}"

    def policy_reference(self, digest: str | None = None) -> str:
        """``registry/repository@digest`` (:attr:`policy_locator`; ``digest`` defaults to the
        reference's own, empty when it has none): the one string trust-policy statement
        selection and notation's per-artifact verification are given."""
        return f"{self.policy_locator}@{digest if digest is not None else self.digest or ''}"

    def with_digest(self, digest: str) -> ImageReference:
        """The same repository pinned to ``digest`` (tag kept for display)."""
        return ImageReference(
            registry=self.registry, repository=self.repository, tag=self.tag, digest=digest
        )

    def __str__(self) -> str:
        out = self.locator
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCertificate:
    """A TLS client certificate; ``key`` None means the key is inside ``cert``."""

    cert: Path
    key: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One registry endpoint, in containerd's order (mirrors first, server last).

    ``url`` is the API root, e.g. ``https://mirror:5000/v2`` or, with ``override_path``,
    ``https://mirror/custom/api``.
    """

    url: str
    scheme: str  # "https" | "http"
    host: str  # host[:port] as in the URL, IPv6 in brackets
    path: str  # API root path ("/v2", "/prefix/v2", "/custom/api")
    capabilities: frozenset[Capability] = ALL_CAPABILITIES
    ca_files: tuple[Path, ...] = ()
    client_certificates: tuple[ClientCertificate, ...] = ()
    skip_verify: bool = False
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dial_timeout: float | None = None  # seconds
    is_server: bool = False  # the root-level (upstream) entry, always last
    https_then_http: bool = False  # containerd's "try HTTPS first, fall back to HTTP"

    def has(self, capability: Capability) -> bool:
        """True when this endpoint may be used for ``capability``."""
        return capability in self.capabilities


@dataclass(frozen=True, slots=True, kw_only=True)
class HostsConfig:
    """What containerd would use for one registry host, plus any problem found on the way."""

    registry: str
    directory: Path | None  # the host directory that was found, if any
    source: str  # "hosts.toml" | "docker-style" | "none"
    endpoints: tuple[Endpoint, ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """Registry credentials (CRI ``AuthConfig`` or docker ``config.json``). Never logged."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)
    server_address: str = ""

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, secret=<redacted>)"


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryLimits:
    """DoS bounds for registry traffic (sizes in bytes, times in seconds)."""

    max_manifest_bytes: int = 4 * 1024 * 1024
    max_envelope_bytes: int = 32 * 1024 * 1024
    max_referrers_pages: int = 20
    connect_timeout: float = 5.0
    read_timeout: float = 15.0  # for each socket read
    request_timeout: float = 60.0  # for a whole exchange: handshake, headers, body, redirects
    # connect and each read, at an endpoint with others after it (a hung mirror costs this much)
    fallback_timeout: float = 1.5
    max_retries: int = 3  # for 429/503
    max_retry_after: float = 5.0  # ceiling for a server's Retry-After
    # the client's own referrers memo (pullgate.registry.referrers_memo): entries and lifetime
    referrers_entries: int = 1024
    referrers_ttl: float = 600.0


class RegistryError(VerificationInconclusive):
    """Registry trouble: unreachable, TLS, auth, protocol or timeout (reason says which)."""

    def __init__(self, reason: Reason, detail: str, *, endpoint: str | None = None) -> None:
        super().__init__(reason, detail)
        self.endpoint = endpoint
