"""The pieces of Go's standard library that containerd's ``hosts.toml`` reading depends on.

docs/containerd.md §1.3-§1.6 fix URLs, paths and timeouts by what Go does with them, so
pullgate reproduces exactly that much of Go: ``path.Clean`` (:func:`go_clean`), ``url.Parse``
reduced to scheme, host and decoded path (:func:`go_url`), ``time.ParseDuration``
(:func:`go_duration`), ``net.SplitHostPort`` (:func:`split_host_port`), containerd's
``docker.IsLocalhost`` (:func:`is_localhost`), and the characters Go's URL path escaping leaves
alone (:data:`PATH_SAFE`). Bad input is reported as ``ValueError`` (or None) where Go returns an
error.
"""

from __future__ import annotations

import ipaddress
import re
from types import MappingProxyType

# Characters Go's URL path escaping leaves alone (alnum and "-_.~" are always safe in quote()).
PATH_SAFE = "/!$&'()*+,;=:@[]%"


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


_DURATION_UNITS = MappingProxyType(
    {
        "ns": 1,
        "us": 1_000,
        "\u00b5s": 1_000,
        "\u03bcs": 1_000,
        "ms": 1_000_000,
        "s": 1_000_000_000,
        "m": 60_000_000_000,
        "h": 3_600_000_000_000,
    }
)
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
