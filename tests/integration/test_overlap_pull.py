"""Overlapped pulls end to end: crictl plays the kubelet against pullgate's image and runtime
sockets, in front of a real containerd (2.4 from ``../shared/runtimes`` and Debian's 1.6) with
Debian's runc, pulling from Debian's docker-registry (mTLS).

The runtime and pullgate each reach the registry through a TCP relay of their own
(:class:`tests.support.tcp_relay.TcpRelay`, bytes unchanged): holding back pullgate's traffic
makes the verification slower than the runtime's pull, holding back the runtime's makes it
faster, and the runtime's relay shows whether the runtime asked the registry anything at all.
Judged by typed reasons (the kubelet-visible prefix, audit records, metric labels) and by what
the runtime holds.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from pullgate.errors import Reason
from pullgate.v1 import verifier_pb2, verifier_pb2_grpc
from tests.support.audit_lines import AuditLines, captured_audit
from tests.support.docker_registry import REGISTRY_BINARY, DockerRegistry, registry_available
from tests.support.push import MT_MANIFEST, Pusher
from tests.support.runtimes import Kind, runtimes_unavailable
from tests.support.start_node import StartNode, denial_reason, start_node
from tests.support.tcp_relay import TcpRelay

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]

# Latency added to what pullgate (or the runtime) sends the registry, seconds: a cold decision
# then takes several seconds (a handshake and a few requests, one after another), a small
# image's pull well under one. Below the registry client's 1.5 s read timeout for an endpoint
# with a fallback, so nothing fails: it is only slower.
HOLD = 1.2
REMOVED_WITHIN = 30.0  # seconds: the verdict (several held requests), then RemoveImage
# Latency added to the runtime's registry traffic when the verdict must be in (and the tag moved
# after it) before the runtime even resolves the tag: its first request reaches the registry this
# long after it was sent, and its pull ends a few such delays later.
RUNTIME_HOLD = 2.5


@dataclass
class Node:
    start: StartNode
    runtime_relay: TcpRelay  # the runtime's way to the registry
    pullgate_relay: TcpRelay  # pullgate's
    lines: AuditLines

    def present(self, reference: str) -> bool:
        return self.start.runtime.crictl("inspecti", reference, check=False).returncode == 0

    def wait_absent(self, reference: str) -> float:
        """Seconds until the runtime no longer holds ``reference`` (fails past the bound)."""
        started = time.monotonic()
        while self.present(reference):
            assert time.monotonic() - started < REMOVED_WITHIN, f"{reference} was never removed"
            time.sleep(0.1)
        return time.monotonic() - started

    def denials(self, reason: Reason) -> float:
        return self.start.metric("pullgate_overlap_denials_total", reason=reason.value) or 0.0

    def records(self, since: int, event: str, reference: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.lines.records[since:]
            if r.get("event") == event and r.get("reference") == reference
        ]


@pytest.fixture(scope="module", params=["2.4", "1.6"])
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    kind: Kind = request.param
    reason = runtimes_unavailable(kind)
    if reason is not None:
        pytest.skip(f"containerd {kind}: {reason}")
    with (
        captured_audit() as lines,
        DockerRegistry(tmp_path_factory.mktemp("ovl-registry")) as registry,
    ):
        port = int(registry.host.rsplit(":", 1)[1])
        with (
            TcpRelay(("127.0.0.1", port)) as runtime_relay,
            TcpRelay(("127.0.0.1", port)) as pullgate_relay,
            start_node(
                kind,
                tmp_path_factory.mktemp("ovl"),
                registry,
                runtime_via=runtime_relay.address,
                pullgate_via=pullgate_relay.address,
            ) as start,
        ):
            yield Node(start, runtime_relay, pullgate_relay, lines)


@pytest.fixture(autouse=True)
def _no_hold(node: Node) -> Iterator[None]:
    yield
    node.runtime_relay.delay = node.pullgate_relay.delay = 0.0


def _repo(what: str) -> str:
    return f"ovl/{what}-{uuid.uuid4().hex[:8]}"


def test_a_pull_answered_before_its_deny_is_removed_and_refused_at_create(node: Node) -> None:
    image = node.start.push(_repo("late-deny"), signed=False)
    pod, pod_config = node.start.run_pod()
    since = len(node.lines.records)
    counted = node.denials(Reason.NO_SIGNATURE)
    node.pullgate_relay.delay = HOLD  # the verification is slower than the pull
    pulled = node.start.gated("pull", image.reference, settle=False)
    assert pulled.returncode == 0, pulled.stderr  # the runtime's answer, before the verdict
    assert node.start.metric("pullgate_overlap_pending") == 1.0
    assert node.present(image.reference)
    # The kubelet creates at once: the start gate joins the decision still in flight.
    refused = node.start.create(pod, pod_config, image.reference)
    assert refused.returncode != 0
    assert denial_reason(refused.stderr) is Reason.NO_SIGNATURE, refused.stderr
    node.wait_absent(image.reference)
    node.start.settle()
    [record] = node.records(since, "cri.overlap_denied", image.reference)
    assert (record["decision"], record["reason"]) == ("deny", Reason.NO_SIGNATURE.value)
    assert node.denials(Reason.NO_SIGNATURE) == counted + 1
    # One engine decision for the pull, one joined by the create: no second verification.
    decisions = node.records(since, "decision", image.reference)
    assert sorted((r["front"], r["single_flight_joined"]) for r in decisions) == [
        ("cri", False),
        ("runtime-gate", True),
    ]
    assert {r["reason"] for r in decisions} == {Reason.NO_SIGNATURE.value}


def test_an_allowed_overlapped_pull_creates_and_starts(node: Node) -> None:
    message = f"overlapped {uuid.uuid4().hex}"
    image = node.start.push(_repo("late-allow"), signed=True, message=message)
    pod, pod_config = node.start.run_pod()
    since = len(node.lines.records)
    node.pullgate_relay.delay = HOLD
    pulled = node.start.gated("pull", image.reference, settle=False)
    assert pulled.returncode == 0, pulled.stderr
    assert node.start.metric("pullgate_overlap_pending") == 1.0  # answered before the verdict
    created = node.start.create(pod, pod_config, image.reference)  # waits for the allow
    assert created.returncode == 0, created.stderr
    node.pullgate_relay.delay = 0.0
    container = created.stdout.strip()
    node.start.gated("start", container)
    assert message in node.start.logs(container, message)
    node.start.settle()
    assert node.present(image.reference)  # the pin held
    assert node.records(since, "cri.overlap_denied", image.reference) == []


def test_a_deny_in_before_the_pull_ends_is_answered_and_nothing_is_left(node: Node) -> None:
    image = node.start.push(_repo("early-deny"), signed=False)
    counted = node.denials(Reason.NO_SIGNATURE)
    node.runtime_relay.delay = HOLD  # the pull is slower than the verification
    denied = node.start.gated("pull", image.reference, check=False, settle=False)
    assert denied.returncode != 0
    assert denial_reason(denied.stderr) is Reason.NO_SIGNATURE, denied.stderr
    assert not node.present(image.reference)  # removed before the answer
    assert node.denials(Reason.NO_SIGNATURE) == counted  # not an after-the-answer denial


def test_a_cached_deny_refuses_the_pull_without_the_runtime_pulling(node: Node) -> None:
    image = node.start.push(_repo("cached-deny"), signed=False)
    # Decided just before through the API socket (the same engine and cache): a tag's verdict
    # is known from memory while the resolve memo holds its digest ([cache] resolve_ttl, 5 s).
    repository = image.reference.split("/", 1)[1].split("@")[0].split(":")[0]
    prefix = f"/v2/{repository}/"
    verified = node.start.registry.log_mark()
    with grpc.insecure_channel(f"unix:{node.start.tmp / 'api.sock'}") as channel:
        verifier = verifier_pb2_grpc.VerifierStub(channel)
        answer = verifier.Verify(verifier_pb2.VerifyRequest(reference=image.reference), timeout=60)
    assert answer.reason == Reason.NO_SIGNATURE.value
    # the prefix below is how the registry logs this image's requests
    assert any(e.path.startswith(prefix) for e in node.start.registry.requests_since(verified))
    since = len(node.lines.records)
    mark = node.start.registry.log_mark()
    denied = node.start.gated("pull", image.reference, check=False)
    assert denied.returncode != 0
    assert denial_reason(denied.stderr) is Reason.NO_SIGNATURE, denied.stderr
    # Nobody asked the registry about the image (the registry's own access log: the relay's
    # byte count also sees an idle connection's TLS and keep-alive traffic).
    asked = [e.path for e in node.start.registry.requests_since(mark)]
    assert [p for p in asked if p.startswith(prefix)] == []
    assert not node.present(image.reference)
    [record] = node.records(since, "decision", image.reference)
    assert (record["front"], record["cache_hit"]) == ("cri", True)


def _allowed_first(node: Node, reference: str, move: bytes | None = None) -> None:
    """Pull ``reference`` through pullgate with the runtime's registry traffic held back, so the
    allow is in before the runtime resolves the tag; then (``move``: a manifest) move the tag
    before the runtime resolves it. The runtime's pull then ends after the allow, and must be
    answered with success."""
    repo, tag = reference.split("/", 1)[1].rsplit(":", 1)
    since = len(node.lines.records)
    node.start.gated("ps")  # the kubelet's calls through the gate: the gate is in use
    node.runtime_relay.delay = RUNTIME_HOLD
    done: list[subprocess.CompletedProcess[str]] = []
    with Pusher.for_registry(node.start.registry) as pusher:
        puller = threading.Thread(
            target=lambda: done.append(
                node.start.gated("pull", reference, check=False, settle=False)
            )
        )
        started = time.monotonic()
        puller.start()
        while not node.records(since, "decision", reference):
            assert time.monotonic() - started < 30, "no verdict"
            time.sleep(0.005)
        [decision] = node.records(since, "decision", reference)
        assert decision["reason"] == Reason.VERIFIED.value
        if move is not None:
            pusher.push_manifest(repo, tag, move, MT_MANIFEST)
        # the runtime has not even resolved the tag yet
        assert time.monotonic() - started < RUNTIME_HOLD
        puller.join(120)
    [pulled] = done
    assert pulled.returncode == 0, pulled.stderr


def test_an_allow_in_first_is_answered_and_its_pin_holds(node: Node) -> None:
    image = node.start.push(_repo("early-allow"), signed=True)
    since = len(node.lines.records)
    _allowed_first(node, image.reference)
    node.start.settle()  # the pin, checked after the answer
    assert node.present(image.reference)
    assert node.records(since, "cri.overlap_denied", image.reference) == []


def test_a_tag_moved_under_an_allow_in_first_is_removed_after_the_answer(node: Node) -> None:
    repo = _repo("moved")
    with Pusher.for_registry(node.start.registry) as pusher:
        node.start.push(repo, signed=False, tag="other")
        moved = pusher.fetch_manifest(repo, "other")
    assert moved is not None
    image = node.start.push(repo, signed=True)  # the tag the allow is for
    since = len(node.lines.records)
    counted = node.denials(Reason.DESCRIPTOR_MISMATCH)
    _allowed_first(node, image.reference, move=moved)  # answered: the gate holds the image
    node.wait_absent(image.reference)
    node.start.settle()
    [record] = node.records(since, "cri.overlap_denied", image.reference)
    assert (record["decision"], record["reason"]) == ("deny", Reason.DESCRIPTOR_MISMATCH.value)
    assert node.denials(Reason.DESCRIPTOR_MISMATCH) == counted + 1
