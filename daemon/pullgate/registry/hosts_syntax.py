"""Parsing ``hosts.toml`` the way containerd 2.x (Go, go-toml v2) does; helpers for ``hosts.py``.

Implements containerd-integration.md §1.3-§1.6 at the syntax level: the decode-level type rules
of go-toml v2 (struct fields matched exactly or case-insensitively, unknown keys ignored), the
per-entry validation of ``parseHostConfig``, the top-level table-header scan that fixes the
endpoint order (``getSortedHosts``), and the small pieces of Go semantics the result depends on:
``net/url.Parse``, ``path.Clean``, ``time.ParseDuration``, ``net.SplitHostPort`` and
``IsLocalhost``. Every function here reports bad input as ``ValueError`` or as a problem string;
``hosts.py`` turns those into :class:`~pullgate.registry.model.HostsConfig` problems.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pullgate.registry.model import ALL_CAPABILITIES, Capability, ClientCertificate

# Characters Go's URL path escaping leaves alone (alnum and "-_.~" are always safe in quote()).
PATH_SAFE = "/!$&'()*+,;=:@[]%"

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


# --------------------------------------------------------------------------- Go semantics


def go_clean(p: str) -> str:
    """Go's ``path.Clean``."""
    if not p:
        return "."
    rooted = p.startswith("/")
    parts: list[str] = []
    for seg in p.split("/"):
        if seg in {"", "."}:
            continue
        if seg == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
        else:
            parts.append(seg)
    joined = "/".join(parts)
    return "/" + joined if rooted else (joined or ".")


def split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's ``net.SplitHostPort``; None where Go returns an error."""
    colon = hostport.rfind(":")
    if colon < 0:
        return None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 != colon:
            return None
        host, rest_from = hostport[1:end], end + 1
        if "[" in hostport[1:] or "]" in hostport[rest_from:]:
            return None
    else:
        host, rest_from = hostport[:colon], 0
        if ":" in host or "[" in hostport or "]" in hostport:
            return None
    return host, hostport[colon + 1 :]


def is_localhost(host: str) -> bool:
    """containerd's ``docker.IsLocalhost``: ``localhost`` or a loopback IP, port optional."""
    split = split_host_port(host)
    name = split[0] if split is not None else host
    if name == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback and "%" not in name


_HOST_OK = frozenset("-_.~!$&'()*+,;=:[]<>\"")


def _unescape(s: str, *, host: bool) -> str:
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "%":
            pair = s[i + 1 : i + 3]
            if len(pair) != 2 or not all(ch in "0123456789abcdefABCDEF" for ch in pair):
                raise ValueError(f"invalid URL escape {s[i : i + 3]!r}")
            if host and int(pair[0], 16) < 8 and pair != "25":
                raise ValueError(f"invalid URL escape {s[i : i + 3]!r}")
            out.append(int(pair, 16))
            i += 3
            continue
        if host and c.isascii() and not c.isalnum() and c not in _HOST_OK:
            raise ValueError(f"invalid character {c!r} in host name")
        out.extend(c.encode("utf-8", "replace"))
        i += 1
    return out.decode("utf-8", "replace")


def _valid_port(colon_port: str) -> bool:
    return colon_port == "" or (
        colon_port.startswith(":") and all(c in "0123456789" for c in colon_port[1:])
    )


def _parse_host(hostpart: str) -> str:
    if hostpart.startswith("["):
        end = hostpart.rfind("]")
        if end < 0:
            raise ValueError("missing ']' in host")
        if not _valid_port(hostpart[end + 1 :]):
            raise ValueError(f"invalid port {hostpart[end + 1 :]!r} after host")
    elif (colon := hostpart.rfind(":")) >= 0 and not _valid_port(hostpart[colon:]):
        raise ValueError(f"invalid port {hostpart[colon:]!r} after host")
    return _unescape(hostpart, host=True)


_USERINFO_OK = frozenset("-._:~!$&'()*+,;=%@")


def _split_scheme(raw: str) -> tuple[str, str]:
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if (c.isascii() and c.isdigit()) or c in "+-.":
            if i == 0:
                return "", raw
            continue
        if c == ":":
            if i == 0:
                raise ValueError("missing protocol scheme")
            return raw[:i].lower(), raw[i + 1 :]
        return "", raw
    return "", raw


def go_url(raw: str) -> tuple[str, str, str]:
    """Go's ``url.Parse``, reduced to what containerd keeps: (scheme, host, decoded path).

    Raises:
        ValueError: where Go's parser returns an error.
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise ValueError("invalid control character in URL")
    rest, _, fragment = raw.partition("#")
    _unescape(fragment, host=False)
    scheme, rest = _split_scheme(rest)
    rest = rest[:-1] if rest.endswith("?") and rest.count("?") == 1 else rest.partition("?")[0]
    if not rest.startswith("/"):
        if scheme:
            return scheme, "", ""  # opaque URL: no host, no path
        if ":" in rest.partition("/")[0]:
            raise ValueError("first path segment in URL cannot contain colon")
    host = ""
    if (scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        rest = slash + tail
        userinfo, at, hostpart = authority.rpartition("@")
        if at:
            if not all((c.isascii() and c.isalnum()) or c in _USERINFO_OK for c in userinfo):
                raise ValueError("invalid userinfo")
            _unescape(userinfo, host=False)
        host = _parse_host(hostpart)
    return scheme, host, _unescape(rest, host=False)


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_NUMBER = re.compile(r"([0-9]*)(\.[0-9]*)?")
_MAX_NS = 1 << 63


def go_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds.

    Raises:
        ValueError: where Go returns an error (no unit, unknown unit, overflow, …).
    """
    s, negative = text, False
    if s[:1] in {"+", "-"}:
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise ValueError(f"invalid duration {text!r}")
        match = _NUMBER.match(s)
        if match is None:  # pragma: no cover - the pattern matches the empty string
            raise ValueError(f"invalid duration {text!r}")
        whole, fraction = match.group(1), (match.group(2) or ".")[1:]
        if not whole and not fraction:
            raise ValueError(f"invalid duration {text!r}")
        s = s[match.end() :]
        end = 0
        while end < len(s) and not (s[end] == "." or "0" <= s[end] <= "9"):
            end += 1
        if end == 0:
            raise ValueError(f"missing unit in duration {text!r}")
        unit = _DURATION_UNITS.get(s[:end])
        if unit is None:
            raise ValueError(f"unknown unit {s[:end]!r} in duration {text!r}")
        s = s[end:]
        digits = whole.lstrip("0") or "0"
        if len(digits) > 19 or int(digits) > _MAX_NS // unit:
            raise ValueError(f"invalid duration {text!r}")
        value = int(digits) * unit
        if fraction:
            frac = fraction[:24]
            value += int(frac) * unit // 10 ** len(frac)
        total += value
        if value > _MAX_NS or total > _MAX_NS:
            raise ValueError(f"invalid duration {text!r}")
    if not negative and total > _MAX_NS - 1:
        raise ValueError(f"invalid duration {text!r}")
    return (-total if negative else total) / 1e9


# --------------------------------------------------------------------------- table-header scan


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _skip_string(text: str, i: int) -> int:
    quote = text[i]
    if text.startswith(quote * 3, i):
        j = i + 3
        while True:
            if quote == '"' and text[j] == "\\":
                j += 2
            elif text.startswith(quote * 3, j):
                j += 3
                extra = 0
                while extra < 2 and j < len(text) and text[j] == quote:
                    j, extra = j + 1, extra + 1
                return j
            else:
                j += 1
    j = i + 1
    while text[j] != quote:
        if text[j] == "\n":
            raise ValueError("unterminated string")
        j += 2 if quote == '"' and text[j] == "\\" else 1
    return j + 1


def _basic_key(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    j = i + 1
    while text[j] != '"':
        if text[j] == "\\":
            code = text[j + 1]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                j += 2
            else:
                width = 4 if code == "u" else 8
                out.append(chr(int(text[j + 2 : j + 2 + width], 16)))
                j += 2 + width
        else:
            out.append(text[j])
            j += 1
    return "".join(out), j + 1


def _table_key(text: str, i: int, closer: str) -> tuple[list[str], int]:
    parts: list[str] = []
    while True:
        while text[i] in " \t":
            i += 1
        if text[i] == '"':
            part, i = _basic_key(text, i)
        elif text[i] == "'":
            end = text.index("'", i + 1)
            part, i = text[i + 1 : end], end + 1
        else:
            match = _BARE_KEY.match(text, i)
            if match is None:
                raise ValueError("bad table key")
            part, i = match.group(), match.end()
        parts.append(part)
        while text[i] in " \t":
            i += 1
        if text.startswith(closer, i):
            return parts, i + len(closer)
        if text[i] != ".":
            raise ValueError("bad table key")
        i += 1


def table_header_hosts(text: str) -> list[str]:
    """containerd 2.x ``getSortedHosts``: ``[host.X…]`` table headers in file order.

    A header whose second key part equals the previously appended host is skipped, so
    ``[host."A"]``, ``[host."B"]``, ``[host."A".header]`` gives A, B, A. Inline tables, dotted
    keys and ``[[array tables]]`` never add a host. The text must already be valid TOML.

    Raises:
        ValueError: the scan did not understand the text.
    """
    hosts: list[str] = []
    previous, depth, line_start, i = "", 0, True, 0
    try:
        while i < len(text):
            c = text[i]
            if c == "\n":
                line_start, i = True, i + 1
            elif c in " \t\r":
                i += 1
            elif c == "#":
                newline = text.find("\n", i)
                i = len(text) if newline < 0 else newline
            elif c in "\"'":
                i, line_start = _skip_string(text, i), False
            elif c == "[" and depth == 0 and line_start:
                if text.startswith("[[", i):
                    _, i = _table_key(text, i + 2, "]]")
                else:
                    parts, i = _table_key(text, i + 1, "]")
                    if len(parts) >= 2 and parts[0] == "host" and parts[1] != previous:
                        previous = parts[1]
                        hosts.append(previous)
                line_start = False
            else:
                depth += 1 if c in "[{" else (-1 if c in "]}" else 0)
                depth, line_start, i = max(depth, 0), False, i + 1
    except (IndexError, ValueError) as exc:
        raise ValueError(f"cannot scan table headers: {exc}") from exc
    return hosts


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
