"""Subjects at and after the decision's deadline, through the real engine over the in-memory
store, whose signature listing takes as long as a test says: a late definitive deny stands, a
late allow is a TIMEOUT, and a subject whose turn comes after the deadline is not started."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from pullgate.common.descriptor import Descriptor
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import Reason
from tests.support.fake_registry import OCI_INDEX
from tests.support.memory_store import Op
from tests.support.pki import KeySpec, Pki
from tests.support.signing import sign_jws
from tests.unit.decision.world import REPO, MemWorld, platform_of

BUDGET = 0.3


def _listing_ends(world: MemWorld, after: dict[str, float]) -> None:
    """The signature listing of each digest in ``after`` returns that many seconds after the
    budget of the decision it serves ran out (counted from its resolve, so a bit later)."""
    started: list[float] = []

    def hook(op: Op) -> None:
        if op.kind == "resolve":
            started.append(time.perf_counter())
        elif op.kind == "signatures" and op.name in after:
            until = started[-1] + BUDGET + after[op.name]
            time.sleep(max(until - time.perf_counter(), 0.0))

    world.reg.hook = hook


def _subject_reasons(decision: Decision) -> dict[str, tuple[Reason, bool]]:
    return {s.role: (s.reason, s.verified) for s in decision.subjects}


@pytest.mark.parametrize(
    ("trusted", "expected", "inconclusive"),
    [(False, Reason.UNTRUSTED, False), (True, Reason.TIMEOUT, True)],
    ids=["definitive-deny-stands", "allow-is-timeout"],
)
def test_a_late_result(
    world: MemWorld, trusted: bool, expected: Reason, inconclusive: bool
) -> None:
    single = world.reg.put_image(REPO, tag="single", payload=b"single")
    if trusted:
        world.sign(single)
    else:
        stranger = Pki(name="stranger").chain(key=KeySpec.ec(256))
        world.reg.add_signature(REPO, single, sign_jws(stranger, single))
    _listing_ends(world, {single.digest: 0.1})
    decision = world.decider(timeout=BUDGET).decide(DecisionRequest(reference=world.ref("single")))
    assert (decision.allowed, decision.reason, decision.inconclusive) == (
        False,
        expected,
        inconclusive,
    )


def test_a_pooled_subject_that_finished_late_is_a_timeout_too(world: MemWorld) -> None:
    """The pooled subject (index) allows just after the deadline, while the calling thread's
    own subject (platform) runs even later: when the pooled answer is collected it is complete,
    but late, and must count as a TIMEOUT as the calling thread's late allow does."""
    world.sign(world.index)
    world.sign(world.amd64)
    _listing_ends(world, {world.index.digest: 0.05, world.amd64.digest: 0.3})
    decision = world.decider(timeout=BUDGET).decide(DecisionRequest(reference=world.ref()))
    assert _subject_reasons(decision) == {
        "index": (Reason.TIMEOUT, False),
        "platform": (Reason.TIMEOUT, False),
    }


def _second_index(world: MemWorld) -> tuple[Descriptor, Descriptor]:
    amd64 = world.reg.put_image(REPO, tag=None, payload=b"second amd64 layer")
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{**amd64.to_json(), "platform": platform_of("linux", "amd64")}],
    }
    return world.reg.put_manifest(REPO, doc, OCI_INDEX, tag="second"), amd64


def test_nothing_starts_after_the_deadline(world: MemWorld) -> None:
    """The decider's one pool thread is held by another decision's index subject: this
    decision's index subject waits in the queue while its platform subject (on the calling
    thread) runs past the deadline; then the queued one is a TIMEOUT and is never started."""
    index, amd64 = _second_index(world)
    for subject in (world.index, world.amd64, index, amd64):
        world.sign(subject)
    holding, release = threading.Event(), threading.Event()
    started: list[float] = []

    def hook(op: Op) -> None:
        if op.kind == "resolve":
            started.append(time.perf_counter())
        elif op.kind == "signatures" and op.name == world.index.digest:
            holding.set()
            release.wait(10)
        elif op.kind == "signatures" and op.name == amd64.digest:
            time.sleep(max(started[-1] + BUDGET + 0.1 - time.perf_counter(), 0.0))

    world.reg.hook = hook
    decider = world.decider(timeout=BUDGET, max_workers=1)
    blocker = threading.Thread(target=_decide, args=(decider.decide, world.ref()))
    blocker.start()
    try:
        assert holding.wait(10)
        decision = decider.decide(DecisionRequest(reference=world.ref("second")))
    finally:
        release.set()
        blocker.join(10)
        decider.close()
    assert _subject_reasons(decision)["index"] == (Reason.TIMEOUT, False)
    assert Op("signatures", REPO, index.digest) not in world.reg.requests()


def _decide(decide: Callable[[DecisionRequest], Decision], reference: str) -> None:
    decide(DecisionRequest(reference=reference))
