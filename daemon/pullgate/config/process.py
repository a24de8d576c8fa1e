"""Reading the process-level tables of ``config.toml`` (``[api]``, ``[cri]``, ``[metrics]``):
sockets and listeners fixed when the daemon starts (see :mod:`pullgate.config.load`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from pullgate.common.textnum import ascii_int
from pullgate.config.checker import ConfigChecker
from pullgate.config.model import ApiConfig, CriConfig, MetricsConfig
from pullgate.errors import ConfigError
from pullgate.oci.critical import CriticalImages

__all__ = ["api_table", "cri_table", "metrics_table"]

_MAX_PORT = 65535
_API_KEYS = frozenset({"socket", "socket_mode"})
_CRI_KEYS = frozenset({"socket", "socket_mode", "upstream", "critical_images"})
_METRICS_KEYS = frozenset({"address", "allow_non_loopback"})


def api_table(chk: ConfigChecker, data: Mapping[str, object]) -> ApiConfig:
    """``[api]``: the gRPC socket."""
    default = ApiConfig()
    table = chk.section(data, "api", _API_KEYS)
    if table is None:
        return default
    return ApiConfig(
        socket=chk.socket(table, "socket", "api", default.socket),
        socket_mode=chk.socket_mode(table, "api", default.socket_mode),
    )


def cri_table(chk: ConfigChecker, data: Mapping[str, object]) -> CriConfig | None:
    """``[cri]``: the CRI proxy (None when the table is absent: no proxy)."""
    table = chk.section(data, "cri", _CRI_KEYS)
    if table is None:
        return None
    default = CriConfig()
    upstream = chk.unix_upstream(table, "upstream", "cri", default.upstream)
    critical = _critical_images(chk, table)
    return CriConfig(
        socket=chk.socket(table, "socket", "cri", default.socket),
        socket_mode=chk.socket_mode(table, "cri", default.socket_mode),
        upstream=upstream,
        critical_images=critical,
    )


def _critical_images(chk: ConfigChecker, table: Mapping[str, object]) -> tuple[str, ...]:
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


def metrics_table(chk: ConfigChecker, data: Mapping[str, object]) -> MetricsConfig:
    """``[metrics]``: the Prometheus listener (loopback unless explicitly allowed)."""
    default = MetricsConfig()
    table = chk.section(data, "metrics", _METRICS_KEYS)
    if table is None:
        return default
    address = chk.string(table, "address", "metrics", default.address)
    allow = chk.boolean(table, "allow_non_loopback", "metrics", default.allow_non_loopback)
    if not address:
        return MetricsConfig(address="", allow_non_loopback=allow)
    parts = _split_host_port(address)
    port = ascii_int(parts[1]) if parts is not None else None
    if parts is None or not parts[0] or port is None or not 0 < port <= _MAX_PORT:
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
