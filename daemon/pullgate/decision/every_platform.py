"""Decisions for containerd's bindir image verifier: every manifest an index lets it fetch.

containerd runs the verifier executable with the top-level digest only
(https://github.com/containerd/containerd/blob/main/pkg/imageverifier/bindir/bindir.go), before
it fetches anything, and does not say which platform the pull is for: ``ctr image pull
--platform linux/arm64`` or ``--all-platforms`` of an index fetches manifests that this node's
platform would never pick. So, unless ``[image_verifier] platforms = "node"``, a verifier request
for an index under ``require = "platform"``, ``"both"`` or ``"either"`` covers every manifest
containerd could fetch from it: every image-manifest entry, and those of nested indexes (which
containerd walks), whatever their platform or annotations, each distinct digest once. Entries of
other media types are no platform manifest containerd could run and are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pullgate.config import DaemonConfig, Requirement, VerifierPlatforms
from pullgate.decision.matcher import MAX_DEPTH
from pullgate.decision.model import BINDIR_CALLER, DecisionRequest
from pullgate.decision.platform import IndexEntry
from pullgate.errors import MalformedInput
from pullgate.oci.gojson import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES

__all__ = ["covers_every_platform", "every_manifest"]


def covers_every_platform(
    request: DecisionRequest, config: DaemonConfig, statement: str | None
) -> bool:
    """True when ``request`` must cover every manifest of an index (see the module docstring)."""
    if request.caller != BINDIR_CALLER or request.platform:
        return False
    if config.image_verifier.platforms is not VerifierPlatforms.ALL:
        return False
    requirement = request.require or config.settings_for(statement).require
    return requirement is not Requirement.INDEX


def every_manifest(
    entries: Sequence[IndexEntry], load: Callable[[IndexEntry], Sequence[IndexEntry]]
) -> tuple[IndexEntry, ...]:
    """Every image manifest reachable from ``entries`` (nested indexes through ``load``), each
    digest once, in index order.

    Raises:
        MalformedInput: indexes nested deeper than :data:`~pullgate.decision.matcher.MAX_DEPTH`.
    """
    found: dict[str, IndexEntry] = {}
    walked: set[str] = set()

    def walk(level: Sequence[IndexEntry], depth: int) -> None:
        for entry in level:
            media_type, digest = entry.descriptor.media_type, entry.descriptor.digest
            if media_type in MANIFEST_MEDIA_TYPES:
                found.setdefault(digest, entry)
            elif media_type in INDEX_MEDIA_TYPES and digest not in walked:
                if depth >= MAX_DEPTH:
                    raise MalformedInput(f"indexes nested more than {MAX_DEPTH} deep")
                walked.add(digest)
                walk(load(entry), depth + 1)

    walk(entries, 0)
    return tuple(found.values())
