"""proto ⇄ domain conversion (server/convert.py) and the Reason → gRPC code table."""

from __future__ import annotations

import base64

import grpc
import pytest

from pullgate.config import Mode, Requirement
from pullgate.decision.model import Decision, SubjectDecision
from pullgate.errors import MalformedInput, Reason, VerificationFailed
from pullgate.service.convert import (
    CacheView,
    ReloadView,
    StatusView,
    credentials_from_proto,
    decision_to_proto,
    status_to_proto,
    verify_request_from_proto,
)
from pullgate.service.status import REASON_CODES, grpc_status, status_for_error
from pullgate.v1 import verifier_pb2

DIGEST = "sha256:" + "a" * 64


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_auth_field_is_decoded_into_username_and_password() -> None:
    creds = credentials_from_proto(verifier_pb2.RegistryCredentials(auth=_b64("alice:s3:cret")))
    assert creds is not None
    assert (creds.username, creds.password) == ("alice", "s3:cret")


def test_explicit_username_and_password_win_over_auth() -> None:
    message = verifier_pb2.RegistryCredentials(
        username="bob", password="pw", auth=_b64("alice:other")
    )
    creds = credentials_from_proto(message)
    assert creds is not None
    assert (creds.username, creds.password) == ("bob", "pw")


def test_tokens_and_server_address_are_carried() -> None:
    message = verifier_pb2.RegistryCredentials(
        identity_token="idt", registry_token="rt", server_address="r.example"
    )
    creds = credentials_from_proto(message)
    assert creds is not None
    assert (creds.identity_token, creds.registry_token, creds.server_address) == (
        "idt",
        "rt",
        "r.example",
    )


def test_empty_credentials_mean_none() -> None:
    assert credentials_from_proto(verifier_pb2.RegistryCredentials()) is None
    only_server = verifier_pb2.RegistryCredentials(server_address="r.example")
    assert credentials_from_proto(only_server) is None


@pytest.mark.parametrize(
    "auth",
    ["not base64!!", _b64("no-colon-here"), base64.b64encode(b"\xff\xfe:x").decode()],
)
def test_bad_auth_is_malformed(auth: str) -> None:
    with pytest.raises(MalformedInput) as info:
        credentials_from_proto(verifier_pb2.RegistryCredentials(auth=auth))
    assert info.value.reason is Reason.MALFORMED


def test_secret_never_shows_in_the_domain_repr() -> None:
    request = verify_request_from_proto(
        verifier_pb2.VerifyRequest(
            reference="registry.example/app:1",
            credentials=verifier_pb2.RegistryCredentials(auth=_b64("alice:TOPSECRET")),
        )
    )
    assert "TOPSECRET" not in repr(request)


def test_valid_request_becomes_a_decision_request() -> None:
    request = verify_request_from_proto(
        verifier_pb2.VerifyRequest(
            reference=" registry.example/team/app:1 ",
            digest=DIGEST,
            platform="linux/arm64/v8",
            caller="cri",
        )
    )
    assert request.reference == "registry.example/team/app:1"
    assert request.digest == DIGEST
    assert request.platform == "linux/arm64/v8"
    assert request.caller == "cri"
    assert request.credentials is None


def test_empty_optional_fields_become_none() -> None:
    request = verify_request_from_proto(verifier_pb2.VerifyRequest(reference="nginx"))
    assert (request.digest, request.platform, request.credentials) == (None, None, None)


@pytest.mark.parametrize(
    "message",
    [
        verifier_pb2.VerifyRequest(reference=""),
        verifier_pb2.VerifyRequest(reference="   "),
        verifier_pb2.VerifyRequest(reference="UPPER/Case!!:tag"),
        verifier_pb2.VerifyRequest(reference="r.example/app@sha256:zz"),
        verifier_pb2.VerifyRequest(reference="a" * 5000),
        verifier_pb2.VerifyRequest(reference="nginx", digest="nothex"),
        verifier_pb2.VerifyRequest(reference="nginx", platform="linux"),
        verifier_pb2.VerifyRequest(reference="nginx", platform="linux/amd64/v1/x"),
        verifier_pb2.VerifyRequest(reference="nginx", platform="linux/am d64"),
    ],
)
def test_bad_requests_are_malformed(message: verifier_pb2.VerifyRequest) -> None:
    with pytest.raises(MalformedInput) as info:
        verify_request_from_proto(message)
    assert info.value.reason is Reason.MALFORMED


def test_decision_becomes_a_verify_response_with_subjects() -> None:
    decision = Decision(
        allowed=True,
        reason=Reason.VERIFIED,
        message="both verified",
        reference="r.example/app:1",
        digest=DIGEST,
        platform="linux/amd64",
        statement="prod",
        requirement=Requirement.BOTH,
        mode=Mode.ENFORCE,
        cache_hit=True,
        subjects=(
            SubjectDecision(
                role="index",
                digest=DIGEST,
                verified=True,
                reason=Reason.VERIFIED,
                message="ok",
                signature_digest="sha256:" + "c" * 64,
                signer_subject="CN=signer",
                signer_fingerprint="ab" * 32,
            ),
            SubjectDecision(
                role="platform",
                digest="sha256:" + "b" * 64,
                verified=False,
                reason=Reason.NO_SIGNATURE,
                message="none",
                platform="linux/amd64",
            ),
        ),
    )
    response = decision_to_proto(decision)
    assert (response.allowed, response.reason, response.digest) == (True, "VERIFIED", DIGEST)
    assert (response.statement, response.requirement, response.mode) == ("prod", "both", "enforce")
    assert response.cache_hit
    assert response.platform == "linux/amd64"
    index, platform = response.subjects
    assert (index.role, index.verified, index.signer_subject) == ("index", True, "CN=signer")
    assert index.signer_fingerprint_sha256 == "ab" * 32
    assert index.signature_digest == "sha256:" + "c" * 64
    assert (platform.role, platform.reason, platform.platform) == (
        "platform",
        "NO_SIGNATURE",
        "linux/amd64",
    )
    assert platform.signer_subject == ""


def test_status_view_becomes_a_status_response() -> None:
    view = StatusView(
        generation=3,
        hashes={"trust_policy": "sha256:1", "config": "sha256:2"},
        last_reload=ReloadView(ok=False, error="bad policy", finished_unix_ms=5, generation=3),
        degraded=True,
        degraded_reason="last reload failed",
        cache=CacheView(entries=1, hits=2, misses=3, evictions=4, singleflight_joins=5),
        uptime_seconds=1.5,
        problems=("p1",),
        version="9.9",
    )
    response = status_to_proto(view)
    assert response.generation == 3
    assert dict(response.hashes) == {"trust_policy": "sha256:1", "config": "sha256:2"}
    assert (response.last_reload.ok, response.last_reload.generation) == (False, 3)
    assert response.degraded
    assert (response.cache.hits, response.cache.singleflight_joins) == (2, 5)
    assert list(response.problems) == ["p1"]


def test_status_without_reload_leaves_last_reload_unset() -> None:
    assert not status_to_proto(StatusView(generation=0)).HasField("last_reload")


def test_every_reason_has_a_grpc_code() -> None:
    assert set(REASON_CODES) == set(Reason)


@pytest.mark.parametrize("reason", [Reason.VERIFIED, Reason.SKIPPED_BY_POLICY, Reason.AUDIT_ONLY])
def test_success_reasons_never_abort_with_ok(reason: Reason) -> None:
    assert grpc_status(reason, "x").code is grpc.StatusCode.INTERNAL


def test_failed_and_inconclusive_map_to_different_codes() -> None:
    assert grpc_status(Reason.UNTRUSTED, "x").code is grpc.StatusCode.FAILED_PRECONDITION
    assert grpc_status(Reason.REGISTRY_UNREACHABLE, "x").code is grpc.StatusCode.UNAVAILABLE
    assert grpc_status(Reason.MALFORMED, "x").code is grpc.StatusCode.INVALID_ARGUMENT


def test_foreign_errors_are_internal() -> None:
    assert status_for_error(KeyError("x")).code is grpc.StatusCode.INTERNAL
    failed = status_for_error(VerificationFailed(Reason.REVOKED, "revoked"))
    assert failed.code is grpc.StatusCode.FAILED_PRECONDITION
    assert failed.details.startswith("REVOKED")
