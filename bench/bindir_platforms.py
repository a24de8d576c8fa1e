"""What covering every platform costs a containerd bindir-verifier decision, for 2 and 8 platforms.

Two real daemons (:func:`tests.support.grpc_harness.run_daemon`, the same ``serve`` as ``pullgate
serve``) share one real ``docker-registry`` (mutual TLS) and differ in one key:
``[image_verifier] platforms = "all"`` and ``"node"`` (node ``linux/amd64``, ``require = "both"``).
Each round pushes two fresh, fully signed indexes of the same shape (new digests everywhere, so no
decision cache, index memo or subject memo can answer) and asks each daemon for one of them
exactly as ``pullgate-containerd-verifier`` asks (``Verify`` with the name, the index digest and
``caller = "containerd-verifier"``), after clearing the certificate memos of its current
snapshot; the order of the two
alternates between rounds. Every answer must be an allow.

Printed per shape: the median decision time of each daemon and the cost line, the median of the
per-round ratios ``all ÷ node``.

Run: ``.venv/bin/python bench/bindir_platforms.py [--rounds N]``; exit 2 without a registry.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.containerd import write_hosts_toml  # noqa: E402
from tests.support.docker_registry import DockerRegistry, registry_available  # noqa: E402
from tests.support.grpc_harness import Client, run_daemon  # noqa: E402
from tests.support.pki import Chain, KeySpec, Pki, write_store  # noqa: E402
from tests.support.push import MT_JWS, Pusher  # noqa: E402
from tests.support.signing import sign_jws  # noqa: E402

from bench._common import POLICY  # noqa: E402
from pullgate.common.descriptor import Descriptor  # noqa: E402
from pullgate.config import DaemonConfig  # noqa: E402
from pullgate.service.compose import build_runtime  # noqa: E402
from pullgate.service.metrics import Metrics  # noqa: E402
from pullgate.service.runtime import DaemonRuntime  # noqa: E402
from pullgate.v1 import verifier_pb2  # noqa: E402

REPO = "bench/multi"
SHAPES: dict[int, tuple[str, ...]] = {
    2: ("linux/amd64", "linux/arm64"),
    8: (
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
    ),
}
MODES = ("all", "node")


def _config(tmp: Path, certs_d: Path, mode: str) -> Path:
    path = tmp / f"config-{mode}.toml"
    path.write_text(
        "\n".join(
            [
                f"trust_dir = {json.dumps(str(tmp / 'trust'))}",
                f"hosts_dir = {json.dumps(str(certs_d))}",
                'platform = "linux/amd64"',
                "[api]",
                f"socket = {json.dumps(str(tmp / f'{mode}.sock'))}",
                "[metrics]",
                'address = ""',
                "[verification]",
                f"crl_cache_dir = {json.dumps(str(tmp / 'crl'))}",
                "[image_verifier]",
                f"platforms = {json.dumps(mode)}",
                '[statements."bench"]',
                'require = "both"',
                "",
            ]
        )
    )
    return path


def _push(pusher: Pusher, chain: Chain, platforms: Sequence[str]) -> tuple[str, Descriptor]:
    """A fresh index over fresh manifests, every one of them signed; (tag, index)."""
    tag = f"t{uuid.uuid4().hex[:12]}"
    manifests = {
        plat: pusher.push_image(REPO, None, plat, f"{tag} {plat}".encode()) for plat in platforms
    }
    index = pusher.push_index(REPO, tag, manifests)
    for subject in (index, *manifests.values()):
        pusher.push_signature(
            REPO, subject, sign_jws(chain, subject), MT_JWS, certificates=chain.x509
        )
    return tag, index


Daemon = tuple[Client, DaemonRuntime]


def _decide(daemon: Daemon, reference: str, digest: str) -> float:
    client, runtime = daemon
    request = verifier_pb2.VerifyRequest(
        reference=reference, digest=digest, caller="containerd-verifier"
    )
    snapshot = runtime.state.current()
    if snapshot is not None:
        snapshot.cert_memo.clear()
    started = time.perf_counter()
    answer = client.verifier.Verify(request, timeout=120)
    elapsed = time.perf_counter() - started
    if not answer.allowed:
        raise SystemExit(f"{reference}: denied {answer.reason}: {answer.message}")
    return elapsed


@contextmanager
def _daemons(tmp: Path, certs_d: Path) -> Iterator[dict[str, Daemon]]:
    runtimes: list[DaemonRuntime] = []

    def factory(path: Path, config: DaemonConfig, metrics: Metrics) -> DaemonRuntime:
        runtime = build_runtime(path, config, metrics)
        runtimes.append(runtime)
        return runtime

    with ExitStack() as stack:
        daemons: dict[str, Daemon] = {}
        for mode in MODES:
            client = stack.enter_context(
                run_daemon(_config(tmp, certs_d, mode), runtime_factory=factory)
            )
            daemons[mode] = (client, runtimes[-1])
        yield daemons


def run(rounds: int) -> list[str]:
    """The cost lines, one per shape."""
    lines = []
    with tempfile.TemporaryDirectory(prefix="pg-bench-bindir-", dir="/tmp") as name:
        tmp = Path(name)
        chain = Pki(name="bindir bench").chain(key=KeySpec.ec(256))
        write_store(tmp / "trust", "ca", "bench", [chain.root.cert])
        (tmp / "trust" / "trustpolicy.json").write_text(json.dumps(POLICY))
        with DockerRegistry(tmp / "registry") as registry, Pusher.for_registry(registry) as pusher:
            certs_d = tmp / "certs.d"
            write_hosts_toml(certs_d, registry)
            with _daemons(tmp, certs_d) as clients:
                for count, platforms in SHAPES.items():
                    _decide(clients["all"], *_warm_up(pusher, chain, platforms, registry))
                    times: dict[str, list[float]] = {m: [] for m in MODES}
                    for n in range(rounds):
                        order = MODES if n % 2 == 0 else MODES[::-1]
                        for mode in order:
                            tag, index = _push(pusher, chain, platforms)
                            reference = f"{registry.host}/{REPO}:{tag}"
                            times[mode].append(_decide(clients[mode], reference, index.digest))
                    ratios = [a / b for a, b in zip(times["all"], times["node"], strict=True)]
                    lines.append(
                        f"{count}-platform index: verifier decision all platforms "
                        f"{statistics.median(times['all']) * 1000:.1f} ms, node platform only "
                        f"{statistics.median(times['node']) * 1000:.1f} ms, cost "
                        f"{statistics.median(ratios):.2f}x (median of {rounds} paired rounds, "
                        f"range {min(ratios):.2f}-{max(ratios):.2f})"
                    )
    return lines


def _warm_up(
    pusher: Pusher, chain: Chain, platforms: Sequence[str], registry: DockerRegistry
) -> tuple[str, str]:
    """One untimed decision per shape (connections, thread pools)."""
    tag, index = _push(pusher, chain, platforms)
    return f"{registry.host}/{REPO}:{tag}", index.digest


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 after printing the cost lines, 2 without a registry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=9, help="paired rounds per shape")
    args = parser.parse_args(argv)
    if not registry_available():
        print("docker-registry is not installed (apt-get install docker-registry)")
        return 2
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    for line in run(args.rounds):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
