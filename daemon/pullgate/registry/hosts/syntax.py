"""Parsing ``hosts.toml`` the way containerd 2.x (Go, go-toml v2) does; helpers for ``hosts.py``.

Implements docs/containerd.md §1.3-§1.6 at the syntax level: the decode-level type rules
of go-toml v2 (struct fields matched exactly or case-insensitively, unknown keys ignored) and
the per-entry validation of ``parseHostConfig``. The endpoint order comes from
:mod:`pullgate.registry.hosts.order` (the table-header scan of ``getSortedHosts``) and the Go
semantics of URLs, paths and durations from :mod:`pullgate.registry.go_semantics`; both are
re-exported here. Every function reports bad input as ``ValueError`` or as a problem string;
``hosts.py`` turns those into :class:`~pullgate.registry.model.HostsConfig` problems.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pullgate.registry.go_semantics import (
    PATH_SAFE,
    go_clean,
    go_duration,
    go_url,
    is_localhost,
    split_host_port,
)
from pullgate.registry.hosts.order import table_header_hosts
from pullgate.registry.model import ALL_CAPABILITIES, Capability, ClientCertificate

__all__ = [
    "HOST_FIELDS",
    "PATH_SAFE",
    "ROOT_FIELDS",
    "HostEntry",
    "go_clean",
    "go_duration",
    "go_url",
    "is_localhost",
    "parse_hosts_file",
    "split_host_port",
    "table_header_hosts",
]

ROOT_FIELDS = frozenset(
    {"server", "host", "capabilities", "ca", "client", "skip_verify", "header"}
    | {"override_path", "dial_timeout"}
)
HOST_FIELDS = ROOT_FIELDS - {"server", "host"}


@dataclass(frozen=True, slots=True, kw_only=True)
class HostEntry:
    """containerd's ``hostConfig``: one entry before the upstream default is filled in."""

    scheme: str = ""
    host: str = ""
    path: str = ""
    capabilities: frozenset[Capability] = frozenset()
    ca_files: tuple[Path, ...] | None = None  # () = "ca = []": set, but empty
    clients: tuple[ClientCertificate, ...] | None = None
    skip_verify: bool | None = None
    headers: Mapping[str, tuple[str, ...]] | None = None
    dial_timeout: float | None = None
    empty_key: tuple[str, ...] = ()  # client pairs written with a "" key


# --------------------------------------------------------------------------- decoding


def _toml_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    return "table" if isinstance(value, dict) else names.get(type(value), "date/time")


def _decode_problem(field: str, value: Any) -> str | None:
    if field in {"server", "dial_timeout"}:
        ok = isinstance(value, str)
    elif field in {"skip_verify", "override_path"}:
        ok = isinstance(value, bool)
    elif field == "capabilities":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif field in {"header", "host"}:
        ok = isinstance(value, dict)
    else:  # ca, client: Go interface{}, checked later
        ok = True
    return None if ok else f"cannot decode TOML {_toml_type(value)} into {field!r}"


def _fields(
    table: Mapping[str, Any], allowed: frozenset[str], where: str, errors: list[str]
) -> dict[str, Any]:
    """go-toml v2 decoding into a struct: exact or case-insensitive key match, last wins."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        field = key.lower()
        if field not in allowed:
            continue
        if (problem := _decode_problem(field, value)) is not None:
            errors.append(f"{where}{key}: {problem}")
        elif field in {"host", "header"}:
            out[field] = {**out.get(field, {}), **value}
        else:
            out[field] = value
    return out


def _abs(p: str, base: Path) -> Path:
    return Path(p) if os.path.isabs(p) else Path(go_clean(f"{base}/{p}"))


def _paths(value: Any, base: Path, what: str, errors: list[str]) -> tuple[Path, ...] | None:
    if isinstance(value, str):
        return (_abs(value, base),)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(_abs(v, base) for v in value)
    errors.append(f"invalid type {_toml_type(value)} for {what!r}")
    return None


def _clients(
    value: Any, base: Path, errors: list[str]
) -> tuple[tuple[ClientCertificate, ...] | None, tuple[str, ...]]:
    if isinstance(value, str):
        return (ClientCertificate(cert=_abs(value, base)),), ()
    if not isinstance(value, list):
        errors.append(f"invalid type {_toml_type(value)} for 'client'")
        return None, ()
    out: list[ClientCertificate] = []
    empty_key: list[str] = []
    for item in value:
        if isinstance(item, str):
            out.append(ClientCertificate(cert=_abs(item, base)))
        elif isinstance(item, list) and all(isinstance(v, str) for v in item):
            if len(item) != 2:
                errors.append(f"invalid pair {item!r} for 'client'")
                continue
            if item[1] == "":
                empty_key.append(item[0])
            out.append(ClientCertificate(cert=_abs(item[0], base), key=_abs(item[1], base)))
        else:
            errors.append(f"invalid type {_toml_type(item)} in 'client'")
    return (tuple(out) or None), tuple(empty_key)


def _headers(value: Mapping[str, Any], errors: list[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for key, item in value.items():
        if isinstance(item, str):
            out[key] = (item,)
        elif isinstance(item, list) and all(isinstance(v, str) for v in item):
            out[key] = tuple(item)
        else:
            errors.append(f"invalid type {_toml_type(item)} for header {key!r}")
    return out


def _entry(server: str, base: Path, cfg: Mapping[str, Any], errors: list[str]) -> HostEntry:
    """containerd's ``parseHostConfig`` for one ``[host."…"]`` table or the root."""
    scheme = host = path = ""
    override = bool(cfg.get("override_path", False))
    if server:
        raw = server if server.startswith("http") else "https://" + server
        try:
            scheme, host, path = go_url(raw)
        except ValueError as exc:
            errors.append(f"unable to parse server {raw!r}: {exc}")
        if path:
            path = go_clean(path)
            path = path if path.endswith("/v2") or override else path + "/v2"
        elif not override:
            path = "/v2"
    capabilities = set()
    for name in cfg.get("capabilities") or ():
        try:
            capabilities.add(Capability(name.lower()))
        except ValueError:
            errors.append(f"unknown capability {name!r}")
    ca = _paths(cfg["ca"], base, "ca", errors) if "ca" in cfg else None
    clients, empty_key = _clients(cfg["client"], base, errors) if "client" in cfg else (None, ())
    timeout = None
    if cfg.get("dial_timeout"):
        try:
            timeout = go_duration(cfg["dial_timeout"])
        except ValueError as exc:
            errors.append(f"dial_timeout: {exc}")
    return HostEntry(
        scheme=scheme,
        host=host,
        path=path,
        capabilities=frozenset(capabilities) or ALL_CAPABILITIES,
        ca_files=ca,
        clients=clients,
        skip_verify=cfg.get("skip_verify"),
        headers=_headers(cfg["header"], errors) if "header" in cfg else None,
        dial_timeout=timeout,
        empty_key=empty_key,
    )


def parse_hosts_file(base: Path, data: bytes) -> tuple[list[HostEntry] | None, list[str]]:
    """containerd's ``parseHostsFile``: entries in order, the root (server) entry last.

    Returns:
        (entries, []) on success; (None, problems) when containerd would ignore the file.
    """
    try:
        text = data.decode("utf-8")
        document = tomllib.loads(text)
        order = table_header_hosts(text)
    except UnicodeDecodeError as exc:
        return None, [f"not valid UTF-8: {exc.reason} at byte {exc.start}"]
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        return None, [f"TOML syntax: {exc}"]
    errors: list[str] = []
    root = _fields(document, ROOT_FIELDS, "", errors)
    hosts: dict[str, dict[str, Any]] = {}
    for url, table in root.get("host", {}).items():
        if not isinstance(table, dict):
            errors.append(f"host.{url!r}: cannot decode TOML {_toml_type(table)} into a host")
            continue
        hosts[url] = _fields(table, HOST_FIELDS, f"host.{url!r}.", errors)
    if errors:
        return None, errors
    entries: list[HostEntry] = []
    for url in order:
        entry_errors: list[str] = []
        entries.append(_entry(url, base, hosts.get(url, {}), entry_errors))
        errors.extend(f"host {url!r}: {e}" for e in entry_errors)
    root_errors: list[str] = []
    entries.append(_entry(root.get("server", ""), base, root, root_errors))
    errors.extend(f"root: {e}" for e in root_errors)
    return (None, errors) if errors else (entries, [])
