"""Platforms and manifest selection as containerd does it (containerd ``platforms`` package).

Implements the behaviour of containerd's default platform handling for pulls
(``platforms.Normalize``, ``platforms.Only`` and ``images.LimitManifests(…, 1)``):

* **Normalisation**: os lower-cased (``macos`` → ``darwin``); ``x86_64``/``x86-64`` →
  ``amd64`` (variant ``v1`` dropped); ``i386`` → ``386``; ``aarch64`` → ``arm64`` with variant
  ``8``/``v8``/``v8.0`` dropped (``arm64`` *is* v8: ``linux/arm64/v8`` and ``linux/arm64`` are the
  same platform) and ``9``/``v9.0`` → ``v9``; ``armhf`` → ``arm/v7``, ``armel`` → ``arm/v6``;
  ``arm`` without variant → ``arm/v7``, bare numbers get a ``v`` prefix.
* **The Only matcher**: an ordered preference list, exact match on the normalised triple:

  ==================  =================================================================
  host                accepts, most preferred first
  ==================  =================================================================
  ``arm/vN``          ``arm/vN``, ``arm/vN-1``, … ``arm/v5`` (v7 → v6 → v5)
  ``arm64``           ``arm64``, then 32-bit ``arm/v8``, ``arm/v7``, ``arm/v6``, ``arm/v5``
  ``arm64/v9``        ``arm64/v9``, ``arm64``, then ``arm/v8`` … ``arm/v5``
  ``amd64/vN``        ``amd64/vN`` … ``amd64/v2``, ``amd64``, then ``386``
  anything else       itself only
  ==================  =================================================================

  (containerd also walks arm64 minor variants ``v8.x``/``v9.x``; pullgate keeps the major
  variants only.)
* **Selection**: every manifest matching the node is a candidate; the most preferred platform
  wins, ties go to the earliest entry in the index. Entries without a ``platform`` object,
  attestation manifests (``vnd.docker.reference.type = attestation-manifest``, ``unknown/unknown``)
  and nested indexes are ignored.
"""

from __future__ import annotations

import json
import platform as _stdlib_platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pullgate.descriptor import Descriptor
from pullgate.errors import MalformedInput

__all__ = [
    "IndexEntry",
    "Platform",
    "host_platform",
    "index_entries",
    "normalise",
    "parse_platform",
    "preference",
    "select_entry",
    "select_manifest",
]

_COMPONENT = re.compile(r"^[a-z0-9][a-z0-9_.+-]{0,63}$")
_MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
_REFERENCE_TYPE = "vnd.docker.reference.type"
_ATTESTATION = "attestation-manifest"
_ARM_LOWEST = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """An OCI platform (``os``/``architecture``/``variant``; empty variant = none)."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


def _normalise_arch(arch: str, variant: str) -> tuple[str, str]:
    if arch in {"i386", "i686"}:
        return "386", ""
    if arch in {"x86_64", "x86-64", "amd64"}:
        return "amd64", "" if variant in {"", "v1", "1"} else _prefixed(variant)
    if arch in {"aarch64", "arm64"}:
        if variant in {"", "8", "v8", "v8.0"}:
            return "arm64", ""
        if variant in {"9", "9.0", "v9.0", "v9"}:
            return "arm64", "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        return "arm", "v7" if variant in {"", "7"} else _prefixed(variant)
    return arch, variant


def _prefixed(variant: str) -> str:
    return f"v{variant}" if variant.isdigit() else variant


def normalise(value: Platform) -> Platform:
    """containerd's ``platforms.Normalize``: canonical os, architecture and variant."""
    os_name = value.os.lower()
    if os_name == "macos":
        os_name = "darwin"
    arch, variant = _normalise_arch(value.architecture.lower(), value.variant.lower())
    return Platform(os=os_name, architecture=arch, variant=variant)


def parse_platform(text: str) -> Platform:
    """Parse ``os/arch[/variant]`` and normalise it.

    Raises:
        MalformedInput: not two or three well-formed, non-empty components.
    """
    untrusted: object = text
    if not isinstance(untrusted, str) or not text or len(text) > 200:
        raise MalformedInput("platform must be a non-empty os/arch[/variant] string")
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise MalformedInput(f"invalid platform {text!r}: expected os/arch[/variant]")
    variant = parts[2] if len(parts) == 3 else ""
    return normalise(Platform(os=parts[0], architecture=parts[1], variant=variant))


_MACHINES: Mapping[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "armv5tejl": ("arm", "v5"),
}


def host_platform(machine: str | None = None) -> Platform:
    """The platform of this node: ``linux`` plus the normalised ``platform.machine()``.

    Args:
        machine: the kernel's machine name (default: this host's); tests pass one.
    """
    name = (machine if machine is not None else _stdlib_platform.machine()).lower()
    arch, variant = _MACHINES.get(name, (name or "unknown", ""))
    return normalise(Platform(os="linux", architecture=arch, variant=variant))


def preference(value: Platform) -> tuple[Platform, ...]:
    """containerd's ``platforms.Only`` order for ``value``: acceptable platforms, best first."""
    host = normalise(value)

    def with_arch(arch: str, variant: str) -> Platform:
        return Platform(os=host.os, architecture=arch, variant=variant)

    def arm_down(start: int) -> list[Platform]:
        return [with_arch("arm", f"v{n}") for n in range(start, _ARM_LOWEST - 1, -1)]

    if host.architecture == "arm" and re.fullmatch(r"v\d+", host.variant):
        return (host, *arm_down(int(host.variant[1:]))[1:])
    if host.architecture == "arm64" and host.variant in {"", "v9"}:
        arm64 = [host] if not host.variant else [host, with_arch("arm64", "")]
        return (*arm64, *arm_down(8))
    if host.architecture == "amd64":
        level = int(host.variant[1:]) if re.fullmatch(r"v\d+", host.variant) else 1
        amd64 = [with_arch("amd64", f"v{n}") for n in range(level, 1, -1)]
        return (*amd64, with_arch("amd64", ""), with_arch("386", ""))
    return (host,)


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexEntry:
    """One manifest of an index with its (normalised) platform, or None when it has none."""

    descriptor: Descriptor
    platform: Platform | None


def _entry_platform(obj: Mapping[str, Any]) -> Platform | None:
    raw = obj.get("platform")
    if not isinstance(raw, dict):
        return None
    os_name, arch = raw.get("os"), raw.get("architecture")
    variant = raw.get("variant", "")
    if not (isinstance(os_name, str) and isinstance(arch, str) and isinstance(variant, str)):
        return None
    if not os_name or not arch:
        return None
    return normalise(Platform(os=os_name, architecture=arch, variant=variant or ""))


def index_entries(index_json: bytes | Mapping[str, Any]) -> tuple[IndexEntry, ...]:
    """Parse an image index's ``manifests`` list (every descriptor must be well formed).

    Raises:
        MalformedInput: not a JSON object with a ``manifests`` array of descriptors.
    """
    doc: object = index_json
    if isinstance(index_json, bytes | bytearray):
        try:
            doc = json.loads(index_json)
        except (ValueError, RecursionError) as exc:
            raise MalformedInput("image index is not valid JSON") from exc
    if not isinstance(doc, Mapping):
        raise MalformedInput("image index is not a JSON object")
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise MalformedInput("image index has no 'manifests' array")
    out: list[IndexEntry] = []
    for obj in manifests:
        descriptor = Descriptor.from_json(obj)  # raises MalformedInput
        out.append(IndexEntry(descriptor=descriptor, platform=_entry_platform(obj)))
    return tuple(out)


def _selectable(entry: IndexEntry) -> bool:
    if entry.platform is None or entry.descriptor.media_type not in _MANIFEST_TYPES:
        return False
    if entry.descriptor.annotations.get(_REFERENCE_TYPE) == _ATTESTATION:
        return False
    return entry.platform.os != "unknown" and entry.platform.architecture != "unknown"


def select_entry(entries: Sequence[IndexEntry], platform: Platform) -> IndexEntry | None:
    """The entry containerd would pull for ``platform`` (best preference, then index order)."""
    order = {p: rank for rank, p in enumerate(preference(platform))}
    best: tuple[int, IndexEntry] | None = None
    for entry in entries:
        if entry.platform is None or not _selectable(entry):
            continue
        rank = order.get(entry.platform)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, entry)
    return best[1] if best is not None else None


def select_manifest(index_json: bytes | Mapping[str, Any], platform: Platform) -> Descriptor | None:
    """The manifest descriptor containerd would pick from ``index_json`` for ``platform``.

    Raises:
        MalformedInput: the index is not a well-formed image index.
    """
    entry = select_entry(index_entries(index_json), platform)
    return entry.descriptor if entry is not None else None
