"""What a cold decision asks the registry for, and when it reads the manifest an allow covers
(its config digest binds the allow for the start gates): while the signatures are verified, not
after them; a deny does not wait for it."""

from __future__ import annotations

import threading
import time
from collections import Counter

from pullgate.decision.model import DecisionRequest
from pullgate.errors import Reason
from tests.support.memory_store import Op
from tests.unit.decision.world import REPO, MemWorld


def _kinds(world: MemWorld, mark: int = 0) -> Counter[str]:
    return Counter(op.kind for op in world.reg.requests()[mark:])


def test_a_cold_index_decision_makes_nine_requests(world: MemWorld) -> None:
    world.sign(world.index)
    world.sign(world.amd64)
    decision = world.decider().decide(DecisionRequest(reference=world.ref()))
    assert decision.allowed
    assert [c.manifest_digest for c in decision.content] == [world.amd64.digest]
    # resolve; the index; per subject referrers, signature manifest, envelope; the covered
    # platform manifest, read once.
    assert _kinds(world) == Counter(resolve=1, manifest=4, signatures=2, blob=2)
    reads = Counter(op.kind for op in world.reg.requests() if op.name == world.amd64.digest)
    assert reads == Counter(signatures=1, manifest=1)


def test_a_cold_plain_manifest_decision_makes_five_requests(world: MemWorld) -> None:
    single = world.reg.put_image(REPO, tag="single", payload=b"single")
    world.sign(single)
    mark = len(world.reg.requests())
    decision = world.decider().decide(DecisionRequest(reference=world.ref("single")))
    assert decision.allowed
    assert [c.manifest_digest for c in decision.content] == [single.digest]
    assert _kinds(world, mark) == Counter(resolve=1, signatures=1, manifest=2, blob=1)


def test_the_covered_manifest_is_read_while_the_signature_is(world: MemWorld) -> None:
    single = world.reg.put_image(REPO, tag="single", payload=b"single")
    world.sign(single)
    read = threading.Event()
    envelope_waited: list[bool] = []

    def hook(op: Op) -> None:
        if (op.kind, op.name) == ("manifest", single.digest):
            read.set()
        elif op.kind == "blob":  # the envelope: served only once the manifest is being read
            envelope_waited.append(read.wait(timeout=5.0))

    world.reg.hook = hook
    decision = world.decider().decide(DecisionRequest(reference=world.ref("single")))
    assert decision.allowed
    assert [c.manifest_digest for c in decision.content] == [single.digest]
    assert envelope_waited == [True]


def test_a_deny_does_not_wait_for_the_read_and_makes_it_once(world: MemWorld) -> None:
    unsigned = world.reg.put_image(REPO, tag="unsigned", payload=b"unsigned")
    release = threading.Event()
    held: list[bool] = []

    def hook(op: Op) -> None:
        if (op.kind, op.name) == ("manifest", unsigned.digest):
            held.append(not release.wait(timeout=5.0))

    world.reg.hook = hook
    mark = len(world.reg.requests())
    decision = world.decider().decide(DecisionRequest(reference=world.ref("unsigned")))
    release.set()
    assert (decision.allowed, decision.reason, decision.content) == (
        False,
        Reason.NO_SIGNATURE,
        (),
    )
    deadline = time.monotonic() + 5.0
    while not held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held == [False]  # the read was still held when the deny was answered
    assert _kinds(world, mark) == Counter(resolve=1, signatures=1, manifest=1)


def test_a_read_unfinished_at_the_deadline_binds_nothing(world: MemWorld) -> None:
    single = world.reg.put_image(REPO, tag="single", payload=b"single")
    world.sign(single)
    release = threading.Event()

    def hook(op: Op) -> None:
        if (op.kind, op.name) == ("manifest", single.digest):
            release.wait(timeout=5.0)

    world.reg.hook = hook
    try:
        decision = world.decider(timeout=0.5).decide(DecisionRequest(reference=world.ref("single")))
    finally:
        release.set()
    assert (decision.allowed, decision.content) == (True, ())


def test_an_allow_still_binds_its_content_when_the_pool_is_shut_down(world: MemWorld) -> None:
    """A plain manifest is verified on the calling thread alone; a decision finishing while
    the daemon stops (its pool shut down) reads the manifest itself."""
    single = world.reg.put_image(REPO, tag="single", payload=b"single")
    world.sign(single)
    decider = world.decider()
    decider.close()
    decision = decider.decide(DecisionRequest(reference=world.ref("single")))
    assert decision.allowed
    assert [c.manifest_digest for c in decision.content] == [single.digest]
