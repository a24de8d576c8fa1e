"""Image indexes decoded the way containerd's Go code decodes them (``encoding/json``).

containerd reads an index with ``json.Unmarshal`` into ``ocispec.Index`` (and, to refuse
documents of the wrong kind, into an ``unknownDocument``): https://pkg.go.dev/encoding/json.
Whatever pullgate selects from an index must come from the same reading, so this module
reproduces Go's rules where they are certain and refuses the rest:

* **Keys** match a struct field exactly or case-insensitively; ASCII letters fold, and so do
  U+017F (long s ≡ ``s``) and U+212A (Kelvin sign ≡ ``k``), in every Go release containerd is
  built with. Unknown keys are ignored, whatever their value.
* **Refused** (:class:`~pullgate.errors.AmbiguousDocument`): two keys of one object that
  land on the same field (Go keeps the last scalar but *merges* repeated objects and maps and
  reuses slice elements, so a duplicate is where a second reader most easily disagrees), and
  a key that would reach a field only if U+0131 (dotless i) or U+0130 (dotted I) folded to
  ``i``: Go's rune tables give both a case mapping to ASCII, the containerd builds tested
  (Go 1.19 and 1.26) do not match them, and pullgate does not guess for other builds.
* **null** is the zero value: ``""`` for a string, ``0`` for a number, no platform, no
  annotations, no manifests (with no duplicate key, "leave unchanged" is the zero value).
* **Types**: a value Go cannot store in its field fails the whole ``Unmarshal`` (containerd
  then pulls nothing), so it is :class:`~pullgate.errors.MalformedInput` here.
* **Strings**: invalid UTF-8 is refused (Go would substitute U+FFFD; refusing is safe); an
  escaped lone surrogate becomes U+FFFD, as Go decodes it.
* containerd's ``validateMediaType``: an index carrying ``config`` (even ``null``),
  non-empty ``layers`` or ``fsLayers``, or a manifest ``mediaType`` is not pulled.

Parsing is Python's :mod:`json` with an ``object_pairs_hook`` (every key and its order kept);
no hand-written JSON parser.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pullgate.errors import AmbiguousDocument, MalformedInput

__all__ = [
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "GoDescriptor",
    "GoPlatform",
    "decode_index",
    "decode_manifest_config",
    "go_field",
]

INDEX_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
_INT64 = (-(2**63), 2**63 - 1)
_SURROGATE = re.compile("[\ud800-\udfff]")
_STABLE_FOLDS = MappingProxyType({"\u017f": "s", "\u212a": "k"})  # folded by every Go release
_UNSTABLE_FOLDS = MappingProxyType(
    {"\u0131": "i", "\u0130": "i"}
)  # folded by some Go releases only


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, in document order, duplicates kept."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GoPlatform:
    """``ocispec.Platform`` as Go decoded it (nothing normalised)."""

    os: str = ""
    architecture: str = ""
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GoDescriptor:
    """``ocispec.Descriptor`` as Go decoded it (``platform`` None when absent or null)."""

    media_type: str = ""
    digest: str = ""
    size: int = 0
    artifact_type: str = ""
    annotations: Mapping[str, str] | None = None
    platform: GoPlatform | None = None


def go_field(key: str, fields: frozenset[str]) -> str | None:
    """The field of ``fields`` (Go json names) that ``key`` sets in Go, or None (ignored).

    Raises:
        AmbiguousDocument: ``key`` reaches a field only through a version-dependent fold.
    """
    if key in fields:
        return key
    unstable = False
    folded = []
    for char in key:
        if char.isascii():
            folded.append(char.lower())
        elif char in _STABLE_FOLDS:
            folded.append(_STABLE_FOLDS[char])
        elif char in _UNSTABLE_FOLDS:
            unstable = True
            folded.append(_UNSTABLE_FOLDS[char])
        else:
            return None
    text = "".join(folded)
    for name in fields:
        if name.lower() == text:
            if unstable:
                raise AmbiguousDocument(
                    f"key {key!r} reaches {name!r} only through a dotless/dotted-I fold"
                )
            return name
    return None


def _fields(obj: _Pairs, fields: frozenset[str], where: str) -> dict[str, Any]:
    """Go's assignment of ``obj``'s keys to ``fields``; a field set twice is refused."""
    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in obj:
        name = go_field(_fix(key), fields)
        if name is None:
            continue
        if name in seen:
            raise AmbiguousDocument(
                f"{where}: keys {seen[name]!r} and {key!r} both set {name!r} "
                "(Go would keep or merge the last one)"
            )
        seen[name] = key
        out[name] = value
    return out


def _fix(text: str) -> str:
    """A decoded JSON string as Go holds it: escaped lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedInput(f"{where} is not a string")
    return _fix(value)


def _int64(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedInput(f"{where} is not an integer")
    if not _INT64[0] <= value <= _INT64[1]:
        raise MalformedInput(f"{where} does not fit a 64-bit integer")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or isinstance(value, _Pairs):
        raise MalformedInput(f"{where} is not an array")
    return tuple(_string(v, where) for v in value)


def _string_map(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, _Pairs):
        raise MalformedInput(f"{where} is not an object")
    return {_fix(k): _string(v, where) for k, v in value}  # a Go map: exact keys, last wins


def _array(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or isinstance(value, _Pairs):
        raise MalformedInput(f"{where} is not an array")
    return value


def _object(value: Any, where: str) -> _Pairs:
    if value is None:
        return _Pairs()  # null into a struct leaves its zero value
    if not isinstance(value, _Pairs):
        raise MalformedInput(f"{where} is not an object")
    return value


_PLATFORM = frozenset({"architecture", "os", "os.version", "os.features", "variant"})
_DESCRIPTOR = frozenset(
    {"mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType"}
)
_INDEX = frozenset(
    {"schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations"}
    | {"config", "layers", "fsLayers"}  # containerd's unknownDocument (validateMediaType)
)
_MANIFEST = frozenset(
    {"schemaVersion", "mediaType", "artifactType", "config", "layers", "subject", "annotations"}
    | {"manifests", "fsLayers"}  # containerd's unknownDocument (validateMediaType)
)


def _platform(value: Any, where: str) -> GoPlatform | None:
    if value is None:
        return None
    got = _fields(_object(value, where), _PLATFORM, where)
    return GoPlatform(
        os=_string(got.get("os"), f"{where}.os"),
        architecture=_string(got.get("architecture"), f"{where}.architecture"),
        variant=_string(got.get("variant"), f"{where}.variant"),
        os_version=_string(got.get("os.version"), f"{where}.os.version"),
        os_features=_strings(got.get("os.features"), f"{where}.os.features"),
    )


def _descriptor(value: Any, where: str) -> GoDescriptor:
    got = _fields(_object(value, where), _DESCRIPTOR, where)
    _strings(got.get("urls"), f"{where}.urls")
    data = got.get("data")
    if data is not None:
        try:
            base64.b64decode(_string(data, f"{where}.data"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedInput(f"{where}.data is not base64") from exc
    return GoDescriptor(
        media_type=_string(got.get("mediaType"), f"{where}.mediaType"),
        digest=_string(got.get("digest"), f"{where}.digest"),
        size=_int64(got.get("size"), f"{where}.size"),
        artifact_type=_string(got.get("artifactType"), f"{where}.artifactType"),
        annotations=_string_map(got.get("annotations"), f"{where}.annotations"),
        platform=_platform(got.get("platform"), f"{where}.platform"),
    )


def _refuse_constant(name: str) -> Any:
    raise MalformedInput(f"{name} is not JSON")


def _parse(data: bytes, what: str) -> Any:
    try:
        text = bytes(data).decode("utf-8")
        return json.loads(text, object_pairs_hook=_Pairs, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedInput(f"{what} is not valid UTF-8 JSON") from exc


def decode_index(data: bytes, *, what: str = "image index") -> tuple[GoDescriptor, ...]:
    """The ``manifests`` of index bytes, as containerd reads them.

    Raises:
        MalformedInput: not JSON, a type Go rejects, or a document containerd refuses as an
            index.
        AmbiguousDocument: a field set twice, or through a version-dependent key fold.
    """
    doc = _parse(data, what)
    if not isinstance(doc, _Pairs):
        raise MalformedInput(f"{what} is not a JSON object")
    got = _fields(doc, _INDEX, what)
    _int64(got.get("schemaVersion"), f"{what}.schemaVersion")
    _string(got.get("artifactType"), f"{what}.artifactType")
    _string_map(got.get("annotations"), f"{what}.annotations")
    if got.get("subject") is not None:
        _descriptor(got["subject"], f"{what}.subject")
    media_type = _string(got.get("mediaType"), f"{what}.mediaType")
    if (
        "config" in got
        or _array(got.get("layers"), f"{what}.layers")
        or _array(got.get("fsLayers"), f"{what}.fsLayers")
        or media_type in MANIFEST_MEDIA_TYPES
    ):
        raise MalformedInput(f"{what} is a manifest, not an index (containerd refuses it)")
    manifests = _array(got.get("manifests"), f"{what}.manifests")
    return tuple(_descriptor(m, f"{what}.manifests[{i}]") for i, m in enumerate(manifests))


def decode_manifest_config(data: bytes, *, what: str = "image manifest") -> GoDescriptor:
    """The ``config`` descriptor of image manifest bytes, as containerd reads it (what its
    image id, the config digest, comes from).

    Raises:
        MalformedInput: not JSON, a type Go rejects, or a document containerd refuses as a
            manifest.
        AmbiguousDocument: a field set twice, or through a version-dependent key fold.
    """
    doc = _parse(data, what)
    if not isinstance(doc, _Pairs):
        raise MalformedInput(f"{what} is not a JSON object")
    got = _fields(doc, _MANIFEST, what)
    _int64(got.get("schemaVersion"), f"{what}.schemaVersion")
    _string(got.get("artifactType"), f"{what}.artifactType")
    _string_map(got.get("annotations"), f"{what}.annotations")
    if got.get("subject") is not None:
        _descriptor(got["subject"], f"{what}.subject")
    for n, layer in enumerate(_array(got.get("layers"), f"{what}.layers")):
        _descriptor(layer, f"{what}.layers[{n}]")
    if (
        _array(got.get("manifests"), f"{what}.manifests")
        or _array(got.get("fsLayers"), f"{what}.fsLayers")
        or _string(got.get("mediaType"), f"{what}.mediaType") in INDEX_MEDIA_TYPES
    ):
        raise MalformedInput(f"{what} is an index, not a manifest (containerd refuses it)")
    return _descriptor(got.get("config"), f"{what}.config")
