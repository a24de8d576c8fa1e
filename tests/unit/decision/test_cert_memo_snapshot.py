"""The certificate memos belong to the snapshot a decision runs under: a decision fills its
snapshot's memos (pullgate.verification.cache.CertMemo), a new snapshot starts with empty ones,
and the old ones are dropped with the old snapshot."""

from __future__ import annotations

import gc
import weakref

from pullgate.common.clock import FixedClock
from pullgate.decision.model import DecisionRequest
from pullgate.verification.cache import CertMemo
from tests.support.parts import build_engine
from tests.support.pki import NOW
from tests.unit.decision.world import MemWorld, NoNetworkFetcher, Snap


def _size(memo: CertMemo) -> int:
    """Entries held; every memo a signature's checks use must hold some (identities are ``*``,
    so no DN is parsed)."""
    used = (memo.facts, memo.loaded, memo.checks, memo.subjects)
    if any(len(each) == 0 for each in used):
        return 0
    return sum(len(each) for each in used)


def test_a_new_snapshot_verifies_with_fresh_memos_and_the_old_ones_are_dropped(
    world: MemWorld,
) -> None:
    world.sign(world.index)
    world.sign(world.amd64)
    current: list[Snap] = [world.snapshot()]
    decider = build_engine(
        lambda: current[0],
        clock=FixedClock(NOW),
        fetcher=NoNetworkFetcher(),
        stores=world.reg.opener,
    )
    try:
        first = decider.decide(DecisionRequest(reference=world.ref()))
        assert first.allowed
        old = current[0].cert_memo
        assert _size(old) > 0  # the decision's chain checks went to its snapshot's memos
        gone = weakref.ref(old)
        del old

        current[0] = world.snapshot()  # a reload: another snapshot, another digest
        fresh = current[0].cert_memo
        assert _size(fresh) == 0
        second = decider.decide(DecisionRequest(reference=world.ref()))
        assert second.allowed
        assert not second.cache_hit
        assert _size(fresh) > 0  # the same chain checks, remembered anew
        gc.collect()
        assert gone() is None  # nothing (decider, pools, verifier) kept the old memos
    finally:
        decider.close()
