"""The CRI ImageService proxy end to end on Debian's real containerd.

A CRI client generated from the ``runtime.v1`` protos plays the kubelet against pullgate's CRI
socket; pullgate forwards to a private containerd 1.6 (CRI plugin, ``registry.config_path`` at a
test ``certs.d`` holding the registry's CA and client certificate), which pulls from Debian's
real ``docker-registry`` behind mutual TLS. Decisions come from the real
:class:`~pullgate.decision.decider.Decider` over a snapshot of a test trust directory and the
same ``certs.d`` — except in the tag-moved test, whose decision is a stub that reports a digest
the registry never served (that is the only way to move a tag between verify and pull
deterministically).

Denials are judged by gRPC code and the kubelet-visible prefix (docs/containerd.md §3.6)
plus the typed reason that follows it, and by what containerd holds afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from pullgate.common.clock import FixedClock
from pullgate.common.descriptor import Descriptor
from pullgate.config import DaemonConfig, VerificationConfig
from pullgate.cri.proxy import CriProxy
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.decision.audit_log import AuditLog
from pullgate.decision.decider import Decider
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import ConfigError, Reason
from pullgate.trust.snapshot import Snapshot, build_snapshot
from tests.support.containerd import (
    Containerd,
    CriClient,
    PushedImage,
    containerd_unavailable,
    push_unpackable_image,
    write_hosts_toml,
)
from tests.support.docker_registry import (
    REGISTRY_BINARY,
    DockerRegistry,
    RegistryFactory,
    registry_available,
)
from tests.support.grpc_harness import run_daemon
from tests.support.parts import build_engine, build_fetcher
from tests.support.pki import NOW, Chain, KeySpec, Pki, write_store
from tests.support.push import MT_JWS, Pusher
from tests.support.signing import sign_jws

_UNAVAILABLE = containerd_unavailable()

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
    pytest.mark.skipif(_UNAVAILABLE is not None, reason=f"containerd: {_UNAVAILABLE}"),
]

SIGNATURE_PREFIX = "SignatureValidationFailed: "
REGISTRY_PREFIX = "RegistryUnavailable: "


def _policy() -> dict[str, Any]:
    return {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "cri",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:cri"],
                "trustedIdentities": ["*"],
            }
        ],
    }


@dataclass
class Node:
    """What one module shares: a registry, containerd, certs.d, a signer, the decider."""

    tmp: Path
    registries: RegistryFactory
    registry: DockerRegistry
    containerd: Containerd
    certs_d: Path
    chain: Chain
    decider: Decider

    def pusher(self, registry: DockerRegistry | None = None) -> Pusher:
        return Pusher.for_registry(registry or self.registry)

    def image(
        self, repo: str, tag: str, *, signed: bool, registry: DockerRegistry | None = None
    ) -> PushedImage:
        """Push a 2-platform unpackable image; sign the index and both manifests if asked."""
        registry = registry or self.registry
        with self.pusher(registry) as pusher:
            pushed = push_unpackable_image(pusher, repo, tag, content=uuid.uuid4().bytes)
            if signed:
                for subject in (pushed.top, *pushed.platforms.values()):
                    self._sign(pusher, repo, subject)
        return pushed

    def _sign(self, pusher: Pusher, repo: str, subject: Descriptor) -> None:
        pusher.push_signature(
            repo, subject, sign_jws(self.chain, subject), MT_JWS, certificates=self.chain.x509
        )


def _snapshot(tmp: Path, certs_d: Path, chain: Chain) -> Snapshot:
    trust_dir = tmp / "trust"
    write_store(trust_dir, "ca", "cri", [chain.root.cert])
    (trust_dir / "trustpolicy.json").write_text(json.dumps(_policy()))
    config = DaemonConfig(
        trust_dir=trust_dir,
        hosts_dirs=(certs_d,),
        platform="linux/amd64",
        verification=replace(VerificationConfig(), crl_cache_dir=tmp / "crl", timeout=60.0),
    )
    return build_snapshot(None, 1, clock=FixedClock(NOW), base=config)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("cri")
    certs_d = tmp / "certs.d"
    certs_d.mkdir()
    chain = Pki(name="cri e2e").chain(key=KeySpec.ec(256))
    snap = _snapshot(tmp, certs_d, chain)
    decider = build_engine(lambda: snap, clock=FixedClock(NOW), fetcher=build_fetcher())
    with RegistryFactory(tmp / "registries") as registries:
        registry = registries.start()
        write_hosts_toml(certs_d, registry)
        with Containerd(certs_d, keep_logs=tmp / "containerd.log") as containerd:
            try:
                yield Node(tmp, registries, registry, containerd, certs_d, chain, decider)
            finally:
                decider.close()


class ProxyThread:
    """Runs a :class:`CriProxy` on its own event loop in a thread (tests stay synchronous)."""

    def __init__(self, proxy: CriProxy, socket_path: Path) -> None:
        self.proxy = proxy
        self.socket_path = socket_path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(self.socket_path), self._loop).result(
            timeout=30
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.proxy.stop(1.0), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


@dataclass
class Gate:
    """pullgate's CRI socket in front of the module's containerd, plus both clients."""

    proxy: CriProxy
    via: CriClient  # the kubelet, pointed at pullgate
    direct: CriClient  # the same calls straight to containerd
    audit: list[dict[str, Any]]


@pytest.fixture
def gate_factory(node: Node, tmp_path: Path) -> Iterator[Callable[..., Gate]]:
    stack: list[tuple[ProxyThread, CriClient, CriClient]] = []

    def make(
        *,
        decide: Callable[[DecisionRequest], Decision] | None = None,
        critical: Sequence[str] = (),
    ) -> Gate:
        records: list[dict[str, Any]] = []
        audit_log = AuditLog()

        def audit(record: dict[str, Any]) -> None:  # kept for assertions, written as serve does
            records.append(record)
            audit_log.write(record)

        proxy = CriProxy(
            str(node.containerd.socket),
            decide or node.decider.decide,
            critical=critical,
            recorder=DecisionRecorder(audit),
        )
        socket_path = Path(f"/tmp/pg-cri-{uuid.uuid4().hex[:12]}.sock")
        runner = ProxyThread(proxy, socket_path).__enter__()
        via, direct = CriClient(socket_path), CriClient(node.containerd.socket)
        stack.append((runner, via, direct))
        return Gate(proxy, via, direct, records)

    yield make
    for runner, via, direct in stack:
        via.close()
        direct.close()
        runner.__exit__(None, None, None)
        runner.socket_path.unlink(missing_ok=True)


@pytest.fixture
def gate(gate_factory: Callable[..., Gate]) -> Gate:
    return gate_factory()


def _ref(registry: DockerRegistry, repo: str, tag: str) -> str:
    return f"{registry.host}/{repo}:{tag}"


def _denied(excinfo: pytest.ExceptionInfo[grpc.RpcError]) -> tuple[grpc.StatusCode, str]:
    # grpc raises objects that are both RpcError and Call; the stubs cannot express that.
    err = cast(grpc.Call, excinfo.value)
    return err.code(), err.details() or ""


def _reason_after(prefix: str, details: str) -> Reason:
    """The typed reason the denial names right after its kubelet prefix."""
    assert details.startswith(prefix), details
    return Reason(details[len(prefix) :].split(":", 1)[0])


# -- allow -------------------------------------------------------------------------------------


def test_signed_two_platform_image_is_pulled_into_containerd(node: Node, gate: Gate) -> None:
    pushed = node.image("team/signed", "v1", signed=True)
    ref = _ref(node.registry, "team/signed", "v1")

    response = gate.via.pull(ref)

    status = gate.direct.status(ref)
    assert status.HasField("image")
    assert response.image_ref == status.image.id
    assert f"{node.registry.host}/team/signed@{pushed.top.digest}" in status.image.repo_digests
    assert ref in status.image.repo_tags


def test_pull_by_digest_is_pinned_and_allowed(node: Node, gate: Gate) -> None:
    pushed = node.image("team/bydigest", "v1", signed=True)
    ref = f"{node.registry.host}/team/bydigest@{pushed.top.digest}"

    gate.via.pull(ref)

    assert gate.direct.has_image(ref)


# -- deny --------------------------------------------------------------------------------------


def test_unsigned_image_is_denied_and_not_in_containerd(node: Node, gate: Gate) -> None:
    node.image("team/unsigned", "v1", signed=False)
    ref = _ref(node.registry, "team/unsigned", "v1")

    with pytest.raises(grpc.RpcError) as excinfo:
        gate.via.pull(ref)

    code, details = _denied(excinfo)
    assert code == grpc.StatusCode.UNKNOWN
    assert _reason_after(SIGNATURE_PREFIX, details) == Reason.NO_SIGNATURE
    assert not gate.direct.has_image(ref)
    assert all(ref not in image.repo_tags for image in gate.direct.list().images)


def test_registry_down_is_registry_unavailable(node: Node, gate: Gate) -> None:
    registry = node.registries.start()
    write_hosts_toml(node.certs_d, registry)
    node.image("team/down", "v1", signed=True, registry=registry)
    ref = _ref(registry, "team/down", "v1")
    registry.stop()

    with pytest.raises(grpc.RpcError) as excinfo:
        gate.via.pull(ref)

    code, details = _denied(excinfo)
    assert code == grpc.StatusCode.UNKNOWN
    assert _reason_after(REGISTRY_PREFIX, details) == Reason.REGISTRY_UNREACHABLE
    assert not gate.direct.has_image(ref)


def test_tag_moved_between_verify_and_pull_is_removed_and_denied(
    node: Node, gate_factory: Callable[..., Gate]
) -> None:
    node.image("team/moved", "v1", signed=True)
    ref = _ref(node.registry, "team/moved", "v1")
    verified_elsewhere = "sha256:" + "ab" * 32  # what "verification" saw before the tag moved
    calls: list[DecisionRequest] = []

    def stale_allow(request: DecisionRequest) -> Decision:
        calls.append(request)
        return Decision(
            allowed=True,
            reason=Reason.VERIFIED,
            message="verified",
            reference=request.reference,
            digest=verified_elsewhere,
        )

    gate = gate_factory(decide=stale_allow)
    with pytest.raises(grpc.RpcError) as excinfo:
        gate.via.pull(ref)

    code, details = _denied(excinfo)
    assert code == grpc.StatusCode.UNKNOWN
    assert _reason_after(SIGNATURE_PREFIX, details) == Reason.DESCRIPTOR_MISMATCH
    assert [c.reference for c in calls] == [ref]
    assert not gate.direct.has_image(ref)


# -- critical images ---------------------------------------------------------------------------


def test_critical_image_skips_verification_and_is_audited(
    node: Node, gate_factory: Callable[..., Gate], caplog: pytest.LogCaptureFixture
) -> None:
    node.image("infra/pause", "3.9", signed=False)
    ref = _ref(node.registry, "infra/pause", "3.9")
    gate = gate_factory(critical=[f"{node.registry.host}/infra/*"])

    with caplog.at_level(logging.INFO, logger="pullgate.audit"):
        gate.via.pull(ref)

    assert gate.direct.has_image(ref)
    assert [(r["critical"], r["reference"], r["pod"]) for r in gate.audit] == [
        (True, ref, "default/test-pod")
    ]
    # One JSON line on pullgate.audit per critical pull (not one from the proxy and one more
    # from the daemon's audit log).
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pullgate.audit"]
    assert [(d["critical"], d["reference"]) for d in logged] == [(True, ref)]


def test_unlisted_unsigned_image_is_still_denied_with_a_critical_list(
    node: Node, gate_factory: Callable[..., Gate]
) -> None:
    node.image("team/notcritical", "v1", signed=False)
    ref = _ref(node.registry, "team/notcritical", "v1")
    gate = gate_factory(critical=[f"{node.registry.host}/infra/*"])

    with pytest.raises(grpc.RpcError) as excinfo:
        gate.via.pull(ref)

    assert _reason_after(SIGNATURE_PREFIX, _denied(excinfo)[1]) == Reason.NO_SIGNATURE
    assert gate.audit == []


def test_runtime_errors_pass_through_verbatim(
    node: Node, gate_factory: Callable[..., Gate]
) -> None:
    ref = _ref(node.registry, "infra/missing", "v1")
    gate = gate_factory(critical=[ref])

    with pytest.raises(grpc.RpcError) as direct:
        gate.direct.pull(ref)
    with pytest.raises(grpc.RpcError) as via:
        gate.via.pull(ref)

    assert _denied(via) == _denied(direct)
    assert _denied(via)[0] == grpc.StatusCode.NOT_FOUND, _denied(via)


# -- pass-through ------------------------------------------------------------------------------


def _pulled(node: Node, gate: Gate, repo: str) -> tuple[str, PushedImage]:
    pushed = node.image(repo, "v1", signed=True)
    ref = _ref(node.registry, repo, "v1")
    gate.via.pull(ref)
    return ref, pushed


def _without_timestamps(info: api_pb2.ImageFsInfoResponse) -> api_pb2.ImageFsInfoResponse:
    copy = api_pb2.ImageFsInfoResponse()
    copy.CopyFrom(info)
    for fs in (*copy.image_filesystems, *copy.container_filesystems):
        fs.timestamp = 0
    return copy


def _image_set(response: api_pb2.ListImagesResponse) -> list[bytes]:
    return sorted(image.SerializeToString(deterministic=True) for image in response.images)


def test_image_fs_info_list_and_status_match_containerd(node: Node, gate: Gate) -> None:
    ref, _ = _pulled(node, gate, "team/passthrough")

    # containerd 1.6 stamps ImageFsInfo with the time of the call: the proxied answer must be
    # containerd's answer from between the two direct calls, identical in everything else.
    fs_before, fs_via, fs_after = gate.direct.fs_info(), gate.via.fs_info(), gate.direct.fs_info()
    assert len(fs_via.image_filesystems) >= 1
    stamps = [
        [fs.timestamp for fs in info.image_filesystems] for info in (fs_before, fs_via, fs_after)
    ]
    assert stamps[0] <= stamps[1] <= stamps[2]
    assert _without_timestamps(fs_via) in (
        _without_timestamps(fs_before),
        _without_timestamps(fs_after),
    )

    # containerd lists images in map order: compare them as sets.
    list_before, list_via, list_after = gate.direct.list(), gate.via.list(), gate.direct.list()
    assert any(ref in image.repo_tags for image in list_via.images)
    assert _image_set(list_via) in (_image_set(list_before), _image_set(list_after))

    assert gate.via.status(ref) == gate.direct.status(ref)
    absent = _ref(node.registry, "team/never-pulled", "v1")
    assert gate.via.status(absent) == gate.direct.status(absent)
    assert not gate.via.status(absent).HasField("image")


def test_remove_image_passes_through_and_is_idempotent(node: Node, gate: Gate) -> None:
    ref, _ = _pulled(node, gate, "team/removed")
    assert gate.direct.has_image(ref)

    assert gate.via.remove(ref) == api_pb2.RemoveImageResponse()
    assert not gate.direct.has_image(ref)
    assert gate.via.remove(ref) == gate.direct.remove(ref)


def test_unknown_image_methods_are_forwarded_and_the_runtime_service_is_not(
    node: Node, gate: Gate
) -> None:
    assert gate.direct.version().runtime_name == "containerd"
    with pytest.raises(grpc.RpcError) as refused:
        gate.via.version()  # RuntimeService: exec and container creation must not pass here
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED

    method = "/runtime.v1.ImageService/NoSuchMethod"
    with pytest.raises(grpc.RpcError) as direct:
        gate.direct.raw(method)
    with pytest.raises(grpc.RpcError) as via:
        gate.via.raw(method)
    assert _denied(via) == _denied(direct)
    assert _denied(via)[0] == grpc.StatusCode.UNIMPLEMENTED


# -- method-path bypasses ----------------------------------------------------------------------


def _pull_request(image: str) -> bytes:
    return api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)).SerializeToString()


def test_pull_image_without_leading_slash_is_gated(node: Node, gate: Gate) -> None:
    # containerd (grpc-go) routes a path without its leading "/" like the canonical one.
    fs_info = api_pb2.ImageFsInfoRequest().SerializeToString()
    assert gate.direct.raw("runtime.v1.ImageService/ImageFsInfo", fs_info)
    node.image("team/noslash", "v1", signed=False)
    ref = _ref(node.registry, "team/noslash", "v1")

    with pytest.raises(grpc.RpcError) as excinfo:
        gate.via.raw("runtime.v1.ImageService/PullImage", _pull_request(ref))

    assert _reason_after(SIGNATURE_PREFIX, _denied(excinfo)[1]) == Reason.NO_SIGNATURE
    assert not gate.direct.has_image(ref)


@pytest.mark.parametrize(
    "method",
    [
        "/runtime.v1alpha2.ImageService/PullImage",
        "runtime.v1alpha2.ImageService/PullImage",
        "/containerd.services.transfer.v1.Transfer/Transfer",
        "/containerd.services.images.v1.Images/Create",
        "/containerd.services.images.v1.Images/List",
        "//runtime.v1.ImageService/PullImage",
    ],
)
def test_non_cri_v1_methods_are_refused(node: Node, gate: Gate, method: str) -> None:
    node.image("team/bypass", "v1", signed=False)
    ref = _ref(node.registry, "team/bypass", "v1")

    with pytest.raises(grpc.RpcError) as excinfo:
        gate.via.raw(method, _pull_request(ref))

    assert _denied(excinfo)[0] == grpc.StatusCode.PERMISSION_DENIED
    assert not gate.direct.has_image(ref)
    assert [(r["event"], r["method"]) for r in gate.audit] == [("cri.refused", method)]


def test_image_fs_info_answers_while_trust_configuration_is_broken(
    node: Node, gate_factory: Callable[..., Gate]
) -> None:
    def no_snapshot() -> Snapshot:
        raise ConfigError("trust policy is unreadable")

    decider = build_engine(no_snapshot, clock=FixedClock(NOW), fetcher=build_fetcher())
    try:
        gate = gate_factory(decide=decider.decide)
        assert gate.via.fs_info().image_filesystems
        node.image("team/broken", "v1", signed=True)
        ref = _ref(node.registry, "team/broken", "v1")
        with pytest.raises(grpc.RpcError) as excinfo:
            gate.via.pull(ref)
        assert _reason_after(SIGNATURE_PREFIX, _denied(excinfo)[1]) == Reason.CONFIG
        assert not gate.direct.has_image(ref)
    finally:
        decider.close()


# -- the whole daemon: `pullgate serve` with a [cri] section ------------------------------------


def test_pullgate_serve_with_cri_section_serves_the_proxy(node: Node, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "\n".join(
            [
                f'trust_dir = "{node.tmp / "trust"}"',
                f'hosts_dir = "{node.certs_d}"',
                'platform = "linux/amd64"',
                "[api]",
                f'socket = "{tmp_path / "api.sock"}"',
                "[metrics]",
                'address = ""',
                "[verification]",
                f'crl_cache_dir = "{tmp_path / "crl"}"',
                "[cri]",
                f'socket = "{tmp_path / "cri.sock"}"',
                f'upstream = "unix://{node.containerd.socket}"',
                'critical_images = ["*/critical/pause:*"]',
            ]
        )
        + "\n"
    )
    signed = node.image("serve/signed", "v1", signed=True)
    node.image("serve/unsigned", "v1", signed=False)
    node.image("critical/pause", "3.9", signed=False)
    with run_daemon(config), CriClient(tmp_path / "cri.sock") as via:
        assert via.fs_info().image_filesystems  # the kubelet's start-up call
        via.pull(_ref(node.registry, "serve/signed", "v1"))
        status = via.status(_ref(node.registry, "serve/signed", "v1"))
        assert f"{node.registry.host}/serve/signed@{signed.top.digest}" in (
            status.image.repo_digests
        )
        with pytest.raises(grpc.RpcError) as excinfo:
            via.pull(_ref(node.registry, "serve/unsigned", "v1"))
        code, details = _denied(excinfo)
        assert code == grpc.StatusCode.UNKNOWN
        assert _reason_after(SIGNATURE_PREFIX, details) == Reason.NO_SIGNATURE
        via.pull(_ref(node.registry, "critical/pause", "3.9"))  # allowlisted: never blocked
