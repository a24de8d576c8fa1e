"""Debian's real ``containerd`` (1.6.20, CRI plugin) for tests; a CRI client as the kubelet.

:class:`Containerd` writes a private ``config.toml`` (``version = 2``; ``root``, ``state`` and the
gRPC/ttrpc sockets in a short private directory under ``/tmp``, because unix socket paths are
limited to 107 bytes; debug and metrics listeners off; the ``native`` snapshotter, which only
copies files and so works inside a container where overlayfs may not; CRI
``registry.config_path`` = the test ``certs.d``; CNI directories private and empty — the CRI
plugin logs that networking is not ready, which image calls do not need), starts ``containerd
--config``, waits a bounded time until CRI ``RuntimeService/Version`` answers, and on exit
terminates it (bounded wait, then kill) and removes its directories.

containerd needs root (it chowns unpacked files and creates its state directories 0711): when
the test process is not root, or the binary is missing, :func:`containerd_unavailable` says why
so that tests can skip with a visible reason.

:class:`CriClient` is a synchronous client over the generated ``runtime.v1`` stubs, with the
kubelet's connection settings (insecure unix socket, 16 MiB receive limit).

:func:`push_unpackable_image` pushes images the CRI plugin can really unpack: uncompressed tar
layers whose ``diff_ids`` are listed in the image config (containerd checks them on unpack).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from pullgate.common.descriptor import Descriptor
from pullgate.cri.runtime.v1 import api_pb2, api_pb2_grpc
from tests.support.docker_registry import DockerRegistry, RegistryPki
from tests.support.push import MT_CONFIG, MT_LAYER, MT_MANIFEST, Pusher

CONTAINERD_BINARY = Path("/usr/bin/containerd")
CRI_NAMESPACE = "k8s.io"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_CALL_TIMEOUT = 60.0
KUBELET_MAX_RECEIVE = 16 * 1024 * 1024


class ContainerdStartError(RuntimeError):
    """containerd could not be started or its CRI plugin never answered."""


def containerd_unavailable() -> str | None:
    """Why containerd cannot run here (None when it can)."""
    if not CONTAINERD_BINARY.is_file():
        return f"{CONTAINERD_BINARY} is not installed (apt-get install containerd)"
    if os.geteuid() != 0:
        return "containerd needs root (it chowns unpacked layers)"
    return None


def _toml(value: str | Path) -> str:
    return json.dumps(str(value))


def write_hosts_toml(certs_d: Path, registry: DockerRegistry, *, via: str | None = None) -> Path:
    """``certs.d/<host:port>/hosts.toml`` for ``registry`` with its CA and client certificate;
    ``via``: another ``host:port`` that relays to it (a :class:`~tests.support.tcp_relay.TcpRelay`),
    contacted instead (TLS is checked against the registry's certificate as before).

    A ``[host]`` table is always written: containerd 1.6 rejects a server-only file
    (docs/containerd.md §5). The ``server`` is still tried after the host on any error
    (§1.7), so it carries the same TLS settings.
    """
    pki: RegistryPki = registry.pki
    directory = certs_d / registry.host
    directory.mkdir(parents=True, exist_ok=True)
    tls = [
        f"ca = {_toml(pki.ca_pem)}",
        f"client = [[{_toml(pki.client_pem)}, {_toml(pki.client_key)}]]",
    ]
    url = f"https://{via}" if via is not None else registry.url
    lines = [
        f"server = {_toml(url)}",
        *tls,
        "",
        f"[host.{_toml(url)}]",
        '  capabilities = ["pull", "resolve"]',
        *(f"  {line}" for line in tls),
        "",
    ]
    path = directory / "hosts.toml"
    path.write_text("\n".join(lines))
    return path


class CriClient:
    """The kubelet's view of a CRI endpoint (image service and ``RuntimeService/Version``)."""

    def __init__(self, socket_path: Path | str) -> None:
        self.socket_path = str(socket_path)
        self.channel = grpc.insecure_channel(
            f"unix:{self.socket_path}",
            options=[("grpc.max_receive_message_length", KUBELET_MAX_RECEIVE)],
        )
        self.images = api_pb2_grpc.ImageServiceStub(self.channel)
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.channel)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def version(self, timeout: float = _CALL_TIMEOUT) -> api_pb2.VersionResponse:
        """``RuntimeService/Version``."""
        return self.runtime.Version(api_pb2.VersionRequest(version="v1"), timeout=timeout)

    def pull(
        self,
        image: str,
        *,
        auth: api_pb2.AuthConfig | None = None,
        pod: tuple[str, str] = ("default", "test-pod"),
    ) -> api_pb2.PullImageResponse:
        """``PullImage`` as the kubelet sends it (image string not normalised, pod metadata)."""
        namespace, name = pod
        request = api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=image),
            sandbox_config=api_pb2.PodSandboxConfig(
                metadata=api_pb2.PodSandboxMetadata(name=name, namespace=namespace, uid="u1")
            ),
        )
        if auth is not None:
            request.auth.CopyFrom(auth)
        return self.images.PullImage(request)  # the kubelet sets no deadline on pulls

    def status(self, image: str) -> api_pb2.ImageStatusResponse:
        """``ImageStatus`` (image absent: OK with ``image`` unset)."""
        request = api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image))
        return self.images.ImageStatus(request, timeout=_CALL_TIMEOUT)

    def has_image(self, image: str) -> bool:
        """True when the runtime knows ``image`` (reference, id or repo digest)."""
        return self.status(image).HasField("image")

    def remove(self, image: str) -> api_pb2.RemoveImageResponse:
        """``RemoveImage`` (idempotent)."""
        request = api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image))
        return self.images.RemoveImage(request, timeout=_CALL_TIMEOUT)

    def list(self) -> api_pb2.ListImagesResponse:
        """``ListImages`` without a filter."""
        return self.images.ListImages(api_pb2.ListImagesRequest(), timeout=_CALL_TIMEOUT)

    def fs_info(self) -> api_pb2.ImageFsInfoResponse:
        """``ImageFsInfo`` (what the kubelet calls at start-up)."""
        return self.images.ImageFsInfo(api_pb2.ImageFsInfoRequest(), timeout=_CALL_TIMEOUT)

    def raw(self, method: str, request: bytes = b"", timeout: float = _CALL_TIMEOUT) -> bytes:
        """Call any unary method with raw bytes (methods the stubs do not declare)."""
        call = self.channel.unary_unary(
            method, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        result: bytes = call(request, timeout=timeout)
        return result


class Containerd:
    """A private ``containerd`` with the CRI plugin. Use as a context manager.

    Args:
        certs_d: directory for CRI ``registry.config_path``.
        keep_logs: copy containerd's log to this path on stop (debugging aid).
    """

    def __init__(self, certs_d: Path, *, keep_logs: Path | None = None) -> None:
        self.certs_d = certs_d
        self.keep_logs = keep_logs
        self.workdir = Path(tempfile.mkdtemp(prefix="pgctd-", dir="/tmp"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        """The containerd gRPC socket (CRI is served on it)."""
        return self.workdir / "c.sock"

    @property
    def log_path(self) -> Path:
        """containerd's stderr/stdout."""
        return self.workdir / "containerd.log"

    def _write_config(self) -> Path:
        root = self.workdir / "root"
        state = self.workdir / "state"
        cni = self.workdir / "cni"
        opt = self.workdir / "opt"
        for d in (root, state, cni, opt):
            d.mkdir(exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        lines = [
            "version = 2",
            f"root = {_toml(root)}",
            f"state = {_toml(state)}",
            "disabled_plugins = ["
            + ", ".join(
                _toml(f"io.containerd.snapshotter.v1.{name}")
                for name in ("aufs", "btrfs", "zfs", "devmapper")
            )
            + "]",
            "[grpc]",
            f"  address = {_toml(self.socket)}",
            "[ttrpc]",
            f"  address = {_toml(str(self.socket) + '.ttrpc')}",
            "[debug]",
            '  address = ""',
            "[metrics]",
            '  address = ""',
            '[plugins."io.containerd.internal.v1.opt"]',
            f"  path = {_toml(opt)}",
            f"[{cri}]",
            f"[{cri}.containerd]",
            '  snapshotter = "native"',
            f"[{cri}.cni]",
            f"  bin_dir = {_toml(cni)}",
            f"  conf_dir = {_toml(cni)}",
            f"[{cri}.registry]",
            f"  config_path = {_toml(self.certs_d)}",
        ]
        path = self.workdir / "config.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> None:
        """Start containerd and wait (bounded) until CRI answers."""
        reason = containerd_unavailable()
        if reason is not None:
            raise ContainerdStartError(reason)
        config = self._write_config()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(CONTAINERD_BINARY), "--config", str(config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.workdir)},
                cwd=self.workdir,
            )
        error = self._wait_ready()
        if error:
            self.stop()
            raise ContainerdStartError(
                f"containerd did not become ready: {error}\n"
                + self.log_path.read_text(errors="replace")[-4000:]
            )

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + _START_TIMEOUT
        error = "not started"
        with CriClient(self.socket) as client:
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    return f"exited with status {self._proc.returncode}"
                if not self.socket.exists():
                    time.sleep(0.05)
                    continue
                try:
                    client.version(timeout=1.0)
                    client.fs_info()
                except grpc.RpcError as exc:
                    error = repr(exc)
                    time.sleep(0.1)
                    continue
                return ""
        return error

    def stop(self) -> None:
        """Terminate containerd (bounded wait, then kill) and remove its directories."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=_STOP_TIMEOUT)
        if self.keep_logs is not None and self.log_path.exists():
            shutil.copyfile(self.log_path, self.keep_logs)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Containerd:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Images containerd can unpack


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """A deterministic uncompressed tar of regular files (mtime 0, root-owned, 0644)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass(frozen=True, slots=True, kw_only=True)
class PushedImage:
    """A pushed image: its top-level descriptor and, for an index, each platform manifest."""

    top: Descriptor
    platforms: Mapping[str, Descriptor]


def push_platform_manifest(
    pusher: Pusher, repo: str, platform: str, files: Mapping[str, bytes]
) -> Descriptor:
    """One unpackable image manifest for ``platform`` (pushed by digest, untagged)."""
    os_, arch, *variant = platform.split("/")
    layer = layer_tar(files)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg: dict[str, Any] = {
        "architecture": arch,
        "os": os_,
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    if variant:
        cfg["variant"] = variant[0]
    config = pusher.push_blob(repo, _canonical(cfg), MT_CONFIG)
    layer_desc = pusher.push_blob(repo, layer, MT_LAYER)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config.to_json(),
        "layers": [layer_desc.to_json()],
    }
    data = _canonical(manifest)
    return pusher.push_manifest(
        repo, "sha256:" + hashlib.sha256(data).hexdigest(), data, MT_MANIFEST
    )


def push_unpackable_image(
    pusher: Pusher,
    repo: str,
    tag: str,
    *,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
    content: bytes = b"hello",
) -> PushedImage:
    """A multi-platform index over unpackable manifests (distinct content per platform)."""
    manifests = {
        plat: push_platform_manifest(pusher, repo, plat, {"hello": content + plat.encode()})
        for plat in platforms
    }
    top = pusher.push_index(repo, tag, manifests)
    return PushedImage(top=top, platforms=manifests)
