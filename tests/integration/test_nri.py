"""The NRI plugin against the real containerd 2.4 (``required_plugins = ["pullgate"]``), runc and
crictl straight at containerd's socket: no pullgate proxy in the path, images pulled into
containerd directly (never verified by pullgate).

One node runs the whole story in order, because each step builds on the state the last one
left (images, the pod, the daemon's verdicts); the launched-plugin mode has its own runtime.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullgate.errors import Reason
from tests.support.docker_registry import REGISTRY_BINARY, DockerRegistry, registry_available
from tests.support.nri_node import NriNode, create_outcome, refusal_reason, stop_process, wait_for
from tests.support.runtimes import NriOptions, PodRuntime, RuntimeOptions, runtimes_unavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
    pytest.mark.skipif(
        runtimes_unavailable("2.4") is not None, reason=f"{runtimes_unavailable('2.4')}"
    ),
]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path / "registry") as reg:
        yield reg


def _metric(node: NriNode, name: str) -> float:
    url = f"http://127.0.0.1:{node.metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rpartition(" ")[2])
    return 0.0


_AUDITS = 'pullgate_nri_audits_total{{trigger="{}"}}'


def _synchronized_count(node: NriNode) -> float:
    return _metric(node, 'pullgate_nri_state_changes_total{state="synchronized"}')


def _create_until_allowed(
    runtime: PodRuntime, pod: tuple[str, Path], image: str, within: float
) -> tuple[list[Reason | None], str | None]:
    """``crictl create`` until allowed (as the kubelet retries), every retry *issued* within
    ``within`` seconds of the first refusal (crictl itself takes seconds on a loaded machine,
    which says nothing about the gate); the refusals' reasons and the container, if any."""
    reasons: list[Reason | None] = []
    deadline: float | None = None
    while deadline is None or time.monotonic() < deadline:
        outcome = create_outcome(runtime, pod[0], pod[1], image)
        if outcome.container is not None:
            return reasons, outcome.container
        reasons.append(outcome.reason)
        if deadline is None:
            deadline = time.monotonic() + within
        time.sleep(0.05)
    return reasons, None


def test_nri_gate_end_to_end(registry: DockerRegistry, tmp_path: Path) -> None:
    node = NriNode(tmp_path, registry)
    nri = NriOptions(required_plugins=["pullgate"])
    options = RuntimeOptions(certs_d=node.certs_d, sandbox_image=node.pause, nri=nri)
    with PodRuntime("2.4", options) as runtime, node.daemon(runtime.nri_socket) as daemon:
        for image in (node.pause, node.signed, node.unsigned):
            runtime.crictl("pull", image)  # straight into containerd: pullgate never saw them
        assert wait_for(lambda: _synchronized_count(node) >= 1), node.log()
        pod = runtime.run_pod()

        # A signed image never verified: refused once ("verification started"), then allowed
        # on the retry, within 2 s; the container starts and prints.
        reasons, container = _create_until_allowed(runtime, pod, node.signed, within=2.0)
        assert container is not None, (reasons, node.log())
        assert reasons[:1] == [Reason.VERIFICATION_STARTED]
        runtime.crictl("start", container)
        assert wait_for(lambda: "NRI-admitted" in runtime.crictl("logs", container).stdout)

        # The same bytes asked for through the unsigned repository (containerd's Image.name is
        # whichever reference it stored first): decided by the annotation, refused with the
        # reason once the background check has run; never allowed.
        first = create_outcome(runtime, pod[0], pod[1], node.unsigned)
        assert first.container is None
        assert first.reason is Reason.VERIFICATION_STARTED
        seen: list[Reason | None] = []

        def refused_with_reason() -> bool:
            outcome = create_outcome(runtime, pod[0], pod[1], node.unsigned)
            assert outcome.container is None, "an unsigned repository was allowed"
            seen.append(outcome.reason)
            return outcome.reason is Reason.NO_SIGNATURE

        assert wait_for(refused_with_reason, timeout=10.0, step=0.2), seen

        # containerd restarted underneath: the plugin re-registers, Synchronize re-audits,
        # creates keep working.
        before = _synchronized_count(node)
        runtime.restart()
        assert wait_for(lambda: _synchronized_count(node) > before), node.log()
        assert wait_for(lambda: _metric(node, _AUDITS.format("synchronize")) >= 2)
        waiting = create_outcome(runtime, pod[0], pod[1], node.signed).container
        assert waiting is not None

        # The signing CA is removed (hot reload): the next create of the signed image is refused.
        node.remove_ca()

        def refused() -> bool:
            return create_outcome(runtime, pod[0], pod[1], node.signed).container is None

        assert wait_for(refused, timeout=10.0, step=0.2), node.log()
        assert wait_for(
            lambda: create_outcome(runtime, pod[0], pod[1], node.signed).reason is Reason.UNTRUSTED,
            timeout=10.0,
            step=0.2,
        ), node.log()
        # The container created while the image was allowed does not start now either.
        late = runtime.crictl("start", waiting, check=False)
        assert late.returncode != 0, late.stdout
        assert refusal_reason(late.stderr) is Reason.UNTRUSTED, late.stderr

        # The daemon stopped (SIGTERM): the very next create fails, containerd's required_plugins
        # refusing it (the stopping daemon made containerd drop its closed connection at once).
        stop_process(daemon)
        outcome = create_outcome(runtime, pod[0], pod[1], node.signed)
        assert outcome.container is None
        assert outcome.reason is None
        assert "required plugin" in outcome.error


def test_containerd_launched_plugin(registry: DockerRegistry, tmp_path: Path) -> None:
    node = NriNode(tmp_path, registry)
    plugins = tmp_path / "nri-plugins"
    node.install_launched_plugin(plugins)
    # Python start-up (imports, trust load) under a loaded CI machine can approach the 5 s
    # default; the README says to raise it for the launched mode.
    nri = NriOptions(required_plugins=["pullgate"], plugin_path=plugins, registration_timeout="15s")
    options = RuntimeOptions(certs_d=node.certs_d, sandbox_image=node.pause, nri=nri)
    with PodRuntime("2.4", options) as runtime:
        try:
            for image in (node.pause, node.signed, node.unsigned):
                runtime.crictl("pull", image)
            containerd_log = runtime.log_path
            assert wait_for(lambda: _synchronized_count(node) >= 1), (
                node.log("launched.log"),
                containerd_log.read_text(errors="replace")[-3000:],
            )
            pod = runtime.run_pod()
            reasons, container = _create_until_allowed(runtime, pod, node.signed, within=5.0)
            assert container is not None, (reasons, node.log("launched.log"))
            assert reasons[:1] == [Reason.VERIFICATION_STARTED]
            outcome = create_outcome(runtime, pod[0], pod[1], node.unsigned)
            assert outcome.container is None
            assert outcome.reason in (Reason.VERIFICATION_STARTED, Reason.NO_SIGNATURE)
        finally:
            runtime.stop()  # containerd gone: the launched daemon sees EOF and exits
        assert wait_for(lambda: "is gone: stopping" in node.log("launched.log"), timeout=20)


def test_eviction_after_the_signing_ca_is_removed(registry: DockerRegistry, tmp_path: Path) -> None:
    node = NriNode(tmp_path, registry)
    nri = NriOptions(required_plugins=["pullgate"])
    options = RuntimeOptions(certs_d=node.certs_d, sandbox_image=node.pause, nri=nri)
    with PodRuntime("2.4", options) as runtime:
        evict = ["evict = true", f"evict_endpoint = {json.dumps(runtime.endpoint())}"]
        with node.daemon(runtime.nri_socket, evict):
            runtime.crictl("pull", node.signed)
            assert wait_for(lambda: _synchronized_count(node) >= 1), node.log()
            pod = runtime.run_pod()
            sleeper = ("/bin/busybox", "sleep", "600")
            assert wait_for(
                lambda: create_outcome(runtime, *pod, node.signed).container is not None,
                timeout=10,
                step=0.2,
            )  # verified now
            container = create_outcome(runtime, *pod, node.signed, command=sleeper).container
            assert container is not None, node.log()
            runtime.crictl("start", container)

            def state() -> str:
                out = runtime.crictl("inspect", "-o", "json", container).stdout
                return str(json.loads(out)["status"]["state"])

            assert state() == "CONTAINER_RUNNING"
            node.remove_ca()
            assert wait_for(lambda: state() == "CONTAINER_EXITED", timeout=30, step=0.5), node.log()
            assert _metric(node, "pullgate_nri_evictions_total") >= 1
