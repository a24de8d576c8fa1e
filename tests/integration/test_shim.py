"""``pullgate-containerd-verifier`` run exactly as containerd's bindir plugin runs it.

The shim is a subprocess with containerd's argv (``-name REF -digest D -stdin-media-type T``) and
the descriptor JSON plus newline on stdin. The daemon is a real ``grpc.aio`` server implementing
``pullgate.v1.Verifier`` whose answers are real decisions of the decision engine
(``pullgate.decision.decider``) against the in-process fake registry, with images signed by the
test signer. Verdicts are judged
by exit status and the typed reason that starts stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from pullgate.common.clock import FixedClock
from pullgate.common.descriptor import Descriptor
from pullgate.config import DaemonConfig, VerificationConfig
from pullgate.decision.model import BINDIR_CALLER, DecisionRequest
from pullgate.errors import Reason
from pullgate.shim import DESCRIPTOR_MEDIA_TYPE, ExitCode
from pullgate.trust.snapshot import build_snapshot
from pullgate.v1 import verifier_pb2, verifier_pb2_grpc
from tests.support.fake_registry import FakeRegistry
from tests.support.parts import build_engine, build_fetcher
from tests.support.pki import NOW, KeySpec, Pki, write_store
from tests.support.signing import sign_jws

pytestmark = pytest.mark.integration

DAEMON_DIR = Path(__file__).resolve().parents[2] / "daemon"
HEAVY = ("cryptography", "pullgate.verification", "prometheus_client", "watchdog", "grpc")
BOUND = 30.0  # generous: a shim that honours its own 1 s timeout returns long before this


Context = grpc.aio.ServicerContext[object, object]


class VerifyOnly(verifier_pb2_grpc.VerifierServicer):
    """Status and Reload are not needed by the shim."""

    async def Status(
        self, request: verifier_pb2.StatusRequest, context: Context
    ) -> verifier_pb2.StatusResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")
        raise AssertionError("unreachable")

    async def Reload(
        self, request: verifier_pb2.ReloadRequest, context: Context
    ) -> verifier_pb2.ReloadResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")
        raise AssertionError("unreachable")


class RealVerifier(VerifyOnly):
    """Answers Verify from the real decision engine; records each request it saw."""

    def __init__(self, decide: Callable[[str], verifier_pb2.VerifyResponse]) -> None:
        self.decide = decide
        self.requests: list[verifier_pb2.VerifyRequest] = []

    async def Verify(
        self, request: verifier_pb2.VerifyRequest, context: Context
    ) -> verifier_pb2.VerifyResponse:
        self.requests.append(request)
        return await asyncio.to_thread(self.decide, request.reference)


class HangingVerifier(VerifyOnly):
    """Never answers (until the server stops)."""

    async def Verify(
        self, request: verifier_pb2.VerifyRequest, context: Context
    ) -> verifier_pb2.VerifyResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


class Daemon:
    """A grpc.aio server on a unix socket, running its own event loop in a thread."""

    def __init__(self, servicer: verifier_pb2_grpc.VerifierServicer, socket_path: Path) -> None:
        self.servicer = servicer
        self.socket_path = socket_path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: grpc.aio.Server | None = None

    async def _start(self) -> None:
        self._server = grpc.aio.server()
        verifier_pb2_grpc.add_VerifierServicer_to_server(self.servicer, self._server)
        self._server.add_insecure_port(f"unix:{self.socket_path}")
        await self._server.start()

    async def _stop(self) -> None:
        assert self._server is not None
        await self._server.stop(None)

    def __enter__(self) -> Daemon:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        stopped: Future[None] = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
        stopped.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class Result:
    code: int
    reason: Reason
    stdout: str
    stderr: str


def install_shim(bin_dir: Path) -> Path:
    """What the console script amounts to: an executable entry in containerd's ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "pullgate-containerd-verifier"
    path.write_text(
        f"#!{sys.executable}\nimport sys\nfrom pullgate.shim import main\nsys.exit(main())\n"
    )
    path.chmod(0o755)
    return path


def run_shim(
    socket_path: Path, ref: str, digest: str, *extra: str, importtime: bool = False
) -> Result:
    """Exec ``<bin_dir>/pullgate-containerd-verifier`` with containerd's exact argv and stdin.

    ``-socket`` (and ``extra``) are appended: containerd passes only the first three flags.
    """
    shim = install_shim(socket_path.parent / "bin")
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest}
    argv = [str(shim), "-name", ref, "-digest", digest, "-stdin-media-type", DESCRIPTOR_MEDIA_TYPE]
    argv += ["-socket", str(socket_path), *extra]
    env = {**os.environ, "PYTHONPATH": str(DAEMON_DIR)}
    if importtime:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    proc = subprocess.run(
        argv,
        input=(json.dumps(descriptor, separators=(",", ":")) + "\n").encode(),
        capture_output=True,
        timeout=BOUND,
        env=env,
        check=False,
    )
    stdout = proc.stdout.decode()
    return Result(proc.returncode, Reason(stdout.split(":", 1)[0]), stdout, proc.stderr.decode())


@dataclass
class World:
    registry: FakeRegistry
    decide: Callable[[str], verifier_pb2.VerifyResponse]
    signed: Descriptor
    unsigned: Descriptor
    socket_path: Path

    def ref(self, repo: str, tag: str) -> str:
        return f"{self.registry.host}/{repo}:{tag}"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths must stay under ~107 bytes: pytest's tmp_path may be longer."""
    with tempfile.TemporaryDirectory(prefix="pg-shim-", dir="/tmp") as name:
        yield Path(name)


@pytest.fixture
def world(tmp_path: Path, short_dir: Path) -> Iterator[World]:
    pki = Pki(name="shim")
    chain = pki.chain(key=KeySpec.ec(256))
    trust_dir = tmp_path / "trust"
    write_store(trust_dir, "ca", "app", [chain.root.cert])
    with FakeRegistry() as registry:
        policy = {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "app",
                    "registryScopes": [f"{registry.host}/signed", f"{registry.host}/unsigned"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": ["ca:app"],
                    "trustedIdentities": ["*"],
                }
            ],
        }
        (trust_dir / "trustpolicy.json").write_text(json.dumps(policy))
        signed = registry.put_image("signed", tag="v1", payload=b"signed layer")
        registry.add_signature("signed", signed, sign_jws(chain, signed))
        unsigned = registry.put_image("unsigned", tag="v1", payload=b"unsigned layer")
        certs_d = tmp_path / "certs.d"
        (certs_d / registry.host).mkdir(parents=True)
        (certs_d / registry.host / "hosts.toml").write_text(f'server = "{registry.url}"\n')
        config = DaemonConfig(
            trust_dir=trust_dir,
            hosts_dirs=(certs_d,),
            platform="linux/amd64",
            verification=VerificationConfig(crl_cache_dir=tmp_path / "crl"),
        )
        snapshot = build_snapshot(None, 1, clock=FixedClock(NOW), base=config)
        decider = build_engine(lambda: snapshot, clock=FixedClock(NOW), fetcher=build_fetcher())

        def decide(reference: str) -> verifier_pb2.VerifyResponse:
            decision = decider.decide(DecisionRequest(reference=reference, caller=BINDIR_CALLER))
            return verifier_pb2.VerifyResponse(
                allowed=decision.allowed,
                reason=decision.reason.value,
                message=decision.message,
                digest=decision.digest,
            )

        try:
            yield World(registry, decide, signed, unsigned, short_dir / "pullgate.sock")
        finally:
            decider.close()


def test_signed_image_is_allowed(world: World) -> None:
    servicer = RealVerifier(world.decide)
    with Daemon(servicer, world.socket_path):
        result = run_shim(world.socket_path, world.ref("signed", "v1"), world.signed.digest)
    assert (result.code, result.reason) == (ExitCode.ALLOW, Reason.VERIFIED)
    [request] = servicer.requests
    assert (request.reference, request.digest) == (world.ref("signed", "v1"), world.signed.digest)
    assert request.caller == "containerd-verifier"


def test_unsigned_image_is_denied_with_the_reason_on_stdout(world: World) -> None:
    with Daemon(RealVerifier(world.decide), world.socket_path):
        result = run_shim(world.socket_path, world.ref("unsigned", "v1"), world.unsigned.digest)
    assert (result.code, result.reason) == (ExitCode.DENY, Reason.NO_SIGNATURE)
    assert len(result.stdout.encode()) < 32 * 1024


def test_verified_digest_differing_from_the_pulled_digest_is_denied(world: World) -> None:
    # containerd resolved the tag to one digest; the daemon verified what the tag points at now.
    with Daemon(RealVerifier(world.decide), world.socket_path):
        result = run_shim(world.socket_path, world.ref("signed", "v1"), world.unsigned.digest)
    assert (result.code, result.reason) == (ExitCode.DENY, Reason.DESCRIPTOR_MISMATCH)


def test_daemon_down_denies(world: World) -> None:
    result = run_shim(world.socket_path, world.ref("signed", "v1"), world.signed.digest)
    assert result.code == ExitCode.UNAVAILABLE
    assert result.reason is Reason.DAEMON_UNAVAILABLE


def test_hanging_daemon_denies_within_the_timeout(world: World) -> None:
    with Daemon(HangingVerifier(), world.socket_path):
        result = run_shim(
            world.socket_path, world.ref("signed", "v1"), world.signed.digest, "-timeout", "1s"
        )
    # run_shim's subprocess bound (30 s) would raise if the shim did not stop on its own.
    assert (result.code, result.reason) == (ExitCode.UNAVAILABLE, Reason.TIMEOUT)


def test_allow_path_imports_nothing_heavy(world: World) -> None:
    with Daemon(RealVerifier(world.decide), world.socket_path):
        result = run_shim(
            world.socket_path, world.ref("signed", "v1"), world.signed.digest, importtime=True
        )
    assert result.code == ExitCode.ALLOW
    imported = {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "pullgate.shim" in imported
    assert not {m for m in imported if m.split(".")[0] in HEAVY or m.startswith(HEAVY)}
    # Nor the pure-Python modules whose import alone costs a sizeable share of start-up.
    assert not imported & {"enum", "json", "re", "struct", "typing", "pullgate.errors"}
