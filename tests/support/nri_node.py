"""A node for NRI tests: a real registry, signed and unsigned images, a trust dir, and
``pullgate serve`` as a real process (external plugin) or as containerd's launched plugin.

:class:`NriNode` pushes a busybox sandbox image and one workload manifest to two repositories
with the *same bytes* (``test/signed`` carries a notation signature, ``test/unsigned`` none), so
containerd stores one image ID under two names. :meth:`NriNode.daemon` runs the daemon with
``[nri]`` dialling the runtime's NRI socket; :meth:`NriNode.install_launched_plugin` writes the
``plugin_path`` executable containerd runs instead. :func:`create_outcome` runs ``crictl
create`` and reads pullgate's typed reason out of a refusal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pullgate.errors import Reason
from tests.support.containerd import write_hosts_toml
from tests.support.docker_registry import DockerRegistry, free_port
from tests.support.pki import Chain, KeySpec, Pki, write_store
from tests.support.push import MT_JWS, Pusher
from tests.support.runtimes import PodRuntime, push_pause_image, push_runnable_manifest
from tests.support.signing import sign_jws
from tests.support.statements import policy_document

REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "hello from an NRI-admitted container"
_REASON = re.compile(r"(?:SignatureValidationFailed|RegistryUnavailable): ([A-Z_]+): ")


def _q(value: str | Path) -> str:
    return json.dumps(str(value))


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    """What one ``crictl create`` did: a container id, or pullgate's reason (None: another
    refusal, e.g. containerd's own) and the error text."""

    container: str | None
    reason: Reason | None
    error: str


def create_outcome(
    runtime: PodRuntime,
    pod_id: str,
    pod_config: Path,
    image: str,
    command: Sequence[str] = ("/bin/busybox", "echo", MESSAGE),
) -> CreateOutcome:
    """``crictl create`` of ``image`` in the pod (straight at containerd's socket)."""
    config = runtime.write_container_config(image, command=command)
    done = runtime.crictl("create", pod_id, str(config), str(pod_config), check=False, timeout=30)
    if done.returncode == 0:
        return CreateOutcome(container=done.stdout.strip(), reason=None, error="")
    return CreateOutcome(container=None, reason=refusal_reason(done.stderr), error=done.stderr)


def refusal_reason(stderr: str) -> Reason | None:
    """The typed reason a refused ``crictl create`` or ``start`` names (None when it names none)."""
    found = _REASON.search(stderr)
    return Reason(found.group(1)) if found and found.group(1) in Reason.__members__ else None


class NriNode:
    """The registry content, trust material and pullgate config of one test node."""

    def __init__(self, tmp: Path, registry: DockerRegistry) -> None:
        self.tmp = tmp
        self.registry = registry
        self.certs_d = tmp / "certs.d"
        write_hosts_toml(self.certs_d, registry)
        self.chain: Chain = Pki(name="nri e2e").chain(key=KeySpec.ec(256))
        self.trust_dir = tmp / "trust"
        # The signing root and an unrelated one: removing the signing root leaves a valid store.
        other = Pki(name="nri other").chain(key=KeySpec.ec(256))
        write_store(self.trust_dir, "ca", "prod", [self.chain.root.cert, other.root.cert])
        policy = policy_document(name="prod", stores=("ca:prod",))
        (self.trust_dir / "trustpolicy.json").write_text(json.dumps(policy))
        self.api_socket = Path(f"/tmp/pg-nri-{uuid.uuid4().hex[:8]}.sock")
        self.metrics_port = free_port()
        marker = uuid.uuid4().bytes
        command = ("/bin/busybox", "echo", MESSAGE)
        with Pusher.for_registry(registry) as pusher:
            self.pause = push_pause_image(pusher, registry.host)
            self.manifest = push_runnable_manifest(
                pusher, "test/signed", command=command, marker=marker, tag="1"
            )
            same = push_runnable_manifest(
                pusher, "test/unsigned", command=command, marker=marker, tag="1"
            )
            assert same.digest == self.manifest.digest  # one image ID under two names
            envelope = sign_jws(self.chain, self.manifest)
            pusher.push_signature(
                "test/signed", self.manifest, envelope, MT_JWS, certificates=self.chain.x509
            )
        self.signed = f"{registry.host}/test/signed:1"
        self.unsigned = f"{registry.host}/test/unsigned:1"

    def config(self, *, nri_socket: Path | None, nri_extra: Sequence[str] = ()) -> Path:
        """The daemon config (``[nri]`` only when ``nri_socket`` is given, plus ``nri_extra``)."""
        lines = [
            f"trust_dir = {_q(self.trust_dir)}",
            f"hosts_dir = {_q(self.certs_d)}",
            'platform = "linux/amd64"',
            "[api]",
            f"socket = {_q(self.api_socket)}",
            "[metrics]",
            f'address = "127.0.0.1:{self.metrics_port}"',
            "[verification]",
            f"crl_cache_dir = {_q(self.tmp / 'crl')}",
        ]
        if nri_socket is not None:
            lines += ["[nri]", f"socket = {_q(nri_socket)}", 'name = "pullgate"', 'index = "10"']
            lines += list(nri_extra)
        path = self.tmp / "config.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def remove_ca(self) -> None:
        """Remove the images' signing root from the trust store (the other root stays)."""
        (self.trust_dir / "truststore" / "x509" / "ca" / "prod" / "cert0.pem").unlink()

    @contextlib.contextmanager
    def daemon(
        self, nri_socket: Path, nri_extra: Sequence[str] = ()
    ) -> Iterator[subprocess.Popen[bytes]]:
        """``python -m pullgate serve`` dialling ``nri_socket``; stopped (SIGTERM) on exit."""
        config = self.config(nri_socket=nri_socket, nri_extra=nri_extra)
        log = (self.tmp / "pullgate.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pullgate", "serve", "--config", str(config)],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "daemon")},
        )
        try:
            yield proc
        finally:
            stop_process(proc)
            log.close()

    def install_launched_plugin(self, plugin_dir: Path) -> Path:
        """``plugin_dir/10-pullgate``: the executable containerd launches (see the README)."""
        config = self.config(nri_socket=None)
        plugin_dir.mkdir(parents=True, exist_ok=True)
        script = plugin_dir / "10-pullgate"
        script.write_text(
            "#!/bin/sh\n"
            f"PYTHONPATH={REPO_ROOT / 'daemon'} exec {sys.executable} -m pullgate serve "
            f"--config {config} >>{self.tmp / 'launched.log'} 2>&1\n"
        )
        script.chmod(0o755)
        return script

    def log(self, name: str = "pullgate.log") -> str:
        path = self.tmp / name
        return path.read_text(errors="replace") if path.exists() else ""


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, bounded wait, then SIGKILL (by this process's id only)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, step: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
