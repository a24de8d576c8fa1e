"""Which manifest of an index containerd pulls and runs, for each containerd pullgate fronts.

The reading of the index is Go's (:mod:`pullgate.oci.gojson`); the choice is containerd's
``platforms`` matcher and its image walk (https://github.com/containerd/platforms,
``core/images`` ``Manifest`` / ``LimitManifests``):

* **Candidates** are the entries whose platform the node's matcher accepts, plus entries with
  no platform at all. Annotations (``vnd.docker.reference.type = attestation-manifest``
  included) and media types play no part in matching.
* **Order**: stable sort by the best-preferred platform each candidate matches (the
  ``platforms.Only`` vector: ``amd64/vN`` … ``amd64``, ``386``; ``arm/vN`` … ``arm/v5``;
  ``arm64`` then 32-bit arm), platform-less entries last; the first one wins.
* A winning nested index (OCI index or docker manifest list) is walked the same way; a
  winning entry of any other media type makes containerd fail the pull (nothing runs).

containerd releases differ in normalisation and matching; pullgate computes the choice of each
:class:`Profile` and treats every distinct winner as a manifest containerd may run:

===========  =====================================================================
``1.6``      entry ``os.features`` ignored; ``arm64`` variants ``8``/``v8`` only are v8
``2``        an entry listing ``os.features`` the node lacks does not match;
             ``arm64`` ``v8.0`` is v8, ``9``/``9.0``/``v9.0`` is ``v9``, ``v8.x``/``v9.x``
             minor variants rank between
===========  =====================================================================

In both, an empty ``os`` is ``linux`` (containerd's own ``GOOS``), case is ignored, ``x86_64``
/ ``x86-64`` are ``amd64`` (``v1`` dropped), ``i386`` is ``386`` (``i686`` is not), ``armhf`` is
``arm/v7``, ``armel`` ``arm/v6``, ``arm`` without variant or ``7`` is ``arm/v7``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from pullgate.decision.platform import IndexEntry, Platform
from pullgate.errors import MalformedInput
from pullgate.oci.gojson import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, GoPlatform

__all__ = ["MAX_DEPTH", "Profile", "containerd_picks", "pick", "ranked", "vector"]

MAX_DEPTH = 4  # nested indexes walked below the top-level one


class Profile(enum.Enum):
    """A containerd release line whose platform choice pullgate reproduces."""

    V16 = "1.6"
    V2 = "2"


@dataclass(frozen=True, slots=True)
class _Norm:
    os: str
    architecture: str
    variant: str
    features: tuple[str, ...] = ()


def _arch(arch: str, variant: str, profile: Profile) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in {"x86_64", "x86-64", "amd64"}:
        return "amd64", "" if variant == "v1" else variant
    if arch in {"aarch64", "arm64"}:
        if variant in {"8", "v8"} or (profile is Profile.V2 and variant == "v8.0"):
            return "arm64", ""
        if profile is Profile.V2 and variant in {"9", "9.0", "v9.0"}:
            return "arm64", "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in {"", "7"}:
            return "arm", "v7"
        return "arm", f"v{variant}" if variant in {"5", "6", "8"} else variant
    return arch, variant


def _normalise(
    os: str, arch: str, variant: str, features: Sequence[str], profile: Profile
) -> _Norm:
    os_name = os.lower() if os else "linux"
    os_name = "darwin" if os_name == "macos" else os_name
    arch, variant = _arch(arch, variant, profile)
    kept = tuple(sorted(set(features))) if profile is Profile.V2 else ()
    return _Norm(os_name, arch, variant, kept)


def _entry_norm(platform: GoPlatform, profile: Profile) -> _Norm:
    return _normalise(
        platform.os, platform.architecture, platform.variant, platform.os_features, profile
    )


def _number(variant: str) -> int | None:
    text = variant[1:] if variant.startswith("v") else variant
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 2 else None


_ARM64_V2 = MappingProxyType(
    {
        "v8": ((8, 0),),
        **{f"v8.{n}": ((8, n),) for n in range(10)},
        "v9": ((9, 0), (8, 5)),
        **{f"v9.{n}": ((9, n), (8, min(n + 5, 9))) for n in range(8)},
    }
)


def vector(host: Platform, profile: Profile) -> tuple[tuple[str, str, str], ...]:
    """containerd's ``platforms.Only`` vector for ``host``: (os, arch, variant), best first."""
    norm = _normalise(host.os, host.architecture, host.variant, (), profile)
    out: list[tuple[str, str, str]] = [(norm.os, norm.architecture, norm.variant)]

    def arm_down(variant: str) -> list[tuple[str, str, str]]:
        level = _number(variant)
        below = range(level - 1, 4, -1) if level is not None and level > 5 else range(0)
        return [(norm.os, "arm", variant), *((norm.os, "arm", f"v{n}") for n in below)]

    if norm.architecture == "amd64":
        level = _number(norm.variant)
        if level is not None and level > 1:
            out += [(norm.os, "amd64", f"v{n}") for n in range(level - 1, 0, -1)]
        out.append((norm.os, "386", ""))
    elif norm.architecture == "arm":
        out = arm_down(norm.variant)
    elif norm.architecture == "arm64":
        variant = norm.variant or "v8"
        if profile is Profile.V16:
            out += arm_down(variant)
        elif variant not in _ARM64_V2:
            out = []  # containerd 2 accepts nothing for an arm64 variant it does not know
        else:
            out = [
                (norm.os, "arm64", f"v{major}.{minor}" if minor else f"v{major}")
                for major, top in _ARM64_V2[variant]
                for minor in range(top, -1, -1)
            ]
            out += arm_down("v8")
    # each vector entry is a matcher: containerd normalises it as well
    return tuple(
        (n.os, n.architecture, n.variant)
        for n in (_normalise(o, a, v, (), profile) for o, a, v in out)
    )


def _rank(
    platform: GoPlatform | None, matchers: Sequence[tuple[str, str, str]], profile: Profile
) -> int | None:
    """Position of the first matcher accepting ``platform`` (len(matchers) when it has none)."""
    if platform is None:
        return len(matchers)
    norm = _entry_norm(platform, profile)
    if norm.features:  # the node declares no OS features: containerd 2 does not match
        return None
    key = (norm.os, norm.architecture, norm.variant)
    for rank, matcher in enumerate(matchers):
        if matcher == key:
            return rank
    return None


def ranked(entries: Sequence[IndexEntry], host: Platform, profile: Profile) -> list[IndexEntry]:
    """The candidates of ``entries`` for ``host``, in containerd's order (the first wins)."""
    matchers = vector(host, profile)
    scored = [(r, e) for e in entries if (r := _rank(e.platform, matchers, profile)) is not None]
    return [e for _, e in sorted(scored, key=lambda item: item[0])]  # stable: index order ties


def pick(
    entries: Sequence[IndexEntry],
    host: Platform,
    profile: Profile,
    load: Callable[[IndexEntry], Sequence[IndexEntry]],
    depth: int = 0,
) -> IndexEntry | None:
    """The manifest ``profile``'s containerd runs from ``entries``, or None (its pull fails).

    ``load`` returns the entries of a nested index.

    Raises:
        MalformedInput: indexes nested deeper than :data:`MAX_DEPTH`.
    """
    order = ranked(entries, host, profile)
    if not order:
        return None
    first = order[0]
    media_type = first.descriptor.media_type
    if media_type in MANIFEST_MEDIA_TYPES:
        return first
    if media_type not in INDEX_MEDIA_TYPES:
        return None
    if depth >= MAX_DEPTH:
        raise MalformedInput(f"indexes nested more than {MAX_DEPTH} deep")
    return pick(load(first), host, profile, load, depth + 1)


def containerd_picks(
    entries: Sequence[IndexEntry],
    host: Platform,
    load: Callable[[IndexEntry], Sequence[IndexEntry]],
) -> tuple[IndexEntry, ...]:
    """Every distinct manifest some fronted containerd runs from ``entries`` (by digest)."""
    out: dict[str, IndexEntry] = {}
    for profile in Profile:
        chosen = pick(entries, host, profile, load)
        if chosen is not None:
            out.setdefault(chosen.descriptor.digest, chosen)
    return tuple(out.values())
