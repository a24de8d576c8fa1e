"""A decision-layer test world: a registry (in memory by default: no sockets; the in-process HTTP
fake registry where a test is about the registry store's wire behaviour) with a signed-able
3-entry index, a trust directory, and a factory of deciders over a stand-in snapshot."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from pullgate.common.clock import Clock, FixedClock
from pullgate.common.descriptor import Descriptor
from pullgate.config import CacheConfig, DaemonConfig, StatementSettings, VerificationConfig
from pullgate.decision.decider import Decider
from pullgate.decision.record import DecisionRecorder
from pullgate.registry.auth import CredentialStore
from pullgate.registry.model import Endpoint, HostsConfig
from pullgate.registry.transport import RequestRecord
from pullgate.trust.files import TrustConfig, load_trust_config
from pullgate.verification.cache import CertMemo
from tests.support.fake_registry import OCI_INDEX, FakeRegistry
from tests.support.memory_store import MemoryRegistry
from tests.support.parts import build_engine
from tests.support.pki import NOW, Chain, KeySpec, Pki, write_store
from tests.support.signing import sign_jws

REPO = "app"
SECRET = "hunter2-very-secret-password"


@dataclass(frozen=True)
class Snap:
    """Stand-in for ``pullgate.trust.snapshot.Snapshot`` (same fields)."""

    generation: int
    config: DaemonConfig
    trust: TrustConfig
    hashes: Mapping[str, str]
    digest: str
    loaded_at: datetime
    endpoints: tuple[Endpoint, ...] = ()
    docker: CredentialStore | None = None
    cert_memo: CertMemo = field(default_factory=CertMemo, compare=False)

    def hosts(self, registry: str) -> HostsConfig:
        return HostsConfig(
            registry=registry, directory=None, source="none", endpoints=self.endpoints
        )


class NoNetworkFetcher:
    def get(self, url: str, *, timeout: float, max_bytes: int) -> bytes:
        raise AssertionError(f"unexpected revocation fetch {url}")

    def post(
        self, url: str, body: bytes, *, content_type: str, timeout: float, max_bytes: int
    ) -> bytes:
        raise AssertionError(f"unexpected revocation fetch {url}")


R = TypeVar("R", bound=MemoryRegistry | FakeRegistry)


@dataclass
class BaseWorld(Generic[R]):
    tmp: Path
    reg: R
    chain: Chain
    trust: TrustConfig
    index: Descriptor
    amd64: Descriptor
    arm64: Descriptor
    audits: list[dict[str, Any]] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    generation: int = 0
    hook: Callable[[RequestRecord], None] | None = None

    def log_request(self, record: RequestRecord) -> None:
        if self.hook is not None:
            self.hook(record)
        self.requests.append(record)

    def sign(self, target: Descriptor) -> None:
        self.reg.add_signature(REPO, target, sign_jws(self.chain, target))

    def decider(
        self,
        settings: StatementSettings | None = None,
        *,
        endpoints: tuple[Endpoint, ...] | None = None,
        timeout: float = 30.0,
        cache: CacheConfig | None = None,
        clock: Clock | None = None,
        max_workers: int = 32,
    ) -> Decider:
        snap = self.snapshot(settings, endpoints=endpoints, timeout=timeout, cache=cache)
        memory = self.reg if isinstance(self.reg, MemoryRegistry) else None
        return build_engine(
            lambda: snap,
            clock=clock or FixedClock(NOW),
            fetcher=NoNetworkFetcher(),
            request_log=self.log_request,
            observer=DecisionRecorder(self.audits.append),
            stores=memory.opener if memory is not None else None,
            max_workers=max_workers,
        )

    def snapshot(
        self,
        settings: StatementSettings | None = None,
        *,
        endpoints: tuple[Endpoint, ...] | None = None,
        timeout: float = 30.0,
        cache: CacheConfig | None = None,
    ) -> Snap:
        """A new snapshot generation (what :meth:`decider` serves)."""
        self.generation += 1
        config = DaemonConfig(
            trust_dir=self.trust.trust_dir,
            platform="linux/amd64",
            statements={"app": settings or StatementSettings()},
            verification=VerificationConfig(crl_cache_dir=self.tmp / "crl", timeout=timeout),
            cache=cache or CacheConfig(),
        )
        return Snap(
            generation=self.generation,
            config=config,
            trust=self.trust,
            hashes={},
            digest=hashlib.sha256(f"snap-{self.generation}".encode()).hexdigest(),
            loaded_at=NOW,
            endpoints=endpoints if endpoints is not None else self._endpoints(),
        )

    def _endpoints(self) -> tuple[Endpoint, ...]:
        return (self.reg.endpoint(),) if isinstance(self.reg, FakeRegistry) else ()

    def ref(self, tag: str = "v1", repo: str = REPO) -> str:
        return f"{self.reg.host}/{repo}:{tag}"


def policy(host: str) -> dict[str, Any]:
    return {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "app",
                "registryScopes": [f"{host}/{REPO}"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:app"],
                "trustedIdentities": ["*"],
            }
        ],
    }


def platform_of(os: str, arch: str) -> dict[str, str]:
    return {"os": os, "architecture": arch}


def _populate(world_reg: R, tmp_path: Path) -> BaseWorld[R]:
    chain = Pki(name="decider").chain(key=KeySpec.ec(256))
    trust_dir = tmp_path / "trust"
    write_store(trust_dir, "ca", "app", [chain.root.cert])
    (trust_dir / "trustpolicy.json").write_text(json.dumps(policy(world_reg.host)))
    amd64 = world_reg.put_image(REPO, tag=None, payload=b"amd64 layer")
    arm64 = world_reg.put_image(REPO, tag=None, payload=b"arm64 layer")
    attestation = world_reg.put_image(REPO, tag=None, payload=b"attestation")
    entries = [
        {**amd64.to_json(), "platform": platform_of("linux", "amd64")},
        {**arm64.to_json(), "platform": platform_of("linux", "arm64")},
        {
            **attestation.to_json(),
            "platform": platform_of("unknown", "unknown"),
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        },
    ]
    index = world_reg.put_manifest(
        REPO,
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
        OCI_INDEX,
        tag="v1",
    )
    trust = load_trust_config(trust_dir)
    return BaseWorld(tmp_path, world_reg, chain, trust, index, amd64, arm64)


MemWorld = BaseWorld[MemoryRegistry]
HttpWorld = BaseWorld[FakeRegistry]
World = HttpWorld


def memory_world(tmp_path: Path) -> MemWorld:
    """The world over an in-memory registry (no sockets)."""
    return _populate(MemoryRegistry(), tmp_path)


@contextmanager
def make_world(tmp_path: Path) -> Iterator[HttpWorld]:
    """The world, its in-process HTTP fake registry running for the duration."""
    with FakeRegistry() as reg:
        yield _populate(reg, tmp_path)


@dataclass
class StepClock:
    """A clock tests move forward by hand."""

    instant: datetime = NOW

    def now(self) -> datetime:
        return self.instant

    def advance(self, seconds: float) -> None:
        self.instant += timedelta(seconds=seconds)
