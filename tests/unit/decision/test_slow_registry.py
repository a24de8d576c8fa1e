"""A registry that drips its answers (one byte just under every read timeout) costs a decision
its budget and no more: the decision says ``TIMEOUT`` at its deadline, its threads and
connections are let go of, and decisions for healthy registries meanwhile still succeed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from pullgate.common.clock import FixedClock
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import Reason
from tests.support.parts import build_engine
from tests.support.pki import NOW
from tests.support.threads import JOIN, outcome_of
from tests.unit.decision.world import REPO, HttpWorld, NoNetworkFetcher, Snap, platform_of


@pytest.fixture
def world(http_world: HttpWorld) -> HttpWorld:
    """The registry store's wire behaviour under the engine: the HTTP fake registry."""
    return http_world


def _decide_in_thread(call: Callable[[], Decision]) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()
    return thread, box


def _decided(call: Callable[[], Decision]) -> Decision:
    decision = outcome_of(call)
    assert isinstance(decision, Decision), decision
    return decision


@pytest.mark.parametrize("phase", ["resolve", "signature discovery"])
def test_dripping_registry_times_out_and_lets_go(world: HttpWorld, phase: str) -> None:
    if phase == "resolve":
        world.reg.behaviour.drip = {"/manifests/v1"}
    else:
        world.reg.behaviour.drip = {f"referrers/{d.digest}" for d in (world.index, world.amd64)}
    decider = world.decider(timeout=1.0)
    decision = _decided(lambda: decider.decide(DecisionRequest(reference=world.ref())))
    assert (decision.allowed, decision.reason, decision.inconclusive) == (
        False,
        Reason.TIMEOUT,
        True,
    )
    assert world.reg.wait_drips(lambda n: n == 0, JOIN)  # no thread left reading a drip
    decider.close()


def test_dripping_registry_does_not_starve_healthy_decisions(world: HttpWorld) -> None:
    """The slow decisions hold every pool thread for longer than the healthy decision's whole
    budget (as a steady stream of them would); the healthy one must still be verified."""
    world.sign(world.index)
    world.sign(world.amd64)
    slow_amd64 = world.reg.put_image(REPO, tag=None, payload=b"slow amd64 layer")
    slow_index = world.reg.put_manifest(
        REPO,
        {
            "schemaVersion": 2,
            "mediaType": world.index.media_type,
            "manifests": [{**slow_amd64.to_json(), "platform": platform_of("linux", "amd64")}],
        },
        world.index.media_type,
        tag="slow",
    )
    world.reg.behaviour.drip = {f"referrers/{d.digest}" for d in (slow_index, slow_amd64)}
    snaps: list[Snap] = [world.snapshot(timeout=60.0)]
    decider = build_engine(
        lambda: snaps[-1], clock=FixedClock(NOW), fetcher=NoNetworkFetcher(), max_workers=2
    )
    slow = [
        _decide_in_thread(lambda: decider.decide(DecisionRequest(reference=world.ref("slow"))))
        for _ in range(2)
    ]
    assert world.reg.wait_drips(lambda n: n >= 2, JOIN)
    snaps.append(world.snapshot(timeout=5.0))
    healthy = _decided(lambda: decider.decide(DecisionRequest(reference=world.ref())))
    assert (healthy.allowed, healthy.reason) == (True, Reason.VERIFIED)

    world.reg.drips_stopped.set()
    for thread, _ in slow:
        thread.join(JOIN)
        assert not thread.is_alive()
    decider.close()
