"""Platforms: the node's (or the requested) platform, parsed and normalised, and index entries.

* :func:`parse_platform` / :func:`host_platform`: ``os/arch[/variant]`` text or the kernel's
  machine name, normalised as containerd 2's ``platforms.Normalize`` does (os lower-cased,
  ``macos`` → ``darwin``; ``x86_64`` → ``amd64``; ``aarch64`` → ``arm64`` with ``v8`` dropped;
  ``armhf`` → ``arm/v7``; ``arm`` → ``arm/v7``; bare variant numbers get a ``v``).
* :func:`preference`: the ``platforms.Only`` order pullgate reports for a host (major variants).
* :func:`index_entries`: an index's entries as containerd's Go code reads them
  (:mod:`pullgate.oci.gojson`). Which entry containerd picks is :mod:`pullgate.decision.matcher`.
"""

from __future__ import annotations

import platform as _stdlib_platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pullgate.common.descriptor import Descriptor, is_digest
from pullgate.errors import MalformedInput
from pullgate.oci.gojson import GoPlatform, decode_index

__all__ = [
    "IndexEntry",
    "Platform",
    "host_platform",
    "index_entries",
    "normalise",
    "parse_platform",
    "preference",
]

_COMPONENT = re.compile(r"^[a-z0-9][a-z0-9_.+-]{0,63}$")
MAX_VARIANT_LEVEL = 64  # no CPU variant level (amd64 v1-v4, arm v5-v8, arm64 v8/v9) comes near
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
    level = variant.removeprefix("v")
    if level.isascii() and level.isdigit() and int(level) > MAX_VARIANT_LEVEL:
        # containerd's matcher walks every level below the asked one (amd64/vN accepts vN-1 …
        # v1): an absurd level would cost time and memory per decision and names no real CPU.
        raise MalformedInput(f"invalid platform {text!r}: variant level above {MAX_VARIANT_LEVEL}")
    return normalise(Platform(os=parts[0], architecture=parts[1], variant=variant))


_MACHINES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
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
)


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
    """One entry of an index: its descriptor and its platform exactly as Go decoded it (None
    when absent or null; matching normalises it, see :mod:`pullgate.decision.matcher`)."""

    descriptor: Descriptor
    platform: GoPlatform | None


def index_entries(index_json: bytes) -> tuple[IndexEntry, ...]:
    """The entries of an image index, read as containerd reads them (:mod:`pullgate.oci.gojson`).

    Raises:
        MalformedInput: not an index containerd would read, or an entry that is not a well-formed
            descriptor (media type, digest, size).
        AmbiguousDocument: a document pullgate cannot be sure to read as containerd does.
    """
    out: list[IndexEntry] = []
    for n, got in enumerate(decode_index(bytes(index_json))):
        if not got.media_type:
            raise MalformedInput(f"image index entry {n} has no mediaType")
        if not is_digest(got.digest):
            raise MalformedInput(f"image index entry {n} has an invalid digest {got.digest!r}")
        if got.size < 0:
            raise MalformedInput(f"image index entry {n} has a negative size")
        descriptor = Descriptor(
            media_type=got.media_type,
            digest=got.digest,
            size=got.size,
            artifact_type=got.artifact_type or None,
            annotations=dict(got.annotations or {}),
        )
        out.append(IndexEntry(descriptor=descriptor, platform=got.platform))
    return tuple(out)
