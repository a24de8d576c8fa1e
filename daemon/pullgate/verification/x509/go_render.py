"""Strings rendered exactly as Go renders them, for notation-identical names and messages.

* :func:`go_quote` is Go's ``%q`` (``strconv.Quote``); :func:`go_dn_list` is ``%q`` of a
  ``[]map[string]string``.
* :func:`go_name_string` is ``pkix.Name.String()`` for a parsed certificate. Trusted-identity
  matching (docs/notation.md §8.5) parses the leaf subject *as Go renders it*, so this
  rendering decides which identities can match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from cryptography import x509

__all__ = ["go_dn_list", "go_name_string", "go_quote"]

_GO_ESCAPES = MappingProxyType(
    {
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
        "\\": "\\\\",
        '"': '\\"',
    }
)


def go_quote(text: str) -> str:
    """``text`` quoted like Go's ``%q`` (``strconv.Quote``), for notation-identical messages."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by "surrogateescape"
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_dn_list(dns: Sequence[Mapping[str, str]]) -> str:
    """A list of DN maps as Go prints ``%q`` of ``[]map[string]string`` (keys sorted)."""
    maps = (
        "map[" + " ".join(f"{go_quote(k)}:{go_quote(dn[k])}" for k in sorted(dn)) + "]"
        for dn in dns
    )
    return "[" + " ".join(maps) + "]"


# ----------------------------------------------------------------------------- pkix.Name

_GO_SHORT_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "2.5.4.6": "C",
        "2.5.4.8": "ST",
        "2.5.4.7": "L",
        "2.5.4.9": "STREET",
        "2.5.4.17": "POSTALCODE",
        "2.5.4.10": "O",
        "2.5.4.11": "OU",
        "2.5.4.3": "CN",
        "2.5.4.5": "SERIALNUMBER",
    }
)
# ToRDNSequence order; CN and SERIALNUMBER keep only their last value.
_GO_ORDER = ("2.5.4.6", "2.5.4.8", "2.5.4.7", "2.5.4.9", "2.5.4.17", "2.5.4.10", "2.5.4.11")
_GO_SINGLE = ("2.5.4.3", "2.5.4.5")
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _go_marshal(value: str | bytes) -> bytes:
    """What Go's ``asn1.Marshal`` produces for a parsed attribute value."""
    if isinstance(value, bytes):
        body, tag = b"\x00" + value, 0x03  # BIT STRING (X500UniqueIdentifier)
    else:
        body = value.encode("utf-8", "surrogatepass")
        tag = 0x13 if all(c in _PRINTABLE for c in value) else 0x0C
    return bytes([tag]) + _der_length(len(body)) + body


def _go_escape(value: str) -> str:
    out: list[str] = []
    last = len(value.encode("utf-8", "surrogatepass")) - 1
    offset = 0
    for char in value:
        escape = char in ',+"\\<>;'
        if char == " ":
            escape = offset in (0, last)
        elif char == "#":
            escape = offset == 0
        out.append("\\" + char if escape else char)
        offset += len(char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def go_name_string(name: x509.Name) -> str:
    """Render ``name`` exactly as Go's ``pkix.Name.String()`` does for a parsed certificate.

    Attributes outside Go's short-name table come first in the sequence (so last in the
    string) as ``OID=#<hex DER>``; then C, ST, L, STREET, POSTALCODE, O, OU (each type's values
    in one multi-valued RDN), the last CN and the last SERIALNUMBER. The sequence is printed in
    reverse, RDNs joined by ``,`` and multi-valued members by ``+``.
    """
    flat = [attr for rdn in name.rdns for attr in rdn]
    sequence: list[list[tuple[str, str | bytes]]] = []
    grouped: dict[str, list[str]] = {}
    for attr in flat:
        oid = attr.oid.dotted_string
        if oid in _GO_SHORT_NAMES and isinstance(attr.value, str):
            grouped.setdefault(oid, []).append(attr.value)
        else:
            sequence.append([(oid, attr.value)])
    for oid in _GO_ORDER:
        if oid in grouped:
            sequence.append([(oid, v) for v in grouped[oid]])
    for oid in _GO_SINGLE:
        if oid in grouped:
            sequence.append([(oid, grouped[oid][-1])])
    rendered: list[str] = []
    for rdn in reversed(sequence):
        parts: list[str] = []
        for oid, value in rdn:
            short = _GO_SHORT_NAMES.get(oid)
            if short is None or not isinstance(value, str):
                parts.append(f"{oid}=#{_go_marshal(value).hex()}")
            else:
                parts.append(f"{short}={_go_escape(value)}")
        rendered.append("+".join(parts))
    return ",".join(rendered)
