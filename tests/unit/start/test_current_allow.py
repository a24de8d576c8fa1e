"""The start gate's memory-only allow (:meth:`StartGate.current_allow`, the splice transport's
quick path): it allows exactly what the full check answers from a current record, no more, and
its answer is counted and audited once, when settled, as the full check's would be."""

from __future__ import annotations

from pathlib import Path

from pullgate.decision.model import DecisionRequest
from pullgate.errors import Reason
from pullgate.start.verdicts import VerdictStore
from tests.unit.decision.world import StepClock, make_world
from tests.unit.start.conftest import GateWorld, make_gate

FRONT = "runtime"


def test_a_current_allow_is_settled_once_as_the_full_check_records_it(gw: GateWorld) -> None:
    image = gw.image("quick", tag="q1")
    gw.world.sign(image.manifest)
    ref = gw.world.ref("q1")
    gw.decider.decide(DecisionRequest(reference=ref))
    settle = gw.gate.current_allow(image.config.digest, ref, front=FRONT)
    assert settle is not None
    assert (gw.audits, gw.gate.counts_snapshot()) == ([], {})  # nothing until settled
    answer = settle()
    assert (answer.allowed, answer.reason) == (True, Reason.VERIFIED)
    assert gw.gate.counts_snapshot() == {("allow", "VERIFIED"): 1}
    [quick] = gw.audits
    full = gw.gate.check(image.config.digest, ref, front=FRONT)
    assert full == answer
    assert gw.audits == [quick, quick]  # the very record the full check writes
    assert gw.gate.counts_snapshot() == {("allow", "VERIFIED"): 2}


def test_no_current_allow_leaves_it_to_the_full_check(gw: GateWorld) -> None:
    image, never = gw.image("once", tag="o1"), gw.image("never", tag="n1")
    gw.world.sign(image.manifest)
    ref = gw.world.ref("o1")
    gw.decider.decide(DecisionRequest(reference=ref))
    assert gw.gate.current_allow(never.config.digest, gw.world.ref("n1"), front=FRONT) is None
    elsewhere = f"{gw.world.reg.host}/other:o1"  # recorded for another repository
    assert gw.gate.current_allow(image.config.digest, elsewhere, front=FRONT) is None
    gw.reload()  # a verdict from another snapshot is not current
    assert gw.gate.current_allow(image.config.digest, ref, front=FRONT) is None
    assert (gw.audits, gw.gate.counts_snapshot()) == ([], {})


def test_critical_entries_and_stale_allows_leave_it_to_the_full_check(tmp_path: Path) -> None:
    clock = StepClock()
    with make_world(tmp_path) as world:
        store = VerdictStore(clock=lambda: clock.now().timestamp())
        critical = (f"{world.reg.host}/pause:*",)
        gw = make_gate(world, tmp_path, store=store, max_age=300.0, clock=clock, critical=critical)
        try:
            ids: dict[str, str] = {}
            for repo, tag in (("app", "a1"), ("pause", "3.9")):
                image = gw.image(repo, repo=repo, tag=tag)
                world.sign(image.manifest)
                ids[repo] = image.config.digest
                gw.decider.decide(DecisionRequest(reference=f"{world.reg.host}/{repo}:{tag}"))
            # Recorded and current, but critical: the full check answers SKIPPED_BY_POLICY.
            pause = f"{world.reg.host}/pause:3.9"
            assert gw.gate.current_allow(ids["pause"], pause, front=FRONT) is None
            assert gw.gate.check_local(ids["pause"], pause).reason is Reason.SKIPPED_BY_POLICY
            app, app_id = f"{world.reg.host}/app:a1", ids["app"]
            assert gw.gate.current_allow(app_id, app, front=FRONT) is not None
            clock.advance(301)  # older than max_age: verified again by the full check
            assert gw.gate.current_allow(app_id, app, front=FRONT) is None
        finally:
            gw.gate.close()
            gw.decider.close()
