"""Soak: the real daemon under a bounded run of mixed decisions with faults, sampled for growth.

``pullgate serve`` runs as its own process (the console script,
:class:`tests.support.daemon_process.DaemonProcess`) against Debian's ``docker-registry``
(mutual TLS, referrers tag schema) holding signed two-platform indexes. For ``--minutes``
(default 10) clients call ``Verify`` over the unix socket:

* **warm**: a few signed images verified again and again (decision-cache hits);
* **cold**: a pusher keeps pushing freshly signed images, each verified once (a new digest, a full
  verification), so the decision cache turns over (``[cache] max_entries`` is small, so it is
  full after the warm-up);
* **faults**: the registry's certs.d entry lists two failing mirrors before it (one answers every
  request with 500, one resets every connection), so every registry request falls back to the
  registry; and references to four more hosts whose only endpoint hangs (accepts, never
  answers), answers 503 (retried with back-off), 500 or resets, verified twice a second (these
  deny, inconclusive).

Every ``--sample`` seconds the daemon's ``VmRSS``, open file descriptors and threads are read
from ``/proc/<pid>``. After ``--warmup`` minutes (default: a fifth of the run, at most 2), the
growth per minute is the least-squares slope of the samples; the script prints a per-minute
table and the slopes, and exits 1 when RSS grows by more than 1 MB/min, when the fitted trend of
fds or threads over the measured span exceeds ``--fd-tolerance`` / ``--thread-tolerance``, or
when any RPC failed or any answer was wrong (a signed image denied, a faulty host allowed).
Exit 2 without a registry.

Run: ``.venv/bin/python bench/soak.py [--minutes 10]`` (``--minutes 1`` for a quick run).
"""

from __future__ import annotations

import argparse
import itertools
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.daemon_process import DaemonProcess  # noqa: E402
from tests.support.docker_registry import (  # noqa: E402
    DockerRegistry,
    RegistryFactory,
    registry_available,
)
from tests.support.push import Pusher  # noqa: E402
from tests.support.raw_http import RawConnection, RawServer  # noqa: E402
from tests.support.signed_node import REPO, SignedNode, quoted  # noqa: E402

from pullgate.v1 import verifier_pb2, verifier_pb2_grpc  # noqa: E402

MB = 1024 * 1024
WARM_IMAGES = 3
CLIENTS = 3
RSS_LIMIT_MB_PER_MIN = 1.0


# ------------------------------------------------------------------------------ fault servers


def _hang(conn: RawConnection) -> None:
    """Read requests, never answer; ends when the client gives up and closes."""
    while conn.read_request() is not None:
        pass


def _answer_every_request(status: bytes) -> Callable[[RawConnection], None]:
    """A script that answers every request with ``status`` and no body."""

    def script(conn: RawConnection) -> None:
        while conn.read_request() is not None:
            if not conn.send(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n"):
                return

    return script


def _reset(conn: RawConnection) -> None:
    """Read one request, then reset the connection (SO_LINGER 0: RST, not FIN)."""
    conn.read_request()
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# ------------------------------------------------------------------------------ the load


@dataclass
class Tally:
    """What the clients saw (thread-safe through ``lock``)."""

    lock: threading.Lock
    kinds: Counter[str]
    failures: list[str]

    def record(self, kind: str, failure: str = "") -> None:
        with self.lock:
            self.kinds[kind] += 1
            if failure and len(self.failures) < 50:
                self.failures.append(f"{kind}: {failure}")
            elif failure:
                self.kinds["failures-not-kept"] += 1

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.kinds)


class Fresh:
    """Signed images pushed during the run and not verified yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: list[str] = []

    def add(self, reference: str) -> None:
        with self._lock:
            self._refs.append(reference)

    def take(self) -> str | None:
        with self._lock:
            return self._refs.pop() if self._refs else None


def _verify(stub: verifier_pb2_grpc.VerifierStub, reference: str) -> verifier_pb2.VerifyResponse:
    return stub.Verify(verifier_pb2.VerifyRequest(reference=reference), timeout=60)


def _client_loop(
    daemon: DaemonProcess, warm: Sequence[str], fresh: Fresh, tally: Tally, stop: threading.Event
) -> None:
    client = daemon.client()
    try:
        for n in itertools.count():
            if stop.is_set():
                return
            cold = fresh.take() if n % 4 == 0 else None
            kind, reference = ("cold", cold) if cold else ("warm", warm[n % len(warm)])
            try:
                answer = _verify(client.verifier, reference)
            except grpc.RpcError as exc:
                tally.record(kind, f"RPC {exc.code()}")
                continue
            tally.record(kind, "" if answer.allowed else f"denied {answer.reason}")
    finally:
        client.channel.close()


def _fault_loop(
    daemon: DaemonProcess, hosts: Sequence[str], tally: Tally, stop: threading.Event
) -> None:
    client = daemon.client()
    try:
        for n in itertools.count():
            if stop.wait(0.5):
                return
            host = hosts[n % len(hosts)]
            try:
                answer = _verify(client.verifier, f"{host}/{REPO}:fault-{n}")
            except grpc.RpcError as exc:
                tally.record("fault", f"RPC {exc.code()}")
                continue
            tally.record("fault", f"allowed {host}" if answer.allowed else "")
    finally:
        client.channel.close()


def _pusher_loop(
    node: SignedNode,
    registry: DockerRegistry,
    pusher: Pusher,
    fresh: Fresh,
    stop: threading.Event,
) -> None:
    for n in itertools.count():
        if stop.wait(0.3):
            return
        fresh.add(node.push_signed(registry, pusher, f"cold-{n}"))


# ------------------------------------------------------------------------------ sampling


@dataclass(frozen=True)
class Sample:
    at: float  # minutes since the start of the load
    rss_mb: float
    fds: int
    threads: int
    decisions: int


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope (per minute) of (minute, value) points."""
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mean_x) ** 2 for x in xs)
    if den == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / den


def _sample(daemon: DaemonProcess, started: float, tally: Tally) -> Sample:
    return Sample(
        at=(time.monotonic() - started) / 60.0,
        rss_mb=daemon.rss_bytes() / MB,
        fds=daemon.fds(),
        threads=daemon.threads(),
        decisions=sum(v for k, v in tally.snapshot().items() if k != "failures-not-kept"),
    )


def _table(samples: Sequence[Sample]) -> None:
    print(f"{'minute':>6} {'RSS MB':>8} {'fds':>5} {'threads':>7} {'decisions':>9}")
    minute = -1
    for sample in samples:
        if int(sample.at) != minute or sample is samples[-1]:
            minute = int(sample.at)
            print(
                f"{sample.at:6.2f} {sample.rss_mb:8.1f} {sample.fds:5d} {sample.threads:7d} "
                f"{sample.decisions:9d}"
            )


# ------------------------------------------------------------------------------ main


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--warmup", type=float, default=None, help="minutes not measured")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--fd-tolerance", type=float, default=4.0)
    parser.add_argument("--thread-tolerance", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.sample <= 0:
        parser.error("--minutes and --sample must be positive")
    if args.warmup is None:
        args.warmup = min(2.0, args.minutes / 5)
    if not 0 <= args.warmup < args.minutes:
        parser.error("--warmup must be shorter than the run")
    return args


def _config_tables() -> list[str]:
    return [
        "[cache]",
        "max_entries = 64",  # full after the warm-up: the cache turns over, it does not grow
        "max_ttl = 60",
        "[registry]",
        "connect_timeout = 2",
        "read_timeout = 3",
    ]


def _fault_hosts(node: SignedNode, servers: dict[str, RawServer]) -> list[str]:
    """certs.d entries for the hosts whose only endpoint is a fault server."""
    hosts = []
    for name, server in servers.items():
        host = f"{name}.soak.invalid"
        directory = node.hosts_dir / host
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.toml").write_text(f"server = {quoted(server.url)}\n")
        hosts.append(host)
    return hosts


def run(args: argparse.Namespace, work: Path) -> int:
    stop = threading.Event()
    tally = Tally(threading.Lock(), Counter(), [])
    fresh = Fresh()
    scripts: dict[str, Callable[[RawConnection], None]] = {
        "hung": _hang,
        "unavailable": _answer_every_request(b"503 Service Unavailable"),  # retried, backoff
        "broken": _answer_every_request(b"500 Internal Server Error"),
        "reset": _reset,
    }
    with RegistryFactory(work / "registries") as registries:
        registry = registries.start()
        node = SignedNode.create(work / "node")
        servers = {name: RawServer(script) for name, script in scripts.items()}
        for server in servers.values():
            server.__enter__()
        try:
            node.trust_registry(registry, mirrors=(servers["broken"].url, servers["reset"].url))
            fault_hosts = _fault_hosts(node, servers)
            node.write_config(tables=_config_tables())
            with Pusher.for_registry(registry) as pusher:
                warm = [node.push_signed(registry, pusher, f"warm-{i}") for i in range(WARM_IMAGES)]
                with DaemonProcess(
                    node.config_path, node.socket_path, work / "daemon.log"
                ) as daemon:
                    daemon.wait_socket()
                    load = _Load(node, registry, pusher, warm, fault_hosts, fresh, tally, stop)
                    return _soak(args, daemon, load)
        finally:
            stop.set()
            for server in servers.values():
                server.__exit__(None, None, None)


@dataclass
class _Load:
    node: SignedNode
    registry: DockerRegistry
    pusher: Pusher
    warm: Sequence[str]
    fault_hosts: Sequence[str]
    fresh: Fresh
    tally: Tally
    stop: threading.Event


def _soak(args: argparse.Namespace, daemon: DaemonProcess, load: _Load) -> int:
    stop, fresh, tally = load.stop, load.fresh, load.tally
    threads = [
        threading.Thread(
            target=_pusher_loop, args=(load.node, load.registry, load.pusher, fresh, stop)
        ),
        threading.Thread(target=_fault_loop, args=(daemon, load.fault_hosts, tally, stop)),
        *(
            threading.Thread(target=_client_loop, args=(daemon, load.warm, fresh, tally, stop))
            for _ in range(CLIENTS)
        ),
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    samples: list[Sample] = []
    end = started + args.minutes * 60
    try:
        while time.monotonic() < end:
            assert daemon.proc.poll() is None, f"the daemon exited:\n{daemon.log()[-4000:]}"
            samples.append(_sample(daemon, started, tally))
            time.sleep(min(args.sample, max(0.0, end - time.monotonic())))
        samples.append(_sample(daemon, started, tally))
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    return _report(args, samples, tally)


def _report(args: argparse.Namespace, samples: Sequence[Sample], tally: Tally) -> int:
    _table(samples)
    measured = [s for s in samples if s.at >= args.warmup]
    span = measured[-1].at - measured[0].at if len(measured) > 1 else 0.0
    rss = _slope([(s.at, s.rss_mb) for s in measured])
    fds = _slope([(s.at, float(s.fds)) for s in measured])
    threads = _slope([(s.at, float(s.threads)) for s in measured])
    kinds = tally.snapshot()
    print(
        f"\nafter {args.warmup:.1f} min warm-up, over {span:.1f} min ({len(measured)} samples): "
        f"RSS {rss:+.3f} MB/min ({measured[0].rss_mb:.1f} -> {measured[-1].rss_mb:.1f} MB), "
        f"fds {fds:+.2f}/min ({measured[0].fds} -> {measured[-1].fds}), "
        f"threads {threads:+.2f}/min ({measured[0].threads} -> {measured[-1].threads})"
    )
    print("decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    problems = []
    if rss > RSS_LIMIT_MB_PER_MIN:
        problems.append(f"RSS grows {rss:.3f} MB/min > {RSS_LIMIT_MB_PER_MIN}")
    if fds * span > args.fd_tolerance:
        problems.append(f"fds trend {fds * span:+.1f} over the run > {args.fd_tolerance}")
    if threads * span > args.thread_tolerance:
        problems.append(f"threads trend {threads * span:+.1f} > {args.thread_tolerance}")
    if tally.failures:
        problems.append(f"{len(tally.failures)}+ wrong answers or failed RPCs")
        problems.extend(tally.failures[:10])
    if kinds["cold"] == 0 or kinds["warm"] == 0 or kinds["fault"] == 0:
        problems.append("some kind of decision never ran")
    for problem in problems:
        print(f"FAIL: {problem}")
    print("PASS" if not problems else "FAIL")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if not registry_available():
        print("docker-registry is not installed (apt-get install docker-registry)")
        return 2
    with tempfile.TemporaryDirectory(prefix="pullgate-soak-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
