"""The daemon configuration file (``/etc/pullgate/config.toml``): types, defaults, validation.

All validation lives here; every problem names the file, the key and what is wrong, and all
problems are reported at once (:class:`pullgate.errors.ConfigError` ``.problems``).

Stable keys (ARCHITECTURE.md): ``trust_dir``, ``hosts_dir``, ``[api] socket``, ``[cri] socket``,
``[cri] upstream``, ``[metrics] address``, ``[statements."<name>"] require / on_inconclusive /
mode``. Everything else is an addition with a default.

Loading rules (:func:`load_config`, :func:`parse_config`):

* the file is TOML (``tomllib``); unknown keys and tables are errors, named with their dotted
  path, so a typo never silently falls back to a default;
* ``hosts_dir`` is one string, ``:``-separated like containerd CRI's ``config_path``; an empty
  string means "no certs.d roots";
* filesystem paths (``trust_dir``, each ``hosts_dir`` entry, ``[registry] config_json``,
  ``[verification] crl_cache_dir``) may be relative: they are resolved against the directory of
  the config file *as named* (``Path.absolute``, not ``resolve``), so a Kubernetes ConfigMap
  mount's ``config.toml -> ..data/config.toml`` resolves next to the mount point and keeps
  working across ``..data`` swaps;
* socket paths (``[api] socket``, ``[cri] socket``, the ``unix://`` path of ``[cri] upstream``)
  must be absolute: a daemon's sockets must not move with its working directory;
* numbers must be positive (booleans are not numbers), except ``[cache] resolve_ttl``, which
  may be 0 (off); ``[api] socket_mode`` is an integer
  (``0o660``) or an octal string (``"0660"``);
* ``[metrics] address`` is ``host:port`` (``[v6]:port`` for IPv6) or ``""`` (metrics off); the
  host must be loopback (``localhost``, ``127.0.0.0/8``, ``::1``) unless
  ``allow_non_loopback = true``;
* ``[statements."<name>"]`` values must be members of :class:`Requirement`,
  :class:`InconclusiveAction` and :class:`Mode`.
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from pullgate.cri.critical import CriticalImages
from pullgate.errors import ConfigError

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
    upstream: str = "unix:///run/containerd/containerd.sock"
    # Pulls that are never blocked (sandbox/pause, CNI images): reference globs or sha256 digests.
    critical_images: tuple[str, ...] = ()


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


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryConfig:
    """``[registry]``: limits and credentials for signature fetching."""

    config_json: Path | None = None  # docker config.json with credentials
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_envelope_bytes: int = 32 * 1024 * 1024


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
    reload_debounce: float = 0.2  # seconds

    def settings_for(self, statement: str | None) -> StatementSettings:
        """The settings of a trust-policy statement (defaults when not configured)."""
        if statement is None:
            return DEFAULT_STATEMENT
        return self.statements.get(statement, DEFAULT_STATEMENT)


# ----------------------------------------------------------------------------- loading

_PLATFORM = re.compile(r"[a-z0-9_.-]+/[a-z0-9_.-]+(/[a-z0-9_.-]+)?")
_MAX_PORT = 65535
_MAX_SOCKET_MODE = 0o777
_E = TypeVar("_E", bound=StrEnum)


def _quote_key(name: str) -> str:
    """A TOML key as the operator would write it (bare when possible)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _type_name(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", dict: "table"}
    return names.get(type(value), "array" if isinstance(value, list) else type(value).__name__)


class _Checker:
    """Collects every problem of one config document; each names file, key and problem."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.base = source.absolute().parent
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.source}: {key}: {message}")

    # -- tables

    def table(self, data: Mapping[str, object], key: str, prefix: str) -> dict[str, object] | None:
        """The sub-table ``key`` (None when absent or not a table)."""
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(_join(prefix, key), f"must be a table, not a {_type_name(value)}")
            return None
        return value

    def section(
        self, data: Mapping[str, object], key: str, allowed: frozenset[str]
    ) -> dict[str, object] | None:
        """The top-level table ``key`` with its unknown keys reported (None when absent/bad)."""
        table = self.table(data, key, "")
        if table is not None:
            self.unknown(table, allowed, key)
        return table

    def unknown(self, data: Mapping[str, object], allowed: frozenset[str], prefix: str) -> None:
        for key in data:
            if key not in allowed:
                self.problem(_join(prefix, _quote_key(key)), "unknown key")

    # -- scalars (each returns ``default`` when the key is absent or its value is bad)

    def string(self, data: Mapping[str, object], key: str, prefix: str, default: str) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            self.problem(_join(prefix, key), f"must be a string, not a {_type_name(value)}")
            return default
        if "\0" in value:
            self.problem(_join(prefix, key), "must not contain NUL characters")
            return default
        return value

    def boolean(self, data: Mapping[str, object], key: str, prefix: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(_join(prefix, key), f"must be true or false, not a {_type_name(value)}")
            return default
        return value

    def positive_int(self, data: Mapping[str, object], key: str, prefix: str, default: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(_join(prefix, key), f"must be an integer, not a {_type_name(value)}")
            return default
        if value <= 0:
            self.problem(_join(prefix, key), f"must be positive, got {value}")
            return default
        return value

    def positive_float(
        self, data: Mapping[str, object], key: str, prefix: str, default: float
    ) -> float:
        return self._finite(data, key, prefix, default, allow_zero=False)

    def non_negative_float(
        self, data: Mapping[str, object], key: str, prefix: str, default: float
    ) -> float:
        return self._finite(data, key, prefix, default, allow_zero=True)

    def _finite(
        self, data: Mapping[str, object], key: str, prefix: str, default: float, *, allow_zero: bool
    ) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(_join(prefix, key), f"must be a number, not a {_type_name(value)}")
            return default
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            kind = "non-negative" if allow_zero else "positive"
            self.problem(_join(prefix, key), f"must be a {kind} finite number, got {value}")
            return default
        return float(value)

    def path(self, data: Mapping[str, object], key: str, prefix: str, default: Path) -> Path:
        """A filesystem path; relative paths are resolved against the config file's directory."""
        if key not in data:
            return default
        text = self.string(data, key, prefix, "")
        if not text:
            if isinstance(data[key], str):
                self.problem(_join(prefix, key), "must not be empty")
            return default
        return self.base / text

    def socket(self, data: Mapping[str, object], key: str, prefix: str, default: Path) -> Path:
        if key not in data:
            return default
        text = self.string(data, key, prefix, "")
        if not text.startswith("/"):
            if isinstance(data[key], str):
                self.problem(_join(prefix, key), f"must be an absolute path, got {text!r}")
            return default
        return Path(text)

    def choice(self, data: Mapping[str, object], key: str, prefix: str, default: _E) -> _E:
        enum_type = type(default)
        text = self.string(data, key, prefix, default.value)
        try:
            return enum_type(text)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in enum_type)
            self.problem(_join(prefix, key), f"must be one of {allowed}, got {text!r}")
            return default


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


_TOP_KEYS = frozenset(
    {
        "trust_dir",
        "hosts_dir",
        "platform",
        "reload_debounce",
        "api",
        "cri",
        "metrics",
        "cache",
        "registry",
        "verification",
        "statements",
    }
)
_API_KEYS = frozenset({"socket", "socket_mode"})
_CRI_KEYS = frozenset({"socket", "upstream", "critical_images"})
_METRICS_KEYS = frozenset({"address", "allow_non_loopback"})
_CACHE_KEYS = frozenset({"max_entries", "max_ttl", "negative_ttl", "resolve_ttl"})
_REGISTRY_KEYS = frozenset(
    {"config_json", "connect_timeout", "read_timeout", "max_manifest_bytes", "max_envelope_bytes"}
)
_VERIFICATION_KEYS = frozenset({"max_signatures", "timeout", "crl_cache_dir", "allow_symlinks"})
_STATEMENT_KEYS = frozenset({"require", "on_inconclusive", "mode"})


def _hosts_dirs(chk: _Checker, data: Mapping[str, object]) -> tuple[Path, ...]:
    default = DaemonConfig().hosts_dirs
    if "hosts_dir" not in data:
        return default
    text = chk.string(data, "hosts_dir", "", "")
    if not isinstance(data["hosts_dir"], str):
        return default
    if not text:
        return ()
    parts = text.split(":")
    if any(not part for part in parts):
        chk.problem("hosts_dir", f"empty entry in ':'-separated list {text!r}")
    return tuple(chk.base / part for part in parts if part)


def _platform(chk: _Checker, data: Mapping[str, object]) -> str | None:
    if "platform" not in data:
        return None
    text = chk.string(data, "platform", "", "")
    if isinstance(data["platform"], str) and not _PLATFORM.fullmatch(text):
        chk.problem("platform", f"must be os/arch[/variant] in lower case, got {text!r}")
        return None
    return text or None


def _socket_mode(chk: _Checker, data: Mapping[str, object], default: int) -> int:
    value = data.get("socket_mode", default)
    mode: int | None = None
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{1,4}", value):
        mode = int(value, 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        mode = value
    if mode is None or not 0 < mode <= _MAX_SOCKET_MODE:
        chk.problem(
            "api.socket_mode", f'must be a permission mode such as 0o660 or "0660", got {value!r}'
        )
        return default
    return mode


def _api(chk: _Checker, data: Mapping[str, object]) -> ApiConfig:
    default = ApiConfig()
    table = chk.section(data, "api", _API_KEYS)
    if table is None:
        return default
    return ApiConfig(
        socket=chk.socket(table, "socket", "api", default.socket),
        socket_mode=_socket_mode(chk, table, default.socket_mode),
    )


def _cri(chk: _Checker, data: Mapping[str, object]) -> CriConfig | None:
    table = chk.section(data, "cri", _CRI_KEYS)
    if table is None:
        return None
    default = CriConfig()
    upstream = chk.string(table, "upstream", "cri", default.upstream)
    path = upstream.removeprefix("unix://") if upstream.startswith("unix://") else None
    if path is None and upstream.startswith("unix:"):
        path = upstream.removeprefix("unix:")
    if path is None or not path.startswith("/"):
        chk.problem(
            "cri.upstream",
            f"must be unix:///absolute/path/to/containerd.sock, got {upstream!r}",
        )
        upstream = default.upstream
    critical = _critical_images(chk, table)
    return CriConfig(
        socket=chk.socket(table, "socket", "cri", default.socket),
        upstream=upstream,
        critical_images=critical,
    )


def _critical_images(chk: _Checker, table: Mapping[str, object]) -> tuple[str, ...]:
    raw = table.get("critical_images", [])
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        chk.problem("cri.critical_images", "must be a list of strings")
        return ()
    try:  # the proxy's own parser: one grammar for the allowlist
        CriticalImages.parse(raw)
    except ConfigError as exc:
        for problem in exc.problems:
            chk.problem("cri.critical_images", problem)
        return ()
    return tuple(raw)


def _split_host_port(address: str) -> tuple[str, str] | None:
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or address[end + 1 : end + 2] != ":":
            return None
        return address[1:end], address[end + 2 :]
    host, sep, port = address.rpartition(":")
    if not sep or ":" in host:
        return None
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _metrics(chk: _Checker, data: Mapping[str, object]) -> MetricsConfig:
    default = MetricsConfig()
    table = chk.section(data, "metrics", _METRICS_KEYS)
    if table is None:
        return default
    address = chk.string(table, "address", "metrics", default.address)
    allow = chk.boolean(table, "allow_non_loopback", "metrics", default.allow_non_loopback)
    if not address:
        return MetricsConfig(address="", allow_non_loopback=allow)
    parts = _split_host_port(address)
    if (
        parts is None
        or not parts[0]
        or not parts[1].isdecimal()
        or not 0 < int(parts[1]) <= _MAX_PORT
    ):
        chk.problem("metrics.address", f"must be host:port with a port 1-65535, got {address!r}")
        return MetricsConfig(address=default.address, allow_non_loopback=allow)
    if not allow and not _is_loopback(parts[0]):
        chk.problem(
            "metrics.address",
            f"host {parts[0]!r} is not loopback; set metrics.allow_non_loopback = true to "
            "expose metrics beyond this node",
        )
        return MetricsConfig(address=default.address, allow_non_loopback=allow)
    return MetricsConfig(address=address, allow_non_loopback=allow)


def _cache(chk: _Checker, data: Mapping[str, object]) -> CacheConfig:
    default = CacheConfig()
    table = chk.section(data, "cache", _CACHE_KEYS)
    if table is None:
        return default
    return CacheConfig(
        max_entries=chk.positive_int(table, "max_entries", "cache", default.max_entries),
        max_ttl=chk.positive_float(table, "max_ttl", "cache", default.max_ttl),
        negative_ttl=chk.positive_float(table, "negative_ttl", "cache", default.negative_ttl),
        resolve_ttl=chk.non_negative_float(table, "resolve_ttl", "cache", default.resolve_ttl),
    )


def _registry(chk: _Checker, data: Mapping[str, object]) -> RegistryConfig:
    default = RegistryConfig()
    table = chk.section(data, "registry", _REGISTRY_KEYS)
    if table is None:
        return default
    config_json: Path | None = None
    if "config_json" in table:
        config_json = chk.path(table, "config_json", "registry", Path())
        if config_json == Path():
            config_json = None
    return RegistryConfig(
        config_json=config_json,
        connect_timeout=chk.positive_float(
            table, "connect_timeout", "registry", default.connect_timeout
        ),
        read_timeout=chk.positive_float(table, "read_timeout", "registry", default.read_timeout),
        max_manifest_bytes=chk.positive_int(
            table, "max_manifest_bytes", "registry", default.max_manifest_bytes
        ),
        max_envelope_bytes=chk.positive_int(
            table, "max_envelope_bytes", "registry", default.max_envelope_bytes
        ),
    )


def _verification(chk: _Checker, data: Mapping[str, object]) -> VerificationConfig:
    default = VerificationConfig()
    table = chk.section(data, "verification", _VERIFICATION_KEYS)
    if table is None:
        return default
    prefix = "verification"
    return VerificationConfig(
        max_signatures=chk.positive_int(table, "max_signatures", prefix, default.max_signatures),
        timeout=chk.positive_float(table, "timeout", prefix, default.timeout),
        crl_cache_dir=chk.path(table, "crl_cache_dir", prefix, default.crl_cache_dir),
        allow_symlinks=chk.boolean(table, "allow_symlinks", prefix, default.allow_symlinks),
    )


def _statements(chk: _Checker, data: Mapping[str, object]) -> Mapping[str, StatementSettings]:
    table = chk.table(data, "statements", "")
    if table is None:
        return MappingProxyType({})
    out: dict[str, StatementSettings] = {}
    for name, value in table.items():
        prefix = f"statements.{_quote_key(name)}"
        if not isinstance(value, dict):
            chk.problem(prefix, f"must be a table, not a {_type_name(value)}")
            continue
        if not name:
            chk.problem(prefix, "statement name must not be empty")
        chk.unknown(value, _STATEMENT_KEYS, prefix)
        out[name] = StatementSettings(
            require=chk.choice(value, "require", prefix, DEFAULT_STATEMENT.require),
            on_inconclusive=chk.choice(
                value, "on_inconclusive", prefix, DEFAULT_STATEMENT.on_inconclusive
            ),
            mode=chk.choice(value, "mode", prefix, DEFAULT_STATEMENT.mode),
        )
    return MappingProxyType(out)


def parse_config(data: bytes, source: Path) -> DaemonConfig:
    """Parse and validate a daemon config document.

    Args:
        data: the file's bytes (UTF-8 TOML).
        source: the file it came from: named in every problem; relative paths inside the
            document are resolved against its directory.

    Returns:
        The validated configuration (``source`` set).

    Raises:
        ConfigError: with ``problems`` listing every problem found (file, key, problem).
    """
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        detail = f"{source}: not UTF-8 text: {exc}"
        raise ConfigError(detail, (detail,)) from exc
    except tomllib.TOMLDecodeError as exc:
        detail = f"{source}: invalid TOML: {exc}"
        raise ConfigError(detail, (detail,)) from exc
    chk = _Checker(source)
    chk.unknown(document, _TOP_KEYS, "")
    config = DaemonConfig(
        source=source,
        trust_dir=chk.path(document, "trust_dir", "", DaemonConfig().trust_dir),
        hosts_dirs=_hosts_dirs(chk, document),
        platform=_platform(chk, document),
        api=_api(chk, document),
        cri=_cri(chk, document),
        metrics=_metrics(chk, document),
        cache=_cache(chk, document),
        registry=_registry(chk, document),
        verification=_verification(chk, document),
        statements=_statements(chk, document),
        reload_debounce=chk.positive_float(
            document, "reload_debounce", "", DaemonConfig().reload_debounce
        ),
    )
    if chk.problems:
        count = len(chk.problems)
        raise ConfigError(
            f"{source}: {count} configuration problem{'s' if count > 1 else ''}: "
            + "; ".join(chk.problems),
            tuple(chk.problems),
        )
    return config


def read_config_file(path: Path) -> bytes:
    """The bytes of the daemon config file at ``path`` (for :func:`parse_config`).

    Raises:
        ConfigError: the file cannot be read.
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        detail = f"{path}: cannot read the configuration file: {exc.strerror or exc}"
        raise ConfigError(detail, (detail,)) from exc


def load_config(path: Path) -> DaemonConfig:
    """Read, parse and validate the daemon config file at ``path``.

    Raises:
        ConfigError: the file cannot be read, or any problem (all listed in ``problems``).
    """
    return parse_config(read_config_file(path), path)
