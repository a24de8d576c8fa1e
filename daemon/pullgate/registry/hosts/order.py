"""The endpoint order of a ``hosts.toml``: containerd 2.x's ``getSortedHosts`` table-header scan.

docs/containerd.md §1.5: containerd 2.x does not take the order of the ``[host."…"]``
entries from the decoded document but from a scan of the raw text for table headers, with the
quirks that follow from that (inline tables and dotted keys never add a host; a header repeating
a host that is not the previous one adds it again). :func:`table_header_hosts` reproduces the
scan on text that is already known to be valid TOML.
"""

from __future__ import annotations

import re
from types import MappingProxyType

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = MappingProxyType(
    {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
)


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
