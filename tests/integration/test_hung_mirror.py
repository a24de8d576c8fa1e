"""A certs.d mirror that accepts connections and never answers, in front of a healthy upstream
(Debian's ``docker-registry`` behind mutual TLS), with the daemon's default timeouts.

The real daemon (``pullgate serve``, its console script) decides; the first decision goes
through the real bindir shim with its default timeout, as containerd runs it, and must allow:
the mirror costs ``[registry] fallback_timeout`` once, then the endpoint memory asks the
upstream first. The second decision (another image) must take under 0.5 s and never touch the
mirror; Status and metrics show the mirror as down.
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullgate.errors import Reason
from pullgate.shim import DEFAULT_TIMEOUT, ExitCode
from pullgate.v1 import verifier_pb2
from tests.integration.test_shim import run_shim
from tests.support.daemon_process import DaemonProcess
from tests.support.docker_registry import (
    REGISTRY_BINARY,
    RegistryFactory,
    free_port,
    registry_available,
)
from tests.support.pki import KeySpec, Pki, write_store
from tests.support.push import MT_JWS, Pusher
from tests.support.signing import sign_jws
from tests.support.statements import policy_document

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]

REPO = "team/app"


class HungListener:
    """Accepts every connection on 127.0.0.1 and never sends a byte (until closed)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.host = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._held.append(conn)

    def __enter__(self) -> HungListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()
        with self._lock:
            for conn in self._held:
                conn.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths must stay under ~107 bytes."""
    with tempfile.TemporaryDirectory(prefix="pg-hung-", dir="/tmp") as name:
        yield Path(name)


def _q(value: object) -> str:
    return json.dumps(str(value))


def test_hung_mirror_with_healthy_upstream_allows_within_the_shim_timeout(
    tmp_path: Path, short_dir: Path
) -> None:
    chain = Pki(name="hung mirror").chain(key=KeySpec.ec(256))
    trust = tmp_path / "trust"
    write_store(trust, "ca", "prod", [chain.root.cert])
    (trust / "trustpolicy.json").write_text(json.dumps(policy_document(stores=("ca:prod",))))
    metrics_port = free_port()
    with RegistryFactory(tmp_path / "registries") as registries, HungListener() as mirror:
        registry = registries.start()
        with Pusher.for_registry(registry) as pusher:
            images = []
            for tag in ("one", "two"):
                desc = pusher.push_image(REPO, tag, "linux/amd64", tag.encode())
                pusher.push_signature(
                    REPO, desc, sign_jws(chain, desc), MT_JWS, certificates=chain.x509
                )
                images.append(desc)
        hosts = tmp_path / "certs.d" / registry.host
        hosts.mkdir(parents=True)
        pair = f"[[{_q(registry.client_pem)}, {_q(registry.client_key)}]]"
        tls = f"ca = {_q(registry.ca_pem)}\nclient = {pair}\n"
        (hosts / "hosts.toml").write_text(
            f"server = {_q(registry.url)}\n{tls}"
            f'[host."http://{mirror.host}"]\ncapabilities = ["pull", "resolve"]\n'
        )
        socket_path = short_dir / "api.sock"
        config = tmp_path / "config.toml"
        config.write_text(
            f"trust_dir = {_q(trust)}\nhosts_dir = {_q(tmp_path / 'certs.d')}\n"
            'platform = "linux/amd64"\n'
            f"[api]\nsocket = {_q(socket_path)}\n"
            f'[metrics]\naddress = "127.0.0.1:{metrics_port}"\n'
            f"[verification]\ncrl_cache_dir = {_q(tmp_path / 'crl')}\n"
        )
        with DaemonProcess(config, socket_path, tmp_path / "daemon.log") as daemon:
            daemon.wait_socket()
            started = time.perf_counter()
            first = run_shim(socket_path, f"{registry.host}/{REPO}:one", images[0].digest)
            took = time.perf_counter() - started
            assert (first.code, first.reason) == (ExitCode.ALLOW, Reason.VERIFIED), (
                first.stdout,
                daemon.log()[-3000:],
            )
            assert took < DEFAULT_TIMEOUT
            assert mirror.accepted >= 1  # the mirror was asked first, and timed out
            seen = mirror.accepted

            client = daemon.client()
            try:
                started = time.perf_counter()
                second = client.verifier.Verify(
                    verifier_pb2.VerifyRequest(reference=f"{registry.host}/{REPO}:two"),
                    timeout=30,
                )
                took = time.perf_counter() - started
                status = client.verifier.Status(verifier_pb2.StatusRequest(), timeout=10)
            finally:
                client.channel.close()
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as page:
                metrics = page.read().decode()
    assert (second.allowed, second.reason) == (True, "VERIFIED")
    assert took < 0.5, took
    assert mirror.accepted == seen  # the endpoint memory kept the second decision off it
    down = [e for e in status.endpoints if e.endpoint == f"http://{mirror.host}/v2"]
    assert len(down) == 1
    assert (down[0].healthy, down[0].last_error) == (False, "TIMEOUT")
    assert down[0].down_for_seconds > 0
    label = f'endpoint="http://{mirror.host}/v2"'
    assert f"pullgate_registry_endpoint_healthy{{{label}}} 0.0" in metrics
