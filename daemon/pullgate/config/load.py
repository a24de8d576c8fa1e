"""Reading and validating the daemon config file (``/etc/pullgate/config.toml``).

All validation lives here (values through :class:`~pullgate.config.checker.ConfigChecker`);
every problem names the file, the key and what is wrong, and all problems are reported at once
(:class:`pullgate.errors.ConfigError` ``.problems``).

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
* numbers must be positive (booleans are not numbers), except ``[cache] resolve_ttl`` and
  ``referrers_ttl``, which may be 0 (off); ``[api] socket_mode`` is an integer (``0o660``) or an
  octal string (``"0660"``);
* ``[metrics] address`` is ``host:port`` (``[v6]:port`` for IPv6) or ``""`` (metrics off); the
  host must be loopback (``localhost``, ``127.0.0.0/8``, ``::1``) unless
  ``allow_non_loopback = true``;
* ``[statements."<name>"]`` values must be members of :class:`~pullgate.config.model.Requirement`,
  :class:`~pullgate.config.model.InconclusiveAction` and :class:`~pullgate.config.model.Mode`;
* ``[nri]`` is read by :mod:`pullgate.config.nri`, ``[runtime]`` by :mod:`pullgate.config.start`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from pullgate.config.checker import ConfigChecker, quote_key, type_name
from pullgate.config.model import (
    DEFAULT_STATEMENT,
    CacheConfig,
    DaemonConfig,
    RegistryConfig,
    StatementSettings,
    VerificationConfig,
)
from pullgate.config.nri import nri_table
from pullgate.config.process import api_table, cri_table, metrics_table
from pullgate.config.salvage import salvage_tables
from pullgate.config.start import start_break_glass, start_runtime
from pullgate.config.verifier import image_verifier
from pullgate.errors import ConfigError

_PLATFORM = re.compile(r"[a-z0-9_.-]+/[a-z0-9_.-]+(/[a-z0-9_.-]+)?")

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
        "runtime",
        "break_glass",
        "image_verifier",
        "nri",
    }
)
_PROCESS_TABLES = frozenset({"api", "cri", "metrics", "runtime", "nri", "break_glass"})  # at start
_CACHE_COUNTS = (
    "max_entries",
    "certificate_entries",
    "hosts_entries",
    "tls_entries",
    "endpoint_entries",
    "referrers_entries",
    "nri_denial_entries",
    "decoded_entries",
    "repositories_per_image",
    "idle_client_keys",
    "request_entries",
    "response_entries",
    "created_container_entries",
)
_CACHE_KEYS = frozenset({*_CACHE_COUNTS, "max_ttl", "negative_ttl", "resolve_ttl", "referrers_ttl"})
_REGISTRY_KEYS = frozenset(
    {
        "config_json",
        "connect_timeout",
        "read_timeout",
        "max_manifest_bytes",
        "max_envelope_bytes",
        "max_inflight_bytes",
        "inflight_wait",
        "fallback_timeout",
        "endpoint_backoff",
    }
)
_VERIFICATION_KEYS = frozenset({"max_signatures", "timeout", "crl_cache_dir", "allow_symlinks"})
_STATEMENT_KEYS = frozenset({"require", "on_inconclusive", "mode"})


def _hosts_dirs(chk: ConfigChecker, data: Mapping[str, object]) -> tuple[Path, ...]:
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


def _platform(chk: ConfigChecker, data: Mapping[str, object]) -> str | None:
    if "platform" not in data:
        return None
    text = chk.string(data, "platform", "", "")
    if isinstance(data["platform"], str) and not _PLATFORM.fullmatch(text):
        chk.problem("platform", f"must be os/arch[/variant] in lower case, got {text!r}")
        return None
    return text or None


def _cache(chk: ConfigChecker, data: Mapping[str, object]) -> CacheConfig:
    default = CacheConfig()
    table = chk.section(data, "cache", _CACHE_KEYS)
    if table is None:
        return default
    counts = {
        key: chk.positive_int(table, key, "cache", getattr(default, key)) for key in _CACHE_COUNTS
    }
    return CacheConfig(
        max_ttl=chk.positive_float(table, "max_ttl", "cache", default.max_ttl),
        negative_ttl=chk.positive_float(table, "negative_ttl", "cache", default.negative_ttl),
        resolve_ttl=chk.non_negative_float(table, "resolve_ttl", "cache", default.resolve_ttl),
        referrers_ttl=chk.non_negative_float(
            table, "referrers_ttl", "cache", default.referrers_ttl
        ),
        **counts,
    )


def _registry(chk: ConfigChecker, data: Mapping[str, object]) -> RegistryConfig:
    default = RegistryConfig()
    table = chk.section(data, "registry", _REGISTRY_KEYS)
    if table is None:
        return default
    config_json: Path | None = None
    if "config_json" in table:
        config_json = chk.path(table, "config_json", "registry", Path())
        if config_json == Path():
            config_json = None
    config = RegistryConfig(
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
        max_inflight_bytes=chk.positive_int(
            table, "max_inflight_bytes", "registry", default.max_inflight_bytes
        ),
        inflight_wait=chk.positive_float(table, "inflight_wait", "registry", default.inflight_wait),
        fallback_timeout=chk.positive_float(
            table, "fallback_timeout", "registry", default.fallback_timeout
        ),
        endpoint_backoff=chk.positive_float(
            table, "endpoint_backoff", "registry", default.endpoint_backoff
        ),
    )
    largest = max(config.max_manifest_bytes, config.max_envelope_bytes) + 1
    if config.max_inflight_bytes < largest:
        chk.problem(
            "registry.max_inflight_bytes",
            f"must be at least {largest} (the largest body limit + 1), or no such body fits",
        )
    return config


def _verification(chk: ConfigChecker, data: Mapping[str, object]) -> VerificationConfig:
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


def _statements(chk: ConfigChecker, data: Mapping[str, object]) -> Mapping[str, StatementSettings]:
    table = chk.table(data, "statements", "")
    if table is None:
        return MappingProxyType({})
    out: dict[str, StatementSettings] = {}
    for name, value in table.items():
        prefix = f"statements.{quote_key(name)}"
        if not isinstance(value, dict):
            chk.problem(prefix, f"must be a table, not a {type_name(value)}")
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
    except (tomllib.TOMLDecodeError, RecursionError) as exc:  # tomllib recurses per nesting
        detail = f"{source}: invalid TOML: {exc}"
        raise ConfigError(detail, (detail,)) from exc
    chk = ConfigChecker(source)
    chk.unknown(document, _TOP_KEYS, "")
    config = DaemonConfig(
        source=source,
        trust_dir=chk.path(document, "trust_dir", "", DaemonConfig().trust_dir),
        hosts_dirs=_hosts_dirs(chk, document),
        platform=_platform(chk, document),
        api=api_table(chk, document),
        cri=cri_table(chk, document),
        metrics=metrics_table(chk, document),
        cache=_cache(chk, document),
        registry=_registry(chk, document),
        verification=_verification(chk, document),
        statements=_statements(chk, document),
        runtime=start_runtime(chk, document),
        break_glass=start_break_glass(chk, document),
        image_verifier=image_verifier(chk, document),
        nri=nri_table(chk, document),
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


def load_process_settings(path: Path) -> DaemonConfig | None:
    """Only the process-level tables of the config file at ``path`` (``[api]``, ``[cri]``,
    ``[metrics]``, ``[runtime]``, ``[nri]``, ``[break_glass]``: read once at start), when they
    are valid on their own; None when the file cannot be read or parsed, or one is invalid.

    For a start-up with a config file that fails :func:`load_config` elsewhere (a typo in
    ``[statements]``, or a TOML syntax error outside these tables:
    :mod:`pullgate.config.salvage`): the sockets keep the path and mode the operator chose, the
    CRI socket is served (every pull is denied until a valid configuration loads) and the
    break-glass file is honoured, instead of the defaults.
    """
    try:
        raw = read_config_file(path)
    except ConfigError:
        return None
    try:
        document: Mapping[str, object] = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):  # sections may parse
        salvaged = salvage_tables(raw.decode("utf-8", "replace"), _PROCESS_TABLES)
        if salvaged is None:
            return None
        document = salvaged
    chk = ConfigChecker(path)
    config = DaemonConfig(
        source=path,
        api=api_table(chk, document),
        cri=cri_table(chk, document),
        metrics=metrics_table(chk, document),
        runtime=start_runtime(chk, document),
        break_glass=start_break_glass(chk, document),
        nri=nri_table(chk, document),
    )
    return None if chk.problems else config


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
