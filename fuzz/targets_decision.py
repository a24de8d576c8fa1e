"""Targets for what the decision layer reads from registry documents: an image manifest's config
digest (what an allow binds) and a tree of indexes walked as containerd walks it."""

from __future__ import annotations

from collections.abc import Sequence

from fuzz.oracle import FuzzTarget, check
from fuzz.scripted import sha256
from fuzz.targets_parsers import PLATFORMS
from fuzz.wire import SEP
from pullgate.common.descriptor import is_digest
from pullgate.decision.content import config_digest
from pullgate.decision.every_platform import every_manifest
from pullgate.decision.matcher import MAX_DEPTH, Profile, pick
from pullgate.decision.platform import IndexEntry, index_entries
from pullgate.errors import MalformedInput, PullgateError
from pullgate.oci.gojson import MANIFEST_MEDIA_TYPES


def manifest_config(data: bytes) -> None:
    """``content.config_digest`` (``gojson.decode_manifest_config``): a valid digest or a
    typed refusal."""
    try:
        digest = config_digest(data)
    except PullgateError:
        return
    check(is_digest(digest), f"config digest {digest!r} accepted")


def index_tree(data: bytes) -> None:
    """``matcher.pick`` per platform and containerd profile, and ``every_manifest``, over an
    index whose nested indexes are the input's other fields (found by digest): whatever is
    picked or listed is an image manifest reachable from the top, each digest once."""
    documents = data.split(SEP)
    parsed = {sha256(d): _entries_or_error(d) for d in documents}  # each parsed once, as memoised
    loads = 0

    def load(entry: IndexEntry) -> Sequence[IndexEntry]:
        nonlocal loads
        loads += 1
        check(loads <= 64 * (MAX_DEPTH + 1), "nested indexes walked without bound")
        found = parsed.get(entry.descriptor.digest)
        if found is None:
            raise MalformedInput(f"nested index {entry.descriptor.digest} not served")
        if isinstance(found, PullgateError):
            raise found
        return found

    top = parsed[sha256(documents[0])]
    if isinstance(top, PullgateError):
        return
    listed = {e.descriptor.digest for d in parsed.values() if isinstance(d, tuple) for e in d}
    for platform in PLATFORMS:
        for profile in Profile:
            try:
                chosen = pick(top, platform, profile, load)
            except PullgateError:
                continue
            if chosen is not None:
                check(chosen.descriptor.media_type in MANIFEST_MEDIA_TYPES, f"{chosen} picked")
                check(chosen.descriptor.digest in listed, "picked a manifest no index lists")
    try:
        every = every_manifest(top, load)
    except PullgateError:
        return
    digests = [e.descriptor.digest for e in every]
    check(len(digests) == len(set(digests)), "a manifest listed twice")
    check(all(e.descriptor.media_type in MANIFEST_MEDIA_TYPES for e in every), "not a manifest")
    check(set(digests) <= listed, "a manifest no index lists")


def _entries_or_error(document: bytes) -> tuple[IndexEntry, ...] | PullgateError:
    try:
        return index_entries(document)
    except PullgateError as exc:
        return exc


TARGETS = (
    FuzzTarget("manifest_config", "pullgate.decision.content.config_digest", manifest_config),
    FuzzTarget(
        "index_tree", "pullgate.decision.matcher.pick + every_platform.every_manifest", index_tree
    ),
)
