"""The NRI container-start gate's cost, against the real containerd 2.4 (issue acceptance bench).

Three private containerd 2.4 runtimes run side by side on one registry: **gated** (NRI on,
``required_plugins = ["pullgate"]``, ``pullgate serve`` registered as its plugin), **nri** (NRI
on, no plugin: what containerd itself adds) and **plain** (NRI off). Each holds the same signed
busybox image (pulled straight into containerd) and one host-network pod. The gated one's image
is verified once (the first create is refused with ``VERIFICATION_STARTED``, a retry is
allowed), so every measured create is answered from the verdict store, as on a node whose
images pullgate has seen.

Printed:

1. ``CreateContainer`` latency (CRI gRPC straight at containerd, one at a time, the three
   runtimes back to back in a rotating order each round, so a round's three creates see the
   same machine load): medians, and the median of the per-round ratios **gated ÷ nri**
   (pullgate's cost: the target, <= 1.05) and gated ÷ plain (pullgate plus containerd's own NRI
   work), each with a bootstrap 90 % interval;
2. under **16 concurrent creates** on the gated runtime, the gate's answer latency p50/p99 (from
   request read to answer written, the daemon's ``pullgate_nri_answer_seconds`` histogram,
   interpolated within buckets as Prometheus' ``histogram_quantile`` does; target p99 < 100 ms)
   and the share of answers under 100 ms.

Usage: ``.venv/bin/python bench/start_nri.py [--rounds N] [--concurrent N]`` (needs root,
``docker-registry``, ``../shared/runtimes``). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.containerd import CriClient  # noqa: E402
from tests.support.docker_registry import DockerRegistry, registry_available  # noqa: E402
from tests.support.nri_node import NriNode, create_outcome, wait_for  # noqa: E402
from tests.support.runtimes import (  # noqa: E402
    NriOptions,
    PodRuntime,
    RuntimeOptions,
    runtimes_unavailable,
)

from pullgate.cri.runtime.v1 import api_pb2  # noqa: E402

TARGET_RATIO = 1.05
TARGET_P99 = 0.100


def _create(client: CriClient, pod_id: str, image: str) -> float:
    """One ``CreateContainer`` straight at containerd; its latency in seconds."""
    name = f"b-{uuid.uuid4().hex[:10]}"
    request = api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod_id,
        config=api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name),
            image=api_pb2.ImageSpec(image=image),
        ),
        sandbox_config=api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, uid=name, namespace="default")
        ),
    )
    started = time.perf_counter()
    client.runtime.CreateContainer(request, timeout=60)
    return time.perf_counter() - started


def _histogram(port: int, name: str) -> list[tuple[float, float]]:
    """``(upper bound, cumulative count)`` of a histogram on the daemon's metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out.append((float("inf") if bound == "+Inf" else float(bound), float(line.split()[-1])))
    return sorted(out)


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus ``histogram_quantile`` over cumulative buckets."""
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, count
    return lower


def _delta(
    after: list[tuple[float, float]], before: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    base = dict(before)
    return [(bound, count - base.get(bound, 0.0)) for bound, count in after]


def _paired(gated: list[float], base: list[float]) -> tuple[float, float, float]:
    """Median of the per-round ratios and its bootstrap 90 % interval."""
    ratios = [g / b for g, b in zip(gated, base, strict=True)]
    rng = random.Random(7)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    return statistics.median(ratios), medians[100], medians[1899]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--batches", type=int, default=4, help="concurrent batches")
    args = parser.parse_args()
    why = runtimes_unavailable("2.4") or (None if registry_available() else "no docker-registry")
    if why:
        print(f"skipped: {why}")
        return 0
    with tempfile.TemporaryDirectory(prefix="pg-bench-nri-") as tmp_name:
        tmp = Path(tmp_name)
        with DockerRegistry(tmp / "registry") as registry:
            node = NriNode(tmp, registry)
            gated_opts = RuntimeOptions(
                certs_d=node.certs_d,
                sandbox_image=node.pause,
                nri=NriOptions(required_plugins=["pullgate"]),
            )
            nri_opts = RuntimeOptions(
                certs_d=node.certs_d, sandbox_image=node.pause, nri=NriOptions()
            )
            plain_opts = RuntimeOptions(certs_d=node.certs_d, sandbox_image=node.pause)
            with (
                PodRuntime("2.4", gated_opts) as gated,
                PodRuntime("2.4", nri_opts) as nri,
                PodRuntime("2.4", plain_opts) as plain,
                node.daemon(gated.nri_socket),
            ):
                return _measure(args, node, gated, {"nri": nri, "plain": plain})


def _measure(
    args: argparse.Namespace, node: NriNode, gated: PodRuntime, others: dict[str, PodRuntime]
) -> int:
    for runtime in (gated, *others.values()):
        runtime.crictl("pull", node.signed)
    metric = 'pullgate_nri_state_changes_total{state="synchronized"}'

    def synchronized() -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{node.metrics_port}/metrics", timeout=5
            ) as response:
                return metric in response.read().decode()
        except OSError:
            return False

    if not wait_for(synchronized, timeout=60):
        print("pullgate never registered with containerd")
        return 1
    gated_pod, gated_cfg = gated.run_pod()
    # Verify once: the first create starts verification, a retry is answered from the store.
    if not wait_for(
        lambda: create_outcome(gated, gated_pod, gated_cfg, node.signed).container is not None,
        timeout=30,
        step=0.2,
    ):
        print("the signed image was never allowed")
        return 1
    image = node.signed
    runtimes = {"gated": gated, **others}
    pods = {
        name: (gated_pod if name == "gated" else rt.run_pod()[0]) for name, rt in runtimes.items()
    }
    clients = {name: CriClient(rt.socket) for name, rt in runtimes.items()}
    g = clients["gated"]
    try:
        for _ in range(3):  # warm every runtime
            for name, client in clients.items():
                _create(client, pods[name], image)
        times: dict[str, list[float]] = {name: [] for name in clients}
        order = list(clients)
        for i in range(args.rounds):
            for name in order[i % 3 :] + order[: i % 3]:
                times[name].append(_create(clients[name], pods[name], image))
        print(f"CreateContainer, {args.rounds} rounds (CRI gRPC straight at containerd 2.4):")
        for name, label in (
            ("gated", "NRI + pullgate"),
            ("nri", "NRI, no plugin"),
            ("plain", "NRI off"),
        ):
            print(
                f"  {name:<6} ({label:<14}) median {statistics.median(times[name]) * 1000:.1f} ms"
            )
        missed = False
        for base, target in (("nri", TARGET_RATIO), ("plain", None)):
            ratio, low, high = _paired(times["gated"], times[base])
            missed = missed or (target is not None and ratio > target)
            note = ""
            if target is not None:
                note = f"; target <= {target}) " + ("OK" if ratio <= target else "ABOVE TARGET")
            else:
                note = "; report)"
            print(f"  gated / {base} = {ratio:.3f} (90% interval {low:.3f}-{high:.3f}{note}")
        name = "pullgate_nri_answer_seconds"
        before = _histogram(node.metrics_port, name)
        with ThreadPoolExecutor(args.concurrent) as pool:
            for _ in range(args.batches):
                list(pool.map(lambda _: _create(g, gated_pod, image), range(args.concurrent)))
        buckets = _delta(_histogram(node.metrics_port, name), before)
    finally:
        for client in clients.values():
            client.close()
    total = buckets[-1][1]
    under = next((c for b, c in buckets if b == TARGET_P99), 0.0)
    p50, p99 = _quantile(0.5, buckets), _quantile(0.99, buckets)
    verdict = "OK" if p99 < TARGET_P99 else "ABOVE TARGET"
    print(f"gate answer latency, {int(total)} creates, {args.concurrent} concurrent:")
    print(
        f"  p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms (target p99 < 100 ms) {verdict}; "
        f"{under / total * 100 if total else 0:.1f}% under 100 ms"
    )
    return 1 if missed or p99 >= TARGET_P99 else 0


if __name__ == "__main__":
    sys.exit(main())
