"""``StartContainer`` through the container-start gate, end to end: crictl plays the kubelet
against pullgate's sockets in front of a real containerd (2.4 and Debian's 1.6), on both of the
gate's transports (``[runtime] transport``).

A container created while its image was allowed must not start once that allow has lapsed, and
a container the runtime created from other content than its create was decided on (a tag moved
in between) must not start either. Refusals are judged by the typed reason and by what runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
TRANSPORTS = ["splice", "grpc"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path_factory.mktemp("sc-registry")) as reg:
        yield reg


@contextmanager
def _node(
    kind: Kind,
    transport: str,
    registry: DockerRegistry,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    hook: bool = False,
) -> Iterator[StartNode]:
    reason = runtimes_unavailable(kind)
    if reason is not None:
        pytest.skip(f"containerd {kind}: {reason}")
    with start_node(
        kind, tmp_path_factory.mktemp("sc"), registry, transport=transport, hook=hook
    ) as node:
        yield node


def _stamp(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _state(node: StartNode, container: str) -> str:
    out = node.runtime.crictl("inspect", "-o", "json", container).stdout
    state = json.loads(out)["status"]["state"]
    assert isinstance(state, str)
    return state


def _created(node: StartNode, pod: str, pod_config: Path, reference: str) -> str:
    created = node.create(pod, pod_config, reference)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_container_does_not_start_once_its_allow_has_lapsed(
    kind: Kind,
    transport: str,
    registry: DockerRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with _node(kind, transport, registry, tmp_path_factory) as node:
        # A signed image is created and started through the gate (the allow path of both).
        message = f"signed {uuid.uuid4().hex}"
        signed = node.push(f"sc/signed-{uuid.uuid4().hex[:6]}", signed=True, message=message)
        node.gated("pull", signed.reference)
        pod, pod_config = node.run_pod()
        running = _created(node, pod, pod_config, signed.reference)
        node.gated("start", running)
        assert message in node.logs(running, message)

        # An unsigned image already on the node, created under break-glass ...
        unsigned = node.push(f"sc/unsigned-{uuid.uuid4().hex[:6]}", signed=False)
        node.runtime.crictl("pull", unsigned.reference)
        node.break_glass.write_text(f'expires = {_stamp(timedelta(hours=1))}\nnote = "t"\n')
        waiting = _created(node, pod, pod_config, unsigned.reference)
        # ... does not start once the break-glass file is gone.
        node.break_glass.unlink()
        refused = node.gated("start", waiting, check=False)
        assert refused.returncode != 0
        assert denial_reason(refused.stderr) is Reason.NO_SIGNATURE, refused.stderr
        assert _state(node, waiting) == "CONTAINER_CREATED"
        # A valid break-glass file lets it start, audited (the same rules as the create).
        node.break_glass.write_text(f"expires = {_stamp(timedelta(hours=1))}\n")
        opened = node.gated("start", waiting, check=False)
        assert opened.returncode == 0, opened.stderr
        node.break_glass.unlink()

        # A start request naming no container the runtime knows is refused, not forwarded.
        unknown = node.gated("start", uuid.uuid4().hex, check=False)
        assert denial_reason(unknown.stderr) is Reason.IMAGE_UNKNOWN, unknown.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_tag_moved_between_decision_and_create_still_runs_the_decided_image(
    kind: Kind,
    transport: str,
    registry: DockerRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with _node(kind, transport, registry, tmp_path_factory, hook=True) as node:
        assert node.hook is not None
        repo = f"sc/moved-{uuid.uuid4().hex[:6]}"
        message = f"decided {uuid.uuid4().hex}"
        decided = node.push(repo, signed=True, message=message)
        other = f"other {uuid.uuid4().hex}"
        swapped = node.push(repo, signed=True, message=other, tag="v2")
        # Both are signed and pulled through the gate: each alone has a current allow.
        node.gated("pull", decided.reference)
        node.gated("pull", swapped.reference)
        pod, pod_config = node.run_pod()

        def retag() -> None:  # after the gate resolved v1, before the runtime does
            node.runtime.ctr("image", "tag", "--force", swapped.reference, decided.reference)

        node.hook.after_image_status(decided.reference, retag)
        container = _created(node, pod, pod_config, decided.reference)
        assert node.hook.fired.is_set()  # the tag moved between the decision and the create
        # The runtime created the container from the image the gate decided on.
        node.gated("start", container)
        out = node.logs(container, message)
        assert message in out
        assert other not in out

        # The tag as it is now creates and starts the other image, decided on its own.
        again = _created(node, pod, pod_config, decided.reference)
        node.gated("start", again)
        assert other in node.logs(again, other)
