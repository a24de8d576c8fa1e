"""Trusted identities: ``x509.subject`` distinguished names, parsed and matched like notation.

Implements notary-verification.md §8.5 (Notary Project trust-store / trust-policy
specification, "Trusted Identities Constraints"):

1. A policy identity is ``<prefix>:<value>``; only the ``x509.subject`` prefix is understood, the
   others are ignored at verification time. ``*`` alone matches any signer.
2. The value is an RFC 4514 distinguished name, parsed the way go-ldap's ``ParseDN`` does
   (``,``/``;`` separate RDNs, ``+`` joins a multi-valued RDN, ``\\`` escapes including ``\\XX``
   hex, spaces around types and values trimmed) and then held to notation's rules: no ``=#``
   anywhere, no multi-valued RDN, no repeated attribute type, and ``C``, ``ST`` (``S`` is an
   alias) and ``O`` present. Attribute types are case-sensitive.
3. The certificate side is the **leaf** subject rendered by Go's ``pkix.Name.String()``
   (:func:`go_name_string`) and parsed by the same rules, so a leaf with two ``OU`` values or
   with any attribute outside Go's short-name table can only be matched by ``*``.
4. A signer matches when some configured identity's attribute map is a subset of the leaf's
   (exact, case-sensitive values after unescaping).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType

from cryptography import x509

from pullgate.errors import PullgateError, Reason, VerificationFailed
from pullgate.verification.cache import BoundedMemo, memo
from pullgate.verification.certs import certificate_digest

WILDCARD = "*"
X509_SUBJECT = "x509.subject"

_MANDATORY = ("C", "ST", "O")
_ALIASES = {"S": "ST"}
_ESCAPABLE = frozenset(' "#+,;<=>\\')
_HEX = frozenset("0123456789abcdefABCDEF")
# Characters :func:`_unescape` must look at: the escape and the ones it refuses unescaped.
_SPECIAL = frozenset('\\"<>;\0')

# DN text -> parsed attribute map, for texts that parsed (failures are always recomputed).
_PARSED_DNS: BoundedMemo[str, Mapping[str, str]] = memo("parsed distinguished names", 256)
# Certificate DER SHA-256 -> its subject rendered by Go's ``pkix.Name.String()``.
_SUBJECTS: BoundedMemo[bytes, str] = memo("rendered certificate subjects", 256)


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


_GO_ESCAPES = {
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
    return dict(_parsed_dn(text))


def _parsed_dn(text: str) -> Mapping[str, str]:
    """:func:`parse_dn`, memoised and read-only."""
    known = _PARSED_DNS.get(text)
    if known is None:
        known = MappingProxyType(_parse_dn_uncached(text))
        _PARSED_DNS.put(text, known)
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


# ----------------------------------------------------------------------------- Go rendering

_GO_SHORT_NAMES: Mapping[str, str] = {
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


def certificate_subject(cert: x509.Certificate) -> str:
    """``go_name_string(cert.subject)``, memoised by the certificate's DER digest."""
    digest = certificate_digest(cert)
    known = _SUBJECTS.get(digest)
    if known is None:
        known = go_name_string(cert.subject)
        _SUBJECTS.put(digest, known)
    return known


# ----------------------------------------------------------------------------- matching


def x509_identities(identities: Sequence[str]) -> list[str]:
    """The DN values of the ``x509.subject:`` identities, in order."""
    values: list[str] = []
    for identity in identities:
        prefix, sep, value = identity.partition(":")
        if sep and prefix == X509_SUBJECT:
            values.append(value)
    return values


def match_trusted_identities(
    leaf: x509.Certificate, identities: Sequence[str], statement_name: str
) -> None:
    """Check the signing (leaf) certificate against a statement's ``trustedIdentities``.

    Args:
        leaf: the first certificate of the signature's chain.
        identities: the statement's ``trustedIdentities`` (already validated).
        statement_name: for error messages.

    Raises:
        VerificationFailed: ``Reason.IDENTITY_MISMATCH`` when no ``x509.subject`` identity is
            configured, a configured one does not parse, the leaf subject does not parse under
            notation's rules, or no identity is a subset of the leaf subject.
    """
    if WILDCARD in identities:
        return
    configured: list[Mapping[str, str]] = []
    for value in x509_identities(identities):
        try:
            configured.append(_parsed_dn(value))
        except InvalidDistinguishedName as exc:
            raise VerificationFailed(
                Reason.IDENTITY_MISMATCH,
                f"trust policy statement {go_quote(statement_name)} has an invalid identity: {exc}",
            ) from exc
    if not configured:
        raise VerificationFailed(
            Reason.IDENTITY_MISMATCH,
            "no x509 trusted identities are configured in the trust policy "
            f"{go_quote(statement_name)}",
        )
    subject = certificate_subject(leaf)
    try:
        leaf_dn = _parsed_dn(subject)
    except InvalidDistinguishedName as exc:
        raise VerificationFailed(
            Reason.IDENTITY_MISMATCH,
            "error while parsing the certificate subject from the digital signature. "
            f"error : {exc}",
        ) from exc
    if not any(is_subset_dn(identity, leaf_dn) for identity in configured):
        raise VerificationFailed(
            Reason.IDENTITY_MISMATCH,
            f"signing certificate from the digital signature does not match the X.509 trusted "
            f"identities {go_dn_list(configured)} defined in the trust policy "
            f"{go_quote(statement_name)}",
        )
