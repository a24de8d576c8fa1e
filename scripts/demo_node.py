"""The node's view for ``make demo``: a real containerd behind pullgate's two CRI sockets.

crictl plays the kubelet (runtime endpoint = pullgate's container-start gate, image endpoint =
pullgate's image proxy) in front of a private containerd (2.4 from ``../shared/runtimes``, else
Debian's 1.6) running real host-network pods with Debian's runc: a signed image is pulled and
started and prints its line; an unsigned pull is refused; an unsigned image already on the node
(pulled behind pullgate's back) is refused at container creation; ``pullgate images`` reports the
node. Each refusal is shown as the kubelet would show it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.support.docker_registry import DockerRegistry
from tests.support.runtimes import Kind, runtimes_unavailable
from tests.support.start_node import denial_reason, start_node

from pullgate.errors import Reason

__all__ = ["node_view"]


def _kubelet_line(stderr: str) -> str:
    """The runtime's answer as the kubelet reports it (the gRPC status description)."""
    for line in stderr.splitlines():
        if "desc = " in line:
            return line.split("desc = ", 1)[1].split('" ', 1)[0].rstrip('"')
    return stderr.strip().splitlines()[-1] if stderr.strip() else ""


def node_view(work: Path, step: Callable[[str], None]) -> bool | None:
    """Run the node's view; True/False for success, None when no runtime can run here."""
    kind: Kind | None = next((k for k in ("2.4", "1.6") if runtimes_unavailable(k) is None), None)
    if kind is None:
        print(f"    skipped: {runtimes_unavailable('2.4')}")
        return None
    logging.getLogger("pullgate").setLevel(logging.ERROR)  # the daemon runs in this process
    with (
        DockerRegistry(work / "node-registry") as registry,
        start_node(kind, work / "node", registry) as node,
    ):
        print(f"    containerd {kind}; kubelet endpoints: runtime unix://{node.runtime_socket}")
        print(f"                      image   unix://{node.cri_socket}")
        message = f"hello from a verified image {uuid.uuid4().hex[:8]}"
        signed = node.push("demo/app", signed=True, message=message)
        unsigned = node.push("demo/unsigned", signed=False)
        preloaded = node.push("demo/preloaded", signed=False)

        step("node: crictl pull + runp + create + start of the signed image (through pullgate)")
        node.gated("pull", signed.reference)
        pod, pod_config = node.run_pod()
        created = node.create(pod, pod_config, signed.reference)
        container = created.stdout.strip()
        node.gated("start", container)
        output = node.logs(container, message)
        ran = message in output
        print(f"    container {container[:13]} printed: {output.strip() or '(nothing)'}")

        step("node: crictl pull of the unsigned image (through pullgate) -> refused")
        pulled = node.gated("pull", unsigned.reference, check=False)
        print(f"    ErrImagePull: {_kubelet_line(pulled.stderr)}")

        step("node: an unsigned image already on the node (pulled behind pullgate's back)")
        node.runtime.crictl("pull", preloaded.reference)
        refused = node.create(pod, pod_config, preloaded.reference)
        print(f"    CreateContainerError: {_kubelet_line(refused.stderr)}")

        step("node: pullgate images (the node audit)")
        status, report = node.images()
        images = report["images"]
        for image in images if isinstance(images, list) else []:
            names = image["names"][0] if image["names"] else image["image_id"]
            print(f"    {image['status']:<15} {image['reason']:<14} {names}")
        print(f"    exit status {status} (0: every running container has a current allow)")
        return (
            ran
            and denial_reason(pulled.stderr) is Reason.NO_SIGNATURE
            and denial_reason(refused.stderr) is Reason.NO_SIGNATURE
        )
