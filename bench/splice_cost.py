"""What the runtime gate's splice transport costs a pass-through call, in time and in CPU.

A private containerd 2.4 (``../shared/runtimes``); the splice transport serving the gate's own
routing table (``gate_routes`` over the gate's services and gated methods; decided calls are
not made here) with a pass-through histogram as the daemon observes one, in a process of its
own; the byte relay (``bench/byte_relay.py``); and, with ``--baseline CHECKOUT``, the splice of
another checkout of pullgate beside it, in the same rounds. A grpcio client calls
``ListContainers`` and ``ListPodSandbox`` through each path and direct, the order rotating every
round. Prints each path ÷ direct and ÷ the byte relay (medians of per-round ratios, 95 %
intervals) and each process's CPU per call (user + system, from ``/proc``): what the splice's
frame parsing and HPACK decoding add to the relay. ``bench/start.py`` gives the gate's ratios
against the whole daemon.

Usage: ``python bench/splice_cost.py [--rounds N] [--baseline CHECKOUT]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("/runtime.v1.RuntimeService/ListContainers", "/runtime.v1.RuntimeService/ListPodSandbox")
WARM_CALLS = 30


def serve(socket_path: str, upstream: str) -> None:
    """The splice with the gate's routing table until SIGTERM (``--serve``)."""
    from prometheus_client import CollectorRegistry, Histogram

    from pullgate.cri.methods import CREATE_CONTAINER, PULL_IMAGE, START_CONTAINER
    from pullgate.cri.runtime_proxy import SERVICES
    from pullgate.cri.splice.gate import gate_routes
    from pullgate.cri.splice.routes import Refusal
    from pullgate.cri.splice.server import SpliceServer

    def handler(request: bytes, context: object) -> bytes:
        raise AssertionError("this bench makes no gated call")

    def verdict(message: bytes) -> Refusal:
        return Refusal(7, "this bench makes no gated call")

    histogram = Histogram("bench_passthrough_seconds", "", registry=CollectorRegistry())
    route = gate_routes(
        services=SERVICES,
        gated={method: handler for method in (PULL_IMAGE, CREATE_CONTAINER, START_CONTAINER)},
        verdicts={CREATE_CONTAINER: verdict, START_CONTAINER: verdict},
        refusal_text=lambda raw, why: why,
    )
    server = SpliceServer(upstream, route, observe=histogram.observe)
    server.start(socket_path)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.stop(0)


def _cpu(pid: int) -> tuple[float, float]:
    """User and system seconds of process ``pid`` so far (proc(5): fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{proc.args!r} did not create {path}")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--baseline", type=Path, help="another pullgate checkout to run beside")
    parser.add_argument("--serve", nargs=2, metavar=("SOCKET", "UPSTREAM"), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path[:0] = [str(args.root / "daemon"), str(ROOT)]
    if args.serve:
        serve(*args.serve)
        return 0
    from tests.support.runtimes import runtimes_unavailable

    why = runtimes_unavailable("2.4")
    if why is not None:
        print(f"skipped: containerd 2.4: {why}")
        return 0
    with tempfile.TemporaryDirectory(prefix="pg-bench-splice-") as tmp:
        return _run(Path(tmp), args.rounds, args.baseline)


def _run(tmp: Path, rounds: int, baseline: Path | None) -> int:
    from tests.support.containerd import CriClient
    from tests.support.runtimes import PodRuntime, RuntimeOptions

    from bench.pull_series import median_interval

    (tmp / "certs.d").mkdir()
    roots = [("splice", ROOT)] + ([("baseline splice", baseline)] if baseline else [])
    with PodRuntime("2.4", RuntimeOptions(certs_d=tmp / "certs.d")) as runtime:
        upstream = str(runtime.socket)
        paths: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        try:
            for i, (name, root) in enumerate(roots):
                sock = tmp / f"splice{i}.sock"
                command = [__file__, "--serve", str(sock), upstream, "--root", str(root)]
                paths.append((name, sock, subprocess.Popen([sys.executable, *command])))
            relay = [str(ROOT / "bench" / "byte_relay.py"), str(tmp / "relay.sock"), upstream]
            paths.append(
                ("byte relay", tmp / "relay.sock", subprocess.Popen([sys.executable, *relay]))
            )
            for _, sock, proc in paths:
                _wait_for(sock, proc)
            clients = [CriClient(sock) for _, sock, _ in paths] + [CriClient(runtime.socket)]
            direct, relayed = len(paths), len(paths) - 1
            for client in clients:
                for _ in range(WARM_CALLS):
                    client.raw(METHODS[0])
            before = [_cpu(proc.pid) for _, _, proc in paths]
            rows: dict[str, list[list[float]]] = {}
            for method in METHODS:
                rows[method] = []
                for i in range(rounds):
                    row = [0.0] * len(clients)
                    for k in range(len(clients)):
                        at = (i + k) % len(clients)
                        started = time.perf_counter()
                        clients[at].raw(method)
                        row[at] = time.perf_counter() - started
                    rows[method].append(row)
            after = [_cpu(proc.pid) for _, _, proc in paths]
            for client in clients:
                client.close()
        finally:
            for _, _, proc in paths:
                proc.terminate()
                proc.wait(30)
    calls = rounds * len(METHODS)
    print(f"splice transport, pass-through on containerd 2.4 ({rounds} rounds; medians, 95 % CI)")
    for method, table in rows.items():
        name = method.rsplit("/", 1)[1]
        for at, (path, _, _) in enumerate(paths):
            micros = statistics.median(row[at] for row in table) * 1e6
            line = f"{name:<16} via {path:<15} {micros:5.0f} us"
            for under, label in ((direct, "direct"), (relayed, "relay")):
                if under == at:
                    continue
                median, low, high = median_interval([row[at] / row[under] for row in table])
                line += f"   / {label} {median:.3f} [{low:.3f}, {high:.3f}]"
            print(line)
        micros = statistics.median(row[direct] for row in table) * 1e6
        print(f"{name:<16} direct {'':<19}{micros:5.0f} us")
    for (path, _, _), (user0, sys0), (user1, sys1) in zip(paths, before, after, strict=True):
        user, system = (user1 - user0) / calls * 1e6, (sys1 - sys0) / calls * 1e6
        print(f"CPU per call, {path:<15} {user:5.0f} us user + {system:4.0f} us system")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
