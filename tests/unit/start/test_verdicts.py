"""Allows bound to content: the decision layer reports the config digest of what it verified,
and every allow lands in the verdict store, current only under the snapshot that made it."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from pullgate.config import CacheConfig, Requirement, StatementSettings
from pullgate.decision.compact import decode_decision, encode_decision
from pullgate.decision.decider import Decider
from pullgate.decision.model import Content, Decision, DecisionRequest
from pullgate.errors import Reason
from pullgate.start.verdicts import VerdictStore, repository_of
from tests.support.parts import build_engine
from tests.unit.decision.world import MemWorld, NoNetworkFetcher, StepClock, memory_world
from tests.unit.start.conftest import GateWorld


def test_plain_manifest_allow_covers_its_config(gw: GateWorld) -> None:
    image = gw.image("plain", tag="p1")
    gw.world.sign(image.manifest)
    decision = gw.decider.decide(DecisionRequest(reference=gw.world.ref("p1")))
    assert decision.allowed
    assert decision.content == (
        Content(
            manifest_digest=image.manifest.digest,
            config_digest=image.config.digest,
            platform="linux/amd64",
        ),
    )
    repo = repository_of(gw.world.ref("p1"))
    found = gw.store.lookup(image.config.digest, repo, gw.snap.digest)
    assert found.current is not None
    assert (found.current.top_digest, found.current.reason) == (
        image.manifest.digest,
        Reason.VERIFIED,
    )


def test_index_allow_covers_the_platform_manifest_chosen(gw: GateWorld) -> None:
    amd, arm = gw.image("amd"), gw.image("arm")
    index = gw.index(amd, arm)
    gw.world.sign(index)
    gw.world.sign(amd.manifest)
    decision = gw.decider.decide(DecisionRequest(reference=gw.ref(index.digest)))
    assert decision.allowed
    assert [c.config_digest for c in decision.content] == [amd.config.digest]
    repo = repository_of(gw.ref(index.digest))
    assert gw.store.lookup(arm.config.digest, repo, gw.snap.digest).current is None


def test_content_survives_the_decision_cache(gw: GateWorld) -> None:
    image = gw.image("cached", tag="c1")
    gw.world.sign(image.manifest)
    first = gw.decider.decide(DecisionRequest(reference=gw.world.ref("c1")))
    second = gw.decider.decide(DecisionRequest(reference=gw.world.ref("c1")))
    assert second.cache_hit
    assert second.content == first.content
    assert decode_decision(encode_decision(first)).content == first.content


def test_denials_record_nothing(gw: GateWorld) -> None:
    image = gw.image("unsigned", tag="u1")
    decision = gw.decider.decide(DecisionRequest(reference=gw.world.ref("u1")))
    assert (decision.allowed, decision.reason, decision.content) == (False, Reason.NO_SIGNATURE, ())
    assert gw.store.records() == []
    assert gw.store.lookup(image.config.digest, None, gw.snap.digest).current is None


def test_a_reload_keeps_history_but_not_currency(gw: GateWorld) -> None:
    image = gw.image("history", tag="h1")
    gw.world.sign(image.manifest)
    gw.decider.decide(DecisionRequest(reference=gw.world.ref("h1")))
    old = gw.snap.digest
    gw.reload(StatementSettings(require=Requirement.BOTH))
    repo = repository_of(gw.world.ref("h1"))
    found = gw.store.lookup(image.config.digest, repo, gw.snap.digest)
    assert found.current is None
    assert found.previous is not None
    assert found.previous.snapshot == old


def test_store_is_bounded() -> None:
    store = VerdictStore(max_images=2, max_repositories=1)
    for n in range(3):
        decision = _allow(
            f"example.com/r{n}@sha256:{'a' * 64}", f"sha256:{'a' * 64}", f"sha256:{n:064x}"
        )
        assert store.record(decision, "snap") == 1
    assert store.stats()["images"] == 2
    assert store.lookup(f"sha256:{0:064x}", None, "snap").current is None
    assert store.lookup(f"sha256:{2:064x}", None, "snap").current is not None


def test_repository_of_image_ids_and_digests_is_none() -> None:
    assert repository_of("sha256:" + "b" * 64) is None
    assert repository_of("b" * 64) is None
    assert repository_of("nginx") == "docker.io/library/nginx"


def _store_and_decider(world: MemWorld, clock: StepClock) -> tuple[VerdictStore, Decider, str]:
    store = VerdictStore(clock=lambda: clock.now().timestamp())
    snap = world.snapshot()
    decider = build_engine(
        lambda: snap,
        clock=clock,
        fetcher=NoNetworkFetcher(),
        stores=world.reg.opener,
        on_allow=store.record,
    )
    return store, decider, snap.digest


def test_warm_allows_record_once_and_keep_the_time_of_their_evidence(tmp_path: Path) -> None:
    world = memory_world(tmp_path)
    world.sign(world.index)
    world.sign(world.amd64)
    clock = StepClock()
    store, decider, snapshot = _store_and_decider(world, clock)
    request = DecisionRequest(reference=world.ref())
    try:
        first = decider.decide(request)
        assert (first.allowed, len(first.content), store.stats()["recorded"]) == (True, 1, 1)
        (record,) = store.records()
        for _ in range(20):
            clock.advance(1.0)
            assert decider.decide(request).cache_hit
            assert asyncio.run(decider.decide_async(request)).cache_hit
        # 40 cache hits wrote nothing: the record still dates from the verification.
        assert store.stats()["recorded"] == 1
        assert store.records() == [record]
        config = first.content[0].config_digest
        repo = repository_of(world.ref())
        max_ttl = CacheConfig().max_ttl
        assert store.lookup(config, repo, snapshot, max_ttl).current == record
        # Past max_ttl the cached allow is gone too: the next decision verifies again and
        # its record is current once more.
        clock.advance(max_ttl)
        assert store.lookup(config, repo, snapshot, max_ttl).current is None
        again = decider.decide(request)
        assert (again.allowed, again.cache_hit, store.stats()["recorded"]) == (True, False, 2)
        assert store.lookup(config, repo, snapshot, max_ttl).current is not None
    finally:
        decider.close()


def test_a_cache_hit_records_what_is_not_held() -> None:
    store = VerdictStore(max_images=1)
    digest = f"sha256:{'a' * 64}"

    def allow(n: int, reference: str = "example.com/app:v1") -> Decision:
        return Decision(
            allowed=True,
            reason=Reason.VERIFIED,
            message="",
            reference=reference,
            digest=digest,
            cache_hit=True,
            content=(Content(manifest_digest="m", config_digest=f"sha256:{n:064x}"),),
        )

    assert store.record(allow(1), "snap") == 1
    assert store.record(allow(1), "snap") == 0  # held
    assert store.record(allow(1), "other snap") == 1  # another snapshot
    assert store.record(allow(1, "example.com/app:v2"), "other snap") == 1  # another reference
    assert store.record(allow(1, "example.com/lib:v1"), "other snap") == 1  # another repository
    assert store.record(allow(2), "snap") == 1  # evicts config 1 (max_images=1)
    assert store.record(allow(1), "snap") == 1  # evicted: recorded again
    assert store.lookup(f"sha256:{1:064x}", "example.com/app", "snap").current is not None


def test_lookup_by_image_id_finds_the_newest_current_and_newest_other_allow() -> None:
    """Asked by image ID (any repository), ``current`` is the most recently recorded allow under
    the snapshot in force and fresh enough, whatever sits before it, and ``previous`` the most
    recent other one: every order of four repositories' records, two snapshots, two ages."""
    config = f"sha256:{7:064x}"
    layouts = [
        (snapshot, age) for snapshot in ("now", "before") for age in (0.0, 100.0)
    ]  # recorded `age` seconds before the lookup
    now = [0.0]
    for order in itertools.product(range(len(layouts)), repeat=4):
        store = VerdictStore(max_repositories=8, clock=lambda: now[0])
        written = []
        for n, which in enumerate(order):
            snapshot, age = layouts[which]
            now[0] = 1_000.0 - age
            decision = _allow(f"example.com/r{n}:v1", f"sha256:{n:064x}", config, f"m{n}")
            assert store.record(decision, snapshot) == 1
            written.append((f"example.com/r{n}", snapshot, age))
        now[0] = 1_000.0
        found = store.lookup(config, None, "now", max_age=50.0)
        newest_first = list(reversed(written))
        current = next((w for w in newest_first if w[1] == "now" and w[2] <= 50.0), None)
        previous = next((w for w in newest_first if w is not current), None)
        assert (found.current.repository if found.current else None) == (
            current[0] if current else None
        ), order
        assert (found.previous.repository if found.previous else None) == (
            previous[0] if previous else None
        ), order


def _allow(reference: str, digest: str, config: str, manifest: str = "m") -> Decision:
    """A verified allow of ``reference`` (resolved to ``digest``) covering image ``config``."""
    return Decision(
        allowed=True,
        reason=Reason.VERIFIED,
        message="",
        reference=reference,
        digest=digest,
        content=(Content(manifest_digest=manifest, config_digest=config),),
    )
