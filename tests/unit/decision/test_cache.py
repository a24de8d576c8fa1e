"""Decision cache lifetimes, LRU bounds, and single-flight."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from pullgate.config import CacheConfig, Requirement
from pullgate.decision.cache import CacheKey, DecisionCache, SingleFlight, ttl_for
from pullgate.decision.compact import decode_decision, encode_decision
from pullgate.decision.model import Decision, SubjectDecision
from pullgate.errors import MalformedInput, Reason
from pullgate.verification.outcome import VerificationOutcome
from tests.support.pki import NOW


@dataclass
class StepClock:
    instant: datetime = NOW

    def now(self) -> datetime:
        return self.instant

    def advance(self, seconds: float) -> None:
        self.instant += timedelta(seconds=seconds)


CONFIG = CacheConfig(max_entries=3, max_ttl=300.0, negative_ttl=10.0)


def _key(n: int = 0, snapshot: str = "s1") -> CacheKey:
    return CacheKey(
        digest=f"sha256:{n:064x}",
        platform_digest=None,
        platform="linux/amd64",
        require=None,
        snapshot=snapshot,
    )


def _decision(*, allowed: bool = True, inconclusive: bool = False, **kw: object) -> Decision:
    return Decision(
        allowed=allowed,
        reason=Reason.VERIFIED if allowed else Reason.UNTRUSTED,
        message="",
        reference="r",
        digest="d",
        inconclusive=inconclusive,
        **kw,  # type: ignore[arg-type]
    )


def test_allow_lives_max_ttl_without_bound() -> None:
    clock = StepClock()
    cache = DecisionCache(CONFIG, clock)
    assert cache.put(_key(), _decision()) == 300.0
    clock.advance(299)
    assert cache.get(_key()) is not None
    clock.advance(1)
    assert cache.get(_key()) is None
    assert cache.stats().expirations == 1


def test_allow_ttl_bounded_by_valid_until() -> None:
    clock = StepClock()
    cache = DecisionCache(CONFIG, clock)
    ttl = cache.put(_key(), _decision(), valid_until=NOW + timedelta(seconds=42))
    assert ttl == 42.0
    clock.advance(42)
    assert cache.get(_key()) is None


def test_already_expired_evidence_is_not_stored() -> None:
    cache = DecisionCache(CONFIG, StepClock())
    assert cache.put(_key(), _decision(), valid_until=NOW - timedelta(seconds=1)) == 0.0
    assert cache.get(_key()) is None


def test_definitive_deny_lives_negative_ttl() -> None:
    clock = StepClock()
    cache = DecisionCache(CONFIG, clock)
    assert cache.put(_key(), _decision(allowed=False)) == 10.0
    clock.advance(9.5)
    assert cache.get(_key()) is not None
    clock.advance(0.5)
    assert cache.get(_key()) is None


def test_inconclusive_allow_is_never_cached() -> None:
    cache = DecisionCache(CONFIG, StepClock())
    fail_open = _decision(allowed=True, inconclusive=True, fail_open=True)
    assert cache.put(_key(), fail_open) == 0.0
    assert cache.get(_key()) is None
    assert len(cache) == 0


def test_inconclusive_deny_at_most_negative_ttl() -> None:
    assert ttl_for(_decision(allowed=False, inconclusive=True), CONFIG, NOW, None) == 10.0


def test_audit_allow_that_would_deny_is_short_lived() -> None:
    decision = _decision(allowed=True, audit_denied=True)
    assert ttl_for(decision, CONFIG, NOW, None) == 10.0


def test_negative_ttl_never_exceeds_max_ttl() -> None:
    config = CacheConfig(max_entries=3, max_ttl=5.0, negative_ttl=10.0)
    assert ttl_for(_decision(allowed=False), config, NOW, None) == 5.0


def test_lru_evicts_least_recently_used() -> None:
    cache = DecisionCache(CONFIG, StepClock())
    for n in range(3):
        cache.put(_key(n), _decision())
    assert cache.get(_key(0)) is not None  # 0 becomes most recent
    cache.put(_key(3), _decision())
    assert cache.get(_key(1)) is None
    assert cache.get(_key(0)) is not None
    stats = cache.stats()
    assert (stats.evictions, stats.entries) == (1, 3)


def test_stats_count_hits_and_misses() -> None:
    cache = DecisionCache(CONFIG, StepClock())
    cache.get(_key())
    cache.put(_key(), _decision())
    cache.get(_key())
    cache.get(_key())
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (2, 1)


def test_key_includes_snapshot_and_requirement() -> None:
    cache = DecisionCache(CONFIG, StepClock())
    cache.put(_key(snapshot="s1"), _decision())
    assert cache.get(_key(snapshot="s2")) is None
    other = CacheKey(
        digest=_key().digest,
        platform_digest=None,
        platform="linux/amd64",
        require=Requirement.INDEX,
        snapshot="s1",
    )
    assert cache.get(other) is None


def test_zero_capacity_stores_nothing() -> None:
    cache = DecisionCache(CacheConfig(max_entries=0), StepClock())
    assert cache.put(_key(), _decision()) == 0.0
    assert cache.get(_key()) is None


def test_cache_is_thread_safe_under_contention() -> None:
    cache = DecisionCache(CacheConfig(max_entries=50), StepClock())

    def work(n: int) -> None:
        for i in range(200):
            cache.put(_key((n * 7 + i) % 120), _decision())
            cache.get(_key(i % 120))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    stats = cache.stats()
    assert stats.entries == 50
    assert stats.hits + stats.misses == 8 * 200


def _hundred_concurrent(flight: SingleFlight[str, int], compute: object) -> list[object]:
    ready = threading.Barrier(100)
    results: list[object] = []
    lock = threading.Lock()

    def call() -> None:
        ready.wait()
        try:
            value: object = flight.do("k", compute)  # type: ignore[arg-type]
        except RuntimeError as exc:
            value = exc
        with lock:
            results.append(value)

    threads = [threading.Thread(target=call) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _leader_waiting_for(flight: SingleFlight[str, int], joins: int) -> threading.Event:
    """An event set once ``joins`` callers have joined (deterministic overlap, no sleeps)."""
    done = threading.Event()

    def watch() -> None:
        while flight.stats().joins < joins:
            threading.Event().wait(0.001)
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    return done


def test_single_flight_hundred_threads_one_computation() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    everyone_joined = _leader_waiting_for(flight, 99)
    runs = []

    def compute() -> int:
        runs.append(1)
        assert everyone_joined.wait(30)
        return 7

    results = _hundred_concurrent(flight, compute)
    assert len(runs) == 1
    assert sorted(r[1] for r in results) == [False] + [True] * 99  # type: ignore[index]
    assert {r[0] for r in results} == {7}  # type: ignore[index]
    stats = flight.stats()
    assert (stats.calls, stats.joins, stats.in_flight) == (1, 99, 0)


def test_single_flight_exception_reaches_every_waiter() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    everyone_joined = _leader_waiting_for(flight, 99)

    def compute() -> int:
        assert everyone_joined.wait(30)
        raise RuntimeError("boom")

    results = _hundred_concurrent(flight, compute)
    assert len(results) == 100
    assert all(isinstance(r, RuntimeError) for r in results)
    assert flight.stats().in_flight == 0


def test_single_flight_forgets_finished_keys() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    counter = iter(range(10))
    assert flight.do("k", lambda: next(counter)) == (0, False)
    assert flight.do("k", lambda: next(counter)) == (1, False)
    with pytest.raises(ValueError, match="x"):
        flight.do("k", lambda: (_ for _ in ()).throw(ValueError("x")))
    assert flight.stats().in_flight == 0
    assert flight.do("k", lambda: next(counter)) == (2, False)


def _full_decision() -> Decision:
    outcome = VerificationOutcome(
        reference="r.example/app@sha256:" + "1" * 64,
        digest="sha256:" + "1" * 64,
        statement="prod",
        level=None,
        allowed=True,
        reason=Reason.VERIFIED,
        message="ok",
    )
    return Decision(
        allowed=True,
        reason=Reason.VERIFIED,
        message="index ok; platform ok",
        reference="r.example/app:v1",
        digest="sha256:" + "1" * 64,
        platform="linux/amd64",
        statement="prod",
        level="strict",
        requirement=Requirement.EITHER,
        audit_denied=True,
        subjects=(
            SubjectDecision(
                role="index",
                digest="sha256:" + "1" * 64,
                verified=True,
                reason=Reason.VERIFIED,
                message="signature verified",
                outcome=outcome,
                signature_digest="sha256:" + "3" * 64,
                signer_subject="CN=signer,O=Org",
                signer_fingerprint="ab" * 32,
                signing_time="2026-11-23T00:00:00+00:00",
            ),
            SubjectDecision(
                role="platform",
                digest="sha256:" + "2" * 64,
                verified=False,
                reason=Reason.NO_SIGNATURE,
                message="none",
                platform="linux/amd64",
            ),
        ),
        cache_hit=False,
        timings={"resolve": 0.1},
        generation=7,
    )


def test_compact_round_trip_keeps_every_reported_field_and_drops_the_rest() -> None:
    decision = _full_decision()
    blob = encode_decision(decision)
    back = decode_decision(blob, reference=decision.reference)
    slim = tuple(dataclasses.replace(s, outcome=None) for s in decision.subjects)
    assert back == dataclasses.replace(decision, subjects=slim, timings={})
    assert len(blob) < 600


@pytest.mark.parametrize("blob", [b"", b"not zlib", encode_decision(_full_decision())[:-3]])
def test_undecodable_blob_is_malformed(blob: bytes) -> None:
    with pytest.raises(MalformedInput) as info:
        decode_decision(blob)
    assert info.value.reason is Reason.MALFORMED


def test_every_truncation_and_any_trailing_byte_is_malformed() -> None:
    # a raw deflate stream has no checksum: its final-block mark is what catches a cut
    blob = encode_decision(_full_decision())
    for bad in [blob[:n] for n in range(len(blob))] + [blob + b"\x00"]:
        with pytest.raises(MalformedInput):
            decode_decision(bad)


def test_cached_copy_has_no_outcome_and_no_timings() -> None:
    cache = DecisionCache(CONFIG, StepClock())
    cache.put(_key(), _full_decision())
    for _ in range(2):  # decoded, then from the hot tier
        hit = cache.get(_key())
        assert hit is not None
        assert hit.timings == {}
        assert [s.outcome for s in hit.subjects] == [None, None]
        assert hit.subjects[0].signer_fingerprint == "ab" * 32
        assert (hit.allowed, hit.audit_denied, hit.generation) == (True, True, 7)


def test_hot_copy_never_outlives_its_entry() -> None:
    clock = StepClock()
    cache = DecisionCache(CONFIG, clock)
    cache.put(_key(), _decision())
    assert cache.get(_key()) is not None
    cache.put(_key(), _decision(allowed=False))  # replaced: the decoded copy goes too
    replaced = cache.get(_key())
    assert replaced is not None
    assert not replaced.allowed
    clock.advance(11)
    assert cache.get(_key()) is None


def test_key_separates_repositories_and_statements() -> None:
    cache = DecisionCache(CONFIG, StepClock())
    stored = dataclasses.replace(_key(), repository="r.example/a", statement="a")
    cache.put(stored, _decision())
    assert cache.get(dataclasses.replace(stored, repository="r.example/b")) is None
    assert cache.get(dataclasses.replace(stored, statement="b")) is None
    assert cache.get(dataclasses.replace(stored)) is not None


def test_async_single_flight_joiners_share_one_computation() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    release = threading.Event()
    calls: list[int] = []

    def compute() -> int:
        release.wait(10)
        calls.append(1)
        return 42

    async def main() -> list[tuple[int, bool]]:
        with ThreadPoolExecutor(1) as pool:
            tasks = [asyncio.create_task(flight.do_async("k", compute, pool)) for _ in range(10)]
            while flight.stats().joins < 9:
                await asyncio.sleep(0.001)
            release.set()
            return list(await asyncio.gather(*tasks))

    results = asyncio.run(main())
    assert sorted(results) == [(42, False)] + [(42, True)] * 9
    assert calls == [1]
    assert flight.stats().in_flight == 0


def test_lookup_by_compact_identity_is_get() -> None:
    clock = StepClock()
    cache = DecisionCache(CONFIG, clock)
    cache.put(_key(1), _decision())
    found = cache.lookup(_key(1).compact(), count_miss=False)
    assert found is not None
    assert found == cache.get(_key(1))
    assert cache.lookup(_key(2).compact(), count_miss=False) is None
    assert cache.stats().misses == 0
    # An explicit "now" past the lifetime expires the entry, whatever the clock says.
    later = (NOW + timedelta(seconds=300)).timestamp()
    assert cache.lookup(_key(1).compact(), now=later) is None
    assert cache.stats().expirations == 1


def test_resolution_memos_are_sized_from_the_cache_table() -> None:
    """``[cache] max_entries`` bounds the resolve memo, the routes and the index memo, and a
    new table resizes them."""
    from pullgate.common.clock import SystemClock
    from pullgate.decision.resolution import Resolver

    resolver = Resolver(SystemClock(), CacheConfig(max_entries=50))
    assert [s.capacity for s in resolver.stats()] == [50, 50, 5]
    resolver.configure(CacheConfig(max_entries=20))
    assert [s.capacity for s in resolver.stats()] == [20, 20, 2]
