"""Definitive reasons through the real daemon's gRPC API and Debian's docker-registry.

The statement opts into ``on_inconclusive = "allow"``, so a reason misfiled as inconclusive would
come back allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullgate.errors import Reason
from pullgate.v1 import verifier_pb2
from tests.support.docker_registry import (
    REGISTRY_BINARY,
    DockerRegistry,
    RegistryFactory,
    registry_available,
)
from tests.support.grpc_harness import Client, run_daemon
from tests.support.pki import KeySpec, Pki, write_store
from tests.support.push import Pusher
from tests.support.statements import policy_document

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]
REPO = "team/app"


def _q(value: str | Path) -> str:
    return json.dumps(str(value))


def _write_node(tmp: Path) -> tuple[Path, Path]:
    """Trust dir, certs.d and a fail-open config; returns (config path, certs.d)."""
    chain = Pki(name="reason classes").chain(key=KeySpec.ec(256))
    trust_dir = tmp / "trust"
    write_store(trust_dir, "ca", "prod", [chain.root.cert])
    document = policy_document(name="prod", stores=("ca:prod",))
    (trust_dir / "trustpolicy.json").write_text(json.dumps(document))
    certs_d = tmp / "certs.d"
    certs_d.mkdir()
    config = tmp / "config.toml"
    config.write_text(
        "\n".join(
            [
                f"trust_dir = {_q(trust_dir)}",
                f"hosts_dir = {_q(certs_d)}",
                'platform = "linux/amd64"',
                "[api]",
                f"socket = {_q(tmp / 'run' / 'api.sock')}",
                "[metrics]",
                'address = ""',  # off: the default port may be another daemon's on this machine
                "[verification]",
                f"crl_cache_dir = {_q(tmp / 'crl')}",
                '[statements."prod"]',
                'on_inconclusive = "allow"',
                "",
            ]
        )
    )
    return config, certs_d


def _trust_registry(certs_d: Path, registry: DockerRegistry) -> None:
    directory = certs_d / registry.host
    directory.mkdir()
    (directory / "hosts.toml").write_text(
        f"server = {_q(registry.url)}\nca = {_q(registry.ca_pem)}\n"
        f"client = [[{_q(registry.client_pem)}, {_q(registry.client_key)}]]\n"
    )


def _verify(client: Client, reference: str) -> verifier_pb2.VerifyResponse:
    request = verifier_pb2.VerifyRequest(reference=reference, caller="cri")
    return client.verifier.Verify(request, timeout=60)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    with RegistryFactory(tmp_path / "registries") as factory:
        yield factory.start()


def test_image_absent_from_every_endpoint_is_denied_not_found(
    tmp_path: Path, registry: DockerRegistry
) -> None:
    config, certs_d = _write_node(tmp_path)
    _trust_registry(certs_d, registry)
    with Pusher.for_registry(registry) as pusher:
        pushed = pusher.push_image(REPO, "v1", "linux/amd64", b"layer")
    absent_digest = "sha256:" + "ab" * 32
    with run_daemon(config) as client:
        answers = {
            "tag": _verify(client, f"{registry.host}/{REPO}:never-pushed"),
            "repository": _verify(client, f"{registry.host}/team/absent:v1"),
            "digest": _verify(client, f"{registry.host}/{REPO}@{absent_digest}"),
            "present": _verify(client, f"{registry.host}/{REPO}:v1"),
        }
    for what in ("tag", "repository", "digest"):
        answer = answers[what]
        assert (answer.allowed, Reason(answer.reason), answer.inconclusive) == (
            False,
            Reason.NOT_FOUND,
            False,
        ), what
    present = answers["present"]  # resolvable, unsigned: the endpoint itself was fine
    assert (present.allowed, Reason(present.reason), present.digest) == (
        False,
        Reason.NO_SIGNATURE,
        pushed.digest,
    )


def test_unreadable_certs_d_entry_is_a_definitive_config_deny(
    tmp_path: Path, registry: DockerRegistry
) -> None:
    config, certs_d = _write_node(tmp_path)
    (certs_d / registry.host).write_text("a file where containerd expects a directory")
    with run_daemon(config) as client:
        answer = _verify(client, f"{registry.host}/{REPO}:v1")
    assert (answer.allowed, Reason(answer.reason), answer.inconclusive) == (
        False,
        Reason.CONFIG,
        False,
    )
