"""The daemon's memory against a registry that streams endless bodies.

The real daemon (``pullgate serve`` started through its console script,
:class:`tests.support.daemon_process.DaemonProcess`) decides ``--concurrency`` distinct
references at once, ``--waves`` times, against a hostile registry in this process: every
manifest ``HEAD`` answers 200 without a digest (so the client falls back to ``GET``), and every
``GET`` answers 200 with a chunked body that never ends. The daemon's resident memory is sampled
from ``/proc/<pid>/status`` every few milliseconds (and its ``VmHWM`` high-water mark read at
the end): at start (after one warm-up decision), the peak during the bursts, and a few seconds
after the last one.

Targets: peak < 150 MB, and after within 20 % of start. Every decision must deny (never an
allow, never a failed RPC). Exit status 1 when a target is missed.

Run: ``.venv/bin/python bench/hostile_memory.py [--concurrency 64] [--waves 3]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.daemon_process import DaemonProcess  # noqa: E402
from tests.support.pki import KeySpec, Pki, write_store  # noqa: E402
from tests.support.raw_http import RawConnection, RawServer  # noqa: E402

from bench._common import POLICY  # noqa: E402
from pullgate.v1 import verifier_pb2  # noqa: E402

MB = 1_000_000
PEAK_TARGET = 150 * MB
AFTER_TARGET = 0.20  # relative to start
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CHUNK = b"4000\r\n" + b"m" * 0x4000 + b"\r\n"


def _hostile(conn: RawConnection) -> None:
    """HEAD: 200 without digest or length; GET: 200 and a chunked body without end."""
    while True:
        request = conn.read_request()
        if request is None:
            return
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {_MANIFEST}\r\n"
        if request.method == "HEAD":
            if not conn.send(f"{head}Content-Length: 0\r\nX-No-Digest: 1\r\n\r\n".encode()):
                return
            continue
        conn.stream(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode(), _CHUNK)
        return


def _write_node(tmp: Path, registry: str) -> tuple[Path, Path]:
    trust = tmp / "trust"
    chain = Pki(name="hostile-memory").chain(key=KeySpec.ec(256))
    write_store(trust, "ca", "bench", [chain.root.cert])
    (trust / "trustpolicy.json").write_text(json.dumps(POLICY))
    hosts = tmp / "certs.d" / registry
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(f'server = "http://{registry}"\n')
    socket = tmp / "pullgate.sock"
    config = tmp / "config.toml"
    config.write_text(
        f"trust_dir = {json.dumps(str(trust))}\n"
        f"hosts_dir = {json.dumps(str(tmp / 'certs.d'))}\n"
        f"[api]\nsocket = {json.dumps(str(socket))}\n"
        '[metrics]\naddress = ""\n'
        f"[verification]\ncrl_cache_dir = {json.dumps(str(tmp / 'crl'))}\n"
    )
    return config, socket


class Sampler:
    """Samples a process's VmRSS on a thread until stopped; keeps the maximum."""

    def __init__(self, daemon: DaemonProcess, interval: float = 0.005) -> None:
        self._daemon = daemon
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._daemon.rss_bytes())
            self._stop.wait(self._interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _high_water(daemon: DaemonProcess) -> int:
    for line in Path(f"/proc/{daemon.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="pullgate-hostile-mem-") as raw_tmp:
        tmp = Path(raw_tmp)
        with RawServer(_hostile) as server:
            config, socket = _write_node(tmp, server.host)
            with DaemonProcess(config, socket, tmp / "daemon.log") as daemon:
                daemon.wait_socket()
                client = daemon.client()

                def verify(tag: str) -> verifier_pb2.VerifyResponse:
                    request = verifier_pb2.VerifyRequest(reference=f"{server.host}/app:{tag}")
                    answer: verifier_pb2.VerifyResponse = client.verifier.Verify(
                        request, timeout=120
                    )
                    return answer

                verify("warm-up")
                time.sleep(1.0)
                start = daemon.rss_bytes()
                reasons: Counter[str] = Counter()
                errors = 0
                longest = 0.0
                with (
                    Sampler(daemon) as sampler,
                    ThreadPoolExecutor(args.concurrency) as pool,
                ):
                    for wave in range(args.waves):
                        tags = [f"w{wave}-{i}" for i in range(args.concurrency)]
                        started = time.perf_counter()
                        futures = [pool.submit(verify, tag) for tag in tags]
                        for future in futures:
                            try:
                                answer = future.result()
                            except grpc.RpcError:
                                errors += 1
                                continue
                            reasons["allow" if answer.allowed else answer.reason] += 1
                        longest = max(longest, time.perf_counter() - started)
                time.sleep(args.settle)
                after = daemon.rss_bytes()
                high_water = max(sampler.peak, _high_water(daemon))
                client.channel.close()
    total = args.concurrency * args.waves
    print(f"decisions: {total} ({args.waves} waves of {args.concurrency} concurrent)")
    print(f"answers: {dict(reasons)}; failed RPCs: {errors}; longest wave: {longest:.1f} s")
    print(f"RSS start: {start / MB:.1f} MB")
    print(f"RSS peak:  {high_water / MB:.1f} MB (target < {PEAK_TARGET / MB:.0f} MB)")
    ratio = after / start
    print(
        f"RSS after: {after / MB:.1f} MB = {ratio:.2f} x start (target <= {1 + AFTER_TARGET:.2f})"
    )
    ok = (
        high_water < PEAK_TARGET
        and ratio <= 1 + AFTER_TARGET
        and errors == 0
        and reasons["allow"] == 0
        and sum(reasons.values()) == total
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--waves", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before 'after'")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
