"""Cost of the container-start gate, against a real containerd.

One run starts Debian's ``docker-registry`` (mutual TLS), a private pod-capable containerd
(2.4 from ``../shared/runtimes``, or Debian's 1.6 with ``--runtime 1.6``) and ``pullgate serve``
as its own process with ``[cri]`` and ``[runtime]`` sockets in front of it (overlapped pulls on,
the default with the gate). A CRI client generated from the ``runtime.v1`` protos plays the
kubelet, over one channel per socket. Three ratios, each the median of per-round ratios with
a 95 % bootstrap interval, both paths of a round measured back to back in alternating order:

* ``CreateContainer`` through the gate ÷ direct (and, to report, through the zero-cost proxy
  below ÷ direct and the gate ÷ it), with a current verdict (the image was pulled
  through pullgate, so the gate answers from its verdict store after one ``ImageStatus``):
  the kubelet's create as the kubelet sends it (image ID + the pod's reference). Each created
  container is removed (not timed). Target <= 1.05. Reported beside it: pullgate's CPU per
  create through the gate (user + system from ``/proc``, over the timed rounds), which the
  machine's load blurs far less than the ratio, and, in the same rounds, the byte relay below
  ÷ direct (the floor of any proxy of the socket) and the gate ÷ the byte relay.
* pass-through ``ListContainers`` and ``PodSandboxStatus`` through the gate ÷ direct (target
  <= 1.5): one extra unix-socket gRPC hop, no decision. Measured in the same rounds through the
  zero-cost proxy (``bench/zero_proxy.py``: the same grpcio server model with none of pullgate's
  logic, its own process): the floor any Python gRPC proxy reaches here ÷ direct (report), and
  the gate ÷ that floor (target <= 1.1: what pullgate itself adds); and through a byte relay
  (``bench/byte_relay.py``: a thread per direction copying bytes, nothing parsed, its own
  process): the floor of any proxy of a unix-socket connection ÷ direct, and the gate ÷ it
  (report: what the splice transport's frame parsing and HPACK decoding add).
* cold ``PullImage`` of a ~10 MB signed image (two 5 MB random layers, new every round)
  through the image proxy ÷ direct, with the gate on and overlapped pulls: verification runs
  while containerd pulls, and a pull that ends first is answered before the verdict (an allow
  in first: before its tag's pin check). Target <= 1.05. Reported beside it: the time until the
  verdict and pin are in (when a create could be admitted from the verdict store) ÷ the direct
  pull. Each image is removed after that (read from ``pullgate_overlap_pending``, not timed),
  so no verdict of one round runs during the next round's direct pull.

Usage: ``python bench/start.py [--runtime 2.4|1.6] [--rounds N] [--pulls N] [--pull-only]
[--only create|pass|pull ...]`` (``--only``: just the named parts, repeatable; ``--pull-only``:
``--only pull``); exit 1 when a target is missed. ``CreateContainer`` also prints the gate's
added milliseconds (median of the per-round differences).
The NRI gate's line (``CreateContainer`` with the NRI plugin ÷ without, answer p50/p99) is
``bench/start_nri.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.containerd import CriClient, write_hosts_toml  # noqa: E402
from tests.support.docker_registry import DockerRegistry, registry_available  # noqa: E402
from tests.support.pki import Chain, KeySpec, Pki, write_store  # noqa: E402
from tests.support.push import Pusher  # noqa: E402
from tests.support.runtimes import (  # noqa: E402
    Kind,
    PodRuntime,
    RuntimeOptions,
    push_pause_image,
    push_runnable_image,
    runtimes_unavailable,
)
from tests.support.signing import sign_jws  # noqa: E402
from tests.support.start_node import policy, write_config  # noqa: E402

from bench.pull_series import median_interval  # noqa: E402
from bench.pull_support import push_signed_image  # noqa: E402
from bench.splice_cost import _cpu  # noqa: E402
from pullgate.cri.runtime.v1 import api_pb2  # noqa: E402

CREATE = "/runtime.v1.RuntimeService/CreateContainer"
REMOVE = "/runtime.v1.RuntimeService/RemoveContainer"
LIST = "/runtime.v1.RuntimeService/ListContainers"
SANDBOX_STATUS = "/runtime.v1.RuntimeService/PodSandboxStatus"
PULL = "/runtime.v1.ImageService/PullImage"
LAYER_BYTES = 5 * 1024 * 1024
GATE, ZERO, DIRECT, RELAY = range(4)  # the paths' columns in _rotated rows
PARTS = ("create", "pass", "pull")


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


Pairs = list[tuple[float, float]]


def _rotated(rounds: int, paths: Sequence[Callable[[int], float]]) -> list[list[float]]:
    """Per-round seconds of every path, the order rotating every round."""
    rows: list[list[float]] = []
    for i in range(rounds):
        row = [0.0] * len(paths)
        for k in range(len(paths)):
            at = (i + k) % len(paths)
            row[at] = paths[at](i)
        rows.append(row)
    return rows


def _pairs(rows: list[list[float]], over: int, under: int) -> Pairs:
    return [(row[over], row[under]) for row in rows]


def _line(name: str, pairs: Pairs, target: float | None, missed: list[str]) -> str:
    median, low, high = median_interval([g / d for g, d in pairs])
    if target is not None and median > target:
        missed.append(name)
    gated = statistics.median(g for g, _ in pairs) * 1000
    direct = statistics.median(d for _, d in pairs) * 1000
    goal = "(report)" if target is None else f"target <= {target}"
    return (
        f"{name:<48} {median:6.3f}  [{low:.3f}, {high:.3f}]  {goal:<15}"
        f"   ({gated:.2f} ms vs {direct:.2f} ms)"
    )


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{proc.args!r} did not create {path}")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", choices=("2.4", "1.6"), default="2.4")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--pulls", type=int, default=12)
    parser.add_argument("--pull-only", action="store_true", help="measure the cold pulls only")
    parser.add_argument("--only", action="append", choices=PARTS, help="measure just this part")
    args = parser.parse_args()
    kind: Kind = args.runtime
    why = runtimes_unavailable(kind) or (None if registry_available() else "no docker-registry")
    if why is not None:
        print(f"skipped: containerd {kind}: {why}")
        return 0
    with tempfile.TemporaryDirectory(prefix="pg-bench-start-") as tmp_name:
        tmp = Path(tmp_name)
        parts = frozenset(("pull",) if args.pull_only else args.only or PARTS)
        return _run(kind, tmp, args.rounds, args.pulls, parts)


def _run(kind: Kind, tmp: Path, rounds: int, pulls: int, parts: frozenset[str]) -> int:
    chain = Pki(name="bench start").chain(key=KeySpec.ec(256))
    trust = tmp / "trust"
    write_store(trust, "ca", "start", [chain.root.cert])
    (trust / "trustpolicy.json").write_text(json.dumps(policy()))
    with DockerRegistry(tmp / "registry") as registry:
        certs_d = tmp / "certs.d"
        write_hosts_toml(certs_d, registry)
        with Pusher.for_registry(registry) as pusher:
            pause = push_pause_image(pusher, registry.host)
            image = push_runnable_image(pusher, registry.host, "bench/app", "v1")
            pusher.push_signature(
                "bench/app",
                image.top,
                sign_jws(chain, image.top),
                "application/jose+json",
                certificates=chain.x509,
            )
        with PodRuntime(kind, RuntimeOptions(certs_d=certs_d, sandbox_image=pause)) as runtime:
            config = write_config(tmp, certs_d, trust, runtime.endpoint())
            # Not beside config.toml: the daemon watches that directory, and a log file there
            # would wake its watcher on every line (in production the log is the journal).
            (tmp / "log").mkdir()
            log = (tmp / "log" / "pullgate.log").open("wb")
            env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
            proc = subprocess.Popen(
                [sys.executable, "-m", "pullgate", "serve", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            zero = [str(ROOT / "bench" / "zero_proxy.py"), str(tmp / "zero.sock")]
            floor = subprocess.Popen([sys.executable, *zero, runtime.endpoint()])
            bytes_only = [str(ROOT / "bench" / "byte_relay.py"), str(tmp / "relay.sock")]
            relay = subprocess.Popen([sys.executable, *bytes_only, runtime.endpoint()])
            try:
                _wait_for(tmp / "runtime.sock", proc)
                _wait_for(tmp / "cri.sock", proc)
                _wait_for(tmp / "zero.sock", floor)
                _wait_for(tmp / "relay.sock", relay)
                return _measure(
                    runtime, tmp, registry, chain, image.reference, (rounds, pulls, parts, proc.pid)
                )
            finally:
                for each in (proc, floor, relay):
                    each.terminate()
                    each.wait(30)
                log.close()


def _measure(
    runtime: PodRuntime,
    tmp: Path,
    registry: DockerRegistry,
    chain: Chain,
    reference: str,
    sizes: tuple[int, int, frozenset[str], int],
) -> int:
    rounds, pulls, parts, daemon = sizes
    cpu = 0.0
    pending = partial(_metric, tmp / "config.toml", "pullgate_overlap_pending")
    with (
        CriClient(runtime.socket) as direct,
        CriClient(tmp / "runtime.sock") as gate,
        CriClient(tmp / "cri.sock") as images,
        CriClient(tmp / "zero.sock") as zero,
        CriClient(tmp / "relay.sock") as relay,
    ):
        images.pull(reference)  # through pullgate: the verdict is current
        image_id = direct.status(reference).image.id
        pod_id, pod_file = runtime.run_pod()
        pod_meta = json.loads(pod_file.read_text())["metadata"]
        sandbox = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(
                name=pod_meta["name"], namespace=pod_meta["namespace"], uid=pod_meta["uid"]
            )
        )

        def create(client: CriClient) -> Callable[[int], float]:
            def one(i: int) -> float:
                request = api_pb2.CreateContainerRequest(
                    pod_sandbox_id=pod_id,
                    config=api_pb2.ContainerConfig(
                        metadata=api_pb2.ContainerMetadata(name=f"c-{uuid.uuid4().hex[:10]}"),
                        image=api_pb2.ImageSpec(image=image_id, user_specified_image=reference),
                    ),
                    sandbox_config=sandbox,
                ).SerializeToString()
                answer: list[bytes] = []
                seconds = _timed(lambda: answer.append(client.raw(CREATE, request)))
                created = api_pb2.CreateContainerResponse.FromString(answer[0]).container_id
                remove = api_pb2.RemoveContainerRequest(container_id=created)
                direct.raw(REMOVE, remove.SerializeToString())
                return seconds

            return one

        creates: list[list[float]] = []
        lists: list[list[float]] = []
        statuses: list[list[float]] = []
        if "create" in parts:
            for _ in range(3):  # warm the paths (channels, the gate's first decision)
                for client in (gate, zero, direct, relay):
                    create(client)(0)
            before = sum(_cpu(daemon))
            creates = _rotated(rounds, [create(gate), create(zero), create(direct), create(relay)])
            cpu = (sum(_cpu(daemon)) - before) / rounds

        listing = api_pb2.ListContainersRequest().SerializeToString()
        status = api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id).SerializeToString()

        def call(client: CriClient, method: str, body: bytes) -> Callable[[int], float]:
            return lambda i: _timed(lambda: client.raw(method, body))

        passing = (gate, zero, direct, relay)  # GATE, ZERO, DIRECT, RELAY
        if "pass" in parts:
            for client in passing:  # warm the paths' channels and threads
                for _ in range(20):
                    client.raw(LIST, listing)
            lists = _rotated(rounds * 5, [call(c, LIST, listing) for c in passing])
            statuses = _rotated(rounds * 5, [call(c, SANDBOX_STATUS, status) for c in passing])

        pull_pairs: Pairs = []
        verdict_pairs: Pairs = []
        early: list[bool] = []  # each pull: answered before its verdict or pin check
        with Pusher.for_registry(registry) as pusher:
            for i in range(pulls if "pull" in parts else 0):
                refs = []
                for side in ("g", "d"):
                    tag = f"{side}{i}-{uuid.uuid4().hex[:6]}"
                    push_signed_image(
                        pusher,
                        chain,
                        repo="bench/cold",
                        tag=tag,
                        platform="linux/amd64",
                        layer_bytes=LAYER_BYTES,
                    )
                    refs.append(f"{registry.host}/bench/cold:{tag}")
                os.sync()
                gated_ref, direct_ref = refs
                # The kubelet calls its runtime endpoint (the gate) every few seconds; pulls
                # are answered before their verdict only while it does (cri/overlap.py).
                gate.raw(LIST, listing)

                def pulled(client: CriClient, ref: str) -> tuple[float, float]:
                    """Seconds until the pull's answer, and until its verdict is in."""
                    started = time.perf_counter()
                    client.pull(ref)
                    answered = time.perf_counter() - started
                    if client is images:
                        early.append(pending() > 0)
                    while pending():
                        time.sleep(0.002)
                    settled = time.perf_counter() - started
                    direct.remove(ref)
                    return answered, settled

                if i % 2:
                    d, _ = pulled(direct, direct_ref)
                    g, v = pulled(images, gated_ref)
                else:
                    g, v = pulled(images, gated_ref)
                    d, _ = pulled(direct, direct_ref)
                pull_pairs.append((g, d))
                verdict_pairs.append((v, d))

    print(f"container-start gate on containerd {runtime.kind} ({rounds} rounds; medians, 95 % CI)")
    missed: list[str] = []
    if pull_pairs:
        _print_pulls(pulls, pull_pairs, verdict_pairs, missed)
        done = f"{sum(early)} of {len(early)} gated pulls"
        print(f"  answered with its verdict or pin check still pending: {done}")
    _print_start(creates, lists, statuses, missed)
    if creates:
        print(f"CreateContainer: pullgate's CPU per create through the gate {cpu * 1000:.2f} ms")
    if missed:
        print("target missed: " + "; ".join(missed))
    return 1 if missed else 0


def _metric(config: Path, name: str) -> float:
    """The value of an unlabelled metric the daemon exports now (0 when absent)."""
    address = config.read_text().split('[metrics]\naddress = "', 1)[1].split('"', 1)[0]
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    return 0.0


def _print_pulls(pulls: int, pairs: Pairs, verdicts: Pairs, missed: list[str]) -> None:
    print(_line(f"cold PullImage ~10 MB, overlapped ({pulls} pulls)", pairs, 1.05, missed))
    print(_line("  its verdict in (answer or later) / direct pull", verdicts, None, missed))


def _print_start(
    creates: list[list[float]],
    lists: list[list[float]],
    statuses: list[list[float]],
    missed: list[str],
) -> None:
    name = "CreateContainer"
    if creates:
        current = _pairs(creates, GATE, DIRECT)
        print(_line(f"{name} via gate / direct (current)", current, 1.05, missed))
        zero = _pairs(creates, ZERO, DIRECT)
        print(_line(f"{name} via zero-cost proxy / direct", zero, None, missed))
        print(
            _line(f"{name} via gate / zero-cost proxy", _pairs(creates, GATE, ZERO), None, missed)
        )
        relay = _pairs(creates, RELAY, DIRECT)
        print(_line(f"{name} via byte relay / direct", relay, None, missed))
        print(_line(f"{name} via gate / byte relay", _pairs(creates, GATE, RELAY), None, missed))
        added = statistics.median(g - d for g, d in current) * 1000
        print(f"{name} via gate - direct (median of per-round differences): {added:+.2f} ms")
    for name, rows in (("ListContainers", lists), ("PodSandboxStatus", statuses)):
        if not rows:
            continue
        print(_line(f"{name} via gate / direct", _pairs(rows, GATE, DIRECT), 1.5, missed))
        print(
            _line(f"{name} via zero-cost proxy / direct", _pairs(rows, ZERO, DIRECT), None, missed)
        )
        print(_line(f"{name} via gate / zero-cost proxy", _pairs(rows, GATE, ZERO), 1.1, missed))
        print(_line(f"{name} via byte relay / direct", _pairs(rows, RELAY, DIRECT), None, missed))
        print(_line(f"{name} via gate / byte relay", _pairs(rows, GATE, RELAY), None, missed))


if __name__ == "__main__":
    raise SystemExit(main())
