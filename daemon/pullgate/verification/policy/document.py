"""Go-lenient JSON decoding of trust policy documents (docs/notation.md §8.1, §8.2, §8.4).

notation reads its policy files with Go's ``encoding/json`` into structs, and this module
reproduces that decoding, before any validation: unknown fields are ignored, keys match field
names ASCII-case-insensitively (last occurrence wins, ``override`` maps merge), JSON ``null``
leaves a field at its zero value, invalid UTF-16 escapes become U+FFFD, only the first JSON value
of the file is read, and any type mismatch makes the document malformed.

The result is a :class:`RawDocument`, exactly as decoded; the rules of
:mod:`pullgate.verification.policy.rules` judge it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "PolicyDecodeError",
    "PolicyKind",
    "RawDocument",
    "RawStatement",
    "decode_document",
]


class PolicyKind(StrEnum):
    """Which trust policy document."""

    OCI = "oci"
    BLOB = "blob"


class PolicyDecodeError(Exception):
    """The document does not decode into notation's structs (becomes a ``malformed`` issue)."""


class _JsonObject:
    """A JSON object as its ordered (key, value) pairs."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _go_string(value: str) -> str:
    """Go replaces invalid UTF-16 escapes with U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", value)


def _reject_constant(name: str) -> Any:
    raise PolicyDecodeError(f"invalid JSON constant {name}")


def _decode_json(data: bytes) -> Any:
    """The first JSON value of ``data`` (trailing bytes are ignored, as by Go's Decoder)."""
    text = data.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip(" \t\r\n"))
    decoder = json.JSONDecoder(object_pairs_hook=_JsonObject, parse_constant=_reject_constant)
    try:
        value, _end = decoder.raw_decode(text, start)
    except (ValueError, RecursionError) as exc:
        raise PolicyDecodeError(str(exc)) from exc
    return value


def _fields(value: Any, names: Iterable[str], where: str) -> dict[str, Any]:
    """Struct decoding: pick known fields by ASCII-case-insensitive key; last one wins."""
    if value is None:
        return {}
    if not isinstance(value, _JsonObject):
        raise PolicyDecodeError(f"{where}: expected an object")
    by_fold = {name.lower(): name for name in names}
    out: dict[str, Any] = {}
    for key, item in value.pairs:
        name = by_fold.get(_ascii_lower(_go_string(key)))
        if name is None:
            continue
        if name == "override" and isinstance(item, _JsonObject):
            previous = out.get(name)
            if isinstance(previous, _JsonObject):  # Go decodes into the existing map
                item = _JsonObject(previous.pairs + item.pairs)
        out[name] = item
    return out


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PolicyDecodeError(f"{where}: expected a string")
    return _go_string(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PolicyDecodeError(f"{where}: expected an array of strings")
    return tuple(_string(item, where) for item in value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, _JsonObject):
        raise PolicyDecodeError(f"{where}: expected an object")
    return {_go_string(k): _string(v, where) for k, v in value.pairs}


def _bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise PolicyDecodeError(f"{where}: expected a boolean")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class RawStatement:
    """A statement exactly as decoded, before validation."""

    index: int
    name: str
    level: str
    override: Mapping[str, str]
    verify_timestamp: str
    scopes: tuple[str, ...]
    stores: tuple[str, ...]
    identities: tuple[str, ...]
    global_policy: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RawDocument:
    """A document exactly as decoded: its version and statements, before validation."""

    version: str
    statements: tuple[RawStatement, ...]


_STATEMENT_FIELDS = (
    "name",
    "signatureVerification",
    "trustStores",
    "trustedIdentities",
)


def decode_document(data: bytes, kind: PolicyKind) -> RawDocument:
    """Decode a trust policy document of ``kind`` the way notation's structs would.

    Raises:
        PolicyDecodeError: the bytes are not JSON or a field has the wrong JSON type.
    """
    top = _fields(_decode_json(data), ("version", "trustPolicies"), "document")
    version = _string(top.get("version"), "version")
    raw_statements = top.get("trustPolicies")
    if raw_statements is not None and not isinstance(raw_statements, list):
        raise PolicyDecodeError("trustPolicies: expected an array")
    extra = ("registryScopes",) if kind is PolicyKind.OCI else ("globalPolicy",)
    statements: list[RawStatement] = []
    for index, item in enumerate(raw_statements or ()):
        where = f"trustPolicies[{index}]"
        fields = _fields(item, _STATEMENT_FIELDS + extra, where)
        verification = _fields(
            fields.get("signatureVerification"),
            ("level", "override", "verifyTimestamp"),
            f"{where}.signatureVerification",
        )
        statements.append(
            RawStatement(
                index=index,
                name=_string(fields.get("name"), f"{where}.name"),
                level=_string(verification.get("level"), f"{where}.level"),
                override=_string_map(verification.get("override"), f"{where}.override"),
                verify_timestamp=_string(
                    verification.get("verifyTimestamp"), f"{where}.verifyTimestamp"
                ),
                scopes=_strings(fields.get("registryScopes"), f"{where}.registryScopes"),
                stores=_strings(fields.get("trustStores"), f"{where}.trustStores"),
                identities=_strings(fields.get("trustedIdentities"), f"{where}.trustedIdentities"),
                global_policy=_bool(fields.get("globalPolicy"), f"{where}.globalPolicy"),
            )
        )
    return RawDocument(version=version, statements=tuple(statements))
