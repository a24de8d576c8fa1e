"""``pullgate verify`` predicts what the node decides: the console script and the daemon's gRPC
``Verify`` give the same decision and reason for the same image, platform and requirement.

Against the real mTLS docker-registry, for 2-platform images signed four ways (index only,
linux/arm64 manifest only, both, nothing) under each requirement: the CLI runs as a user runs it
(``.venv/bin/pullgate verify --platform linux/arm64 --require R``, a subprocess), the daemon as
``pullgate serve`` (a real process) whose trust-policy statement for the repository has
``require = R``, asked over its socket with ``platform = "linux/arm64"``. Both read the same
trust directory and certs.d; each answer is also checked against the requirement's table, so
they cannot agree on a wrong answer.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from pullgate.common.descriptor import Descriptor
from tests.integration.test_daemon import (  # fixtures are used by name
    Node,
    _verify,
    needs_registry,
    node,
    registries,
)
from tests.integration.test_daemon_requirements import configure_requirements
from tests.support.daemon_process import CONSOLE_SCRIPT, DaemonProcess
from tests.support.docker_registry import RegistryFactory
from tests.support.push import MT_JWS, Pusher
from tests.support.signing import sign_jws

__all__ = ["node", "registries"]  # re-exported fixtures

pytestmark = [pytest.mark.integration, needs_registry]

PLATFORM = "linux/arm64"
SIGNED = {  # image tag -> which of (index, arm64 manifest) carry a signature
    "index-only": (True, False),
    "platform-only": (False, True),
    "both": (True, True),
    "unsigned": (False, False),
}
ALLOWED = {  # requirement -> the tags it allows
    "both": {"both"},
    "index": {"both", "index-only"},
    "platform": {"both", "platform-only"},
    "either": {"both", "index-only", "platform-only"},
}


def _push(node: Node, pusher: Pusher, repo: str, tag: str) -> Descriptor:
    amd64 = pusher.push_image(repo, None, "linux/amd64", f"{repo}:{tag} amd64".encode())
    arm64 = pusher.push_image(repo, None, "linux/arm64/v8", f"{repo}:{tag} arm64".encode())
    index = pusher.push_index(repo, tag, {"linux/amd64": amd64, "linux/arm64/v8": arm64})
    for subject, signed in zip((index, arm64), SIGNED[tag], strict=True):
        if signed:
            envelope = sign_jws(node.chain, subject)
            pusher.push_signature(repo, subject, envelope, MT_JWS, certificates=node.chain.x509)
    return index


def _cli(node: Node, reference: str, requirement: str) -> tuple[int, dict[str, Any]]:
    command = [
        str(CONSOLE_SCRIPT),
        "verify",
        "--trust-dir",
        str(node.trust_dir),
        "--hosts-dir",
        str(node.hosts_dir),
        "--cache-dir",
        str(node.tmp / "cli-cache"),
        "--platform",
        PLATFORM,
        "--require",
        requirement,
        "--output",
        "json",
        reference,
    ]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr.decode(errors="replace")
    return done.returncode, json.loads(done.stdout)


def test_cli_and_daemon_give_the_same_answer(node: Node, registries: RegistryFactory) -> None:
    registry = registries.start()
    node.trust_registry(registry)
    configure_requirements(node, registry.host, tuple(ALLOWED))
    indexes: dict[tuple[str, str], Descriptor] = {}
    with Pusher.for_registry(registry) as pusher:
        for req in ALLOWED:
            for tag in SIGNED:
                indexes[req, tag] = _push(node, pusher, f"req/{req}", tag)

    with DaemonProcess(node.config_path, node.socket_path, node.tmp / "daemon.log") as daemon:
        daemon.wait_socket()
        client = daemon.client()
        try:
            for (req, tag), index in indexes.items():
                reference = f"{registry.host}/req/{req}:{tag}"
                code, cli = _cli(node, reference, req)
                grpc = _verify(client, reference, platform=PLATFORM, caller="cli-agreement")
                case = f"{req} / {tag}"
                expected = tag in ALLOWED[req]
                assert (code == 0, cli["decision"] == "allow") == (expected, expected), case
                assert (grpc.allowed, grpc.reason) == (expected, cli["reason"]), case
                assert (cli["reason"] == "VERIFIED") is expected, case
                assert (grpc.digest, cli["digest"]) == (index.digest, index.digest), case
                assert grpc.requirement == cli["requirement"] == req, case
                assert sorted((s.role, s.digest, s.verified) for s in grpc.subjects) == sorted(
                    (s["role"], s["digest"], s["verified"]) for s in cli["subjects"]
                ), case
        finally:
            client.channel.close()


def test_cli_rejects_an_unparsable_platform(node: Node) -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "verify", "--trust-dir", str(node.trust_dir), "--platform", "x", "a"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
