"""How one fuzz input encodes several registry answers.

An input is a list of fields separated by NUL bytes (no header and no JSON text contains a raw
NUL; only the last field can, which is where binary envelopes go). A field that stands for an
HTTP answer is ``<status>\\n<Name: value>\\n…\\n\\n<body>``, like an HTTP/1.1 response without
the version: a status that is not 100-599 reads as 200, header lines without a colon are
skipped, and the body is everything after the first empty line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import urllib3

SEP = b"\x00"


def split_fields(data: bytes, count: int) -> list[bytes]:
    """The first ``count`` fields of ``data`` (missing ones are empty)."""
    parts = data.split(SEP, count - 1)
    return parts + [b""] * (count - len(parts))


def join_fields(fields: Iterable[bytes]) -> bytes:
    """The input whose fields are ``fields`` (each must be NUL-free but the last)."""
    return SEP.join(fields)


def header_text(raw: bytes) -> str:
    """Bytes of a header value as Python's HTTP client hands them over (ISO-8859-1)."""
    return raw.decode("latin-1")


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted HTTP answer."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""

    def header_dict(self) -> urllib3.HTTPHeaderDict:
        """The headers as the transport exposes them (case-insensitive, repeatable)."""
        out = urllib3.HTTPHeaderDict()
        for name, value in self.headers:
            out.add(name, value)
        return out

    def header(self, name: str) -> str | None:
        """The first value of ``name`` (case-insensitive), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def encode(self) -> bytes:
        """This answer as a field (the inverse of :func:`parse_reply`)."""
        lines = [str(self.status).encode()]
        lines += [f"{k}: {v}".encode("latin-1") for k, v in self.headers]
        return b"\n".join(lines) + b"\n\n" + self.body


def parse_reply(raw: bytes) -> Reply:
    """Decode one field as an HTTP answer (never raises)."""
    head, _, body = raw.partition(b"\n\n")
    first, *lines = head.split(b"\n")
    text = first.strip()
    status = int(text) if text.isdigit() and len(text) == 3 else 200
    if not 100 <= status <= 599:
        status = 200
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, colon, value = line.partition(b":")
        name = name.strip()
        if colon and name and not any(c in name for c in b" \t\r"):
            headers.append((header_text(name), header_text(value.strip(b" \t\r"))))
    return Reply(status=status, headers=tuple(headers), body=body)


def reply(
    body: bytes = b"", status: int = 200, content_type: str | None = None, **headers: str
) -> Reply:
    """A convenience constructor for seeds and tests (``Docker_Content_Digest`` → dashes)."""
    pairs = [(k.replace("_", "-"), v) for k, v in headers.items()]
    if content_type is not None:
        pairs.insert(0, ("Content-Type", content_type))
    return Reply(status=status, headers=tuple(pairs), body=body)
