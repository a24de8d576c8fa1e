"""The warm path: resolve memo, asyncio single-flight and the event-loop cache hit."""

from __future__ import annotations

import asyncio
import threading

from pullgate.config import CacheConfig
from pullgate.config.checker import MAX_SECONDS
from pullgate.decision.decider import Decider
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import Reason
from pullgate.registry.model import Credentials
from tests.support.fake_registry import OCI_INDEX
from tests.unit.decision.world import REPO, MemWorld, StepClock, platform_of


def _signed(world: MemWorld) -> None:
    world.sign(world.index)
    world.sign(world.amd64)


def _heads(world: MemWorld) -> int:
    return sum(1 for r in world.reg.requests() if r.kind == "resolve")


def test_tag_memo_serves_the_last_digest_for_resolve_ttl_then_asks_again(world: MemWorld) -> None:
    _signed(world)
    clock = StepClock()
    decider = world.decider(cache=CacheConfig(resolve_ttl=5.0), clock=clock)
    request = DecisionRequest(reference=world.ref())
    first = decider.decide(request)
    before = len(world.reg.requests())
    # The tag moves to another (signed) index; within resolve_ttl the memo still names the
    # digest verified before, and the decision says which digest that is.
    moved = world.reg.put_manifest(
        REPO,
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{**world.amd64.to_json(), "platform": platform_of("linux", "amd64")}],
        },
        OCI_INDEX,
        tag="v1",
    )
    world.sign(moved)
    clock.advance(4.9)
    memoised = decider.decide(request)
    assert len(world.reg.requests()) == before
    assert (memoised.digest, memoised.resolve_cached, memoised.cache_hit) == (
        world.index.digest,
        True,
        True,
    )
    clock.advance(0.2)
    fresh = decider.decide(request)
    assert _heads(world) == 2
    assert (fresh.allowed, fresh.digest, fresh.resolve_cached) == (True, moved.digest, False)
    assert first.digest == world.index.digest


def test_resolve_ttl_zero_resolves_every_decision(world: MemWorld) -> None:
    _signed(world)
    decider = world.decider(cache=CacheConfig(resolve_ttl=0.0))
    decider.decide(DecisionRequest(reference=world.ref()))
    before = len(world.reg.requests())
    second = decider.decide(DecisionRequest(reference=world.ref()))
    assert (second.cache_hit, second.resolve_cached) == (True, False)
    assert [r.kind for r in world.reg.requests()[before:]] == ["resolve"]


def test_resolve_memo_is_not_shared_between_credentials(world: MemWorld) -> None:
    _signed(world)
    decider = world.decider()
    decider.decide(DecisionRequest(reference=world.ref()))
    before = _heads(world)
    creds = Credentials(username="someone", password="their-password")
    other = decider.decide(DecisionRequest(reference=world.ref(), credentials=creds))
    assert _heads(world) == before + 1  # resolved again, with these credentials
    assert (other.cache_hit, other.resolve_cached) == (True, False)


def test_digest_reference_is_memoised_up_to_max_ttl(world: MemWorld) -> None:
    _signed(world)
    clock = StepClock()
    decider = world.decider(
        cache=CacheConfig(resolve_ttl=5.0, max_ttl=300.0, negative_ttl=10.0), clock=clock
    )
    request = DecisionRequest(reference=world.ref(), digest=world.index.digest)
    decider.decide(request)
    before = len(world.reg.requests())
    clock.advance(60)  # beyond resolve_ttl, within max_ttl
    again = decider.decide(request)
    assert len(world.reg.requests()) == before
    assert (again.allowed, again.resolve_cached) == (True, True)
    clock.advance(241)  # beyond max_ttl: resolved again (and re-verified: the entry expired)
    decider.decide(request)
    assert _heads(world) == 2


def test_the_longest_configurable_ttls_decide_by_digest_and_by_tag(world: MemWorld) -> None:
    _signed(world)
    longest = float(MAX_SECONDS)
    cache = CacheConfig(max_ttl=longest, negative_ttl=longest, resolve_ttl=longest)
    decider = world.decider(cache=cache)
    for reference in (world.ref(), f"{world.reg.host}/{REPO}@{world.index.digest}"):
        decision = decider.decide(DecisionRequest(reference=reference))
        assert (decision.allowed, decision.reason) == (True, Reason.VERIFIED)


def test_decide_async_answers_warm_requests_without_registry_or_thread(world: MemWorld) -> None:
    _signed(world)
    decider = world.decider()
    request = DecisionRequest(reference=world.ref(), caller="grpc")
    cold = asyncio.run(decider.decide_async(request))
    before = len(world.reg.requests())
    threads = threading.active_count()
    warm = asyncio.run(decider.decide_async(request))
    assert (cold.cache_hit, warm.cache_hit, warm.allowed, warm.reason) == (
        False,
        True,
        True,
        Reason.VERIFIED,
    )
    assert len(world.reg.requests()) == before
    assert threading.active_count() == threads
    assert [a["cache_hit"] for a in world.audits] == [False, True]
    assert warm.subjects[0].signer_fingerprint  # the plain fields survive the cache


def _burst(decider: Decider, world: MemWorld, n: int, threads: int = 0) -> list[Decision]:
    """``n`` concurrent identical cold calls (``threads`` of them through :meth:`decide`);
    the leader's first registry request waits until every other caller has joined."""
    joined = threading.Event()

    def hold(_op: object) -> None:
        if not joined.is_set():
            while decider.stats().single_flight.joins < n - 1:
                joined.wait(0.001)
            joined.set()

    world.reg.hook = hold
    request = DecisionRequest(reference=world.ref(), caller="pod")

    async def main() -> list[Decision]:
        blocking = [asyncio.to_thread(decider.decide, request) for _ in range(threads)]
        tasks = [decider.decide_async(request) for _ in range(n - threads)]
        return list(await asyncio.gather(*blocking, *tasks))

    return asyncio.run(main())


def test_hundred_concurrent_async_calls_cost_one_call(world: MemWorld) -> None:
    _signed(world)
    world.decider().decide(DecisionRequest(reference=world.ref()))
    one_call = len(world.reg.requests())
    world.reg.log.clear()
    decider = world.decider()
    results = _burst(decider, world, 100)
    assert [d.allowed for d in results] == [True] * 100
    assert len(world.reg.requests()) == one_call
    flight = decider.stats().single_flight
    assert (flight.calls, flight.joins, flight.in_flight) == (1, 99, 0)
    assert sum(1 for a in world.audits if a["single_flight_joined"]) == 99


def test_thread_and_async_callers_share_one_flight(world: MemWorld) -> None:
    _signed(world)
    world.decider().decide(DecisionRequest(reference=world.ref()))
    one_call = len(world.reg.requests())
    world.reg.log.clear()
    decider = world.decider()
    results = _burst(decider, world, 20, threads=5)
    assert all(d.allowed for d in results)
    assert len(world.reg.requests()) == one_call
    assert decider.stats().single_flight.calls == 1


def test_a_cancelled_caller_does_not_cancel_the_shared_computation(world: MemWorld) -> None:
    _signed(world)
    decider = world.decider()
    release = threading.Event()

    def hold(_op: object) -> None:
        release.wait(10)

    world.reg.hook = hold
    request = DecisionRequest(reference=world.ref())

    async def main() -> tuple[bool, Decision]:
        leader = asyncio.create_task(decider.decide_async(request))
        joiner = asyncio.create_task(decider.decide_async(request))
        while decider.stats().single_flight.joins < 1:
            await asyncio.sleep(0.001)
        leader.cancel()
        release.set()
        decision = await joiner
        return leader.cancelled(), decision

    cancelled, decision = asyncio.run(main())
    assert cancelled
    assert (decision.allowed, decision.reason) == (True, Reason.VERIFIED)


def test_decide_cached_answers_only_from_memory(world: MemWorld) -> None:
    # The image proxy asks it before an overlapped pull: None (nothing asked of the registry,
    # nothing recorded) while the answer needs I/O; the cached deny once it is known.
    decider = world.decider()
    request = DecisionRequest(reference=world.ref(), caller="cri")
    assert decider.decide_cached(request) is None
    assert world.reg.requests() == []
    assert decider.stats().decisions == 0
    cold = decider.decide(request)
    assert (cold.allowed, cold.reason) == (False, Reason.NO_SIGNATURE)
    before = len(world.reg.requests())
    known = decider.decide_cached(request)
    assert known is not None
    assert (known.allowed, known.reason, known.cache_hit) == (False, Reason.NO_SIGNATURE, True)
    assert len(world.reg.requests()) == before
    assert decider.stats().decisions == 2
