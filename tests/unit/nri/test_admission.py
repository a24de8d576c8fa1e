"""CreateContainer decided from local state: the annotation names the repository, unknown
images are refused at once while verification runs, background denials are reused, audits
and evictions; arbitrary payloads never allow."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pullgate.common.clock import FixedClock
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import Reason
from pullgate.nri.admission import IMAGE_NAME_ANNOTATION, NriGate
from pullgate.nri.frames import RpcRequest, decode_response
from pullgate.nri.plugin import PLUGIN_SERVICE, PluginService
from pullgate.nri.wire import api_pb2
from pullgate.start.break_glass import BreakGlass
from pullgate.start.gate import StartDecision, StartGate
from pullgate.start.verdicts import VerdictStore

IMAGE = "sha256:" + "c" * 64
DIGEST = "sha256:" + "d" * 64
SIGNED = "registry.test/team/signed:1"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
UNSIGNED = "registry.test/team/unsigned:1"


@dataclass
class FakeGate:
    """A start gate allowing ``allowed`` (image ID, reference) pairs once checked."""

    verified: dict[str, Reason] = field(default_factory=dict)  # repo -> result of a full check
    allowed: set[tuple[str, str]] = field(default_factory=set)
    checks: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def _decision(self, image_id: str, reference: str, ok: bool, reason: Reason) -> StartDecision:
        return StartDecision(
            allowed=ok, reason=reason, message="m", image_id=image_id, reference=reference
        )

    answers: list[tuple[str, Reason]] = field(default_factory=list)  # (front, reason) recorded

    def answer(self, decision: StartDecision, front: str) -> StartDecision:
        self.answers.append((front, decision.reason))
        return decision

    def check_local(
        self, image_id: str, reference: str, *, front: str = "", answer: bool = True
    ) -> StartDecision:
        if (image_id, reference) in self.allowed:
            return self._decision(image_id, reference, True, Reason.VERIFIED)
        return self._decision(image_id, reference, False, Reason.NOT_VERIFIED)

    def check(
        self,
        image_id: str,
        reference: str,
        repo_digests: Sequence[str],
        *,
        front: str = "",
        answer: bool = True,
    ) -> StartDecision:
        self.checks.append((image_id, reference, tuple(repo_digests)))
        reason = self.verified.get(reference, Reason.NO_SIGNATURE)
        if reason is Reason.VERIFIED:
            self.allowed.add((image_id, reference))
        self.done.set()
        return self._decision(image_id, reference, reason is Reason.VERIFIED, reason)


def _container(reference: str | None, cid: str = "c1", name: str = SIGNED) -> api_pb2.Container:
    annotations = {IMAGE_NAME_ANNOTATION: reference} if reference is not None else {}
    return api_pb2.Container(
        id=cid,
        name="app",
        annotations=annotations,
        image=api_pb2.Image(name=name, digest=DIGEST, config_digest=IMAGE),
    )


def _gate(fake: FakeGate, **kwargs: object) -> NriGate:
    return NriGate(fake, lambda: "snap-1", workers=1, **kwargs)  # type: ignore[arg-type]


def test_unknown_image_is_refused_at_once_then_allowed_after_verification() -> None:
    fake = FakeGate(verified={SIGNED: Reason.VERIFIED})
    gate = _gate(fake)
    first = gate.admit(api_pb2.PodSandbox(), _container(SIGNED))
    assert not first.allowed
    assert "VERIFICATION_STARTED" in first.message.split(":")[1]
    assert fake.done.wait(5)
    assert fake.checks == [(IMAGE, SIGNED, (f"registry.test/team/signed:1@{DIGEST}",))]
    assert gate.admit(api_pb2.PodSandbox(), _container(SIGNED)).allowed
    gate.close()


def test_a_start_is_decided_again_when_the_allow_has_lapsed() -> None:
    fake = FakeGate(allowed={(IMAGE, SIGNED)})
    gate = _gate(fake)
    assert gate.admit(api_pb2.PodSandbox(), _container(SIGNED)).allowed
    assert gate.admit_start(api_pb2.PodSandbox(), _container(SIGNED)).allowed
    fake.allowed.clear()  # e.g. a reload made the allow stale; the full check now denies
    refused = gate.admit_start(api_pb2.PodSandbox(), _container(SIGNED))
    assert not refused.allowed
    assert refused.message.split(": ")[1] == Reason.VERIFICATION_STARTED.value
    assert fake.done.wait(5)
    for _ in range(50):  # the background denial then answers with its reason
        refused = gate.admit_start(api_pb2.PodSandbox(), _container(SIGNED))
        if Reason.NO_SIGNATURE.value in refused.message:
            break
        threading.Event().wait(0.01)
    assert refused.message.split(": ")[1] == Reason.NO_SIGNATURE.value
    gate.close()


def test_the_annotation_decides_not_image_name() -> None:
    # containerd names the bytes after the signed repository; the pod asked for the unsigned one.
    fake = FakeGate(verified={SIGNED: Reason.VERIFIED}, allowed={(IMAGE, SIGNED)})
    gate = _gate(fake)
    answer = gate.admit(api_pb2.PodSandbox(), _container(UNSIGNED, name=SIGNED))
    assert not answer.allowed
    assert fake.done.wait(5)
    assert fake.checks[0][1] == UNSIGNED
    gate.close()


def test_a_background_denial_answers_retries_with_its_reason() -> None:
    fake = FakeGate()
    gate = _gate(fake)
    gate.admit(api_pb2.PodSandbox(), _container(UNSIGNED))
    assert fake.done.wait(5)
    for _ in range(50):  # the outcome is stored right after check() returns
        answer = gate.admit(api_pb2.PodSandbox(), _container(UNSIGNED))
        if "NO_SIGNATURE" in answer.message:
            break
        threading.Event().wait(0.01)
    assert not answer.allowed
    assert answer.message.split(": ")[1] == Reason.NO_SIGNATURE.value
    assert len(fake.checks) == 1  # not verified again while the denial is fresh
    gate.close()


def test_missing_config_digest_is_refused_malformed() -> None:
    fake = FakeGate()
    gate = _gate(fake)
    container = api_pb2.Container(id="x", annotations={IMAGE_NAME_ANNOTATION: SIGNED})
    answer = gate.admit(api_pb2.PodSandbox(), container)
    assert not answer.allowed
    assert answer.message.split(": ")[1] == Reason.MALFORMED.value
    assert fake.checks == []
    gate.close()


def test_audit_counts_and_evicts_definitive_denials_within_the_budget() -> None:
    fake = FakeGate()
    evicted: list[list[tuple[str, str]]] = []
    counts: list[tuple[str, int]] = []
    gate = _gate(
        fake,
        evict=evicted.append,
        evict_per_minute=1,
        unverified=lambda why, n: counts.append((why, n)),
    )
    containers = [_container(UNSIGNED, cid=f"c{i}") for i in range(3)]
    gate.synchronized(containers, complete=True)
    assert counts == [("synchronize", 3)]
    assert fake.done.wait(5)
    for _ in range(100):
        if evicted:
            break
        threading.Event().wait(0.01)
    assert [len(batch) for batch in evicted] == [1]  # one per minute
    gate.audit("reload")
    assert sum(len(batch) for batch in evicted) == 1
    gate.removed(containers[0])
    gate.audit("reload")
    assert counts[-1] == ("reload", 2)
    gate.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_create_payloads_never_allow(payload: bytes) -> None:
    fake = FakeGate()  # nothing verified: no payload may be allowed
    gate = _gate(fake)
    service = PluginService(gate)
    request = RpcRequest(service=PLUGIN_SERVICE, method="CreateContainer", payload=payload)
    answer = decode_response(service.handle(request))
    assert not answer.ok
    gate.close()


def _real_gate(
    tmp_path: Path,
    critical: tuple[str, ...] = (),
    audit: Callable[[dict[str, object]], None] | None = None,
) -> tuple[NriGate, StartGate]:
    def no_engine(request: DecisionRequest) -> Decision:  # only background checks get here
        return Decision(
            allowed=False,
            reason=Reason.NO_SIGNATURE,
            message="test engine",
            reference=request.reference,
            digest="",
        )

    glass = BreakGlass(tmp_path / "break-glass", FixedClock(NOW))
    start = StartGate(
        store=VerdictStore(),
        snapshot=lambda: "snap-1",
        decide=no_engine,
        critical=critical,
        break_glass=glass,
        audit=audit,
    )
    return NriGate(start, lambda: "snap-1", workers=1), start


def test_each_answer_is_audited_and_counted_once_with_the_reason_answered(
    tmp_path: Path,
) -> None:
    records: list[dict[str, object]] = []
    gate, start = _real_gate(tmp_path, audit=records.append)
    try:
        first = gate.admit(api_pb2.PodSandbox(), _container(SIGNED))
        assert first.message.split(": ")[1] == Reason.VERIFICATION_STARTED.value
        admits = 1
        for _ in range(200):  # the background check (no record of its own) runs, then a
            admits += 1  # retry finds its denial
            retry = gate.admit(api_pb2.PodSandbox(), _container(SIGNED))
            if Reason.NO_SIGNATURE.value in retry.message:
                break
            threading.Event().wait(0.01)
        reasons = [r["reason"] for r in records]
        assert len(records) == admits  # the background check recorded nothing
        assert sum(start.counts_snapshot().values()) == admits  # one count per answer
        assert reasons[0] == Reason.VERIFICATION_STARTED.value
        assert reasons[-1] == Reason.NO_SIGNATURE.value
        assert set(reasons) == {Reason.VERIFICATION_STARTED.value, Reason.NO_SIGNATURE.value}
        assert {r["front"] for r in records} == {"nri"}
    finally:
        gate.close()
        start.close()


def test_critical_images_and_break_glass_apply_as_at_the_runtime_gate(tmp_path: Path) -> None:
    gate, start = _real_gate(tmp_path, critical=("registry.test/team/unsigned:*",))
    try:
        assert gate.admit(api_pb2.PodSandbox(), _container(UNSIGNED)).allowed  # critical
        glass = tmp_path / "break-glass"
        expires = (NOW + timedelta(hours=1)).isoformat()
        glass.write_text(f'expires = {expires}\nreferences = ["registry.test/team/signed:*"]\n')
        assert gate.admit(api_pb2.PodSandbox(), _container(SIGNED)).allowed  # break-glass
        glass.unlink()
        assert not gate.admit(api_pb2.PodSandbox(), _container(SIGNED)).allowed
    finally:
        gate.close()
        start.close()


def test_a_new_synchronize_replaces_the_known_containers() -> None:
    """Containers that ended while the plugin was away (containerd restarted) or whose create
    failed after it was allowed are forgotten at the next Synchronize: they are no longer
    audited, and never spend the eviction budget the real ones need."""
    fake = FakeGate()
    counts: list[tuple[str, int]] = []
    gate = _gate(fake, unverified=lambda why, n: counts.append((why, n)))
    gate.synchronized([_container(UNSIGNED, cid=f"c{i}") for i in range(3)], complete=True)
    assert counts[-1] == ("synchronize", 3)
    gate.configured(api_pb2.ConfigureRequest())  # the runtime came back: a new registration
    gate.synchronized([_container(UNSIGNED, cid="c1")], complete=False)
    gate.synchronized([_container(UNSIGNED, cid="c9")], complete=True)
    assert counts[-1] == ("synchronize", 2)
    gate.audit("reload")
    assert counts[-1] == ("reload", 2)
    gate.close()
