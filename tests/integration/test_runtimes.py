"""The pod-capable runtime harness itself: real pods on containerd 2.4 and Debian's 1.6.

A busybox sandbox image and a workload image are pushed to the real docker-registry (mTLS); crictl
pulls, runs a host-network pod, creates and starts a container whose output is read from its log.
If this fails, every container-start test built on :mod:`tests.support.runtimes` would too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.containerd import write_hosts_toml
from tests.support.docker_registry import REGISTRY_BINARY, DockerRegistry, registry_available
from tests.support.push import Pusher
from tests.support.runtimes import (
    Kind,
    PodRuntime,
    RuntimeOptions,
    push_pause_image,
    push_runnable_image,
    runtimes_unavailable,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path_factory.mktemp("rt-registry")) as reg:
        yield reg


def _wait_for_log(path: Path, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    content = ""
    while time.monotonic() < deadline:
        if path.exists():
            content = path.read_text(errors="replace")
            if text in content:
                return content
        time.sleep(0.1)
    return content


@pytest.mark.parametrize("kind", ["2.4", "1.6"])
def test_pod_runs_and_prints(kind: Kind, registry: DockerRegistry, tmp_path: Path) -> None:
    reason = runtimes_unavailable(kind)
    if reason is not None:
        pytest.skip(f"containerd {kind}: {reason}")
    certs_d = tmp_path / "certs.d"
    write_hosts_toml(certs_d, registry)
    message = f"hello {uuid.uuid4().hex}"
    with Pusher.for_registry(registry) as pusher:
        pause = push_pause_image(pusher, registry.host)
        image = push_runnable_image(pusher, registry.host, "test/hello", kind, message=message)
    options = RuntimeOptions(certs_d=certs_d, sandbox_image=pause)
    with PodRuntime(kind, options) as runtime:
        runtime.crictl("pull", image.reference)
        pod_id, pod_config = runtime.run_pod()
        config = runtime.write_container_config(image.reference)
        container = runtime.crictl("create", pod_id, str(config), str(pod_config)).stdout.strip()
        runtime.crictl("start", container)
        log_dir = Path(runtime.workdir / "logs")
        logs = list(log_dir.rglob("*.log"))
        found = "".join(_wait_for_log(p, message) for p in logs) if logs else ""
        if message not in found:
            found = runtime.crictl("logs", container, check=False).stdout
        assert message in found
