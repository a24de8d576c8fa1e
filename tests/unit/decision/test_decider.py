"""The decision engine end to end over the in-memory store (no sockets); the two tests about
registry authentication run over the in-process HTTP fake registry."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from pullgate.common.clock import FixedClock
from pullgate.config import (
    InconclusiveAction,
    Mode,
    Requirement,
    StatementSettings,
)
from pullgate.decision.decider import Decider
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import Reason
from pullgate.registry.model import Credentials
from pullgate.trust.snapshot import Snapshot
from pullgate.trust.state import TrustState
from tests.support.fake_registry import OCI_INDEX, write_docker_config
from tests.support.parts import build_engine, build_fetcher
from tests.support.pki import NOW
from tests.unit.decision.world import REPO, SECRET, HttpWorld, MemWorld, platform_of


def _roles(decision: Decision) -> dict[str, bool]:
    return {s.role: s.verified for s in decision.subjects}


def test_index_and_platform_signed_allows_and_reports_both(world: MemWorld) -> None:
    world.sign(world.index)
    world.sign(world.amd64)
    decision = world.decider().decide(DecisionRequest(reference=world.ref()))
    assert (decision.allowed, decision.reason) == (True, Reason.VERIFIED)
    assert _roles(decision) == {"index": True, "platform": True}
    assert decision.digest == world.index.digest
    platform = next(s for s in decision.subjects if s.role == "platform")
    assert platform.digest == world.amd64.digest
    assert decision.platform == "linux/amd64"
    assert decision.statement == "app"
    assert {"resolve", "discover", "fetch", "crypto", "revocation"} <= set(decision.timings)


def test_requested_platform_selects_its_manifest(world: MemWorld) -> None:
    world.sign(world.index)
    world.sign(world.arm64)
    decider = world.decider()
    arm = decider.decide(DecisionRequest(reference=world.ref(), platform="linux/arm64/v8"))
    amd = decider.decide(DecisionRequest(reference=world.ref(), platform="linux/amd64"))
    assert (arm.allowed, amd.allowed) == (True, False)
    assert amd.reason is Reason.NO_SIGNATURE


def test_index_only_signed_denied_with_both(world: MemWorld) -> None:
    world.sign(world.index)
    decision = world.decider().decide(DecisionRequest(reference=world.ref()))
    assert (decision.allowed, decision.reason, decision.inconclusive) == (
        False,
        Reason.NO_SIGNATURE,
        False,
    )
    assert _roles(decision) == {"index": True, "platform": False}


def test_index_only_signed_allowed_with_index(world: MemWorld) -> None:
    world.sign(world.index)
    settings = StatementSettings(require=Requirement.INDEX)
    decision = world.decider(settings).decide(DecisionRequest(reference=world.ref()))
    assert (decision.allowed, decision.requirement) == (True, Requirement.INDEX)
    assert _roles(decision) == {"index": True}


def test_request_override_of_requirement(world: MemWorld) -> None:
    world.sign(world.index)
    request = DecisionRequest(reference=world.ref(), require=Requirement.INDEX)
    assert world.decider().decide(request).allowed


def test_platform_only_signed_allowed_with_either(world: MemWorld) -> None:
    world.sign(world.amd64)
    settings = StatementSettings(require=Requirement.EITHER)
    decision = world.decider(settings).decide(DecisionRequest(reference=world.ref()))
    assert decision.allowed
    assert _roles(decision) == {"index": False, "platform": True}


def test_platform_only_signed_denied_with_index(world: MemWorld) -> None:
    world.sign(world.amd64)
    settings = StatementSettings(require=Requirement.INDEX)
    decision = world.decider(settings).decide(DecisionRequest(reference=world.ref()))
    assert (decision.allowed, decision.reason) == (False, Reason.NO_SIGNATURE)


def test_absent_platform_is_platform_not_found(world: MemWorld) -> None:
    world.sign(world.index)
    request = DecisionRequest(reference=world.ref(), platform="linux/s390x")
    decision = world.decider().decide(request)
    assert (decision.allowed, decision.reason, decision.inconclusive) == (
        False,
        Reason.PLATFORM_NOT_FOUND,
        False,
    )


def test_plain_manifest_is_one_subject(world: MemWorld) -> None:
    single = world.reg.put_image(REPO, tag="single", payload=b"single")
    world.sign(single)
    decision = world.decider().decide(DecisionRequest(reference=world.ref("single")))
    assert decision.allowed
    assert _roles(decision) == {"manifest": True}


def test_hostile_tag_serving_other_index_bytes_is_denied_even_fail_open(world: MemWorld) -> None:
    world.sign(world.index)
    world.sign(world.amd64)
    world.reg.behaviour.wrong_digest.add(world.index.digest)
    settings = StatementSettings(on_inconclusive=InconclusiveAction.ALLOW)
    decision = world.decider(settings).decide(DecisionRequest(reference=world.ref()))
    assert (decision.allowed, decision.reason, decision.fail_open) == (
        False,
        Reason.MALFORMED,
        False,
    )


def test_index_listing_a_manifest_other_than_the_signed_one_is_denied(world: MemWorld) -> None:
    world.sign(world.amd64)
    forged = {**world.amd64.to_json(), "size": world.amd64.size + 1}
    hostile = world.reg.put_manifest(
        REPO,
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{**forged, "platform": platform_of("linux", "amd64")}],
        },
        OCI_INDEX,
        tag="hostile",
    )
    world.sign(hostile)
    decision = world.decider().decide(DecisionRequest(reference=world.ref("hostile")))
    assert (decision.allowed, decision.reason) == (False, Reason.DESCRIPTOR_MISMATCH)


def test_registry_down_fail_open_allows(world: MemWorld, caplog: pytest.LogCaptureFixture) -> None:
    settings = StatementSettings(on_inconclusive=InconclusiveAction.ALLOW)
    world.reg.behaviour.unreachable = True
    decider = world.decider(settings)
    with caplog.at_level(logging.WARNING, logger="pullgate.decision.decider"):
        first = decider.decide(DecisionRequest(reference=world.ref()))
        second = decider.decide(DecisionRequest(reference=world.ref()))
    for decision in (first, second):
        assert (decision.allowed, decision.fail_open, decision.inconclusive) == (True, True, True)
        assert decision.reason is Reason.REGISTRY_UNREACHABLE
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "fail-open" in r.msg]
    assert len(warnings) == 2
    assert decider.stats().fail_open == 2


def test_registry_down_fail_closed_denies_inconclusive(world: MemWorld) -> None:
    world.reg.behaviour.unreachable = True
    decider = world.decider()
    decision = decider.decide(DecisionRequest(reference=world.ref()))
    assert (decision.allowed, decision.inconclusive, decision.fail_open) == (False, True, False)
    assert decision.reason is Reason.REGISTRY_UNREACHABLE


def test_audit_mode_allows_what_it_would_deny(world: MemWorld) -> None:
    settings = StatementSettings(mode=Mode.AUDIT)
    decision = world.decider(settings).decide(DecisionRequest(reference=world.ref()))
    assert (decision.allowed, decision.audit_denied, decision.reason) == (
        True,
        True,
        Reason.AUDIT_ONLY,
    )
    assert {s.reason for s in decision.subjects} == {Reason.NO_SIGNATURE}


def test_audit_mode_passes_verified_images_unflagged(world: MemWorld) -> None:
    world.sign(world.index)
    world.sign(world.amd64)
    decision = world.decider(StatementSettings(mode=Mode.AUDIT)).decide(
        DecisionRequest(reference=world.ref())
    )
    assert (decision.allowed, decision.audit_denied, decision.reason) == (
        True,
        False,
        Reason.VERIFIED,
    )


def test_no_applicable_statement_denies_no_policy(world: MemWorld) -> None:
    other = world.reg.put_image("other", tag="v1")
    world.sign(other)
    decider = world.decider(StatementSettings(mode=Mode.AUDIT))
    decision = decider.decide(DecisionRequest(reference=world.ref(repo="other")))
    assert (decision.allowed, decision.reason) == (False, Reason.NO_POLICY)
    assert world.reg.requests() == []  # decided before contacting the registry


@pytest.mark.parametrize(
    "request_",
    [
        DecisionRequest(reference="UPPER/Case"),
        DecisionRequest(reference="app:v1", platform="garbage"),
        DecisionRequest(reference="app:v1", digest="sha256:nothex"),
    ],
)
def test_bad_input_is_a_typed_deny(world: MemWorld, request_: DecisionRequest) -> None:
    decision = world.decider().decide(request_)
    assert (decision.allowed, decision.reason) == (False, Reason.MALFORMED)


def test_cache_hit_on_second_call(world: MemWorld) -> None:
    world.sign(world.index)
    world.sign(world.amd64)
    decider = world.decider()
    first = decider.decide(DecisionRequest(reference=world.ref()))
    before = len(world.reg.requests())
    second = decider.decide(DecisionRequest(reference=world.ref()))
    assert (first.cache_hit, second.cache_hit, second.allowed) == (False, True, True)
    assert (first.resolve_cached, second.resolve_cached) == (False, True)
    assert len(world.reg.requests()) == before  # resolve memo + index memo + cache: no request
    assert decider.stats().cache.hits == 1


def _decide_concurrently(decider: Decider, world: MemWorld, n: int) -> list[Decision]:
    """``n`` identical cold calls; the leader's first registry request waits for all joins."""
    joined = threading.Event()

    def hold(_op: object) -> None:
        if not joined.is_set():
            while decider.stats().single_flight.joins < n - 1:
                joined.wait(0.001)
            joined.set()

    world.reg.hook = hold
    results: list[Decision] = []
    lock = threading.Lock()

    def call() -> None:
        decision = decider.decide(DecisionRequest(reference=world.ref(), caller="pod"))
        with lock:
            results.append(decision)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_hundred_concurrent_cold_calls_cost_one_call(world: MemWorld) -> None:
    world.sign(world.index)
    world.sign(world.amd64)
    world.decider().decide(DecisionRequest(reference=world.ref()))
    one_call = len(world.reg.requests())
    assert one_call > 0
    world.reg.log.clear()

    decider = world.decider()
    results = _decide_concurrently(decider, world, 100)
    assert len(results) == 100
    assert all(d.allowed for d in results)
    assert len(world.reg.requests()) == one_call
    flight = decider.stats().single_flight
    assert (flight.calls, flight.joins) == (1, 99)
    assert sum(1 for a in world.audits if a["single_flight_joined"]) == 99


def test_audit_record_fields_and_no_secret(
    http_world: HttpWorld, caplog: pytest.LogCaptureFixture
) -> None:
    http_world.sign(http_world.index)
    http_world.sign(http_world.amd64)
    http_world.reg.behaviour.auth = "basic"
    http_world.reg.behaviour.username = "puller"
    http_world.reg.behaviour.password = SECRET
    creds = Credentials(username="puller", password=SECRET, identity_token=SECRET + "-id")
    request = DecisionRequest(reference=http_world.ref(), credentials=creds, caller="kubelet")
    with caplog.at_level(logging.DEBUG):
        decision = http_world.decider().decide(request)
        denied = http_world.decider().decide(
            DecisionRequest(
                reference=http_world.ref(),
                credentials=Credentials(username="puller", password="wrong-" + SECRET),
            )
        )
    assert decision.allowed
    assert (denied.allowed, denied.reason) == (False, Reason.REGISTRY_AUTH)
    record = http_world.audits[0]
    expected = {
        "reference",
        "digest",
        "digests",
        "platform",
        "statement",
        "level",
        "decision",
        "reason",
        "signer_subject",
        "signer_fingerprint",
        "cache_hit",
        "timings",
        "caller",
        "generation",
    }
    assert expected <= set(record)
    assert record["decision"] == "allow"
    assert record["caller"] == "kubelet"
    assert record["digests"] == {
        "index": http_world.index.digest,
        "platform": http_world.amd64.digest,
    }
    assert record["signer_fingerprint"]
    text = json.dumps(http_world.audits) + caplog.text + repr(decision) + repr(denied)
    assert SECRET not in text
    assert "puller:" not in text


def test_timeout_budget_is_inconclusive(world: MemWorld) -> None:
    world.sign(world.index)
    world.sign(world.amd64)
    decision = world.decider(timeout=0.0).decide(DecisionRequest(reference=world.ref()))
    assert (decision.allowed, decision.reason, decision.inconclusive) == (
        False,
        Reason.TIMEOUT,
        True,
    )


def test_rotated_docker_config_credentials_are_used_after_a_reload(http_world: HttpWorld) -> None:
    """The decider's per-snapshot state (credentials included) is keyed by the snapshot digest:
    a rotated ``config.json`` must be a new snapshot, or the old credentials stay in use."""
    http_world.sign(http_world.index)
    http_world.sign(http_world.amd64)
    behaviour = http_world.reg.behaviour
    behaviour.auth, behaviour.username, behaviour.password = "basic", "puller", "old-" + SECRET
    docker_json = http_world.tmp / "docker.json"
    write_docker_config(
        docker_json, {http_world.reg.host: {"username": "puller", "password": "old-" + SECRET}}
    )
    host_dir = http_world.tmp / "certs.d" / http_world.reg.host
    host_dir.mkdir(parents=True)
    (host_dir / "hosts.toml").write_text(f'server = "{http_world.reg.url}"\n')
    config = http_world.tmp / "config.toml"
    config.write_text(
        f'trust_dir = "{http_world.trust.trust_dir}"\n'
        f'hosts_dir = "{http_world.tmp / "certs.d"}"\n'
        'platform = "linux/amd64"\n'
        f'[registry]\nconfig_json = "{docker_json}"\n'
        f'[verification]\ncrl_cache_dir = "{http_world.tmp / "crl"}"\n'
    )
    clock = FixedClock(NOW)
    state = TrustState(config, clock=clock)
    assert state.reload("startup").ok

    def snapshot() -> Snapshot:
        current = state.current()
        assert current is not None
        return current

    decider = build_engine(snapshot, clock=clock, fetcher=build_fetcher())
    try:
        assert decider.decide(DecisionRequest(reference=http_world.ref())).reason is Reason.VERIFIED
        behaviour.password = "new-" + SECRET  # the registry rotates the password...
        write_docker_config(  # ...and so does the node's config.json
            docker_json, {http_world.reg.host: {"username": "puller", "password": "new-" + SECRET}}
        )
        assert state.reload("rpc").ok
        by_digest = f"{http_world.reg.host}/{REPO}@{http_world.amd64.digest}"  # not cached: asks
        decision = decider.decide(DecisionRequest(reference=by_digest))
        assert (decision.allowed, decision.reason) == (True, Reason.VERIFIED)
    finally:
        decider.close()
