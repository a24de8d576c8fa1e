"""Definitive reasons stay denies under ``on_inconclusive = "allow"`` (the reason table decides)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pullgate.common.clock import FixedClock
from pullgate.config import InconclusiveAction, StatementSettings
from pullgate.cri.denial import Denial, DenialKind
from pullgate.decision.model import DecisionRequest
from pullgate.errors import Reason
from pullgate.registry.hosts import load_hosts
from pullgate.registry.model import HostsConfig
from tests.support.parts import build_engine
from tests.support.pki import NOW
from tests.unit.decision.world import HttpWorld, NoNetworkFetcher, Snap


@pytest.fixture
def world(http_world: HttpWorld) -> HttpWorld:
    """The registry store's wire behaviour under the engine: the HTTP fake registry."""
    return http_world


FAIL_OPEN = StatementSettings(on_inconclusive=InconclusiveAction.ALLOW)


@dataclass(frozen=True)
class CertsDSnap(Snap):
    """A snapshot whose certs.d lookup is the real one, over ``certs_d``."""

    certs_d: Path = Path("/nonexistent")

    def hosts(self, registry: str) -> HostsConfig:
        return load_hosts(registry, [self.certs_d])


def test_unreadable_certs_d_entry_is_definitive_even_fail_open(world: HttpWorld) -> None:
    certs_d = world.tmp / "certs.d"
    certs_d.mkdir()
    # containerd fails a pull whose host entry exists but is not a readable directory
    (certs_d / world.reg.host).write_text("not a directory")
    base = world.snapshot(FAIL_OPEN)
    snap = CertsDSnap(**{**base.__dict__, "certs_d": certs_d})
    decider = build_engine(lambda: snap, clock=FixedClock(NOW), fetcher=NoNetworkFetcher())
    decision = decider.decide(DecisionRequest(reference=world.ref()))
    assert decision.reason is Reason.CONFIG
    assert (decision.allowed, decision.inconclusive, decision.fail_open) == (False, False, False)
    assert Denial.from_decision(decision).kind is DenialKind.SIGNATURE


def test_image_absent_everywhere_is_definitive_not_found_even_fail_open(world: HttpWorld) -> None:
    decision = world.decider(FAIL_OPEN).decide(DecisionRequest(reference=world.ref("never-pushed")))
    assert decision.reason is Reason.NOT_FOUND
    assert (decision.allowed, decision.inconclusive, decision.fail_open) == (False, False, False)
    assert Denial.from_decision(decision).kind is DenialKind.SIGNATURE
