"""Fixtures of the start-gate tests: the decision-layer world plus a verdict store and gate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pullgate.common.clock import Clock, FixedClock
from pullgate.common.descriptor import Descriptor
from pullgate.config import StatementSettings
from pullgate.cri.methods import IMAGE_STATUS, LIST_CONTAINERS, REMOVE_CONTAINER
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.cri.runtime_proxy import RuntimeProxy
from pullgate.decision.decider import Decider
from pullgate.decision.record import DecisionRecorder
from pullgate.start.break_glass import BreakGlass
from pullgate.start.gate import StartGate
from pullgate.start.verdicts import VerdictStore
from tests.support.fake_registry import OCI_INDEX, OCI_MANIFEST
from tests.support.parts import build_engine
from tests.support.pki import NOW
from tests.unit.decision.world import REPO, NoNetworkFetcher, Snap, World, make_world, platform_of

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


@dataclass
class Image:
    """An image pushed to the fake registry: its manifest and config descriptors."""

    manifest: Descriptor
    config: Descriptor


@dataclass
class GateWorld:
    world: World
    store: VerdictStore
    holder: dict[str, Snap]
    decider: Decider
    gate: StartGate
    audits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def snap(self) -> Snap:
        return self.holder["snap"]

    def image(self, name: str, repo: str = REPO, tag: str | None = None) -> Image:
        """A one-layer image whose config is unique to ``name``."""
        reg = self.world.reg
        config = reg.put_blob(repo, json.dumps({"name": name}).encode(), CONFIG_TYPE)
        layer = reg.put_blob(repo, name.encode(), "application/vnd.oci.image.layer.v1.tar")
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json()],
        }
        return Image(manifest=reg.put_manifest(repo, doc, OCI_MANIFEST, tag), config=config)

    def index(self, amd64: Image, arm64: Image, repo: str = REPO, tag: str = "multi") -> Descriptor:
        entries = [
            {**amd64.manifest.to_json(), "platform": platform_of("linux", "amd64")},
            {**arm64.manifest.to_json(), "platform": platform_of("linux", "arm64")},
        ]
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return self.world.reg.put_manifest(repo, doc, OCI_INDEX, tag=tag)

    def ref(self, digest: str, repo: str = REPO) -> str:
        return f"{self.world.reg.host}/{repo}@{digest}"

    def reload(self, settings: StatementSettings | None = None) -> None:
        """A new trust snapshot (same files): nothing recorded before is current."""
        self.holder["snap"] = self.world.snapshot(settings)


def make_gate(
    world: World,
    tmp_path: Path,
    *,
    critical: tuple[str, ...] = (),
    glass: Path | None = None,
    store: VerdictStore | None = None,
    max_age: float | None = None,
    clock: Clock | None = None,
) -> GateWorld:
    store = store if store is not None else VerdictStore()
    holder: dict[str, Snap] = {"snap": world.snapshot()}
    decider = build_engine(
        lambda: holder["snap"],
        clock=clock or FixedClock(NOW),
        fetcher=NoNetworkFetcher(),
        on_allow=store.record,
    )
    audits: list[dict[str, Any]] = []
    gate = StartGate(
        store=store,
        snapshot=lambda: holder["snap"].digest,
        decide=decider.decide,
        critical=critical,
        break_glass=BreakGlass(glass, FixedClock(NOW)) if glass is not None else None,
        audit=audits.append,
        max_age=(lambda: max_age) if max_age is not None else None,
    )
    return GateWorld(world, store, holder, decider, gate, audits)


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[GateWorld]:
    with make_world(tmp_path) as world:
        gate_world = make_gate(world, tmp_path, glass=tmp_path / "break-glass")
        try:
            yield gate_world
        finally:
            gate_world.gate.close()
            gate_world.decider.close()


@dataclass
class FakeRuntime:
    """The runtime's images and containers as CRI control calls see them."""

    images: dict[str, api_pb2.Image] = field(default_factory=dict)  # by name or ID
    containers: dict[str, api_pb2.Container] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def control(self, method: str, request: bytes) -> bytes:
        self.calls.append(method)
        if method == IMAGE_STATUS:
            name = api_pb2.ImageStatusRequest.FromString(request).image.image
            found = self.images.get(name)
            answer = api_pb2.ImageStatusResponse(image=found) if found else None
            return (answer or api_pb2.ImageStatusResponse()).SerializeToString()
        if method == LIST_CONTAINERS:
            wanted = api_pb2.ListContainersRequest.FromString(request).filter.id
            listed = [c for c in self.containers.values() if c.id == wanted]
            return api_pb2.ListContainersResponse(containers=listed).SerializeToString()
        if method == REMOVE_CONTAINER:
            self.removed.append(api_pb2.RemoveContainerRequest.FromString(request).container_id)
            return b""
        raise AssertionError(method)


@pytest.fixture
def runtime() -> FakeRuntime:
    """The fake runtime behind :func:`proxy`."""
    return FakeRuntime()


@pytest.fixture
def proxy(gw: GateWorld, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch) -> RuntimeProxy:
    """The RuntimeService gate over ``runtime``'s control calls."""
    monkeypatch.setattr(RuntimeProxy, "_control", lambda _self, m, r: runtime.control(m, r))
    return RuntimeProxy(
        "unix:///none.sock", gw.decider.decide, gw.gate, recorder=DecisionRecorder(None)
    )
