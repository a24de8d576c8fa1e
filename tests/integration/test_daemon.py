"""``pullgate serve`` end to end: the real daemon on a unix socket.

The daemon runs in-process through :func:`tests.support.grpc_harness.run_daemon` (the same
:func:`pullgate.service.app.serve` as ``pullgate serve``, minus signal handlers), except for the
signal test, which starts ``python -m pullgate serve`` as a real process and sends it real
signals. Registries are Debian's ``docker-registry`` behind mutual TLS; images are pushed with
:class:`tests.support.push.Pusher` and signed with the test PKI.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from pullgate.common.descriptor import Descriptor
from pullgate.decision.audit_log import AUDIT_LOGGER
from pullgate.errors import ConfigError
from pullgate.service.app import DaemonOptions, serve
from pullgate.v1 import verifier_pb2
from tests.support.docker_registry import (
    REGISTRY_BINARY,
    DockerRegistry,
    RegistryFactory,
    free_port,
    registry_available,
)
from tests.support.grpc_harness import Client, run_daemon
from tests.support.pki import Chain, KeySpec, Pki, write_store
from tests.support.push import MT_JWS, Pusher
from tests.support.signing import sign_jws

REPO = "team/app"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
REPO_ROOT = Path(__file__).resolve().parents[2]
_WAIT = 20.0  # seconds: upper bound for things that happen asynchronously (never asserted)

needs_registry = pytest.mark.skipif(
    not registry_available(),
    reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
)
pytestmark = [pytest.mark.integration]


def _q(value: str | Path) -> str:
    return json.dumps(str(value))


def _policy() -> dict[str, Any]:
    return {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "prod",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:prod"],
                "trustedIdentities": ["*"],
            }
        ],
    }


@dataclass
class Node:
    """The files one daemon runs from."""

    tmp: Path
    chain: Chain
    trust_dir: Path
    hosts_dir: Path
    config_path: Path
    socket_path: Path
    metrics_port: int

    def write_policy(self, text: str | None = None) -> None:
        path = self.trust_dir / "trustpolicy.json"
        path.write_text(text if text is not None else json.dumps(_policy()))

    def write_config(self) -> None:
        self.config_path.write_text(
            "\n".join(
                [
                    f"trust_dir = {_q(self.trust_dir)}",
                    f"hosts_dir = {_q(self.hosts_dir)}",
                    'platform = "linux/amd64"',
                    "[api]",
                    f"socket = {_q(self.socket_path)}",
                    "[metrics]",
                    f'address = "127.0.0.1:{self.metrics_port}"',
                    "[verification]",
                    f"crl_cache_dir = {_q(self.tmp / 'crl')}",
                    "",
                ]
            )
        )

    def trust_registry(self, registry: DockerRegistry) -> None:
        """certs.d/<host>/hosts.toml with the registry's CA and client certificate."""
        directory = self.hosts_dir / registry.host
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.toml").write_text(
            "\n".join(
                [
                    f"server = {_q(registry.url)}",
                    f"ca = {_q(registry.ca_pem)}",
                    f"client = [[{_q(registry.client_pem)}, {_q(registry.client_key)}]]",
                    "",
                ]
            )
        )


@pytest.fixture
def node(tmp_path: Path) -> Node:
    chain = Pki(name="daemon e2e").chain(key=KeySpec.ec(256))
    trust_dir = tmp_path / "trust"
    write_store(trust_dir, "ca", "prod", [chain.root.cert])
    hosts_dir = tmp_path / "certs.d"
    hosts_dir.mkdir()
    n = Node(
        tmp=tmp_path,
        chain=chain,
        trust_dir=trust_dir,
        hosts_dir=hosts_dir,
        config_path=tmp_path / "etc" / "config.toml",
        socket_path=tmp_path / "run" / "pullgate" / "api.sock",
        metrics_port=free_port(),
    )
    n.config_path.parent.mkdir()
    n.write_policy()
    n.write_config()
    return n


@pytest.fixture
def registries(tmp_path: Path) -> Iterator[RegistryFactory]:
    with RegistryFactory(tmp_path / "registries") as factory:
        yield factory


def _wait_for(predicate: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + _WAIT
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _verify(client: Client, reference: str, **fields: Any) -> verifier_pb2.VerifyResponse:
    request = verifier_pb2.VerifyRequest(reference=reference, **fields)
    return client.verifier.Verify(request, timeout=60)


def _status(client: Client) -> verifier_pb2.StatusResponse:
    return client.verifier.Status(verifier_pb2.StatusRequest(), timeout=10)


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rpartition(" ")[2])
    return None


def _push_two_platform_index(pusher: Pusher) -> tuple[Descriptor, Descriptor, Descriptor]:
    amd64 = pusher.push_image(REPO, None, "linux/amd64", b"amd64 layer")
    arm64 = pusher.push_image(REPO, None, "linux/arm64/v8", b"arm64 layer")
    index = pusher.push_index(REPO, "multi", {"linux/amd64": amd64, "linux/arm64/v8": arm64})
    return index, amd64, arm64


def _sign(pusher: Pusher, chain: Chain, subject: Descriptor) -> None:
    pusher.push_signature(REPO, subject, sign_jws(chain, subject), MT_JWS, certificates=chain.x509)


# -- the socket, reflection, health ------------------------------------------------------------


def test_socket_mode_reflection_and_status(node: Node) -> None:
    with run_daemon(node.config_path) as client:
        info = node.socket_path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert "pullgate.v1.Verifier" in client.reflection.services()
        assert client.health.check("") == SERVING
        status = _status(client)
    assert (status.generation, status.degraded) == (1, False)
    assert status.hashes
    assert all(v for v in status.hashes.values())
    assert status.last_reload.ok
    assert not node.socket_path.exists()


def test_not_serving_until_the_configuration_is_valid(node: Node) -> None:
    node.write_policy("{ this is not json")
    with run_daemon(node.config_path) as client:
        assert client.health.check("") == NOT_SERVING
        assert client.health.check("pullgate.v1.Verifier") == NOT_SERVING
        status = _status(client)
        assert (status.generation, status.degraded) == (0, True)
        assert status.degraded_reason
        assert not status.last_reload.ok
        denied = _verify(client, "registry.example/team/app:1")
        assert (denied.allowed, denied.reason) == (False, "CONFIG")

        node.write_policy()  # the fix; the watcher or the Reload RPC picks it up
        result = client.verifier.Reload(verifier_pb2.ReloadRequest(), timeout=30).result
        assert result.ok
        assert _wait_for(lambda: client.health.check("") == SERVING)
        status = _status(client)
        assert status.generation >= 1
        assert not status.degraded

        node.write_policy('{"version": "1.0", "trustPolicies": "broken"}')
        result = client.verifier.Reload(verifier_pb2.ReloadRequest(), timeout=30).result
        assert not result.ok
        status = _status(client)
        assert status.degraded
        assert status.generation == result.generation >= 1
        assert client.health.check("") == SERVING  # the last good config is still enforced


# -- decisions against the real mTLS registry -------------------------------------------------


@needs_registry
def test_verify_allow_deny_metrics_and_audit(
    node: Node, registries: RegistryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    registry = registries.start()
    node.trust_registry(registry)
    with Pusher.for_registry(registry) as pusher:
        index, amd64, _ = _push_two_platform_index(pusher)
        _sign(pusher, node.chain, index)
        _sign(pusher, node.chain, amd64)
        unsigned = pusher.push_image(REPO, "unsigned", "linux/amd64", b"unsigned layer")
    secret = "s3cret-Pa55word"
    creds = verifier_pb2.RegistryCredentials(username="alice", password=secret)
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER), run_daemon(node.config_path) as c:
        allowed = _verify(c, f"{registry.host}/{REPO}:multi", caller="cri", credentials=creds)
        again = _verify(c, f"{registry.host}/{REPO}:multi", caller="cri")
        denied = _verify(c, f"{registry.host}/{REPO}:unsigned", caller="cri")
        absent = _verify(c, f"{registry.host}/{REPO}:multi", platform="linux/s390x")
        assert c.metrics_url is not None
        metrics = _scrape(c.metrics_url)
        status = _status(c)

    assert (allowed.allowed, allowed.reason, allowed.digest) == (True, "VERIFIED", index.digest)
    assert {(s.role, s.digest, s.verified) for s in allowed.subjects} == {
        ("index", index.digest, True),
        ("platform", amd64.digest, True),
    }
    assert all(s.signer_fingerprint_sha256 for s in allowed.subjects)
    assert again.allowed
    assert again.cache_hit
    assert (denied.allowed, denied.reason, denied.digest) == (
        False,
        "NO_SIGNATURE",
        unsigned.digest,
    )
    assert (absent.allowed, absent.reason) == (False, "PLATFORM_NOT_FOUND")
    assert status.cache.hits >= 1

    for family in (
        "pullgate_decisions_total",
        "pullgate_decision_phase_seconds",
        "pullgate_registry_requests_total",
        "pullgate_cache_hits_total",
        "pullgate_cache_misses_total",
        "pullgate_cache_evictions_total",
        "pullgate_cache_entries",
        "pullgate_singleflight_joins_total",
        "pullgate_reloads_total",
        "pullgate_fail_open_total",
        "pullgate_audit_denied_total",
    ):
        assert f"\n{family}" in metrics, family
    decisions = 'pullgate_decisions_total{{front="grpc",reason="{}",result="{}"}}'
    assert _sample(metrics, decisions.format("VERIFIED", "allow")) == 2
    assert _sample(metrics, decisions.format("NO_SIGNATURE", "deny")) == 1
    assert f'pullgate_registry_requests_total{{host="{registry.host}",status="200"}}' in metrics
    assert _sample(metrics, 'pullgate_reloads_total{outcome="ok"}') == 1

    lines = [r.getMessage() for r in caplog.records if r.name == AUDIT_LOGGER]
    docs = [json.loads(line) for line in lines]
    assert [d["decision"] for d in docs] == ["allow", "allow", "deny", "deny"]
    assert [d["reason"] for d in docs] == [
        "VERIFIED",
        "VERIFIED",
        "NO_SIGNATURE",
        "PLATFORM_NOT_FOUND",
    ]
    expected = {"reference", "digest", "digests", "platform", "statement", "level", "decision"}
    expected |= {"reason", "signer_subject", "signer_fingerprint", "cache_hit", "timings"}
    assert all(expected <= set(doc) for doc in docs)
    first = docs[0]
    assert first["signer_subject"]
    assert first["signer_fingerprint"]
    assert first["level"] == "strict"
    assert first["statement"] == "prod"
    assert first["platform"] == "linux/amd64"
    assert index.digest in json.dumps(first)
    assert amd64.digest in json.dumps(first)
    assert docs[1]["cache_hit"] is True
    assert all(secret not in line for line in lines)


@needs_registry
def test_reload_rpc_swaps_the_trusted_ca(node: Node, registries: RegistryFactory) -> None:
    registry = registries.start()
    node.trust_registry(registry)
    with Pusher.for_registry(registry) as pusher:
        image = pusher.push_image(REPO, "v1", "linux/amd64", b"single")
        _sign(pusher, node.chain, image)
    reference = f"{registry.host}/{REPO}:v1"
    with run_daemon(node.config_path) as client:
        assert _verify(client, reference).allowed
        other = Pki(name="someone else").chain(key=KeySpec.ec(256))
        store = write_store(node.trust_dir, "ca", "prod", [other.root.cert])  # replaces cert0
        assert [p.name for p in store.iterdir()] == ["cert0.pem"]
        result = client.verifier.Reload(verifier_pb2.ReloadRequest(), timeout=30).result
        assert result.ok
        after = _verify(client, reference)
    assert (after.allowed, after.reason) == (False, "UNTRUSTED")


def _with_cri_socket(node: Node, socket: Path) -> None:
    text = node.config_path.read_text()
    upstream = node.tmp / "no-runtime.sock"  # connected lazily: not needed to start
    cri = f'[cri]\nsocket = {_q(socket)}\nupstream = "unix://{upstream}"\n'
    node.config_path.write_text(text + cri)


def test_the_cri_socket_directory_is_created_like_the_api_sockets(node: Node) -> None:
    socket = node.tmp / "run" / "pullgate-cri" / "cri.sock"
    _with_cri_socket(node, socket)
    with run_daemon(node.config_path):
        assert stat.S_ISSOCK(socket.lstat().st_mode)
        assert stat.S_IMODE(socket.lstat().st_mode) == 0o600  # [cri] socket_mode's default


def test_a_file_at_the_cri_socket_path_is_a_start_up_config_error(node: Node) -> None:
    socket = node.tmp / "cri.sock"
    socket.write_text("someone's file")
    _with_cri_socket(node, socket)
    options = DaemonOptions(config_path=node.config_path, install_signal_handlers=False)
    with pytest.raises(ConfigError):  # `pullgate serve` turns it into exit status 2
        asyncio.run(asyncio.wait_for(serve(options, asyncio.Event()), timeout=_WAIT))
    assert socket.read_text() == "someone's file"


class _Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_start_up_state_is_frozen_and_a_reload_returns_it_to_the_collector(node: Node) -> None:
    before = _Cyclic()  # in a cycle: only the cyclic collector can free it
    ref = weakref.ref(before)
    gc.unfreeze()
    with run_daemon(node.config_path) as client:
        assert gc.get_freeze_count() > 0  # frozen once the daemon is up
        del before
        gc.collect()
        assert ref() is not None  # start-up state, skipped by full passes
        result = client.verifier.Reload(verifier_pb2.ReloadRequest(), timeout=30).result
        assert result.ok
        assert _wait_for(lambda: ref() is None)  # the swap re-settled: nothing kept for good


# -- a real process and real signals ----------------------------------------------------------


def test_sighup_reloads_and_sigterm_stops_a_real_process(node: Node) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'daemon'}{os.pathsep}{REPO_ROOT}"}
    log_path = node.tmp / "daemon.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pullgate", "serve", "--config", str(node.config_path)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{node.metrics_port}/metrics"

    def reloads_ok() -> float | None:
        try:
            return _sample(_scrape(url), 'pullgate_reloads_total{outcome="ok"}')
        except OSError:
            return None

    try:
        assert _wait_for(lambda: node.socket_path.exists() and reloads_ok() == 1), (
            log_path.read_text()
        )
        client = Client.connect(node.socket_path)
        try:
            before = _status(client).last_reload.finished_unix_ms
            proc.send_signal(signal.SIGHUP)
            assert _wait_for(lambda: reloads_ok() == 2), log_path.read_text()
            assert _status(client).last_reload.finished_unix_ms >= before
        finally:
            client.channel.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=_WAIT) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not node.socket_path.exists()
