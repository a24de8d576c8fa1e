"""A SIGHUP storm against the real ``pullgate serve`` process under Verify load.

The daemon is started through its console script; images are signed two-platform indexes in
Debian's ``docker-registry`` behind mutual TLS. Clients verify a warm image continuously while
the test sends 500 SIGHUPs in about 5 s and calls ``Reload`` now and then. Every reload trigger
goes through one coalescing, paced queue on a thread of its own, so the storm costs a handful of
reloads, no thread stays behind, and no RPC fails or denies.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pullgate.v1 import verifier_pb2
from tests.support.daemon_process import DaemonProcess
from tests.support.docker_registry import REGISTRY_BINARY, RegistryFactory, registry_available
from tests.support.grpc_harness import Client
from tests.support.push import Pusher
from tests.support.signed_node import SignedNode

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]

SIGNALS = 500
STORM_SECONDS = 5.0
HANDFUL = 10  # reloads the storm may cost (paced at one per second by default, plus the first)
CLIENTS = 4


@pytest.fixture
def registries(tmp_path: Path) -> Iterator[RegistryFactory]:
    with RegistryFactory(tmp_path / "registries") as factory:
        yield factory


class _Load:
    """Clients calling Verify in a loop; every error and every deny is kept."""

    def __init__(self, client: Client, reference: str) -> None:
        self._client = client
        self._reference = reference
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.calls = 0
        self.failures: list[str] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def _run(self) -> None:
        request = verifier_pb2.VerifyRequest(reference=self._reference)
        while not self._stop.is_set():
            try:
                answer = self._client.verifier.Verify(request, timeout=30)
                failure = "" if answer.allowed else f"denied: {answer.reason}"
            except grpc.RpcError as exc:
                failure = f"rpc: {exc.code()}"
            with self._lock:
                self.calls += 1
                if failure:
                    self.failures.append(failure)

    def count(self) -> int:
        with self._lock:
            return self.calls

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def _reload_rpcs(client: Client, answers: list[tuple[float, verifier_pb2.ReloadResult]]) -> None:
    """A ``Reload`` call every second of the storm, each with the time it was made."""
    for _ in range(int(STORM_SECONDS) - 1):
        time.sleep(1.0)
        asked_ms = time.time() * 1000
        answer = client.verifier.Reload(verifier_pb2.ReloadRequest(), timeout=30)
        answers.append((asked_ms, answer.result))


def _status(client: Client) -> verifier_pb2.StatusResponse:
    return client.verifier.Status(verifier_pb2.StatusRequest(), timeout=30)


def test_500_sighups_under_verify_load_cost_a_handful_of_reloads(
    tmp_path: Path, registries: RegistryFactory
) -> None:
    node = SignedNode.create(tmp_path / "node")
    registry = registries.start()
    node.trust_registry(registry)
    with Pusher.for_registry(registry) as pusher:
        reference = node.push_signed(registry, pusher, "storm")
    with DaemonProcess(node.config_path, node.socket_path, tmp_path / "daemon.log") as daemon:
        daemon.wait_socket()
        client = daemon.client()
        try:
            first = client.verifier.Verify(verifier_pb2.VerifyRequest(reference=reference))
            assert first.allowed, first.message
            with _Load(client, reference) as load:
                time.sleep(2.0)  # the executor grows to what this load needs
                calm = load.count() / 2.0
                baseline = daemon.threads()
                before = _status(client).generation
                calls_before, started = load.count(), time.monotonic()
                rpc_answers: list[tuple[float, verifier_pb2.ReloadResult]] = []
                rpcs = threading.Thread(target=_reload_rpcs, args=(client, rpc_answers))
                rpcs.start()
                for _ in range(SIGNALS):
                    daemon.send(signal.SIGHUP)
                    time.sleep(STORM_SECONDS / SIGNALS)
                storm = time.monotonic() - started
                rpcs.join(60)
                calls_storm = load.count() - calls_before
                time.sleep(3.0)  # the last paced reload runs
                after = _status(client).generation
                peak_threads = daemon.threads()
                time.sleep(1.0)
                settled_threads = daemon.threads()
            reloads = after - before
            print(
                f"\n{SIGNALS} SIGHUPs in {storm:.1f} s: {reloads} reloads; threads "
                f"{baseline} before, {peak_threads}/{settled_threads} after; "
                f"Verify/s {calm:.0f} before (incl. warm-up), {calls_storm / storm:.0f} during "
                f"the storm; {load.calls} calls"
            )
            assert load.calls > 0
            assert load.failures == []
            assert 1 <= reloads <= HANDFUL
            assert settled_threads <= baseline + 2
            assert len(rpc_answers) == int(STORM_SECONDS) - 1
            for asked_ms, result in rpc_answers:
                assert result.ok
                assert result.finished_unix_ms >= asked_ms - 5  # clock granularity (ms)
            assert daemon.proc.poll() is None
        finally:
            client.channel.close()
        assert daemon.stop() == 0, daemon.log()
