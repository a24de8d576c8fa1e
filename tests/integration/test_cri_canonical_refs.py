"""Spellings of one registry select one trust-policy statement, through the CRI proxy in front
of the real containerd (Debian's 1.6 and 2.4 from ``../shared/runtimes``).

The policy has a strict statement for ``127.0.0.1:PORT/team/strict`` and a ``*`` statement that
skips verification. A zero-padded port (``127.0.0.1:0PORT``) reaches the same registry port
(containerd pulls it: the ``*`` control shows it), so it must select the strict statement, not
``*``. IPv6 spellings (``[::1]``, ``[0:0::1]``, ``[::0:1]``; containerd 2.4 accepts them, 1.6
refuses the reference) are one address: each selects the same statement. certs.d holds a
hosts.toml under every spelling as written, because that is the directory containerd uses.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from pullgate.common.clock import FixedClock
from pullgate.config import DaemonConfig, VerificationConfig
from pullgate.cri.proxy import CriProxy
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import Reason
from pullgate.trust.snapshot import build_snapshot
from tests.integration.test_cri_proxy import (
    REGISTRY_PREFIX,
    SIGNATURE_PREFIX,
    ProxyThread,
    _reason_after,
)
from tests.support.containerd import CriClient, push_unpackable_image, write_hosts_toml
from tests.support.docker_registry import (
    REGISTRY_BINARY,
    DockerRegistry,
    RegistryFactory,
    registry_available,
)
from tests.support.parts import build_engine, build_fetcher
from tests.support.pki import NOW, KeySpec, Pki, write_store
from tests.support.push import Pusher
from tests.support.runtimes import PodRuntime, RuntimeOptions, runtimes_unavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]

STRICT, OPEN = "team/strict", "team/open"


@dataclass
class Gate:
    registry: DockerRegistry
    certs_d: Path
    via: CriClient  # the kubelet, through pullgate
    direct: CriClient  # containerd itself
    audit: list[dict[str, Any]]

    def spell(self, host: str) -> str:
        """A spelling of the registry's host (same port): certs.d gets a hosts.toml for it."""
        hosts = self.certs_d / self.registry.host / "hosts.toml"
        spelled = self.certs_d / host
        if not spelled.exists():
            spelled.mkdir()
            shutil.copy(hosts, spelled / "hosts.toml")
        return host

    def pull(self, reference: str) -> Reason:
        """Pull through pullgate: VERIFIED/SKIPPED_BY_POLICY when allowed, else the reason."""
        before = len(self.audit)
        try:
            self.via.pull(reference)
        except grpc.RpcError as exc:
            details = cast(grpc.Call, exc).details() or ""
            assert not self.direct.has_image(reference)
            return _reason_after(SIGNATURE_PREFIX, details)
        assert self.direct.has_image(reference)
        assert len(self.audit) > before
        return Reason(self.audit[-1]["reason"])

    def statement(self) -> str:
        return str(self.audit[-1]["statement"])


def _policy(port: int) -> dict[str, Any]:
    return {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "strict",
                "registryScopes": [f"127.0.0.1:{port}/{STRICT}"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:cri"],
                "trustedIdentities": ["*"],
            },
            {"name": "open", "registryScopes": ["*"], "signatureVerification": {"level": "skip"}},
        ],
    }


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    tmp = tmp_path_factory.mktemp("canonical")
    with RegistryFactory(tmp / "registries") as registries:
        registry = registries.start()
        with Pusher.for_registry(registry) as pusher:
            for repo in (STRICT, OPEN):
                push_unpackable_image(pusher, repo, "v1", content=uuid.uuid4().bytes)
        yield registry


@pytest.fixture(params=["1.6", "2.4"])
def gate(
    request: pytest.FixtureRequest, registry: DockerRegistry, tmp_path: Path
) -> Iterator[Gate]:
    kind = request.param
    why = runtimes_unavailable(kind)
    if why is not None:
        pytest.skip(f"containerd {kind}: {why}")
    certs_d = tmp_path / "certs.d"
    write_hosts_toml(certs_d, registry)
    trust_dir = tmp_path / "trust"
    write_store(
        trust_dir, "ca", "cri", [Pki(name="canonical").chain(key=KeySpec.ec(256)).root.cert]
    )
    (trust_dir / "trustpolicy.json").write_text(json.dumps(_policy(registry.port)))
    config = DaemonConfig(
        trust_dir=trust_dir,
        hosts_dirs=(certs_d,),
        platform="linux/amd64",
        verification=replace(VerificationConfig(), crl_cache_dir=tmp_path / "crl", timeout=60.0),
    )
    snap = build_snapshot(None, 1, clock=FixedClock(NOW), base=config)
    audit: list[dict[str, Any]] = []
    decider = build_engine(
        lambda: snap,
        clock=FixedClock(NOW),
        fetcher=build_fetcher(),
        observer=DecisionRecorder(audit.append),
    )
    with PodRuntime(kind, RuntimeOptions(certs_d=certs_d)) as runtime:
        proxy = CriProxy(str(runtime.socket), decider.decide, recorder=DecisionRecorder(None))
        socket_path = Path(f"/tmp/pg-canon-{uuid.uuid4().hex[:12]}.sock")
        with ProxyThread(proxy, socket_path):
            via, direct = CriClient(socket_path), CriClient(runtime.socket)
            try:
                yield Gate(registry, certs_d, via, direct, audit)
            finally:
                via.close()
                direct.close()
                decider.close()
                socket_path.unlink(missing_ok=True)


def test_a_zero_padded_port_selects_the_statement_of_the_canonical_spelling(gate: Gate) -> None:
    port = gate.registry.port
    canonical = gate.registry.host
    for padded in (f"127.0.0.1:0{port}", f"127.0.0.1:00{port}"):
        gate.spell(padded)
        # containerd really pulls this spelling (the '*' statement skips verification) ...
        assert gate.pull(f"{padded}/{OPEN}:v1") is Reason.SKIPPED_BY_POLICY
        assert gate.statement() == "open"
        # ... and the strict scope, written canonically, covers it: unsigned is denied.
        assert gate.pull(f"{padded}/{STRICT}:v1") is Reason.NO_SIGNATURE
    assert gate.pull(f"{canonical}/{STRICT}:v1") is Reason.NO_SIGNATURE


def test_ipv6_spellings_select_one_statement(gate: Gate, request: pytest.FixtureRequest) -> None:
    if "1.6" in request.node.callspec.id:
        pytest.skip("containerd 1.6 refuses IPv6 references ('invalid reference format')")
    port = gate.registry.port
    for host in ("[::1]", "[0:0::1]", "[::0:1]", "[0000::0001]"):
        spelled = gate.spell(f"{host}:{port}")
        assert gate.pull(f"{spelled}/{OPEN}:v1") is Reason.SKIPPED_BY_POLICY
        assert gate.statement() == "open"
        padded = gate.spell(f"{host}:0{port}")
        assert gate.pull(f"{padded}/{STRICT}:v1") is Reason.SKIPPED_BY_POLICY
        assert gate.statement() == "open"


def test_certs_d_is_looked_up_by_the_host_as_written(gate: Gate) -> None:
    """Only the canonical spelling has a certs.d entry (the registry's CA and client
    certificate): containerd does not use it for a zero-padded spelling, and neither does
    pullgate, so both fail to reach the mutual-TLS registry."""
    padded = f"127.0.0.1:000{gate.registry.port}/{OPEN}:v1"
    with pytest.raises(grpc.RpcError):
        gate.direct.pull(padded)
    with pytest.raises(grpc.RpcError) as excinfo:
        gate.via.pull(padded)
    details = cast(grpc.Call, excinfo.value).details() or ""
    assert _reason_after(REGISTRY_PREFIX, details) is Reason.REGISTRY_TLS
    assert not gate.direct.has_image(padded)
