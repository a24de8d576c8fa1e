"""``pullgate verify`` against the real distribution registry.

Every registry here is Debian's ``docker-registry`` (distribution 2.8.2) on 127.0.0.1 with mutual
TLS: it refuses any client without a certificate from its client CA. It has no Referrers API, so
signatures are found through the referrers tag schema (docs/notation.md §1.2); endpoints,
CAs and client certificates come from a containerd ``certs.d`` directory (containerd ``hosts.md``,
docs/containerd.md §1.4/§1.5). The CLI runs in-process through ``pullgate.cli.main.main`` and is
judged by its exit code and the typed ``reason`` of its JSON decision object.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pullgate.cli.main import main
from pullgate.common.descriptor import Descriptor
from tests.support.docker_registry import (
    REGISTRY_BINARY,
    DockerRegistry,
    RegistryFactory,
    RegistryPki,
    free_port,
    listening_hosts,
    registry_available,
)
from tests.support.pki import Chain, KeySpec, Pki, write_store
from tests.support.push import (
    MT_COSE,
    MT_INDEX,
    MT_JWS,
    SIG_TYPE,
    Pusher,
    referrers_tag,
)
from tests.support.signing import sign_cose, sign_jws

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]

REPO = "team/app"
EXIT_ALLOW = 0
EXIT_DENY = 1


def _toml_str(value: str | Path) -> str:
    return json.dumps(str(value))


@dataclass
class World:
    """Registries, a signing chain and the config directories one test verifies with."""

    tmp: Path
    registries: RegistryFactory
    chain: Chain
    trust_dir: Path
    hosts_dir: Path

    def pusher(self, registry: DockerRegistry) -> Pusher:
        return Pusher.for_registry(registry)

    def sign(
        self,
        registry: DockerRegistry,
        subject: Descriptor,
        *,
        cose: bool = False,
        legacy: bool = False,
    ) -> Descriptor:
        envelope = sign_cose(self.chain, subject) if cose else sign_jws(self.chain, subject)
        with self.pusher(registry) as pusher:
            return pusher.push_signature(
                REPO,
                subject,
                envelope,
                MT_COSE if cose else MT_JWS,
                legacy=legacy,
                certificates=self.chain.x509,
            )

    def push_image(
        self, registry: DockerRegistry, tag: str = "v1", content: bytes = b"app"
    ) -> Descriptor:
        with self.pusher(registry) as pusher:
            return pusher.push_image(REPO, tag, "linux/amd64", content)

    def hosts_toml(
        self,
        registry_host: str,
        *,
        server: str,
        mirrors: tuple[str, ...] = (),
        ca: Path | None = None,
        client: bool = True,
    ) -> Path:
        """Write ``certs.d/<registry_host>/hosts.toml`` (mirrors first, then the server)."""
        pki = self.registries.pki
        directory = self.hosts_dir / registry_host
        directory.mkdir(parents=True, exist_ok=True)
        settings = [f"ca = {_toml_str(ca or pki.ca_pem)}"]
        if client:
            settings.append(
                f"client = [[{_toml_str(pki.client_pem)}, {_toml_str(pki.client_key)}]]"
            )
        lines = [f"server = {_toml_str(server)}", *settings, ""]
        for mirror in mirrors:
            lines += [f"[host.{_toml_str(mirror)}]", '  capabilities = ["pull", "resolve"]']
            lines += [f"  {s}" for s in settings]
            lines.append("")
        path = directory / "hosts.toml"
        path.write_text("\n".join(lines))
        return path

    def verify(self, image: str, *extra: str) -> tuple[int, dict[str, Any]]:
        """Run ``pullgate verify --output json`` exactly like a user would."""
        argv = [
            "verify",
            "--trust-dir",
            str(self.trust_dir),
            "--hosts-dir",
            str(self.hosts_dir),
            "--cache-dir",
            str(self.tmp / "cache"),
            "--output",
            "json",
            *extra,
            image,
        ]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 2
        out = buf.getvalue()
        return code, json.loads(out) if out.strip() else {}


def _policy() -> dict[str, Any]:
    return {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "registry",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:registry"],
                "trustedIdentities": ["x509.subject: C=US, ST=WA, O=pullgate"],
            }
        ],
    }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    chain = Pki(name="registry e2e").chain(key=KeySpec.ec(256))
    trust_dir = tmp_path / "trust"
    write_store(trust_dir, "ca", "registry", [chain.root.cert])
    (trust_dir / "trustpolicy.json").write_text(json.dumps(_policy()))
    hosts_dir = tmp_path / "certs.d"
    hosts_dir.mkdir()
    with RegistryFactory(tmp_path / "registries") as registries:
        yield World(tmp_path, registries, chain, trust_dir, hosts_dir)


def _image(registry: DockerRegistry, ref: str = "v1") -> str:
    sep = "@" if ref.startswith("sha256:") else ":"
    return f"{registry.host}/{REPO}{sep}{ref}"


def _assert_deny(code: int, doc: dict[str, Any], reason: str) -> None:
    assert (code, doc.get("decision"), doc.get("reason")) == (EXIT_DENY, "deny", reason), doc


def _assert_allow(code: int, doc: dict[str, Any]) -> None:
    assert (code, doc.get("decision")) == (EXIT_ALLOW, "allow"), doc


# -- the harness itself --------------------------------------------------------------------------


def test_registry_requires_client_certificate_and_binds_loopback_only(world: World) -> None:
    registry = world.registries.start()
    assert registry.probe(client_cert=True) == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        registry.probe(client_cert=False)
    assert listening_hosts(registry.port) == {"127.0.0.1"}
    mark_requests = registry.access_log()
    assert [(e.method, e.path, e.status) for e in mark_requests][-1] == ("GET", "/v2/", 200)


def test_pusher_maintains_referrers_tag_index(world: World) -> None:
    registry = world.registries.start()
    image = world.push_image(registry)
    first = world.sign(registry, image)
    second = world.sign(registry, image, cose=True, legacy=True)
    with world.pusher(registry) as pusher:
        raw = pusher.fetch_manifest(REPO, referrers_tag(image.digest))
        assert raw is not None
        index = json.loads(raw)
        assert index["mediaType"] == MT_INDEX
        listed = [(e["digest"], e["artifactType"]) for e in index["manifests"]]
        assert listed == [(first.digest, SIG_TYPE), (second.digest, SIG_TYPE)]
        legacy = json.loads(pusher.fetch_manifest(REPO, second.digest) or b"{}")
        assert legacy["config"]["mediaType"] == SIG_TYPE
        assert "artifactType" not in legacy
        assert legacy["subject"]["digest"] == image.digest


def test_htpasswd_registry_rejects_anonymous_requests(world: World) -> None:
    registry = world.registries.start(users={"alice": "wonderland"})
    anonymous = Pusher(
        registry.url,
        ca_file=registry.ca_pem,
        client_cert=registry.client_pem,
        client_key=registry.client_key,
    )
    with anonymous, pytest.raises(RuntimeError):
        anonymous.push_image(REPO, "v1")


# -- verification end to end ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cose", "legacy"), [(False, False), (True, True)], ids=["jws", "cose-legacy"]
)
def test_signed_image_is_allowed(world: World, cose: bool, legacy: bool) -> None:
    registry = world.registries.start()
    image = world.push_image(registry)
    world.sign(registry, image, cose=cose, legacy=legacy)
    world.hosts_toml(registry.host, server=registry.url)
    code, doc = world.verify(_image(registry))
    _assert_allow(code, doc)
    assert doc["digest"] == image.digest


def test_signed_image_by_digest_is_allowed(world: World) -> None:
    registry = world.registries.start()
    image = world.push_image(registry)
    world.sign(registry, image)
    world.hosts_toml(registry.host, server=registry.url)
    _assert_allow(*world.verify(_image(registry, image.digest)))


def test_unsigned_image_is_denied(world: World) -> None:
    registry = world.registries.start()
    world.push_image(registry)
    world.hosts_toml(registry.host, server=registry.url)
    _assert_deny(*world.verify(_image(registry)), "NO_SIGNATURE")


def test_signature_of_another_image_does_not_count(world: World) -> None:
    registry = world.registries.start()
    world.push_image(registry, "v1", b"one")
    other = world.push_image(registry, "v2", b"two")
    world.sign(registry, other)
    world.hosts_toml(registry.host, server=registry.url)
    _assert_deny(*world.verify(_image(registry, "v1")), "NO_SIGNATURE")


def test_missing_client_certificate_is_a_tls_denial_naming_the_endpoint(world: World) -> None:
    registry = world.registries.start()
    image = world.push_image(registry)
    world.sign(registry, image)
    world.hosts_toml(registry.host, server=registry.url, client=False)
    code, doc = world.verify(_image(registry))
    _assert_deny(code, doc, "REGISTRY_TLS")
    assert registry.host in doc["message"], doc


def test_wrong_ca_is_a_tls_denial(world: World) -> None:
    registry = world.registries.start()
    image = world.push_image(registry)
    world.sign(registry, image)
    other = RegistryPki.create(world.tmp / "other-pki", name="other")
    world.hosts_toml(registry.host, server=registry.url, ca=other.ca_pem)
    code, doc = world.verify(_image(registry))
    _assert_deny(code, doc, "REGISTRY_TLS")
    assert registry.host in doc["message"], doc


def test_signature_only_on_the_second_endpoint_is_found(world: World) -> None:
    mirror = world.registries.start()
    upstream = world.registries.start()
    # Same image bytes in both; only the upstream carries the signature.
    mirrored = world.push_image(mirror)
    image = world.push_image(upstream)
    assert mirrored.digest == image.digest
    world.sign(upstream, image)
    world.hosts_toml(upstream.host, server=upstream.url, mirrors=(mirror.url,))
    mark = mirror.log_mark()
    _assert_allow(*world.verify(_image(upstream)))
    # The mirror really was asked first (it is not skipped by accident).
    assert any(e.path.startswith(f"/v2/{REPO}/") for e in mirror.requests_since(mark))


def test_refused_first_mirror_falls_back_to_the_server(world: World) -> None:
    upstream = world.registries.start()
    image = world.push_image(upstream)
    world.sign(upstream, image)
    dead = f"https://127.0.0.1:{free_port()}"
    world.hosts_toml(upstream.host, server=upstream.url, mirrors=(dead,))
    _assert_allow(*world.verify(_image(upstream)))


def _docker_config(path: Path, host: str, user: str, password: str) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


def test_htpasswd_registry_with_docker_config_credentials_is_allowed(world: World) -> None:
    registry = world.registries.start(users={"alice": "wonderland"})
    image = world.push_image(registry)
    world.sign(registry, image)
    world.hosts_toml(registry.host, server=registry.url)
    config = _docker_config(world.tmp / "config.json", registry.host, "alice", "wonderland")
    _assert_allow(*world.verify(_image(registry), "--registry-config", str(config)))


def test_htpasswd_registry_without_credentials_is_an_auth_denial(world: World) -> None:
    registry = world.registries.start(users={"alice": "wonderland"})
    image = world.push_image(registry)
    world.sign(registry, image)
    world.hosts_toml(registry.host, server=registry.url)
    _assert_deny(*world.verify(_image(registry)), "REGISTRY_AUTH")


def test_htpasswd_registry_with_wrong_password_is_an_auth_denial(world: World) -> None:
    registry = world.registries.start(users={"alice": "wonderland"})
    image = world.push_image(registry)
    world.sign(registry, image)
    world.hosts_toml(registry.host, server=registry.url)
    config = _docker_config(world.tmp / "config.json", registry.host, "alice", "looking-glass")
    _assert_deny(*world.verify(_image(registry), "--registry-config", str(config)), "REGISTRY_AUTH")


def _push_multi_platform(world: World, registry: DockerRegistry) -> tuple[Descriptor, Descriptor]:
    with world.pusher(registry) as pusher:
        amd64 = pusher.push_image(REPO, None, "linux/amd64", b"amd64")
        arm64 = pusher.push_image(REPO, None, "linux/arm64/v8", b"arm64")
        index = pusher.push_index(REPO, "multi", {"linux/amd64": amd64, "linux/arm64/v8": arm64})
    return index, amd64


def test_signed_multi_platform_index_is_allowed(world: World) -> None:
    """The default requirement (``both``, as in the daemon): index and platform manifest."""
    registry = world.registries.start()
    index, amd64 = _push_multi_platform(world, registry)
    world.sign(registry, index)
    world.sign(registry, amd64)
    world.hosts_toml(registry.host, server=registry.url)
    code, doc = world.verify(_image(registry, "multi"), "--platform", "linux/amd64")
    _assert_allow(code, doc)
    assert doc["digest"] == index.digest
    assert {s["role"]: s["digest"] for s in doc["subjects"]} == {
        "index": index.digest,
        "platform": amd64.digest,
    }


def test_multi_platform_index_with_only_a_platform_signature_is_denied(world: World) -> None:
    registry = world.registries.start()
    _, amd64 = _push_multi_platform(world, registry)
    world.sign(registry, amd64)
    world.hosts_toml(registry.host, server=registry.url)
    _assert_deny(*world.verify(_image(registry, "multi")), "NO_SIGNATURE")
