"""One decision, one audit line, one count: through every front end's real entry point.

A start node (:mod:`tests.support.start_node`): Debian's docker-registry (mTLS), a real
containerd (2.4 from ``../shared/runtimes`` and Debian's 1.6) running pods with runc, and the
whole daemon (``pullgate.service.app.serve``) with its API, ``[cri]`` and ``[runtime]`` sockets
and its metrics endpoint. Each step asks one decision through one front end — gRPC ``Verify``
on the API socket (cold, then a cache hit), the ``pullgate-containerd-verifier`` executable,
``crictl pull`` on the image proxy, ``crictl create`` on the runtime gate, a malformed
``Verify`` — and checks that it produced exactly one line on ``pullgate.audit`` naming that
front end, and exactly one more count in ``pullgate_decisions_total`` under that front end's
``front`` label (``pullgate_start_decisions_total`` for a container start).
NRI: ``tests/integration/test_nri.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from pullgate.cri.methods import CREATE_CONTAINER
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.errors import Reason
from pullgate.v1 import verifier_pb2, verifier_pb2_grpc
from tests.support.audit_lines import AuditLines, captured_audit
from tests.support.containerd import CriClient
from tests.support.docker_registry import REGISTRY_BINARY, DockerRegistry, registry_available
from tests.support.runtimes import Kind, runtimes_unavailable
from tests.support.start_node import StartNode, start_node

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]

SHIM = Path(sys.executable).with_name("pullgate-containerd-verifier")
DESCRIPTOR_MEDIA_TYPE = "application/vnd.oci.descriptor.v1+json"


@dataclass
class Node:
    start: StartNode
    lines: AuditLines
    verifier: verifier_pb2_grpc.VerifierStub

    @property
    def api_socket(self) -> Path:
        return self.start.tmp / "api.sock"

    def counts(self) -> tuple[dict[str, float], float]:
        """(``pullgate_decisions_total`` by its ``front`` label, ``pullgate_start_decisions_total``
        summed over all labels)."""
        config = self.start.config.read_text()
        address = config.split('[metrics]\naddress = "', 1)[1].split('"', 1)[0]
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
            body = answer.read().decode()
        fronts: dict[str, float] = {}
        starts = 0.0
        for line in body.splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            value = float(line.rsplit(" ", 1)[1]) if not line.startswith("#") else 0.0
            if name == "pullgate_decisions_total":
                front = line.split('front="', 1)[1].split('"', 1)[0]
                fronts[front] = fronts.get(front, 0.0) + value
            elif name == "pullgate_start_decisions_total":
                starts += value
        return fronts, starts

    @contextmanager
    def step(self) -> Iterator[list[dict[str, Any]]]:
        """The decision and start records written during the block (filled in at its end);
        asserts that the counters moved by exactly as many."""
        before = len(self.lines.records)
        decisions, starts = self.counts()
        written: list[dict[str, Any]] = []
        yield written
        written.extend(
            r for r in self.lines.records[before:] if r.get("event") in ("decision", "start.create")
        )
        after_decisions, after_starts = self.counts()
        counted = {
            front: after_decisions[front] - decisions.get(front, 0.0)
            for front in after_decisions
            if after_decisions[front] != decisions.get(front, 0.0)
        }
        audited: dict[str, float] = {}
        for r in written:
            if r["event"] == "decision":
                audited[r["front"]] = audited.get(r["front"], 0.0) + 1
        assert counted == audited  # one count per decision line, labelled with its front end
        assert after_starts - starts == sum(r["event"] == "start.create" for r in written)


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
        DockerRegistry(tmp_path_factory.mktemp("once-registry")) as registry,
        start_node(kind, tmp_path_factory.mktemp("once"), registry) as start,
        grpc.insecure_channel(f"unix:{start.tmp / 'api.sock'}") as channel,
    ):
        yield Node(start, lines, verifier_pb2_grpc.VerifierStub(channel))


def _one(written: list[dict[str, Any]], front: str) -> dict[str, Any]:
    assert [r["front"] for r in written] == [front], written
    return written[0]


def _creates(node: Node) -> int:
    return sum(r.get("event") == "start.create" for r in node.lines.records)


def _await_creates(node: Node, count: int, seconds: float = 5.0) -> None:
    """Wait until ``count`` create lines are written (a quick allow is recorded just after the
    answer it allowed); the step's own checks then fail on too few or too many."""
    deadline = time.monotonic() + seconds
    while _creates(node) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def _name() -> str:
    return f"once/app-{uuid.uuid4().hex[:8]}"


def test_grpc_verify_cold_and_cached_each_record_once(node: Node) -> None:
    image = node.start.push(_name(), signed=True)
    request = verifier_pb2.VerifyRequest(reference=image.reference, caller="test")
    with node.step() as cold:
        assert node.verifier.Verify(request, timeout=60).allowed
    record = _one(cold, "grpc")
    assert (record["decision"], record["cache_hit"]) == ("allow", False)
    with node.step() as warm:
        assert node.verifier.Verify(request, timeout=60).allowed
    record = _one(warm, "grpc")
    assert (record["decision"], record["cache_hit"]) == ("allow", True)


def test_malformed_verify_is_recorded_once(node: Node) -> None:
    with node.step() as written:
        answer = node.verifier.Verify(verifier_pb2.VerifyRequest(reference="::"), timeout=60)
    assert answer.reason == Reason.MALFORMED.value
    assert _one(written, "grpc")["reason"] == Reason.MALFORMED.value


def test_shim_executable_records_once(node: Node) -> None:
    image = node.start.push(_name(), signed=False)
    descriptor = {"mediaType": image.top.media_type, "digest": image.top.digest}
    argv = [str(SHIM), "-name", image.reference, "-digest", image.top.digest]
    argv += ["-stdin-media-type", DESCRIPTOR_MEDIA_TYPE, "-socket", str(node.api_socket)]
    with node.step() as written:
        done = subprocess.run(
            argv,
            input=json.dumps(descriptor).encode(),
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0, done.stdout  # unsigned: containerd is told no
    record = _one(written, "shim")
    assert (record["decision"], record["reason"]) == ("deny", Reason.NO_SIGNATURE.value)


def test_cri_pull_then_runtime_gate_create_each_record_once(node: Node) -> None:
    image = node.start.push(_name(), signed=True)
    with node.step() as pulled:
        node.start.gated("pull", image.reference)
    assert _one(pulled, "cri")["decision"] == "allow"
    pod, pod_config = node.start.run_pod()
    with node.step() as created:
        answer = node.start.create(pod, pod_config, image.reference)
    assert answer.returncode == 0, answer.stderr
    record = _one(created, "runtime-gate")
    assert (record["event"], record["decision"]) == ("start.create", "allow")


def test_runtime_gate_verifying_now_records_the_engine_decision_and_the_start(
    node: Node,
) -> None:
    image = node.start.push(_name(), signed=False)
    node.start.runtime.crictl("pull", image.reference)  # behind pullgate's back
    pod, pod_config = node.start.run_pod()
    with node.step() as written:
        refused = node.start.create(pod, pod_config, image.reference)
    assert refused.returncode != 0
    assert {r["front"] for r in written} == {"runtime-gate"}
    assert [r["event"] for r in written][-1] == "start.create"
    assert sum(r["event"] == "start.create" for r in written) == 1
    engine = [r for r in written if r["event"] == "decision"]
    assert engine
    assert all(r["caller"] == "start-gate" for r in engine)


def test_runtime_gate_create_by_image_id_records_once_as_it_answers(node: Node) -> None:
    """The kubelet's form (image ID + the pod's reference) with a current allow is allowed from
    memory on the splice's relay thread and recorded by the settling thread once the runtime's
    answer has gone out: one line and one count, within moments of the answer."""
    image = node.start.push(_name(), signed=True)
    node.start.gated("pull", image.reference)
    pod, pod_config = node.start.run_pod()
    meta = json.loads(pod_config.read_text())["metadata"]
    with CriClient(node.start.runtime.socket) as direct:
        image_id = direct.status(image.reference).image.id
    sandbox = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(
            name=meta["name"], namespace=meta["namespace"], uid=meta["uid"]
        )
    )
    with CriClient(node.start.runtime_socket) as gate:
        for attempt in range(3):
            request = api_pb2.CreateContainerRequest(
                pod_sandbox_id=pod,
                config=api_pb2.ContainerConfig(
                    metadata=api_pb2.ContainerMetadata(name=f"by-id-{attempt}"),
                    image=api_pb2.ImageSpec(image=image_id, user_specified_image=image.reference),
                ),
                sandbox_config=sandbox,
            )
            seen = _creates(node)
            with node.step() as created:
                answer = gate.raw(CREATE_CONTAINER, request.SerializeToString(), timeout=60)
                _await_creates(node, seen + 1)
            assert api_pb2.CreateContainerResponse.FromString(answer).container_id
            record = _one(created, "runtime-gate")
            assert (record["event"], record["decision"], record["image_id"]) == (
                "start.create",
                "allow",
                image_id,
            )
