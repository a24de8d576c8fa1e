"""A dangling signature planted by someone with push access is denied even with fail-open."""

from __future__ import annotations

from pullgate.config import InconclusiveAction, StatementSettings
from pullgate.decision.model import DecisionRequest
from pullgate.errors import Reason
from tests.unit.decision.world import REPO, World


def test_listed_signature_whose_envelope_is_gone_is_denied_even_fail_open(world: World) -> None:
    world.sign(world.amd64)
    # A push-only attacker lists, as the index's only signature, one whose envelope is gone.
    world.reg.add_signature(REPO, world.index, b"dangling envelope")
    blobs = world.reg.repos[REPO].blobs
    del blobs[next(d for d, data in blobs.items() if data == b"dangling envelope")]
    decider = world.decider(StatementSettings(on_inconclusive=InconclusiveAction.ALLOW))
    decision = decider.decide(DecisionRequest(reference=world.ref()))
    assert (decision.allowed, decision.reason, decision.inconclusive, decision.fail_open) == (
        False,
        Reason.MALFORMED,
        False,
        False,
    )
