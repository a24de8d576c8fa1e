"""A broken ``hosts.toml`` is visible (``Status.problems``, a metric) while decisions follow
containerd's fallback, through the real ``pullgate serve`` process.

containerd logs a ``hosts.toml`` it cannot parse and ignores it: the host directory is then read
docker-style (``*.crt`` CAs, ``*.cert``/``*.key`` client pairs) for the registry itself. The
registry here is Debian's ``docker-registry`` behind mutual TLS, so a pull only succeeds with
the directory's docker-style CA and client certificate: an allow shows that the fallback was
taken. The problem must show while the file is broken, go away when it is fixed and come back
when it breaks again (the watcher reloads certs.d).
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pullgate.v1 import verifier_pb2
from tests.support.daemon_process import DaemonProcess
from tests.support.docker_registry import REGISTRY_BINARY, RegistryFactory, registry_available
from tests.support.grpc_harness import Client
from tests.support.push import Pusher
from tests.support.signed_node import SignedNode, quoted

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]

_WAIT = 20.0
BROKEN = b'server = "https://mirror.invalid\n[host."https://mirror.invalid"]\n'


@pytest.fixture
def registries(tmp_path: Path) -> Iterator[RegistryFactory]:
    with RegistryFactory(tmp_path / "registries") as factory:
        yield factory


def _gauge(url: str, name: str) -> float | None:
    with urllib.request.urlopen(url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rpartition(" ")[2])
    return None


def _wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + _WAIT
    while not predicate():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def _problems(client: Client) -> list[str]:
    return list(client.verifier.Status(verifier_pb2.StatusRequest(), timeout=30).problems)


def test_a_broken_hosts_toml_is_reported_and_decisions_use_the_docker_style_fallback(
    tmp_path: Path, registries: RegistryFactory
) -> None:
    node = SignedNode.create(tmp_path / "node")
    registry = registries.start()
    with Pusher.for_registry(registry) as pusher:
        reference = node.push_signed(registry, pusher, "fallback")
    host_dir = node.hosts_dir / registry.host
    host_dir.mkdir()
    shutil.copy(registry.ca_pem, host_dir / "ca.crt")  # docker-style: what containerd falls
    shutil.copy(registry.client_pem, host_dir / "client.cert")  # back to when hosts.toml
    shutil.copy(registry.client_key, host_dir / "client.key")  # cannot be used
    hosts_toml = host_dir / "hosts.toml"
    hosts_toml.write_bytes(BROKEN)
    fixed = "\n".join(
        [
            f"server = {quoted(registry.url)}",
            f"ca = {quoted(registry.ca_pem)}",
            f"client = [[{quoted(registry.client_pem)}, {quoted(registry.client_key)}]]",
            "",
        ]
    )
    gauge = "pullgate_certs_d_problems"

    def broken_shown(client: Client) -> bool:
        listed = [p for p in _problems(client) if str(hosts_toml) in p]
        return _gauge(node.metrics_url, gauge) == 1 and len(listed) == 1

    def fixed_shown(client: Client) -> bool:
        listed = [p for p in _problems(client) if str(hosts_toml) in p]
        return _gauge(node.metrics_url, gauge) == 0 and not listed

    with DaemonProcess(node.config_path, node.socket_path, tmp_path / "daemon.log") as daemon:
        daemon.wait_socket()
        client = daemon.client()
        try:
            assert broken_shown(client)
            answer = client.verifier.Verify(verifier_pb2.VerifyRequest(reference=reference))
            assert answer.allowed, answer.message  # only the docker-style certs reach it

            hosts_toml.write_text(fixed)  # the watcher reloads certs.d
            _wait_for(lambda: fixed_shown(client))
            answer = client.verifier.Verify(verifier_pb2.VerifyRequest(reference=reference))
            assert answer.allowed, answer.message

            hosts_toml.write_bytes(BROKEN)
            _wait_for(lambda: broken_shown(client))
            status = client.verifier.Status(verifier_pb2.StatusRequest(), timeout=30)
            assert not status.degraded  # a broken hosts.toml is not fatal, as in containerd
        finally:
            client.channel.close()
        assert daemon.stop() == 0, daemon.log()
