"""The daemon configuration's types and defaults (``/etc/pullgate/config.toml`` as data).

Every table of the config file is one frozen dataclass here, with the default the daemon uses
when the table or key is absent; :class:`DaemonConfig` is the whole file. The enums hold the
literal values of ``[statements."<name>"]``. Reading and validating the file is
:mod:`pullgate.config.load`; import both through :mod:`pullgate.config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

DEFAULT_CONFIG_PATH = Path("/etc/pullgate/config.toml")


class Requirement(StrEnum):
    """Which subjects of a multi-platform image must carry a passing signature."""

    BOTH = "both"
    INDEX = "index"
    PLATFORM = "platform"
    EITHER = "either"


class InconclusiveAction(StrEnum):
    """What an inconclusive verification (registry down, timeout, revocation unknown) does."""

    DENY = "deny"
    ALLOW = "allow"


class Mode(StrEnum):
    """``enforce`` denies; ``audit`` allows and records what would have been denied."""

    ENFORCE = "enforce"
    AUDIT = "audit"


class VerifierPlatforms(StrEnum):
    """Which manifests of an index a containerd bindir image-verifier request must cover."""

    ALL = "all"  # every manifest containerd could fetch from it (any --platform)
    NODE = "node"  # only what this node's platform pulls


class RuntimeTransport(StrEnum):
    """``[runtime] transport``: how the container-start gate serves its socket."""

    SPLICE = "splice"  # HTTP/2 frames relayed to the runtime; decided calls held (fast)
    GRPC = "grpc"  # grpcio's server: every call re-issued to the runtime


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementSettings:
    """Per trust-policy statement settings (keyed by the statement's name)."""

    require: Requirement = Requirement.BOTH
    on_inconclusive: InconclusiveAction = InconclusiveAction.DENY
    mode: Mode = Mode.ENFORCE


DEFAULT_STATEMENT = StatementSettings()


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig:
    """``[api]``: the pullgate.v1 gRPC unix socket."""

    socket: Path = Path("/run/pullgate/pullgate.sock")
    socket_mode: int = 0o660


@dataclass(frozen=True, slots=True, kw_only=True)
class CriConfig:
    """``[cri]``: the CRI ImageService proxy (absent = no proxy)."""

    socket: Path = Path("/run/pullgate/cri.sock")
    # The kubelet connects as root; anyone else who can reach the socket can pull (verified)
    # and remove images, so by default no one else can.
    socket_mode: int = 0o600
    upstream: str = "unix:///run/containerd/containerd.sock"
    # Pulls that are never blocked (sandbox/pause, CNI images): reference globs or sha256 digests.
    critical_images: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeConfig:
    """``[runtime]``: the container-start gate, a CRI RuntimeService proxy (absent = none)."""

    socket: Path = Path("/run/pullgate/runtime.sock")
    socket_mode: int = 0o600  # a path to root, like containerd's own socket
    upstream: str = "unix:///run/containerd/containerd.sock"
    # With the gate on, the image proxy lets the runtime's pull run while verification is in
    # progress (the gate holds the image until an allow covers it).
    overlap_pulls: bool = True
    audit_interval: float = 30.0  # seconds between node audits after trust reloads, at least
    transport: RuntimeTransport = RuntimeTransport.SPLICE  # how the gate serves its socket


@dataclass(frozen=True, slots=True, kw_only=True)
class NriConfig:
    """``[nri]``: the containerd NRI plugin (absent = none, unless containerd launched us)."""

    socket: Path = Path("/var/run/nri/nri.sock")
    name: str = "pullgate"  # what containerd's required_plugins names
    index: str = "10"  # two digits: the plugin's place in containerd's call order
    evict: bool = False  # stop running containers whose image's allow was withdrawn
    evict_per_minute: int = 6
    evict_endpoint: str | None = None  # containerd's CRI socket: evictions also stop through it
    recheck_after: float = 30.0  # seconds a background denial answers creates before re-checking


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakGlassConfig:
    """``[break_glass]``: the file whose presence turns denials into audited allows."""

    file: Path = Path("/etc/pullgate/break-glass")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageVerifierConfig:
    """``[image_verifier]``: decisions asked for by containerd's bindir verifier."""

    platforms: VerifierPlatforms = VerifierPlatforms.ALL


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    """``[metrics]``: Prometheus exposition, loopback only by default (empty address = off)."""

    address: str = "127.0.0.1:9464"
    allow_non_loopback: bool = False  # must be set explicitly to expose metrics off-host


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    """``[cache]``: decision cache bounds (seconds, entries).

    ``resolve_ttl`` is how long the decider may reuse a tag's resolved digest instead of asking
    the registry again (``HEAD``); 0 disables the resolve memo (every decision resolves). See
    :mod:`pullgate.decision.memo` for why a short reuse cannot let unverified content through.
    """

    max_entries: int = 10_000
    max_ttl: float = 300.0
    negative_ttl: float = 10.0
    resolve_ttl: float = 5.0
    # Distinct certificates each trust snapshot's certificate-check memos remember
    # (pullgate.verification.cache; facts twice, passed checks four times as many entries).
    certificate_entries: int = 256
    # Registries whose certs.d lookup each snapshot remembers (pullgate.trust.snapshot).
    hosts_entries: int = 256
    # TLS contexts (one per endpoint TLS setup and client certificate) the decider keeps.
    tls_entries: int = 64
    # Registry endpoints whose transport failures are remembered (pullgate.registry.health).
    endpoint_entries: int = 256
    # Endpoints found without the referrers API, remembered per registry client for
    # referrers_ttl seconds (0 = always probe; pullgate.registry.referrers_memo).
    referrers_entries: int = 1024
    referrers_ttl: float = 600.0
    # Background start-check denials the NRI plugin answers creates from (pullgate.nri.admission).
    nri_denial_entries: int = 4096
    # Cached decisions also kept decoded, for the hottest cache hits (pullgate.decision.cache).
    decoded_entries: int = 256
    # Repositories recorded per image (config digest) in the start verdict store.
    repositories_per_image: int = 16
    # (snapshot, credentials) keys the idle registry-client pool keeps clients for.
    idle_client_keys: int = 64
    # Credential-free Verify requests and cache-hit responses the gRPC server keeps converted
    # (pullgate.service.convert; read at start).
    request_entries: int = 1024
    response_entries: int = 256
    # Created containers whose decided image the runtime gate remembers (read at start).
    created_container_entries: int = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryConfig:
    """``[registry]``: limits and credentials for signature fetching."""

    config_json: Path | None = None  # docker config.json with credentials
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_envelope_bytes: int = 32 * 1024 * 1024
    # Registry body bytes held at once by the whole daemon (pullgate.registry.body); at least
    # max_manifest_bytes and max_envelope_bytes + 1. A request waits at most inflight_wait
    # seconds for room, then fails inconclusive (TIMEOUT).
    max_inflight_bytes: int = 40 * 1024 * 1024
    inflight_wait: float = 2.0
    # At an endpoint with others after it: connect and read timeout (pullgate.registry.transport).
    fallback_timeout: float = 1.5
    # Seconds an endpoint that failed at transport level is asked last (doubling per consecutive
    # failure, up to 10x; pullgate.registry.health).
    endpoint_backoff: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationConfig:
    """``[verification]``: signature bounds, time budget, revocation cache."""

    max_signatures: int = 100
    timeout: float = 30.0  # seconds for one whole decision
    crl_cache_dir: Path = Path("/var/cache/pullgate/crl")
    allow_symlinks: bool = True  # Kubernetes ConfigMap mounts are symlinks (..data)


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    """The whole daemon configuration."""

    source: Path | None = None  # the file it was read from
    trust_dir: Path = Path("/etc/pullgate/trust")
    hosts_dirs: tuple[Path, ...] = (Path("/etc/containerd/certs.d"),)  # `hosts_dir`, ':'-split
    platform: str | None = None  # override "this node" (os/arch[/variant]); None = detect
    api: ApiConfig = field(default_factory=ApiConfig)
    cri: CriConfig | None = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    statements: Mapping[str, StatementSettings] = field(default_factory=dict)
    runtime: RuntimeConfig | None = None
    break_glass: BreakGlassConfig | None = None
    image_verifier: ImageVerifierConfig = field(default_factory=ImageVerifierConfig)
    nri: NriConfig | None = None
    reload_debounce: float = 0.2  # seconds

    def settings_for(self, statement: str | None) -> StatementSettings:
        """The settings of a trust-policy statement (defaults when not configured)."""
        if statement is None:
            return DEFAULT_STATEMENT
        return self.statements.get(statement, DEFAULT_STATEMENT)
