"""pullgate demo: a real mTLS registry, signed and unsigned images, the daemon, allow and deny.

Everything runs on 127.0.0.1 under a temporary directory (kept with ``--keep``):

1. a test PKI (root CA -> intermediate -> code-signing leaf) and a notation configuration directory
   (``truststore/x509/ca/demo`` + ``trustpolicy.json``, level strict, signer identity pinned);
2. Debian's ``docker-registry`` with TLS that *requires a client certificate* (mTLS), and a
   containerd-style ``certs.d/<host>/hosts.toml`` naming the CA and the client certificate;
3. two 2-platform images (linux/amd64 + linux/arm64) pushed over the distribution API; the index
   and the platform manifests of the first are signed in notation's format, the second is not;
4. ``pullgate serve`` as a real process, then ``pullgate verify`` (CLI) and ``pullgate.v1.Verifier``
   (gRPC) showing one allow and one deny with their typed reasons, and finally the metrics.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

import grpc  # noqa: E402
from tests.support.docker_registry import DockerRegistry, free_port  # noqa: E402
from tests.support.pki import CertSpec, Chain, KeySpec, Pki, write_store  # noqa: E402
from tests.support.push import Pusher  # noqa: E402
from tests.support.signing import sign_cose, sign_jws  # noqa: E402

from pullgate.common.descriptor import Descriptor  # noqa: E402
from pullgate.v1 import verifier_pb2, verifier_pb2_grpc  # noqa: E402
from scripts.demo_node import node_view  # noqa: E402

REPO = "shop/web"
PLATFORMS = ("linux/amd64", "linux/arm64/v8")
T = TypeVar("T")


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


@contextmanager
def progress(text: str) -> Iterator[None]:
    """A spinner on stderr while a long step runs (silent when stderr is not a terminal)."""
    done = threading.Event()
    tty = sys.stderr.isatty()

    def spin() -> None:
        for frame in itertools.cycle("|/-\\"):
            if done.wait(0.1):
                break
            if tty:
                sys.stderr.write(f"\r    {frame} {text} ")
                sys.stderr.flush()

    thread = threading.Thread(target=spin, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if tty:
            sys.stderr.write("\r" + " " * (len(text) + 8) + "\r")
        print(f"    {text}: done in {time.monotonic() - started:.1f}s", flush=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(0.1)
    raise SystemExit(f"demo: timed out waiting for {what}")


def signing_chain() -> Chain:
    now = datetime.now(UTC)
    leaf = CertSpec(
        common_name="demo release signer",
        organization="pullgate demo",
        key=KeySpec.ec(256),
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=90),
    )
    return Pki(name="demo").chain(leaf=leaf)


def push_image(pusher: Pusher, tag: str, chain: Chain | None) -> Descriptor:
    platforms = {
        p: pusher.push_image(REPO, None, platform=p, content=f"{tag}-{p}".encode())
        for p in PLATFORMS
    }
    index = pusher.push_index(REPO, tag, platforms)
    if chain is not None:
        now = datetime.now(UTC)
        pusher.push_signature(
            REPO, index, sign_jws(chain, index, signing_time=now), "application/jose+json"
        )
        for desc in platforms.values():
            pusher.push_signature(
                REPO, desc, sign_cose(chain, desc, signing_time=now), "application/cose"
            )
    return index


def run_cli(*args: str) -> tuple[int, str]:
    print("$ pullgate " + " ".join(args), flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pullgate", *args], check=False, capture_output=True, text=True
    )
    sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    print(f"(exit {proc.returncode})", flush=True)
    return proc.returncode, proc.stdout


def health_serving(socket_path: Path) -> bool | None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

    if not socket_path.exists():
        return None
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2
            )
        except grpc.RpcError:
            return None
    return True if reply.status == health_pb2.HealthCheckResponse.SERVING else None


def main() -> int:
    parser = argparse.ArgumentParser(description="pullgate demo")
    parser.add_argument("--keep", action="store_true", help="keep the demo directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pullgate-demo-"))
    daemon: subprocess.Popen[bytes] | None = None
    registry = DockerRegistry(work / "registry")
    try:
        step("test PKI: root CA -> intermediate CA -> code-signing leaf (EC P-256)")
        chain = signing_chain()
        for issued in chain.certs:
            print(f"    {issued.cert.subject.rfc4514_string()}")

        step("a real registry with mutual TLS (Debian's docker-registry, client cert required)")
        with progress("starting docker-registry on 127.0.0.1"):
            registry.start()
        print(f"    {registry.url}  (a request without a client certificate: ", end="")
        try:
            registry.probe(client_cert=False)
            print("accepted?!)")
        except OSError:
            print("refused by the TLS handshake)")
        host = registry.host

        step("containerd-style certs.d: the registry's CA and the node's client certificate")
        certs_d = work / "certs.d"
        host_dir = certs_d / host
        host_dir.mkdir(parents=True)
        tls = (
            f'ca = "{registry.ca_pem}"\n'
            f'client = [["{registry.client_pem}", "{registry.client_key}"]]\n'
        )
        # Version-proof (containerd 1.6/1.7 need a [host] table): the same TLS on both entries.
        (host_dir / "hosts.toml").write_text(
            f'server = "https://{host}"\n{tls}'
            f'[host."https://{host}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
            + "".join(f"  {line}\n" for line in tls.splitlines())
        )
        run_cli("hosts", "--hosts-dir", str(certs_d), host)

        step("notation configuration: trust store + trust policy (strict, identity pinned)")
        trust = work / "notation"
        write_store(trust, "ca", "demo", [chain.root.cert])
        policy = {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "shop",
                    "registryScopes": [f"{host}/{REPO}"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": ["ca:demo"],
                    "trustedIdentities": [
                        "x509.subject: C=US, ST=WA, O=pullgate demo, CN=demo release signer"
                    ],
                }
            ],
        }
        (trust / "trustpolicy.json").write_text(json.dumps(policy, indent=2))
        run_cli("policy", "check", "--trust-dir", str(trust))

        step("pushing two 2-platform images; signing index + platform manifests of the first")
        with progress("pushing images and signatures"), Pusher.for_registry(registry) as pusher:
            signed = push_image(pusher, "signed", chain)
            unsigned = push_image(pusher, "unsigned", None)
        print(f"    {host}/{REPO}:signed    index {signed.digest}")
        print(f"    {host}/{REPO}:unsigned  index {unsigned.digest}")

        step("the daemon: pullgate serve")
        socket_path = work / "run" / "pullgate.sock"
        metrics_port = free_port()
        config = work / "config.toml"
        config.write_text(
            f'trust_dir = "{trust}"\n'
            f'hosts_dir = "{certs_d}"\n'
            'platform = "linux/amd64"\n'
            f'[api]\nsocket = "{socket_path}"\n'
            f'[metrics]\naddress = "127.0.0.1:{metrics_port}"\n'
            f'[verification]\ncrl_cache_dir = "{work / "crl"}"\n'
            '[statements."shop"]\nrequire = "both"\n'
        )
        log = (work / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "pullgate", "serve", "--config", str(config)],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        with progress("waiting for the daemon to report SERVING"):
            wait_for("the daemon", lambda: health_serving(socket_path))
        print(f"    API socket {socket_path} (mode {oct(socket_path.stat().st_mode & 0o777)})")

        common = ["verify", "--hosts-dir", str(certs_d), "--trust-dir", str(trust)]
        step("CLI: verify the signed image -> expect ALLOW (VERIFIED)")
        cli_allow, _ = run_cli(*common, f"{host}/{REPO}:signed")
        step("CLI: verify the unsigned image -> expect DENY (NO_SIGNATURE)")
        cli_deny, cli_out = run_cli(*common, "--output", "json", f"{host}/{REPO}:unsigned")
        cli_reason = json.loads(cli_out).get("reason") if cli_out.strip() else None

        step("gRPC API: pullgate.v1.Verifier/Verify (index AND linux/amd64 manifest, require=both)")
        results = {}
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            for tag in ("signed", "unsigned"):
                reply = stub.Verify(
                    verifier_pb2.VerifyRequest(reference=f"{host}/{REPO}:{tag}", caller="demo"),
                    timeout=60,
                )
                results[tag] = reply
                verdict = "ALLOW" if reply.allowed else "DENY"
                print(f"    {tag:<8} {verdict:<5} {reply.reason}: {reply.message}")
                for subject in reply.subjects:
                    signer = f" signer={subject.signer_subject}" if subject.signer_subject else ""
                    print(
                        f"      {subject.role:<8} {subject.digest[:19]}… verified="
                        f"{subject.verified} {subject.reason}{signer}"
                    )

        step("metrics (Prometheus text, pullgate_* families)")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        shown = [
            line
            for line in text.splitlines()
            if line.startswith("pullgate_")
            and ("decisions_total" in line or "registry_requests_total" in line)
        ]
        for line in shown[:12]:
            print(f"    {line}")

        step("the node's view: a real containerd behind pullgate's CRI sockets")
        node_ok = node_view(work, step)

        ok = (
            node_ok is not False
            and cli_allow == 0
            and cli_deny == 1
            and cli_reason == "NO_SIGNATURE"
            and results["signed"].allowed
            and not results["unsigned"].allowed
            and results["unsigned"].reason == "NO_SIGNATURE"
        )
        step("demo " + ("succeeded: one allow, one deny, with reasons" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
        registry.stop()
        if args.keep:
            print(f"\n(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
