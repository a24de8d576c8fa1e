"""The decision recorder and the one audit scrubber (docs/architecture.md §3.9)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from pullgate.decision import record as record_module
from pullgate.decision.audit_log import REDACTED, AuditLog, scrub
from pullgate.decision.model import Decision, DecisionRequest, Front
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import Reason
from pullgate.registry.model import Credentials

SECRET = "s3cr3t-Passw0rd"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.payload.sig"


class Counter:
    def __init__(self) -> None:
        self.decisions: list[tuple[bool, Reason]] = []
        self.denials: list[str] = []
        self.fronts: list[str] = []

    def observe_decision(
        self, decision: Decision, *, front: str, total_seconds: float | None = None
    ) -> None:
        self.decisions.append((decision.allowed, decision.reason))
        self.fronts.append(front)

    def observe_denial(self, reason: str, *, front: str) -> None:
        self.denials.append(reason)
        self.fronts.append(front)


def _decision(message: str = "ok", allowed: bool = True) -> Decision:
    return Decision(
        allowed=allowed,
        reason=Reason.VERIFIED if allowed else Reason.REGISTRY_AUTH,
        message=message,
        reference="r.example/app:1",
        digest="sha256:" + "a" * 64,
    )


def test_a_decision_is_one_record_naming_its_front_and_one_count() -> None:
    records: list[dict[str, Any]] = []
    counter = Counter()
    recorder = DecisionRecorder(records.append, counter)
    request = DecisionRequest(reference="r.example/app:1", caller="x", front=Front.CRI)
    recorder.decided(_decision(), request, joined=True)
    assert len(records) == 1
    assert (records[0]["event"], records[0]["front"], records[0]["decision"]) == (
        "decision",
        "cri",
        "allow",
    )
    assert records[0]["single_flight_joined"] is True
    assert counter.decisions == [(True, Reason.VERIFIED)]
    assert counter.denials == []
    assert counter.fronts == ["cri"]


def test_a_refusal_is_one_record_and_one_denial_count() -> None:
    records: list[dict[str, Any]] = []
    counter = Counter()
    recorder = DecisionRecorder(records.append, counter)
    recorder.refused("::", Reason.MALFORMED, "bad", front=Front.SHIM, caller="c" * 500)
    assert [(r["front"], r["reason"], r["decision"]) for r in records] == [
        ("shim", "MALFORMED", "deny")
    ]
    assert len(records[0]["caller"]) == 64
    assert counter.denials == ["MALFORMED"]
    assert counter.decisions == []
    assert counter.fronts == ["shim"]


def test_events_name_their_front_and_are_not_counted() -> None:
    records: list[dict[str, Any]] = []
    counter = Counter()
    recorder = DecisionRecorder(records.append, counter)
    recorder.audit_for(Front.RUNTIME_GATE)({"event": "node.audit"})
    recorder.event({"event": "start.create", "front": "nri"}, front=Front.RUNTIME_GATE)
    assert [r["front"] for r in records] == ["runtime-gate", "nri"]
    assert (counter.decisions, counter.denials) == ([], [])


def test_the_request_secrets_never_reach_the_sink() -> None:
    records: list[dict[str, Any]] = []
    recorder = DecisionRecorder(records.append)
    creds = Credentials(username="alice", password=SECRET, identity_token=TOKEN)
    request = DecisionRequest(reference="r.example/app:1", credentials=creds, front=Front.GRPC)
    # A registry error that echoed what it was sent (the worst case).
    message = f"401 for {SECRET}; token {TOKEN}"
    recorder.decided(_decision(message, allowed=False), request, joined=False)
    line = json.dumps(records)
    assert SECRET not in line
    assert TOKEN not in line
    assert records[0]["credentials_supplied"] is True


def test_scrub_removes_userinfo_query_secrets_and_header_credentials() -> None:
    record = {
        "message": "GET https://bob:hunter22@r.example/v2/token?account=bob&scope=x failed",
        "detail": "sent Authorization: Bearer abc.def.ghi and Basic Ym9iOmh1bnRlcjIy",
        "nested": [{"note": "access_token=zzz999, password: pw123456"}],
        "Authorization": "Bearer kept-out",
        "auth": "Ym9iOmh1bnRlcjIy",
    }
    clean = scrub(record)
    line = json.dumps(clean)
    for secret in ("hunter22", "abc.def.ghi", "Ym9iOmh1bnRlcjIy", "zzz999", "pw123456", "bob"):
        assert secret not in line, secret
    assert "Authorization" not in clean
    assert "auth" not in clean
    assert "scope=x" in clean["message"]  # distribution-spec parameters stay readable
    assert REDACTED in clean["detail"]


def test_a_clean_record_is_passed_through_without_a_copy() -> None:
    record: dict[str, Any] = {
        "reference": "r.example/app@sha256:" + "b" * 64,
        "message": "verified by https://ocsp.example/ (no credentials)",
        "subjects": [{"role": "index", "verified": True, "reason": "VERIFIED"}],
        "timings": {"total": 0.001},
    }
    assert scrub(record) is record


def test_no_record_is_built_for_an_audit_log_that_drops_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An audit logger below INFO keeps nothing: a warm decision then builds and scrubs no
    record (it still counts); once the logger passes INFO, records are written again."""
    scrubbed: list[object] = []

    def counting_scrub(record: Any, secrets: Any = ()) -> dict[str, Any]:
        scrubbed.append(record)
        return scrub(record, secrets)

    monkeypatch.setattr(record_module, "scrub", counting_scrub)
    logger = logging.getLogger("pullgate.test.dropped-audit")
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger.addHandler(Keep())
    audit = AuditLog(logger)
    counter = Counter()
    recorder = DecisionRecorder(audit.write, counter, wanted=audit.enabled)
    request = DecisionRequest(reference="r.example/app:1")
    for _ in range(3):
        recorder.decided(_decision(), request, joined=False)
    recorder.event({"event": "start"}, front=Front.NRI)
    assert (scrubbed, lines, len(counter.decisions)) == ([], [], 3)
    logger.setLevel(logging.INFO)
    recorder.decided(_decision(), request, joined=False)
    assert (len(scrubbed), len(lines), len(counter.decisions)) == (1, 1, 4)
    assert json.loads(lines[0])["decision"] == "allow"
