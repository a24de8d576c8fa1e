"""Bindir-verifier decisions for an index cover every manifest containerd could fetch from it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pullgate.common.clock import FixedClock
from pullgate.common.descriptor import Descriptor
from pullgate.config import (
    CacheConfig,
    ImageVerifierConfig,
    Requirement,
    StatementSettings,
    VerifierPlatforms,
)
from pullgate.decision.combine import Subject
from pullgate.decision.decider import Decider
from pullgate.decision.every_platform import every_manifest
from pullgate.decision.matcher import MAX_DEPTH
from pullgate.decision.model import BINDIR_CALLER, Decision, DecisionRequest, SubjectDecision
from pullgate.decision.platform import IndexEntry
from pullgate.decision.subject_memo import SubjectMemo
from pullgate.errors import MalformedInput, Reason
from pullgate.shim.vocabulary import CALLER
from tests.support.fake_registry import OCI_INDEX
from tests.support.parts import build_engine
from tests.support.pki import NOW
from tests.unit.decision.world import REPO, MemWorld, NoNetworkFetcher, StepClock, platform_of

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _entry(desc: Descriptor, os: str, arch: str) -> dict[str, object]:
    return {**desc.to_json(), "platform": platform_of(os, arch)}


def _index(world: MemWorld, entries: list[dict[str, object]], tag: str | None) -> Descriptor:
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return world.reg.put_manifest(REPO, doc, OCI_INDEX, tag=tag)


def _decider(
    world: MemWorld,
    settings: StatementSettings | None = None,
    platforms: VerifierPlatforms = VerifierPlatforms.ALL,
) -> Decider:
    snap = world.snapshot(settings)
    config = replace(snap.config, image_verifier=ImageVerifierConfig(platforms=platforms))
    snap = replace(snap, config=config)
    return build_engine(
        lambda: snap, clock=FixedClock(NOW), fetcher=NoNetworkFetcher(), stores=world.reg.opener
    )


def _bindir(world: MemWorld, tag: str) -> DecisionRequest:
    return DecisionRequest(reference=world.ref(tag), caller=BINDIR_CALLER)


def _platform_subjects(decision: Decision) -> dict[str, bool]:
    return {s.digest: s.verified for s in decision.subjects if s.role == "platform"}


def test_the_shim_sends_the_bindir_caller() -> None:
    assert CALLER == BINDIR_CALLER


def test_an_unsigned_platform_of_a_signed_index_denies_the_bindir_request(world: MemWorld) -> None:
    index = _index(
        world, [_entry(world.amd64, "linux", "amd64"), _entry(world.arm64, "linux", "arm64")], "two"
    )
    world.sign(index)
    world.sign(world.amd64)
    decider = _decider(world)
    cri = decider.decide(DecisionRequest(reference=world.ref("two"), caller="cri"))
    # the async path's warm route must not hand the bindir request the CRI's node-only allow
    warm = asyncio.run(decider.decide_async(_bindir(world, "two")))
    bindir = decider.decide(_bindir(world, "two"))
    assert (cri.allowed, cri.reason) == (True, Reason.VERIFIED)
    for decision in (bindir, warm):
        assert (decision.allowed, decision.reason, decision.inconclusive) == (
            False,
            Reason.NO_SIGNATURE,
            False,
        )
        assert _platform_subjects(decision) == {world.amd64.digest: True, world.arm64.digest: False}

    world.sign(world.arm64)
    signed = _decider(world).decide(_bindir(world, "two"))
    assert (signed.allowed, signed.reason) == (True, Reason.VERIFIED)
    assert _platform_subjects(signed) == {world.amd64.digest: True, world.arm64.digest: True}
    labels = {s.digest: s.platform for s in signed.subjects if s.role == "platform"}
    assert labels == {world.amd64.digest: "linux/amd64", world.arm64.digest: "linux/arm64"}


def test_node_setting_limits_the_bindir_request_to_this_node(world: MemWorld) -> None:
    index = _index(
        world, [_entry(world.amd64, "linux", "amd64"), _entry(world.arm64, "linux", "arm64")], "two"
    )
    world.sign(index)
    world.sign(world.amd64)
    decision = _decider(world, platforms=VerifierPlatforms.NODE).decide(_bindir(world, "two"))
    assert (decision.allowed, decision.reason) == (True, Reason.VERIFIED)
    assert _platform_subjects(decision) == {world.amd64.digest: True}


def test_require_index_needs_no_platform_manifest(world: MemWorld) -> None:
    index = _index(
        world, [_entry(world.amd64, "linux", "amd64"), _entry(world.arm64, "linux", "arm64")], "two"
    )
    world.sign(index)
    settings = StatementSettings(require=Requirement.INDEX)
    decision = _decider(world, settings).decide(_bindir(world, "two"))
    assert (decision.allowed, decision.reason) == (True, Reason.VERIFIED)
    assert _platform_subjects(decision) == {}


def test_either_needs_the_index_or_every_platform(world: MemWorld) -> None:
    _index(
        world, [_entry(world.amd64, "linux", "amd64"), _entry(world.arm64, "linux", "arm64")], "two"
    )
    world.sign(world.amd64)
    settings = StatementSettings(require=Requirement.EITHER)
    decider = _decider(world, settings)
    cri = decider.decide(DecisionRequest(reference=world.ref("two"), caller="cri"))
    bindir = decider.decide(_bindir(world, "two"))
    assert cri.allowed
    assert (bindir.allowed, bindir.reason) == (False, Reason.NO_SIGNATURE)


def test_nested_indexes_and_other_platforms_are_covered(world: MemWorld) -> None:
    inner = _index(world, [_entry(world.arm64, "linux", "arm64")], None)
    outer = _index(
        world, [{**inner.to_json(), "platform": platform_of("linux", "arm64")}], "nested"
    )
    world.sign(outer)
    decider = _decider(world)
    # this amd64 node pulls nothing from it; containerd could still fetch arm64
    cri = decider.decide(DecisionRequest(reference=world.ref("nested"), caller="cri"))
    unsigned = decider.decide(_bindir(world, "nested"))
    assert cri.reason is Reason.PLATFORM_NOT_FOUND
    assert (unsigned.allowed, unsigned.reason) == (False, Reason.NO_SIGNATURE)
    assert _platform_subjects(unsigned) == {world.arm64.digest: False}
    world.sign(world.arm64)
    signed = _decider(world).decide(_bindir(world, "nested"))
    assert (signed.allowed, _platform_subjects(signed)) == (True, {world.arm64.digest: True})


# ------------------------------------------------------------------------------- every_manifest


def _desc(n: int, media_type: str = OCI_MANIFEST) -> Descriptor:
    return Descriptor(media_type=media_type, digest="sha256:" + f"{n:x}".rjust(64, "0"), size=2)


def test_every_manifest_walks_nested_indexes_once_and_dedups() -> None:
    a, b, c = (IndexEntry(descriptor=_desc(n), platform=None) for n in (1, 2, 3))
    blob = IndexEntry(descriptor=_desc(4, "application/octet-stream"), platform=None)
    nested = IndexEntry(descriptor=_desc(5, OCI_INDEX), platform=None)
    loads: list[str] = []

    def load(entry: IndexEntry) -> tuple[IndexEntry, ...]:
        loads.append(entry.descriptor.digest)
        return (b, c, a)

    got = every_manifest([a, blob, nested, nested, b], load)
    assert [e.descriptor.digest for e in got] == [
        a.descriptor.digest,
        b.descriptor.digest,
        c.descriptor.digest,
    ]
    assert loads == [nested.descriptor.digest]


def test_every_manifest_bounds_nesting() -> None:
    levels = [
        IndexEntry(descriptor=_desc(n, OCI_INDEX), platform=None) for n in range(MAX_DEPTH + 2)
    ]

    def load(entry: IndexEntry) -> tuple[IndexEntry, ...]:
        return (levels[levels.index(entry) + 1],)

    with pytest.raises(MalformedInput):
        every_manifest([levels[0]], load)


# ------------------------------------------------------------------------------- subject memo


def _referrer_asks(world: MemWorld, digest: str) -> int:
    return sum(1 for r in world.reg.requests() if (r.kind, r.name) == ("signatures", digest))


def test_subjects_verified_for_the_node_are_not_verified_again_for_the_verifier(
    world: MemWorld,
) -> None:
    index = _index(
        world, [_entry(world.amd64, "linux", "amd64"), _entry(world.arm64, "linux", "arm64")], "two"
    )
    for subject in (index, world.amd64, world.arm64):
        world.sign(subject)
    decider = _decider(world)
    cri = decider.decide(DecisionRequest(reference=world.ref("two"), caller="cri"))
    asked = {d.digest: _referrer_asks(world, d.digest) for d in (index, world.amd64, world.arm64)}
    bindir = decider.decide(_bindir(world, "two"))
    assert cri.allowed
    assert bindir.allowed
    assert asked[index.digest] >= 1
    assert asked[world.amd64.digest] >= 1
    assert asked[world.arm64.digest] == 0
    # index and amd64 came from the memo; only arm64 was asked for its signatures
    assert _referrer_asks(world, index.digest) == asked[index.digest]
    assert _referrer_asks(world, world.amd64.digest) == asked[world.amd64.digest]
    assert _referrer_asks(world, world.arm64.digest) >= 1
    assert _platform_subjects(bindir) == {world.amd64.digest: True, world.arm64.digest: True}


def test_a_memoised_deny_expires_and_an_inconclusive_one_is_not_kept() -> None:
    clock = StepClock()
    memo = SubjectMemo(CacheConfig(negative_ttl=10.0), clock)
    decision = SubjectDecision(
        role="platform",
        digest="sha256:" + "a" * 64,
        verified=False,
        reason=Reason.NO_SIGNATURE,
        message="m",
    )
    memo.put(("r", "s", "d1"), Subject(decision=decision, inconclusive=False))
    timeout = replace(decision, reason=Reason.TIMEOUT)
    memo.put(("r", "s", "d2"), Subject(decision=timeout, inconclusive=True))
    hit = memo.get(("r", "s", "d1"), "manifest", None)
    assert hit is not None
    assert (hit.decision.role, hit.decision.reason) == (
        "manifest",
        Reason.NO_SIGNATURE,
    )
    assert memo.get(("r", "s", "d2"), "platform", None) is None
    clock.advance(10.0)
    assert memo.get(("r", "s", "d1"), "platform", None) is None
