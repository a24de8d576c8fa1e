"""pullgate and the real containerd never pick different manifests from the same index.

Every shape of :mod:`tests.integration.differential_shapes` is pushed to Debian's real
docker-registry (mutual TLS), signed as the shape says, decided by pullgate's real decision
engine under every requirement (``index``, ``platform``, ``both``, ``either``) for linux/amd64,
and pulled by the real runtimes: Debian's containerd 1.6 through CRI ``PullImage``, and
containerd 2.4 (``../shared/runtimes``) through ``ctr image pull`` (its transfer service). Which
manifest a runtime will run is what its CRI ``ImageStatus`` reports: the image id is the config
digest of the manifest containerd resolved for the node, and every manifest of the corpus has
its own config. A pull that fails stores nothing runnable.

A disagreement is an allow whose pulled manifest pullgate did not verify: ``platform`` and
``both`` must have verified that very manifest as a platform subject; ``index`` must have
verified the index listing it (directly or through a nested index); ``either`` one of the two.
The test prints ``differential: N shapes, 0 disagreements`` per runtime.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest

from pullgate.common.clock import FixedClock
from pullgate.common.descriptor import Descriptor
from pullgate.config import DaemonConfig, Requirement, VerificationConfig
from pullgate.decision.decider import Decider
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.trust.snapshot import build_snapshot
from tests.integration.differential_shapes import SHAPES, Refs, Shape
from tests.support.containerd import (
    Containerd,
    CriClient,
    containerd_unavailable,
    push_platform_manifest,
    write_hosts_toml,
)
from tests.support.docker_registry import REGISTRY_BINARY, RegistryFactory, registry_available
from tests.support.parts import build_engine, build_fetcher
from tests.support.pki import NOW, Chain, KeySpec, Pki, write_store
from tests.support.push import MT_JWS, Pusher
from tests.support.runtimes import PodRuntime, RuntimeOptions, runtimes_unavailable
from tests.support.signing import sign_jws

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]

PLATFORM = "linux/amd64"
REQUIREMENTS = tuple(Requirement)
_STATUS_WAIT = 10.0  # seconds for containerd 2.4's CRI to see an image ctr pulled (bound only)


@dataclass(frozen=True)
class Pushed:
    """One shape as pushed: its reference, documents' digests and what pullgate decided."""

    shape: Shape
    ref: str
    by_config: dict[str, str]  # config digest → manifest name
    covered: frozenset[str]  # manifest names listed by the top index (or a nested one it lists)
    decisions: dict[Requirement, Decision]
    names: dict[str, str]  # digest → name


@dataclass
class World:
    """What the module shares: the registry, its certs.d, and every shape pushed and decided."""

    tmp: Path
    certs_d: Path
    shapes: list[Pushed]


def _sign(pusher: Pusher, chain: Chain, repo: str, subject: Descriptor) -> None:
    pusher.push_signature(repo, subject, sign_jws(chain, subject), MT_JWS, certificates=chain.x509)


def _config_digest(pusher: Pusher, repo: str, manifest: Descriptor) -> str:
    data = pusher.fetch_manifest(repo, manifest.digest)
    assert data is not None
    return str(json.loads(data)["config"]["digest"])


def _push(pusher: Pusher, chain: Chain, host: str, n: int, shape: Shape) -> Pushed:
    repo = f"diff/s{n}"
    pushed: dict[str, Descriptor] = {}
    by_config: dict[str, str] = {}
    for name, platform in shape.manifests.items():
        files = {"hello": f"{shape.name} {name} {uuid.uuid4()}".encode()}
        pushed[name] = push_platform_manifest(pusher, repo, platform, files)
        by_config[_config_digest(pusher, repo, pushed[name])] = name
    nested_text: dict[str, str] = {}
    for name, (media_type, build) in shape.nested.items():
        nested_text[name] = build(Refs(pushed))
        data = nested_text[name].encode()
        pushed[name] = pusher.push_manifest(repo, _sha(data), data, media_type)
    text = shape.index(Refs(pushed))
    top = pusher.push_manifest(repo, "t", text.encode(), shape.media_type)
    for name in shape.signed:
        _sign(pusher, chain, repo, top if name == "index" else pushed[name])
    listed = {n for n, d in pushed.items() if d.digest in text}
    listed |= {
        n
        for n, d in pushed.items()
        for m in listed & set(nested_text)
        if d.digest in nested_text[m]
    }
    names = {d.digest: n for n, d in pushed.items()}
    return Pushed(shape, f"{host}/{repo}:t", by_config, frozenset(listed), {}, names)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _decider(tmp: Path, certs_d: Path, chain: Chain) -> Decider:
    trust_dir = tmp / "trust"
    write_store(trust_dir, "ca", "diff", [chain.root.cert])
    statement = {
        "name": "diff",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:diff"],
        "trustedIdentities": ["*"],
    }
    policy = {"version": "1.0", "trustPolicies": [statement]}
    (trust_dir / "trustpolicy.json").write_text(json.dumps(policy))
    config = DaemonConfig(
        trust_dir=trust_dir,
        hosts_dirs=(certs_d,),
        platform=PLATFORM,
        verification=replace(VerificationConfig(), crl_cache_dir=tmp / "crl", timeout=60.0),
    )
    snap = build_snapshot(None, 1, clock=FixedClock(NOW), base=config)
    return build_engine(lambda: snap, clock=FixedClock(NOW), fetcher=build_fetcher())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("differential")
    certs_d = tmp / "certs.d"
    certs_d.mkdir()
    chain = Pki(name="differential").chain(key=KeySpec.ec(256))
    decider = _decider(tmp, certs_d, chain)
    with RegistryFactory(tmp / "registries") as registries:
        registry = registries.start()
        write_hosts_toml(certs_d, registry)
        try:
            with Pusher.for_registry(registry) as pusher:
                shapes = [_push(pusher, chain, registry.host, n, s) for n, s in enumerate(SHAPES)]
            for pushed in shapes:
                for req in REQUIREMENTS:
                    request = DecisionRequest(reference=pushed.ref, platform=PLATFORM, require=req)
                    pushed.decisions[req] = decider.decide(request)
            yield World(tmp, certs_d, shapes)
        finally:
            decider.close()


def _agrees(pushed: Pushed, req: Requirement, decision: Decision, pulled: str | None) -> bool:
    """False only for an allow of a pull whose manifest pullgate did not verify."""
    if not decision.allowed or pulled is None:
        return True
    verified = {
        pushed.names.get(s.digest) for s in decision.subjects if s.verified and s.role != "index"
    }
    index_ok = any(s.verified for s in decision.subjects if s.role == "index")
    by_index = index_ok and pulled in pushed.covered
    by_platform = pulled in verified
    return {
        Requirement.INDEX: by_index,
        Requirement.PLATFORM: by_platform,
        Requirement.BOTH: by_platform and index_ok,
        Requirement.EITHER: by_platform or by_index,
    }[req]


def _image_id(client: CriClient, ref: str, *, wait: float = 0.0) -> str | None:
    deadline = time.monotonic() + wait
    while True:
        status = client.status(ref)
        if status.HasField("image"):
            return str(status.image.id)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def _report(
    world: World,
    runtime: str,
    pulled_of: Callable[[Pushed], str | None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    disagreements: list[str] = []
    lines: list[str] = []
    allowed_as_pulled = 0
    for pushed in world.shapes:
        pulled = pulled_of(pushed)
        verdicts = []
        for req in REQUIREMENTS:
            decision = pushed.decisions[req]
            agrees = _agrees(pushed, req, decision, pulled)
            allowed_as_pulled += int(decision.allowed and pulled is not None and agrees)
            verdict = "allow" if decision.allowed else f"deny {decision.reason.value}"
            verdicts.append(f"{req.value}={verdict}")
            if not agrees:
                disagreements.append(
                    f"{pushed.shape.name} [{req.value}]: pulled {pulled}, {verdict}"
                )
        lines.append(f"  {pushed.shape.name}: pulled {pulled or '-'}; " + ", ".join(verdicts))
    with capsys.disabled():
        print(f"\n{runtime}:")
        print("\n".join(lines))
        counts = f"{len(world.shapes)} shapes, {len(disagreements)} disagreements"
        print(f"differential: {counts} ({runtime})")
    assert not disagreements, "\n".join(disagreements)
    assert allowed_as_pulled >= 10  # the corpus is not passed by denying everything


_UNAVAILABLE_16 = containerd_unavailable()
_UNAVAILABLE_24 = runtimes_unavailable("2.4")


@pytest.mark.skipif(_UNAVAILABLE_16 is not None, reason=f"containerd 1.6: {_UNAVAILABLE_16}")
def test_differential_containerd_16_cri(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    with Containerd(world.certs_d) as containerd, CriClient(containerd.socket) as client:

        def pulled(pushed: Pushed) -> str | None:
            try:
                client.pull(pushed.ref)
            except grpc.RpcError:
                return None
            image_id = _image_id(client, pushed.ref)
            return pushed.by_config.get(image_id or "", image_id)

        _report(world, "containerd 1.6 CRI", pulled, capsys)


@pytest.mark.skipif(_UNAVAILABLE_24 is not None, reason=f"containerd 2.4: {_UNAVAILABLE_24}")
def test_differential_containerd_24_ctr(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    options = RuntimeOptions(certs_d=world.certs_d)
    with PodRuntime("2.4", options) as runtime, CriClient(runtime.socket) as client:

        def pulled(pushed: Pushed) -> str | None:
            out = runtime.ctr(
                "image", "pull", "--hosts-dir", str(world.certs_d), pushed.ref, check=False
            )
            if out.returncode != 0:
                return None
            image_id = _image_id(client, pushed.ref, wait=_STATUS_WAIT)
            return pushed.by_config.get(image_id or "", image_id)

        _report(world, "containerd 2.4 ctr pull", pulled, capsys)


def test_corpus_lines_are_unique() -> None:
    names = [s.name for s in SHAPES]
    assert len(names) == len(set(names))
    assert len(names) >= 30
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", n) for n in names)
