"""The files one daemon runs from, trusting a test PKI, with signed images in a real registry.

:class:`SignedNode` writes a notation trust directory (one ``ca`` store trusting a fresh test
root, one strict statement for every registry scope), a certs.d root, and a daemon config with
its API socket, metrics port and CRL cache inside the node's directory. It pushes signed
two-platform indexes (index and ``linux/amd64`` manifest signed, JWS) to a
:class:`~tests.support.docker_registry.DockerRegistry` and points certs.d at it (mutual TLS).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.docker_registry import DockerRegistry, free_port
from tests.support.pki import Chain, KeySpec, Pki, write_store
from tests.support.push import MT_JWS, Pusher
from tests.support.signing import sign_jws
from tests.support.statements import policy_document

REPO = "team/app"


def quoted(value: str | Path) -> str:
    """A TOML basic string (JSON's escaping is valid TOML)."""
    return json.dumps(str(value))


@dataclass
class SignedNode:
    """A daemon's files under ``tmp``."""

    tmp: Path
    chain: Chain
    trust_dir: Path
    hosts_dir: Path
    config_path: Path
    socket_path: Path
    metrics_port: int

    @classmethod
    def create(cls, tmp: Path) -> SignedNode:
        """Trust directory, certs.d root and config under ``tmp`` (the config is written)."""
        chain = Pki(name="pullgate node").chain(key=KeySpec.ec(256))
        trust_dir = tmp / "trust"
        write_store(trust_dir, "ca", "prod", [chain.root.cert])
        policy = policy_document(name="prod", stores=("ca:prod",))
        (trust_dir / "trustpolicy.json").write_text(json.dumps(policy))
        hosts_dir = tmp / "certs.d"
        hosts_dir.mkdir(parents=True, exist_ok=True)
        node = cls(
            tmp=tmp,
            chain=chain,
            trust_dir=trust_dir,
            hosts_dir=hosts_dir,
            config_path=tmp / "etc" / "config.toml",
            socket_path=tmp / "run" / "api.sock",
            metrics_port=free_port(),
        )
        node.config_path.parent.mkdir(parents=True, exist_ok=True)
        node.write_config()
        return node

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def config_text(self, extra: Sequence[str] = (), tables: Sequence[str] = ()) -> str:
        """The config document: paths in the node, ``extra`` top-level lines, then ``tables``
        (more lines, after the node's own tables)."""
        return "\n".join(
            [
                f"trust_dir = {quoted(self.trust_dir)}",
                f"hosts_dir = {quoted(self.hosts_dir)}",
                'platform = "linux/amd64"',
                *extra,
                "[api]",
                f"socket = {quoted(self.socket_path)}",
                "[metrics]",
                f'address = "127.0.0.1:{self.metrics_port}"',
                "[verification]",
                f"crl_cache_dir = {quoted(self.tmp / 'crl')}",
                *tables,
                "",
            ]
        )

    def write_config(self, extra: Sequence[str] = (), tables: Sequence[str] = ()) -> None:
        """Write :meth:`config_text` to the config file."""
        self.config_path.write_text(self.config_text(extra, tables))

    def trust_registry(self, registry: DockerRegistry, *, mirrors: Sequence[str] = ()) -> Path:
        """certs.d/<host>/hosts.toml: ``mirrors`` (URLs, pull + resolve; plain ``http://`` ones
        get no TLS settings) then the registry, with its CA and client certificate. Returns
        the host directory."""
        directory = self.hosts_dir / registry.host  # containerd finds host:port as written
        directory.mkdir(parents=True, exist_ok=True)
        tls = [
            f"ca = {quoted(registry.ca_pem)}",
            f"client = [[{quoted(registry.client_pem)}, {quoted(registry.client_key)}]]",
        ]
        lines = [f"server = {quoted(registry.url)}", *tls]
        for mirror in mirrors:
            lines += [f"[host.{quoted(mirror)}]", 'capabilities = ["pull", "resolve"]']
            if mirror.startswith("https://"):
                lines += tls
        (directory / "hosts.toml").write_text("\n".join([*lines, ""]))
        return directory

    def push_signed(self, registry: DockerRegistry, pusher: Pusher, tag: str) -> str:
        """A signed two-platform index at ``REPO:tag`` (content unique to ``tag``); its
        reference."""
        body = tag.encode()
        amd64 = pusher.push_image(REPO, None, "linux/amd64", b"amd64 " + body)
        arm64 = pusher.push_image(REPO, None, "linux/arm64/v8", b"arm64 " + body)
        index = pusher.push_index(REPO, tag, {"linux/amd64": amd64, "linux/arm64/v8": arm64})
        for subject in (index, amd64):
            pusher.push_signature(
                REPO, subject, sign_jws(self.chain, subject), MT_JWS, certificates=self.chain.x509
            )
        return f"{registry.host}/{REPO}:{tag}"
