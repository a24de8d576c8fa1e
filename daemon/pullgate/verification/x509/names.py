"""``x509.subject`` distinguished names, parsed like notation (docs/notation.md §8.5, rule 2).

The value is an RFC 4514 distinguished name, parsed the way go-ldap's ``ParseDN`` does (``,``/``;``
separate RDNs, ``+`` joins a multi-valued RDN, ``\\`` escapes including ``\\XX`` hex, spaces
around types and values trimmed) and then held to notation's rules: no ``=#`` anywhere, no
multi-valued RDN, no repeated attribute type, and ``C``, ``ST`` (``S`` is an alias) and ``O``
present. Attribute types are case-sensitive.

Matching against a signer lives in :mod:`pullgate.verification.x509.identity`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from pullgate.errors import PullgateError, Reason
from pullgate.verification.cache import CertMemo
from pullgate.verification.x509.go_render import go_quote

__all__ = [
    "DnProblem",
    "InvalidDistinguishedName",
    "is_subset_dn",
    "parse_dn",
    "parsed_dn",
]

_MANDATORY = ("C", "ST", "O")
_ALIASES = MappingProxyType({"S": "ST"})
_ESCAPABLE = frozenset(' "#+,;<=>\\')
_HEX = frozenset("0123456789abcdefABCDEF")
# Characters :func:`_unescape` must look at: the escape and the ones it refuses unescaped.
_SPECIAL = frozenset('\\"<>;\0')


class DnProblem(StrEnum):
    """Which rule a distinguished name broke."""

    SYNTAX = "syntax"
    HEX_VALUE = "hex-value"
    MULTI_VALUED = "multi-valued"
    DUPLICATE = "duplicate"
    MISSING_MANDATORY = "missing-mandatory"


class InvalidDistinguishedName(PullgateError):
    """A DN string notation would refuse. ``problem`` says which rule; ``attribute`` which type."""

    def __init__(self, problem: DnProblem, text: str, detail: str, attribute: str = "") -> None:
        super().__init__(Reason.CONFIG, detail)
        self.problem = problem
        self.text = text
        self.attribute = attribute


# ----------------------------------------------------------------------------- DN parsing


def _strip_spaces(raw: str) -> str:
    """Trim spaces (only U+0020) around a type or value, keeping an escaped trailing space."""
    out = raw.strip(" ")
    if out and raw.endswith(" "):
        backslashes = len(out) - len(out.rstrip("\\"))
        if backslashes % 2 == 1:
            out += " "
    return out


def _unescape(raw: str, text: str) -> str:
    """Decode one attribute type or value: trim, then resolve ``\\c`` and ``\\XX`` escapes."""
    chars = _strip_spaces(raw)
    if chars.isascii() and not _SPECIAL.intersection(chars):
        return chars  # nothing to resolve or refuse: the loop below would return it unchanged
    out = bytearray()
    i = 0
    while i < len(chars):
        char = chars[i]
        if char != "\\":
            if char in '"<>;' or char == "\0":
                raise InvalidDistinguishedName(
                    DnProblem.SYNTAX,
                    text,
                    f"distinguished name (DN) {go_quote(text)} has an unescaped {go_quote(char)} "
                    "character",
                )
            out += char.encode("utf-8", "surrogatepass")
            i += 1
            continue
        if i + 1 >= len(chars):
            raise InvalidDistinguishedName(
                DnProblem.SYNTAX,
                text,
                f"distinguished name (DN) {go_quote(text)} ends with an escape",
            )
        following = chars[i + 1]
        if following in _ESCAPABLE:
            out += following.encode("utf-8")
            i += 2
            continue
        pair = chars[i + 1 : i + 3]
        if len(pair) != 2 or not all(c in _HEX for c in pair):
            raise InvalidDistinguishedName(
                DnProblem.SYNTAX,
                text,
                f"distinguished name (DN) {go_quote(text)} has an invalid escape sequence",
            )
        out.append(int(pair, 16))
        i += 3
    return out.decode("utf-8", "surrogateescape")


def _parse_rdns(text: str) -> list[list[tuple[str, str]]]:
    """Split ``text`` into RDNs of (type, value) pairs, go-ldap style."""
    rdns: list[list[tuple[str, str]]] = []
    if not text.strip():
        return rdns
    rdn: list[tuple[str, str]] = []
    attr_type = ""
    start = 0
    escaping = False
    for i, char in enumerate(text):
        if escaping:
            escaping = False
        elif char == "\\":
            escaping = True
        elif char == "=" and not attr_type:
            attr_type = _unescape(text[start:i], text)
            start = i + 1
        elif char in ",+;":
            if not attr_type:
                raise InvalidDistinguishedName(
                    DnProblem.SYNTAX,
                    text,
                    f"distinguished name (DN) {go_quote(text)} has an incomplete type, value pair",
                )
            rdn.append((attr_type, _unescape(text[start:i], text)))
            attr_type = ""
            start = i + 1
            if char != "+":
                rdns.append(rdn)
                rdn = []
    if not attr_type:
        raise InvalidDistinguishedName(
            DnProblem.SYNTAX,
            text,
            f"distinguished name (DN) {go_quote(text)} ended with an incomplete type, value pair",
        )
    rdn.append((attr_type, _unescape(text[start:], text)))
    rdns.append(rdn)
    return rdns


def parse_dn(text: str) -> dict[str, str]:
    """Parse an ``x509.subject`` value into an attribute map, enforcing notation's DN rules.

    Args:
        text: the distinguished name (the part after ``x509.subject:``).

    Returns:
        Attribute type (``S`` folded into ``ST``) to unescaped value.

    Raises:
        InvalidDistinguishedName: the text is not a DN notation accepts.
    """
    return dict(parsed_dn(text))


def parsed_dn(text: str, memo: CertMemo | None = None) -> Mapping[str, str]:
    """:func:`parse_dn`, read-only; with a ``memo``, memoised by the text (failures are always
    recomputed)."""
    known = memo.dns.get(text) if memo is not None else None
    if known is None:
        known = MappingProxyType(_parse_dn_uncached(text))
        if memo is not None:
            memo.dns.put(text, known)
    return known


def _parse_dn_uncached(text: str) -> dict[str, str]:
    if "=#" in text:
        raise InvalidDistinguishedName(
            DnProblem.HEX_VALUE,
            text,
            f"unsupported distinguished name (DN) {go_quote(text)}: notation does not support "
            'x509.subject identities containing "=#"',
        )
    attributes: dict[str, str] = {}
    for rdn in _parse_rdns(text):
        if len(rdn) > 1:
            raise InvalidDistinguishedName(
                DnProblem.MULTI_VALUED,
                text,
                f"distinguished name (DN) {go_quote(text)} has multi-valued RDN attributes, remove "
                "multi-valued RDN attributes as they are not supported",
            )
        attr_type, value = rdn[0]
        attr_type = _ALIASES.get(attr_type, attr_type)
        # As in notation, an earlier *empty* value does not count as "already present".
        if attributes.get(attr_type, ""):
            raise InvalidDistinguishedName(
                DnProblem.DUPLICATE,
                text,
                f"distinguished name (DN) {go_quote(text)} has duplicate RDN attribute for "
                f"{go_quote(attr_type)}, DN can only have unique RDN attributes",
                attribute=attr_type,
            )
        attributes[attr_type] = value
    for mandatory in _MANDATORY:
        if not attributes.get(mandatory, ""):
            raise InvalidDistinguishedName(
                DnProblem.MISSING_MANDATORY,
                text,
                f"distinguished name (DN) {go_quote(text)} has no mandatory RDN attribute for "
                f"{go_quote(mandatory)}, it must contain 'C', 'ST' or 'S', and 'O' RDN attributes "
                "at "
                "a minimum",
                attribute=mandatory,
            )
    return attributes


def is_subset_dn(subset: Mapping[str, str], superset: Mapping[str, str]) -> bool:
    """True when every attribute of ``subset`` has the same value in ``superset``.

    A missing attribute reads as the empty string, exactly like a Go map lookup.
    """
    return all(superset.get(key, "") == value for key, value in subset.items())
