"""containerd 2.4 running pullgate-containerd-verifier: ``ctr image pull --platform`` of an index.

The verifier is told the top-level digest only. With an index whose index and amd64 manifest are
signed and whose arm64 manifest is not, a pull for linux/arm64 must be denied under
``require = "both"`` (the amd64 pull too: the verifier cannot tell the two apart), and the arm64
manifest must never reach containerd's content store; a fully signed index is pulled.
``[image_verifier] platforms = "node"`` shows what the default closes: the arm64 pull goes through.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pullgate.errors import Reason
from tests.support.containerd import write_hosts_toml
from tests.support.docker_registry import REGISTRY_BINARY, DockerRegistry, registry_available
from tests.support.grpc_harness import run_daemon
from tests.support.pki import Chain, KeySpec, Pki, write_store
from tests.support.push import MT_JWS, Pusher
from tests.support.runtimes import (
    PodRuntime,
    RunnableImage,
    RuntimeOptions,
    push_runnable_image,
    runtimes_unavailable,
)
from tests.support.signing import sign_jws
from tests.support.statements import policy_document

_SKIP = runtimes_unavailable("2.4")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
    pytest.mark.skipif(_SKIP is not None, reason=f"containerd 2.4: {_SKIP}"),
]
REPO = "team/multi"
PLATFORMS = ("linux/amd64", "linux/arm64")
VERIFIER = Path(sys.executable).parent / "pullgate-containerd-verifier"
_REJECTED = re.compile(r"rejected image \(exit code \d+\): ([A-Z_]+):")


@dataclass
class Node:
    tmp: Path
    chain: Chain
    certs_d: Path
    socket: Path
    bin_dir: Path

    def config(self, platforms: str) -> Path:
        trust_dir = self.tmp / "trust"
        path = self.tmp / f"config-{platforms}.toml"
        path.write_text(
            "\n".join(
                [
                    f"trust_dir = {json.dumps(str(trust_dir))}",
                    f"hosts_dir = {json.dumps(str(self.certs_d))}",
                    'platform = "linux/amd64"',
                    "[api]",
                    f"socket = {json.dumps(str(self.socket))}",
                    "[metrics]",
                    'address = ""',
                    "[verification]",
                    f"crl_cache_dir = {json.dumps(str(self.tmp / 'crl'))}",
                    "[image_verifier]",
                    f"platforms = {json.dumps(platforms)}",
                    '[statements."prod"]',
                    'require = "both"',
                    "",
                ]
            )
        )
        return path


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    chain = Pki(name="bindir platforms").chain(key=KeySpec.ec(256))
    trust_dir = tmp_path / "trust"
    write_store(trust_dir, "ca", "prod", [chain.root.cert])
    document = policy_document(name="prod", stores=("ca:prod",))
    (trust_dir / "trustpolicy.json").write_text(json.dumps(document))
    with tempfile.TemporaryDirectory(prefix="pg-bindir-", dir="/tmp") as short:
        socket = Path(short) / "api.sock"
        bin_dir = tmp_path / "verifiers"
        bin_dir.mkdir()
        # containerd passes -name, -digest and -stdin-media-type only: a wrapper adds -socket
        wrapper = bin_dir / "pullgate-containerd-verifier"
        wrapper.write_text(f'#!/bin/sh\nexec {VERIFIER} "$@" -socket {socket}\n')
        wrapper.chmod(0o755)
        yield Node(tmp_path, chain, tmp_path / "certs.d", socket, bin_dir)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path / "registry") as reg:
        yield reg


def _push(registry: DockerRegistry, chain: Chain, tag: str, *, sign_arm64: bool) -> RunnableImage:
    with Pusher.for_registry(registry) as pusher:
        image = push_runnable_image(
            pusher, registry.host, REPO, tag, platforms=PLATFORMS, index=True
        )
        signed = [image.top, image.platforms["linux/amd64"]]
        if sign_arm64:
            signed.append(image.platforms["linux/arm64"])
        for subject in signed:
            envelope = sign_jws(chain, subject)
            pusher.push_signature(REPO, subject, envelope, MT_JWS, certificates=chain.x509)
    return image


def _pull(runtime: PodRuntime, node: Node, image: RunnableImage, platform: str) -> Reason | None:
    """None when ctr pulled it, else the reason the verifier gave (``platform`` "all":
    ``--all-platforms``)."""
    proc: subprocess.CompletedProcess[str] = runtime.ctr(
        "image",
        "pull",
        "--hosts-dir",
        str(node.certs_d),
        *(("--all-platforms",) if platform == "all" else ("--platform", platform)),
        image.reference,
        check=False,
    )
    if proc.returncode == 0:
        return None
    found = _REJECTED.search(proc.stderr + proc.stdout)
    assert found is not None, proc.stderr  # a verifier rejection, not some other failure
    return Reason(found.group(1))


def _stored(runtime: PodRuntime) -> str:
    return runtime.ctr("content", "ls").stdout


def test_an_unsigned_platform_manifest_is_never_pulled_through_the_verifier(
    node: Node, registry: DockerRegistry
) -> None:
    write_hosts_toml(node.certs_d, registry)
    partial = _push(registry, node.chain, "partial", sign_arm64=False)
    full = _push(registry, node.chain, "full", sign_arm64=True)
    options = RuntimeOptions(certs_d=node.certs_d, verifier_bin_dir=node.bin_dir)
    with run_daemon(node.config("all")), PodRuntime("2.4", options) as runtime:
        arm64 = _pull(runtime, node, partial, "linux/arm64")
        amd64 = _pull(runtime, node, partial, "linux/amd64")
        every = _pull(runtime, node, partial, "all")
        stored = _stored(runtime)
        full_arm64 = _pull(runtime, node, full, "linux/arm64")
        full_amd64 = _pull(runtime, node, full, "linux/amd64")
        full_every = _pull(runtime, node, full, "all")
    assert (arm64, amd64, every) == (Reason.NO_SIGNATURE,) * 3
    assert partial.platforms["linux/arm64"].digest not in stored
    assert (full_arm64, full_amd64, full_every) == (None, None, None)


def test_node_platforms_setting_lets_the_other_platform_through(
    node: Node, registry: DockerRegistry
) -> None:
    write_hosts_toml(node.certs_d, registry)
    partial = _push(registry, node.chain, "partial", sign_arm64=False)
    options = RuntimeOptions(certs_d=node.certs_d, verifier_bin_dir=node.bin_dir)
    with run_daemon(node.config("node")), PodRuntime("2.4", options) as runtime:
        arm64 = _pull(runtime, node, partial, "linux/arm64")
        stored = _stored(runtime)
    assert arm64 is None  # what platforms = "all" (the default) prevents
    assert partial.platforms["linux/arm64"].digest in stored
