"""Content planted by someone with push access is denied even with fail-open: a dangling
signature, an envelope longer than its descriptor says (read no further than its size plus
one chunk)."""

from __future__ import annotations

import pytest

from pullgate.config import InconclusiveAction, StatementSettings
from pullgate.decision.model import DecisionRequest
from pullgate.errors import Reason
from pullgate.registry.body import CHUNK
from tests.support.fake_registry import sha256
from tests.support.signing import sign_jws
from tests.unit.decision.world import REPO, HttpWorld


@pytest.fixture
def world(http_world: HttpWorld) -> HttpWorld:
    """The registry store's wire behaviour under the engine: the HTTP fake registry."""
    return http_world


def test_listed_signature_whose_envelope_is_gone_is_denied_even_fail_open(world: HttpWorld) -> None:
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


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
def test_envelope_longer_than_its_descriptor_is_denied_after_size_plus_one_chunk(
    world: HttpWorld, announced: bool
) -> None:
    single = world.reg.put_image(REPO, tag="single", payload=b"single")
    envelope = sign_jws(world.chain, single)
    world.reg.add_signature(REPO, single, envelope)
    envelope_digest = sha256(envelope)
    world.reg.behaviour.oversize.add(envelope_digest)  # 5 MiB more than the descriptor says
    world.reg.behaviour.oversize_content_length = announced
    decider = world.decider(StatementSettings(on_inconclusive=InconclusiveAction.ALLOW))
    decision = decider.decide(DecisionRequest(reference=world.ref("single")))
    assert (decision.allowed, decision.reason, decision.inconclusive) == (
        False,
        Reason.DESCRIPTOR_MISMATCH,
        False,
    )
    fetches = [r for r in world.requests if r.url.endswith(f"/blobs/{envelope_digest}")]
    assert fetches
    assert all(r.size <= len(envelope) + CHUNK for r in fetches), [r.size for r in fetches]
