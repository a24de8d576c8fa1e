"""Cost of deciding ``StartContainer`` at the RuntimeService gate, against a real containerd.

One run per (runtime, transport): Debian's ``docker-registry`` (mutual TLS), a private
pod-capable containerd (2.4 from ``../shared/runtimes``, Debian's 1.6) and ``pullgate serve``
with ``[runtime]`` (:func:`tests.support.start_node.start_node`). A signed busybox image is
pulled through pullgate (its verdict is current); each round creates two containers of it
directly (the kubelet's image-ID form, not timed) and starts one through the gate and one
directly, back to back in alternating order. The gate's start reads the container from the
runtime (``ListContainers`` by ID) and answers from the verdict store before forwarding.
Printed: the median of the per-round ratios gate ÷ direct with its 95 % bootstrap interval,
and both medians (report: a start is a runc task start, tens to hundreds of ms).

Usage: ``python bench/start_container.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.containerd import CriClient  # noqa: E402
from tests.support.docker_registry import DockerRegistry, registry_available  # noqa: E402
from tests.support.runtimes import Kind, runtimes_unavailable  # noqa: E402
from tests.support.start_node import StartNode, start_node  # noqa: E402

from bench.pull_series import median_interval  # noqa: E402
from pullgate.cri.runtime.v1 import api_pb2  # noqa: E402

CREATE = "/runtime.v1.RuntimeService/CreateContainer"
START = "/runtime.v1.RuntimeService/StartContainer"
IMAGE_STATUS = "/runtime.v1.ImageService/ImageStatus"
RUNS: tuple[tuple[Kind, str], ...] = (("2.4", "splice"), ("2.4", "grpc"), ("1.6", "splice"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    if not registry_available():
        raise SystemExit("docker-registry is not installed")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with DockerRegistry(tmp / "registry") as registry:
            for kind, transport in RUNS:
                missing = runtimes_unavailable(kind)
                if missing is not None:
                    print(f"containerd {kind}: skipped ({missing})")
                    continue
                where = tmp / f"{kind}-{transport}"
                with start_node(kind, where, registry, transport=transport) as node:
                    _measure(node, kind, transport, args.rounds)
    return 0


def _measure(node: StartNode, kind: str, transport: str, rounds: int) -> None:
    image = node.push(f"bench/start-{uuid.uuid4().hex[:6]}", signed=True)
    node.gated("pull", image.reference)  # through pullgate: the verdict is current
    pod, pod_config = node.run_pod()
    meta = json.loads(pod_config.read_text())["metadata"]
    sandbox = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(
            name=meta["name"], namespace=meta["namespace"], uid=meta["uid"]
        )
    )
    with CriClient(node.runtime.socket) as direct, CriClient(node.runtime_socket) as gate:
        status = api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image.reference))
        raw = direct.raw(IMAGE_STATUS, status.SerializeToString())
        image_id = api_pb2.ImageStatusResponse.FromString(raw).image.id

        def started(client: CriClient) -> float:
            config = api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name=f"c-{uuid.uuid4().hex[:10]}"),
                image=api_pb2.ImageSpec(image=image_id, user_specified_image=image.reference),
            )
            create = api_pb2.CreateContainerRequest(
                pod_sandbox_id=pod, config=config, sandbox_config=sandbox
            )
            answer = direct.raw(CREATE, create.SerializeToString())
            container = api_pb2.CreateContainerResponse.FromString(answer).container_id
            body = api_pb2.StartContainerRequest(container_id=container).SerializeToString()
            begun = time.perf_counter()
            client.raw(START, body)
            return time.perf_counter() - begun

        for _ in range(2):  # warm both paths (channels, the gate's first lookups)
            started(gate)
            started(direct)
        pairs: list[tuple[float, float]] = []
        for i in range(rounds):
            if i % 2:
                d = started(direct)
                g = started(gate)
            else:
                g = started(gate)
                d = started(direct)
            pairs.append((g, d))
    ratio, low, high = median_interval([g / d for g, d in pairs])
    gated = statistics.median(g for g, _ in pairs) * 1000
    plain = statistics.median(d for _, d in pairs) * 1000
    print(
        f"containerd {kind}, {transport}: StartContainer via gate / direct {ratio:.3f} "
        f"[{low:.3f}, {high:.3f}] (medians {gated:.1f} vs {plain:.1f} ms, {rounds} rounds)",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
