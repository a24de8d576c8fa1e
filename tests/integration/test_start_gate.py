"""The container-start gate end to end: crictl plays the kubelet against pullgate's runtime and
image sockets, in front of a real containerd (2.4 from ``../shared/runtimes`` and Debian's 1.6)
running real host-network pods with Debian's runc, pulling from Debian's docker-registry (mTLS).

Refusals are judged by the typed reason after the kubelet-visible prefix, and by what runs.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pullgate.errors import Reason
from tests.support.docker_registry import REGISTRY_BINARY, DockerRegistry, registry_available
from tests.support.runtimes import Kind, runtimes_unavailable
from tests.support.start_node import StartNode, denial_reason, start_node

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]

KINDS: list[Kind] = ["2.4", "1.6"]


def _skip_unless(kind: Kind) -> None:
    reason = runtimes_unavailable(kind)
    if reason is not None:
        pytest.skip(f"containerd {kind}: {reason}")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path_factory.mktemp("sg-registry")) as reg:
        yield reg


@pytest.fixture(scope="module", params=KINDS)
def node(
    request: pytest.FixtureRequest,
    registry: DockerRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StartNode]:
    kind: Kind = request.param
    _skip_unless(kind)
    with start_node(kind, tmp_path_factory.mktemp("sg"), registry) as value:
        yield value


def _started(
    node: StartNode, pod: str, pod_config: Path, reference: str, message: str, *, stay: bool = False
) -> str:
    """A container of ``reference`` created and started through the gate, its output read;
    ``stay``: it keeps running after printing."""
    command = None
    if stay:
        command = ["/bin/busybox", "sh", "-c", f"echo {message}; while :; do sleep 1; done"]
    created = node.create(pod, pod_config, reference, command=command)
    assert created.returncode == 0, created.stderr
    container = created.stdout.strip()
    node.gated("start", container)
    assert message in node.logs(container, message)
    return container


def test_signed_image_is_pulled_created_started_and_prints(node: StartNode) -> None:
    message = f"signed {uuid.uuid4().hex}"
    image = node.push(f"start/signed-{uuid.uuid4().hex[:6]}", signed=True, message=message)
    node.gated("pull", image.reference)
    pod, pod_config = node.run_pod()
    _started(node, pod, pod_config, image.reference, message)
    # The kubelet's form: the image ID (decided from the verdict store, no ImageStatus).
    _started(node, pod, pod_config, _image_id(node, image.reference), message)


def _image_id(node: StartNode, reference: str) -> str:
    out = node.runtime.crictl("inspecti", "-o", "json", reference).stdout
    image_id = json.loads(out)["status"]["id"]
    assert isinstance(image_id, str)
    return image_id


def test_unsigned_image_pulled_straight_into_containerd_is_refused_at_create(
    node: StartNode,
) -> None:
    image = node.push(f"start/unsigned-{uuid.uuid4().hex[:6]}", signed=False)
    node.runtime.crictl("pull", image.reference)  # behind pullgate's back
    pod, pod_config = node.run_pod()
    refused = node.create(pod, pod_config, image.reference)
    assert refused.returncode != 0
    assert denial_reason(refused.stderr) is Reason.NO_SIGNATURE, refused.stderr
    by_id = node.create(pod, pod_config, _image_id(node, image.reference))
    assert by_id.returncode != 0
    assert denial_reason(by_id.stderr) is Reason.NO_SIGNATURE, by_id.stderr


def test_overlapped_unsigned_pull_is_denied_and_removed(node: StartNode) -> None:
    # [runtime] is configured, so pulls overlap their verification: the runtime pulls while
    # pullgate decides. A deny in before the pull's end is answered; a pull that ends first is
    # answered and then removed (each made certain: tests/integration/test_overlap_pull.py).
    image = node.push(f"start/overlap-{uuid.uuid4().hex[:6]}", signed=False)
    answered = node.gated("pull", image.reference, check=False)  # settled: the verdict is in
    if answered.returncode != 0:
        assert denial_reason(answered.stderr) is Reason.NO_SIGNATURE, answered.stderr
    assert node.runtime.crictl("inspecti", image.reference, check=False).returncode != 0


def test_pulls_sent_to_the_runtime_socket_are_gated_the_same_way(node: StartNode) -> None:
    # A kubelet whose imageServiceEndpoint is the runtime socket: PullImage is answered by the
    # gate's own pull handler (decide, pull, pin), whatever transport serves the socket.
    socket = f"unix://{node.runtime_socket}"
    signed = node.push(f"start/rt-signed-{uuid.uuid4().hex[:6]}", signed=True)
    node.runtime.crictl("pull", signed.reference, runtime_endpoint=socket, image_endpoint=socket)
    assert node.runtime.crictl("inspecti", signed.reference).returncode == 0
    unsigned = node.push(f"start/rt-unsigned-{uuid.uuid4().hex[:6]}", signed=False)
    denied = node.runtime.crictl(
        "pull", unsigned.reference, runtime_endpoint=socket, image_endpoint=socket, check=False
    )
    assert denied.returncode != 0
    assert denial_reason(denied.stderr) is Reason.NO_SIGNATURE, denied.stderr
    assert node.runtime.crictl("inspecti", unsigned.reference, check=False).returncode != 0
    # Pass-through calls (crictl's version and status calls among them) were timed.
    assert (node.metric("pullgate_runtime_passthrough_seconds_count") or 0) > 0


def test_a_create_larger_than_the_runtimes_window_is_decided_too(node: StartNode) -> None:
    # ~100 KB of annotations: more than containerd's 64 KiB stream window, so the gate cannot
    # hold the whole request back from the runtime; it reads it itself and decides.
    pod, pod_config = node.run_pod()
    big = {f"pullgate.test/a{i}": "x" * 1000 for i in range(100)}
    message = f"big {uuid.uuid4().hex}"
    signed = node.push(f"start/big-{uuid.uuid4().hex[:6]}", signed=True, message=message)
    node.gated("pull", signed.reference)
    unsigned = node.push(f"start/big-unsigned-{uuid.uuid4().hex[:6]}", signed=False)
    node.runtime.crictl("pull", unsigned.reference)  # behind pullgate's back
    answers = []
    for image in (signed, unsigned):
        config = node.runtime.write_container_config(image.reference)
        document = json.loads(config.read_text())
        config.write_text(json.dumps({**document, "annotations": big}))
        answers.append(
            node.gated("create", "--no-pull", pod, str(config), str(pod_config), check=False)
        )
    created, refused = answers
    assert created.returncode == 0, created.stderr
    node.gated("start", created.stdout.strip())
    assert message in node.logs(created.stdout.strip(), message)
    assert refused.returncode != 0
    assert denial_reason(refused.stderr) is Reason.NO_SIGNATURE, refused.stderr


def test_the_grpc_transport_gates_the_same_way(
    registry: DockerRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # [runtime] transport = "grpc", the fallback: grpcio serves the socket.
    _skip_unless("2.4")
    with start_node("2.4", tmp_path_factory.mktemp("sg-grpc"), registry, transport="grpc") as node:
        message = f"grpc {uuid.uuid4().hex}"
        image = node.push(f"start/grpc-{uuid.uuid4().hex[:6]}", signed=True, message=message)
        node.gated("pull", image.reference)
        pod, pod_config = node.run_pod()
        _started(node, pod, pod_config, image.reference, message)
        unsigned = node.push(f"start/grpc-unsigned-{uuid.uuid4().hex[:6]}", signed=False)
        node.runtime.crictl("pull", unsigned.reference)  # behind pullgate's back
        refused = node.create(pod, pod_config, unsigned.reference)
        assert refused.returncode != 0
        assert denial_reason(refused.stderr) is Reason.NO_SIGNATURE, refused.stderr


def test_imported_unsigned_image_is_refused_at_create(node: StartNode, tmp_path: Path) -> None:
    image = node.push(f"start/imported-{uuid.uuid4().hex[:6]}", signed=False)
    archive = tmp_path / "image.tar"
    node.runtime.ctr("image", "pull", "--hosts-dir", str(node.tmp / "certs.d"), image.reference)
    node.runtime.ctr("image", "export", str(archive), image.reference)
    # --sync: the removal's garbage collection is over before the import; otherwise the import can
    # find a blob still present, skip it, and read it back after the collector took it.
    node.runtime.ctr("image", "rm", "--sync", image.reference)
    node.runtime.ctr("image", "import", str(archive))
    pod, pod_config = node.run_pod()
    refused = node.create(pod, pod_config, image.reference)
    assert refused.returncode != 0
    assert denial_reason(refused.stderr) is Reason.NO_SIGNATURE, refused.stderr


def test_other_content_under_a_signed_index_name_is_a_content_mismatch(node: StartNode) -> None:
    _content_mismatch(node)


@pytest.mark.parametrize("kind", KINDS)
def test_content_mismatch_under_require_platform(
    kind: Kind, registry: DockerRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _skip_unless(kind)
    with start_node(kind, tmp_path_factory.mktemp("sg-plat"), registry, require="platform") as n:
        _content_mismatch(n)


def _content_mismatch(node: StartNode) -> None:
    # The index and its amd64 manifest are signed; the arm64 manifest is not. ctr stores the
    # arm64 manifest under the index's name: the name verifies (for this amd64 node), but the
    # content the runtime would run is not the content verified.
    repo = f"start/multi-{uuid.uuid4().hex[:6]}"
    image = node.push_index(repo, platforms=("linux/amd64", "linux/arm64"), signed=("linux/amd64",))
    arm = f"{node.registry.host}/{repo}@{image.platforms['linux/arm64'].digest}"
    hosts = str(node.tmp / "certs.d")
    node.runtime.ctr("image", "pull", "--platform", "linux/arm64", "--hosts-dir", hosts, arm)
    node.runtime.ctr("image", "tag", "--force", arm, image.reference)
    pod, pod_config = node.run_pod()
    refused = node.create(pod, pod_config, image.reference)
    assert refused.returncode != 0
    assert denial_reason(refused.stderr) is Reason.CONTENT_MISMATCH, refused.stderr


def _image_status(report: dict[str, object], reference: str) -> tuple[str, str]:
    images = report["images"]
    assert isinstance(images, list)
    found = [i for i in images if reference in i["names"]]
    assert len(found) == 1, images
    return found[0]["status"], found[0]["reason"]


def _image_status_by_id(report: dict[str, object], image_id: str) -> tuple[str, str]:
    images = report["images"]
    assert isinstance(images, list)
    found = [i for i in images if i["image_id"] == image_id]
    assert len(found) == 1, images
    return found[0]["status"], found[0]["reason"]


def _nameless_image(node: StartNode) -> str:
    """An image pulled behind pullgate's back whose names were then removed, so the runtime
    knows it by its ID alone (as after a re-tag elsewhere): nothing pullgate could verify."""
    image = node.push(f"start/nameless-{uuid.uuid4().hex[:6]}", signed=False)
    node.runtime.crictl("pull", image.reference)
    image_id = _image_id(node, image.reference)
    refs = node.runtime.ctr("image", "ls", "-q").stdout.split()
    names = [r for r in refs if r.startswith(image.reference.rsplit(":", 1)[0])]
    assert names, refs
    node.runtime.ctr("image", "rm", *names)
    assert image_id in node.runtime.ctr("image", "ls", "-q").stdout.split()
    return image_id


def _stamp(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("kind", KINDS)
def test_removed_ca_refuses_new_containers_within_one_second_and_break_glass_opens(
    kind: Kind, registry: DockerRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _skip_unless(kind)
    with start_node(kind, tmp_path_factory.mktemp("sg-ca"), registry) as node:
        message = f"before {uuid.uuid4().hex}"
        image = node.push(f"start/ca-{uuid.uuid4().hex[:6]}", signed=True, message=message)
        unsigned = node.push(f"start/ca-unsigned-{uuid.uuid4().hex[:6]}", signed=False)
        node.runtime.crictl("pull", unsigned.reference)
        nameless_id = _nameless_image(node)
        node.gated("pull", image.reference)
        pod, pod_config = node.run_pod()
        running = _started(node, pod, pod_config, image.reference, message, stay=True)
        waiting = node.create(pod, pod_config, image.reference)  # created while allowed
        assert waiting.returncode == 0, waiting.stderr

        status, report = node.images()
        assert status == 0, report
        assert _image_status(report, image.reference) == ("allowed", "VERIFIED")
        assert _image_status(report, unsigned.reference) == ("denied", "NO_SIGNATURE")
        assert _image_status_by_id(report, nameless_id) == ("never-verified", "NOT_VERIFIED")

        removed = time.monotonic()
        node.signing_root.unlink()  # hot reload: the store keeps only the unrelated root
        time.sleep(max(0.0, 1.0 - (time.monotonic() - removed)))
        refused = node.create(pod, pod_config, image.reference)
        assert refused.returncode != 0
        assert denial_reason(refused.stderr) is Reason.UNTRUSTED, refused.stderr
        # Created while allowed, it does not start now (StartContainer is decided too).
        late = node.gated("start", waiting.stdout.strip(), check=False)
        assert denial_reason(late.stderr) is Reason.UNTRUSTED, late.stderr

        # The daemon's own audit ran after the reload: the running container is counted.
        deadline = time.monotonic() + 10
        while node.metric("pullgate_unverified_containers") != 1.0:
            assert time.monotonic() < deadline, "the daemon's node audit never counted it"
            time.sleep(0.2)

        status, report = node.images()
        assert status == 1, report
        listed = report["containers"]
        assert isinstance(listed, list)
        containers = {c["container_id"]: c for c in listed}
        assert (containers[running]["status"], containers[running]["reason"]) == (
            "denied",
            "UNTRUSTED",
        )

        # Break-glass: out of range files are refused, an unexpired one opens the gate.
        for bad in (timedelta(minutes=-5), timedelta(hours=25)):
            node.break_glass.write_text(f"expires = {_stamp(bad)}\n")
            again = node.create(pod, pod_config, image.reference)
            assert denial_reason(again.stderr) is Reason.UNTRUSTED, again.stderr
        node.break_glass.write_text(f'expires = {_stamp(timedelta(hours=1))}\nnote = "test"\n')
        opened = node.create(pod, pod_config, image.reference)
        assert opened.returncode == 0, opened.stderr
        glass_pull = node.push(f"start/glass-{uuid.uuid4().hex[:6]}", signed=False)
        node.gated("pull", glass_pull.reference)  # pulls are waived too
        node.break_glass.unlink()
        closed = node.create(pod, pod_config, image.reference)
        assert denial_reason(closed.stderr) is Reason.UNTRUSTED, closed.stderr


def _create_mounting(
    node: StartNode, pod: str, pod_config: Path, image: str, mounted: str
) -> subprocess.CompletedProcess[str]:
    """``crictl create`` through the gate of ``image`` with ``mounted`` as an image volume at
    ``/vol`` (CRI ``Mount.image``), its command proving the volume's content is there."""
    check = "test -x /vol/bin/busybox && echo mounted"
    config = node.runtime.write_container_config(image, command=["/bin/busybox", "sh", "-c", check])
    document = json.loads(config.read_text())
    mount = {"container_path": "/vol", "readonly": True, "image": {"image": mounted}}
    config.write_text(json.dumps({**document, "mounts": [mount]}))
    return node.gated("create", "--no-pull", pod, str(config), str(pod_config), check=False)


def test_an_unsigned_image_mounted_as_a_volume_is_refused_at_create(node: StartNode) -> None:
    signed = node.push(f"start/vol-app-{uuid.uuid4().hex[:6]}", signed=True)
    node.gated("pull", signed.reference)
    unsigned = node.push(f"start/vol-data-{uuid.uuid4().hex[:6]}", signed=False)
    node.runtime.crictl("pull", unsigned.reference)  # behind pullgate's back
    pod, pod_config = node.run_pod()
    # crictl's form (references) and the kubelet's (image IDs; the container's image has a
    # current allow, so only the mount keeps the create from the memory-only allow).
    forms = [
        (signed.reference, unsigned.reference),
        (_image_id(node, signed.reference), _image_id(node, unsigned.reference)),
    ]
    for image, mounted in forms:
        refused = _create_mounting(node, pod, pod_config, image, mounted)
        assert refused.returncode != 0
        assert denial_reason(refused.stderr) is Reason.NO_SIGNATURE, refused.stderr
    if node.runtime.kind == "2.4":  # image volumes need containerd >= 2.1
        data = node.push(f"start/vol-signed-{uuid.uuid4().hex[:6]}", signed=True)
        node.gated("pull", data.reference)
        image, mounted = _image_id(node, signed.reference), _image_id(node, data.reference)
        created = _create_mounting(node, pod, pod_config, image, mounted)
        assert created.returncode == 0, created.stderr
        node.gated("start", created.stdout.strip())
        assert "mounted" in node.logs(created.stdout.strip(), "mounted")
