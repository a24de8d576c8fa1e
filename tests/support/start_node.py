"""A node for container-start tests: a real registry (mTLS), a real pod-capable containerd
(:mod:`tests.support.runtimes`), and ``pullgate serve`` in front of it with ``[cri]`` and
``[runtime]`` sockets; crictl plays the kubelet against pullgate's two sockets.

The trust store ``ca:start`` holds the signing root and an unrelated root, so removing the
signing root's file leaves a valid (reloadable) store that no longer trusts the signatures.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pullgate.common.descriptor import Descriptor
from pullgate.errors import Reason
from tests.support.containerd import write_hosts_toml
from tests.support.docker_registry import DockerRegistry, free_port
from tests.support.grpc_harness import run_daemon
from tests.support.hook_proxy import HookProxy
from tests.support.pki import Chain, KeySpec, Pki, write_store
from tests.support.push import MT_JWS, Pusher
from tests.support.runtimes import (
    Kind,
    PodRuntime,
    RunnableImage,
    RuntimeOptions,
    push_pause_image,
    push_runnable_image,
)
from tests.support.signing import sign_jws

CONSOLE_SCRIPT = Path(sys.executable).parent / "pullgate"
_DENIAL = re.compile(r"(SignatureValidationFailed|RegistryUnavailable): ([A-Z_]+): ")


def policy() -> dict[str, object]:
    return {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "start",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:start"],
                "trustedIdentities": ["*"],
            }
        ],
    }


def denial_reason(text: str) -> Reason | None:
    """The typed reason a kubelet-style denial names (None when ``text`` has none)."""
    found = _DENIAL.search(text)
    return Reason(found.group(2)) if found else None


@dataclass
class StartNode:
    tmp: Path
    registry: DockerRegistry
    runtime: PodRuntime
    chain: Chain
    trust_dir: Path
    config: Path
    hook: HookProxy | None = None

    @property
    def cri_socket(self) -> Path:
        return self.tmp / "cri.sock"

    @property
    def runtime_socket(self) -> Path:
        return self.tmp / "runtime.sock"

    @property
    def break_glass(self) -> Path:
        return self.tmp / "break-glass"

    @property
    def signing_root(self) -> Path:
        return self.trust_dir / "truststore" / "x509" / "ca" / "start" / "cert0.pem"

    def push(
        self, repo: str, *, signed: bool, message: str | None = None, tag: str = "v1"
    ) -> RunnableImage:
        with Pusher.for_registry(self.registry) as pusher:
            image = push_runnable_image(
                pusher,
                self.registry.host,
                repo,
                tag,
                message=message or f"hello {uuid.uuid4().hex}",
            )
            if signed:
                self._sign(pusher, repo, image.top)
        return image

    def push_index(
        self, repo: str, *, platforms: Sequence[str], signed: Sequence[str]
    ) -> RunnableImage:
        """An index over ``platforms``, signed, with the platform manifests in ``signed``."""
        with Pusher.for_registry(self.registry) as pusher:
            image = push_runnable_image(
                pusher, self.registry.host, repo, "v1", platforms=platforms, index=True
            )
            self._sign(pusher, repo, image.top)
            for platform in signed:
                self._sign(pusher, repo, image.platforms[platform])
        return image

    def _sign(self, pusher: Pusher, repo: str, subject: Descriptor) -> None:
        pusher.push_signature(
            repo, subject, sign_jws(self.chain, subject), MT_JWS, certificates=self.chain.x509
        )

    def gated(
        self, *args: str, check: bool = True, settle: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """crictl with both endpoints at pullgate (the kubelet's view). ``settle``: after a pull,
        wait until its verdict is in (an overlapped pull may be answered before it)."""
        done = self.runtime.crictl(
            *args,
            runtime_endpoint=f"unix://{self.runtime_socket}",
            image_endpoint=f"unix://{self.cri_socket}",
            check=check,
        )
        if settle and args[:1] == ("pull",):
            self.settle()
        return done

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until no pull answered before its verdict still waits for it."""
        deadline = time.monotonic() + timeout
        while (self.metric("pullgate_overlap_pending") or 0) > 0:
            assert time.monotonic() < deadline, "an overlapped pull's verdict never came"
            time.sleep(0.05)

    def run_pod(self) -> tuple[str, Path]:
        return self.runtime.run_pod(
            runtime_endpoint=f"unix://{self.runtime_socket}",
            image_endpoint=f"unix://{self.cri_socket}",
        )

    def create(
        self, pod: str, pod_config: Path, image: str, *, command: Sequence[str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``crictl create --no-pull`` through the gate (not checked: may be refused)."""
        config = self.runtime.write_container_config(image, command=command)
        return self.gated("create", "--no-pull", pod, str(config), str(pod_config), check=False)

    def images(self) -> tuple[int, dict[str, object]]:
        """``pullgate images --output json`` against the runtime (the console script): its exit
        status and its report."""
        done = subprocess.run(
            [
                str(CONSOLE_SCRIPT),
                "images",
                "--runtime-endpoint",
                self.runtime.endpoint(),
                "--config",
                str(self.config),
                "--output",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode in (0, 1), done.stderr
        report: dict[str, object] = json.loads(done.stdout)
        return done.returncode, report

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of a metric the daemon exports now, with exactly ``labels`` (None: not
        exported)."""
        text = (self.config.read_text().split('[metrics]\naddress = "', 1)[1]).split('"', 1)[0]
        with urllib.request.urlopen(f"http://{text}/metrics", timeout=10) as answer:
            body = answer.read().decode()
        if labels:
            name += "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        for line in body.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        return None

    def logs(self, container: str, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            out = self.runtime.crictl("logs", container, check=False).stdout
            if text in out:
                return out
            time.sleep(0.1)
        return out


def write_config(
    tmp: Path,
    certs_d: Path,
    trust_dir: Path,
    upstream: str,
    *,
    require: str = "both",
    metrics_port: int = 0,
    transport: str = "splice",
    runtime_upstream: str | None = None,
) -> Path:
    """The daemon's config for a start node (metrics on ``metrics_port``; 0 picks one; the gate
    served by ``transport``; ``runtime_upstream``: where the runtime gate forwards, default
    ``upstream``)."""
    metrics_port = metrics_port or free_port()
    config = tmp / "config.toml"
    lines: Sequence[str] = [
        f'trust_dir = "{trust_dir}"',
        f'hosts_dir = "{certs_d}"',
        "[api]",
        f'socket = "{tmp / "api.sock"}"',
        "[metrics]",
        f'address = "127.0.0.1:{metrics_port}"',
        "[verification]",
        f'crl_cache_dir = "{tmp / "crl"}"',
        "[cri]",
        f'socket = "{tmp / "cri.sock"}"',
        f'upstream = "{upstream}"',
        "[runtime]",
        f'socket = "{tmp / "runtime.sock"}"',
        f'upstream = "{runtime_upstream or upstream}"',
        "audit_interval = 0.5",
        f'transport = "{transport}"',
        "[break_glass]",
        f'file = "{tmp / "break-glass"}"',
        "[statements.start]",
        f'require = "{require}"',
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


@contextmanager
def start_node(
    kind: Kind,
    tmp: Path,
    registry: DockerRegistry,
    *,
    require: str = "both",
    transport: str = "splice",
    hook: bool = False,
    runtime_via: str | None = None,
    pullgate_via: str | None = None,
) -> Iterator[StartNode]:
    """The node, pullgate serving; everything stopped on exit. ``hook``: the runtime gate
    forwards through a :class:`~tests.support.hook_proxy.HookProxy` (``StartNode.hook``).
    ``runtime_via``, ``pullgate_via``: the ``host:port`` the runtime, or pullgate, reaches the
    registry through (a relay; default: the registry itself)."""
    certs_d = tmp / "certs.d"  # the runtime's
    write_hosts_toml(certs_d, registry, via=runtime_via)
    pullgate_certs_d = certs_d
    if pullgate_via is not None:
        pullgate_certs_d = tmp / "pullgate-certs.d"
        write_hosts_toml(pullgate_certs_d, registry, via=pullgate_via)
    chain = Pki(name=f"start {kind}").chain(key=KeySpec.ec(256))
    other = Pki(name="unrelated").chain(key=KeySpec.ec(256))
    trust_dir = tmp / "trust"
    write_store(trust_dir, "ca", "start", [chain.root.cert, other.root.cert])
    (trust_dir / "trustpolicy.json").write_text(json.dumps(policy()))
    with Pusher.for_registry(registry) as pusher:
        pause = push_pause_image(pusher, registry.host, repo=f"test/pause-{uuid.uuid4().hex[:6]}")
    options = RuntimeOptions(certs_d=certs_d, sandbox_image=pause)
    with PodRuntime(kind, options) as runtime, ExitStack() as stack:
        proxy = None
        if hook:
            proxy = stack.enter_context(HookProxy(tmp / "hook.sock", runtime.socket))
        config = write_config(
            tmp,
            pullgate_certs_d,
            trust_dir,
            runtime.endpoint(),
            require=require,
            transport=transport,
            runtime_upstream=proxy.endpoint() if proxy is not None else None,
        )
        with run_daemon(config):
            yield StartNode(tmp, registry, runtime, chain, trust_dir, config, proxy)
