"""The served ``Verify`` path: request/response memos (server/convert.py) and the bytes the
servicer answers with (server/servicer.py ``verify_wire``) equal the slow path exactly."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from typing import Any

import pytest

from pullgate.config import Mode, Requirement
from pullgate.decision.model import BINDIR_CALLER, Decision, DecisionRequest, Front, SubjectDecision
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import MalformedInput, Reason
from pullgate.service.convert import (
    RequestConverter,
    ResponseEncoder,
    decision_to_proto,
    verify_request_from_proto,
)
from pullgate.service.servicer import ServerParts, VerifierServicer, verifier_handlers
from pullgate.v1 import verifier_pb2
from tests.support.grpc_harness import serve_parts

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _subject(**changes: Any) -> SubjectDecision:
    base = SubjectDecision(
        role="index",
        digest=DIGEST,
        verified=True,
        reason=Reason.VERIFIED,
        message="signature verified",
        platform=None,
        signature_digest=OTHER,
        signer_subject="CN=signer",
        signer_fingerprint="ab" * 32,
        signing_time="2026-11-23T00:00:00Z",
    )
    return dataclasses.replace(base, **changes)


def _hit(**changes: Any) -> Decision:
    base = Decision(
        allowed=True,
        reason=Reason.VERIFIED,
        message="index and platform verified",
        reference="r.example/app:1",
        digest=DIGEST,
        platform="linux/amd64",
        statement="prod",
        level="strict",
        requirement=Requirement.BOTH,
        mode=Mode.ENFORCE,
        subjects=(_subject(), _subject(role="platform", platform="linux/amd64")),
        cache_hit=True,
        timings={"total": 0.0001},
        resolve_cached=True,
    )
    return dataclasses.replace(base, **changes)


# One variant per VerifyResponse field: the decision field it comes from, changed.
VARIANTS: dict[str, dict[str, Any]] = {
    "allowed": {"allowed": False},
    "reason": {"reason": Reason.UNTRUSTED},
    "message": {"message": "another message"},
    "digest": {"digest": OTHER},
    "inconclusive": {"inconclusive": True},
    "statement": {"statement": "staging"},
    "requirement": {"requirement": Requirement.EITHER},
    "mode": {"mode": Mode.AUDIT},
    "subjects": {"subjects": (_subject(message="changed"),)},
    "cache_hit": {"cache_hit": False},
    "platform": {"platform": "linux/arm64/v8"},
    "reference": {"reference": "r.example/app:2"},
}


def test_every_response_field_has_a_variant() -> None:
    fields = {f.name for f in verifier_pb2.VerifyResponse.DESCRIPTOR.fields}
    assert fields == set(VARIANTS)


@pytest.mark.parametrize("field", sorted(VARIANTS))
def test_memoised_bytes_equal_the_slow_path_for_each_field(field: str) -> None:
    encode = ResponseEncoder()
    base = _hit()
    variant = _hit(**VARIANTS[field])
    assert encode(base) == decision_to_proto(base).SerializeToString()
    # The base's bytes are memoised now: a decision differing in this one field must not get them.
    assert encode(variant) == decision_to_proto(variant).SerializeToString()
    assert encode(variant) != encode(base)
    assert encode(base) == decision_to_proto(base).SerializeToString()


def test_fields_outside_the_response_share_the_memoised_bytes() -> None:
    encode = ResponseEncoder()
    first = encode(_hit())
    again = encode(_hit(timings={"total": 0.5}, resolve_cached=False, generation=7))
    assert again is first
    assert len(encode) == 1


def test_fresh_decisions_are_encoded_but_not_memoised() -> None:
    encode = ResponseEncoder()
    fresh = _hit(cache_hit=False)
    assert encode(fresh) == decision_to_proto(fresh).SerializeToString()
    assert len(encode) == 0


def test_response_memo_is_bounded() -> None:
    encode = ResponseEncoder(max_entries=4)
    decisions = [_hit(reference=f"r.example/app:{i}") for i in range(10)]
    for decision in decisions:
        assert encode(decision) == decision_to_proto(decision).SerializeToString()
    assert len(encode) == 4
    assert encode(decisions[0]) == decision_to_proto(decisions[0]).SerializeToString()


def test_request_converter_matches_the_plain_conversion() -> None:
    convert = RequestConverter()
    message = verifier_pb2.VerifyRequest(
        reference=" r.example/app:1 ", digest=DIGEST, platform="linux/amd64", caller="cri"
    )
    first = convert(message)
    assert first == verify_request_from_proto(message)
    assert convert(message) is first
    other = verifier_pb2.VerifyRequest(reference="r.example/app:1", caller="shim")
    assert convert(other) == DecisionRequest(
        reference="r.example/app:1", caller="shim", front=Front.GRPC
    )
    bindir = verifier_pb2.VerifyRequest(reference="r.example/app:1", caller=BINDIR_CALLER)
    assert convert(bindir).front is Front.SHIM


def test_requests_with_credentials_are_never_memoised() -> None:
    convert = RequestConverter()
    auth = base64.b64encode(b"alice:secret").decode()
    message = verifier_pb2.VerifyRequest(
        reference="r.example/app:1", credentials=verifier_pb2.RegistryCredentials(auth=auth)
    )
    first = convert(message)
    assert first.credentials is not None
    assert first.credentials.password == "secret"
    assert convert(message) is not first
    assert len(convert) == 0


@pytest.mark.parametrize("reference", ["", "::garbage::", "A/B"])
def test_malformed_requests_raise_every_time(reference: str) -> None:
    convert = RequestConverter()
    message = verifier_pb2.VerifyRequest(reference=reference)
    for _ in range(2):
        with pytest.raises(MalformedInput) as info:
            convert(message)
        assert info.value.reason is Reason.MALFORMED
    assert len(convert) == 0


class _HitEngine:
    """Answers every request with the same cached decision (as a warm decider does)."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.seen: list[DecisionRequest] = []

    async def decide_async(self, request: DecisionRequest) -> Decision:
        self.seen.append(request)
        return dataclasses.replace(self.decision, reference=request.reference)

    def decide(self, request: DecisionRequest) -> Decision:
        raise AssertionError("an async engine is awaited, never run in a thread")


class _NoControl:
    def status(self) -> Any:
        raise AssertionError("not used")

    def reload(self, reason: str) -> Any:
        raise AssertionError("not used")


def test_verify_wire_bytes_equal_verify_message() -> None:
    engine = _HitEngine(_hit())
    servicer = VerifierServicer(engine, _NoControl(), recorder=DecisionRecorder(None))
    request = verifier_pb2.VerifyRequest(reference="r.example/app:1", caller="cri")

    async def both() -> tuple[bytes, bytes, verifier_pb2.VerifyResponse]:
        wire = await servicer.verify_wire(request, None)  # type: ignore[arg-type]
        again = await servicer.verify_wire(request, None)  # type: ignore[arg-type]
        message = await servicer.Verify(request, None)  # type: ignore[arg-type]
        return wire, again, message

    wire, again, message = asyncio.run(both())
    assert wire == again == message.SerializeToString()
    assert verifier_pb2.VerifyResponse.FromString(wire) == decision_to_proto(_hit())
    assert len(engine.seen) == 3


def test_verify_wire_answers_a_malformed_request_with_a_deny() -> None:
    servicer = VerifierServicer(_HitEngine(_hit()), _NoControl(), recorder=DecisionRecorder(None))
    request = verifier_pb2.VerifyRequest(reference="::garbage::")
    wire = asyncio.run(servicer.verify_wire(request, None))  # type: ignore[arg-type]
    response = verifier_pb2.VerifyResponse.FromString(wire)
    assert (response.allowed, response.reason) == (False, Reason.MALFORMED.value)


def test_served_verify_answers_with_the_memoised_bytes(tmp_path: Any) -> None:
    engine = _HitEngine(_hit())
    parts = ServerParts(engine=engine, control=_NoControl(), recorder=DecisionRecorder(None))
    with serve_parts(tmp_path, parts) as (client, _):
        request = verifier_pb2.VerifyRequest(reference="r.example/app:1")
        answers = [client.verifier.Verify(request, timeout=10) for _ in range(3)]
    assert all(a == decision_to_proto(_hit()) for a in answers)
    assert len(engine.seen) == 3


def test_handlers_cover_every_verifier_method() -> None:
    servicer = VerifierServicer(_HitEngine(_hit()), _NoControl(), recorder=DecisionRecorder(None))
    service = verifier_pb2.DESCRIPTOR.services_by_name["Verifier"]
    assert set(verifier_handlers(servicer)) == {m.name for m in service.methods}
