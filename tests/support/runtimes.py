"""Real container runtimes that run pods: containerd 2.4 (``../shared/runtimes``) and Debian's 1.6.

:func:`runtime_binaries` unpacks containerd 2.4, its runc shim, ``ctr`` and ``crictl`` from
``<repo>/../shared/runtimes`` once per machine (the folder's own ``unpack`` script checks their
SHA-256; a file lock keeps concurrent test runs from unpacking over each other) and
:func:`runtimes_unavailable` says why they cannot be used, so tests skip with a visible reason
only where ``../shared`` is absent.

:class:`PodRuntime` starts a private containerd — ``kind="2.4"`` (config ``version = 3``) or
``kind="1.6"`` (Debian's, ``version = 2``) — that can run real pods with Debian's ``runc``: the
settings the runtimes README lists as needed on these machines (``restrict_oom_score_adj``,
host-network pods, runc ``Root`` private, no systemd cgroups, the matching shim first on
``PATH``), every path in its own directory, and optional NRI (socket, required plugins,
``plugin_path``) and bindir image-verifier settings. :meth:`PodRuntime.crictl` and
:meth:`PodRuntime.ctr` run the real clients against it (crictl's endpoints can be pointed at
pullgate's sockets instead).

:func:`push_runnable_image` pushes busybox-static images that really run (a sandbox image that
waits for SIGTERM, and workload images whose command prints a line).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pullgate.common.descriptor import Descriptor
from tests.support.containerd import CONTAINERD_BINARY, CriClient
from tests.support.push import MT_CONFIG, MT_LAYER, MT_MANIFEST, Pusher

REPO = Path(__file__).resolve().parents[2]
SHARED_RUNTIMES = REPO.parent / "shared" / "runtimes"
RUNC = Path("/usr/sbin/runc")
BUSYBOX = Path("/bin/busybox")
DEBIAN_CTR = Path("/usr/bin/ctr")
_CACHE_ROOT = Path("/tmp")
_START_TIMEOUT = 40.0
_STOP_TIMEOUT = 15.0
_CLIENT_TIMEOUT = 120.0

Kind = Literal["1.6", "2.4"]


class RuntimeStartError(RuntimeError):
    """A runtime could not be started or never answered."""


def runtimes_unavailable(kind: Kind = "2.4") -> str | None:
    """Why a pod-capable runtime of ``kind`` cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "real runtimes need root (they mount, chown and run runc)"
    if kind == "2.4":
        if not (SHARED_RUNTIMES / "unpack").is_file():
            return f"{SHARED_RUNTIMES} is absent (containerd 2.4, ctr and crictl come from there)"
        if shutil.which("xz") is None:
            return "xz is not installed (apt-get install xz-utils)"
    elif not CONTAINERD_BINARY.is_file():
        return f"{CONTAINERD_BINARY} is not installed (apt-get install containerd)"
    for tool, package in ((RUNC, "runc"), (BUSYBOX, "busybox-static")):
        if not tool.is_file():
            return f"{tool} is not installed (apt-get install {package})"
    return None


def runtime_binaries() -> Path:
    """The directory holding containerd 2.4, ``containerd-shim-runc-v2``, ``ctr`` and ``crictl``.

    Unpacked once per machine into a directory named by the checksums file, so a changed
    ``../shared/runtimes`` gets a fresh directory.
    """
    sums = (SHARED_RUNTIMES / "SHA256SUMS").read_bytes()
    dest = _CACHE_ROOT / f"pullgate-runtimes-{hashlib.sha256(sums).hexdigest()[:12]}"
    dest.mkdir(exist_ok=True)
    with (dest / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(
            [str(SHARED_RUNTIMES / "unpack"), str(dest)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return dest


def crictl_binary() -> Path:
    """``crictl`` from ``../shared/runtimes`` (also the kubelet stand-in for a 1.6 runtime)."""
    return runtime_binaries() / "crictl"


def _toml(value: str | Path) -> str:
    return json.dumps(str(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class NriOptions:
    """NRI settings of a 2.4 runtime (``socket`` defaults to ``<workdir>/nri.sock``)."""

    required_plugins: Sequence[str] = ()
    plugin_path: Path | None = None
    plugin_config_path: Path | None = None
    request_timeout: str = "2s"
    registration_timeout: str = "5s"
    tolerate_missing_plugins_annotation: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeOptions:
    """What a :class:`PodRuntime` is configured with beyond the defaults."""

    certs_d: Path
    sandbox_image: str | None = None
    nri: NriOptions | None = None
    verifier_bin_dir: Path | None = None
    verifier_timeout: str = "10s"
    extra_toml: Sequence[str] = field(default_factory=tuple)


class PodRuntime:
    """A private containerd (2.4 or Debian's 1.6) with the CRI plugin, able to run pods.

    Use as a context manager. :meth:`restart` stops and starts the same instance (its content
    and state kept), as a node's containerd restarts underneath its plugins.
    """

    def __init__(self, kind: Kind, options: RuntimeOptions) -> None:
        self.kind: Kind = kind
        self.options = options
        self.workdir = Path(tempfile.mkdtemp(prefix=f"pgrt{kind.replace('.', '')}-", dir="/tmp"))
        self._proc: subprocess.Popen[bytes] | None = None
        self.bin_dir = runtime_binaries() if kind == "2.4" else None

    # -- paths ------------------------------------------------------------------------------

    @property
    def socket(self) -> Path:
        """containerd's gRPC socket (CRI is served on it)."""
        return self.workdir / "c.sock"

    @property
    def nri_socket(self) -> Path:
        """The NRI socket plugins dial."""
        return self.workdir / "nri.sock"

    @property
    def log_path(self) -> Path:
        """containerd's stdout and stderr."""
        return self.workdir / "containerd.log"

    @property
    def pid(self) -> int | None:
        """containerd's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def endpoint(self) -> str:
        """``unix://`` URL of :attr:`socket` (what crictl and the CRI proxies take)."""
        return f"unix://{self.socket}"

    # -- configuration ----------------------------------------------------------------------

    def _dirs(self) -> dict[str, Path]:
        names = ("root", "state", "cni", "opt", "runc", "logs")
        dirs = {name: self.workdir / name for name in names}
        for d in dirs.values():
            d.mkdir(exist_ok=True)
        return dirs

    def _common(self, dirs: Mapping[str, Path]) -> list[str]:
        return [
            f"root = {_toml(dirs['root'])}",
            f"state = {_toml(dirs['state'])}",
            "[grpc]",
            f"  address = {_toml(self.socket)}",
            "[ttrpc]",
            f"  address = {_toml(str(self.socket) + '.ttrpc')}",
            "[debug]",
            '  address = ""',
            "[metrics]",
            '  address = ""',
        ]

    def _config_24(self, dirs: Mapping[str, Path]) -> list[str]:
        o = self.options
        images = "plugins.'io.containerd.cri.v1.images'"
        runtime = "plugins.'io.containerd.cri.v1.runtime'"
        runc = f"{runtime}.containerd.runtimes.runc"
        lines = ["version = 3", *self._common(dirs)]
        lines += [
            "[plugins.'io.containerd.internal.v1.opt']",
            f"  path = {_toml(dirs['opt'])}",
            f"[{images}]",
            "  snapshotter = 'overlayfs'",
            f"[{images}.registry]",
            f"  config_path = {_toml(o.certs_d)}",
        ]
        if o.sandbox_image is not None:
            lines += [f"[{images}.pinned_images]", f"  sandbox = {_toml(o.sandbox_image)}"]
        lines += [
            f"[{runtime}]",
            "  enable_cdi = false",
            "  restrict_oom_score_adj = true",
            f"[{runtime}.cni]",
            f"  bin_dirs = [{_toml(dirs['cni'])}]",
            f"  conf_dir = {_toml(dirs['cni'])}",
            f"[{runc}]",
            "  runtime_type = 'io.containerd.runc.v2'",
            f"[{runc}.options]",
            f"  BinaryName = {_toml(RUNC)}",
            f"  Root = {_toml(dirs['runc'])}",
            "  SystemdCgroup = false",
        ]
        nri = "plugins.'io.containerd.nri.v1.nri'"
        if o.nri is None:
            lines += [f"[{nri}]", "  disable = true"]
        else:
            lines += [
                f"[{nri}]",
                "  disable = false",
                f"  socket_path = {_toml(self.nri_socket)}",
                f"  plugin_path = {_toml(o.nri.plugin_path or self.workdir / 'nri-plugins')}",
                f"  plugin_config_path = "
                f"{_toml(o.nri.plugin_config_path or self.workdir / 'nri-conf')}",
                f"  plugin_request_timeout = {_toml(o.nri.request_timeout)}",
                f"  plugin_registration_timeout = {_toml(o.nri.registration_timeout)}",
            ]
            if o.nri.required_plugins or o.nri.tolerate_missing_plugins_annotation:
                lines += [f"[{nri}.default_validator]", "  enable = true"]
                plugins = ", ".join(_toml(p) for p in o.nri.required_plugins)
                lines.append(f"  required_plugins = [{plugins}]")
                if o.nri.tolerate_missing_plugins_annotation:
                    lines.append(
                        "  tolerate_missing_plugins_annotation = "
                        + _toml(o.nri.tolerate_missing_plugins_annotation)
                    )
        verifier = "plugins.'io.containerd.image-verifier.v1.bindir'"
        bin_dir = o.verifier_bin_dir or self.workdir / "no-verifiers"
        lines += [
            f"[{verifier}]",
            f"  bin_dir = {_toml(bin_dir)}",
            f"  per_verifier_timeout = {_toml(o.verifier_timeout)}",
        ]
        return lines

    def _config_16(self, dirs: Mapping[str, Path]) -> list[str]:
        o = self.options
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        runc = f"{cri}.containerd.runtimes.runc"
        lines = ["version = 2", *self._common(dirs)]
        lines += [
            '[plugins."io.containerd.internal.v1.opt"]',
            f"  path = {_toml(dirs['opt'])}",
            f"[{cri}]",
            "  restrict_oom_score_adj = true",
            "  enable_cdi = false",
        ]
        if o.sandbox_image is not None:
            lines.append(f"  sandbox_image = {_toml(o.sandbox_image)}")
        lines += [
            f"[{cri}.containerd]",
            '  snapshotter = "overlayfs"',
            '  default_runtime_name = "runc"',
            f"[{runc}]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"[{runc}.options]",
            f"  BinaryName = {_toml(RUNC)}",
            f"  Root = {_toml(dirs['runc'])}",
            "  SystemdCgroup = false",
            f"[{cri}.cni]",
            f"  bin_dir = {_toml(dirs['cni'])}",
            f"  conf_dir = {_toml(dirs['cni'])}",
            f"[{cri}.registry]",
            f"  config_path = {_toml(o.certs_d)}",
        ]
        return lines

    def _write_config(self) -> Path:
        dirs = self._dirs()
        lines = self._config_24(dirs) if self.kind == "2.4" else self._config_16(dirs)
        lines += list(self.options.extra_toml)
        path = self.workdir / "config.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- lifecycle --------------------------------------------------------------------------

    def _binary(self) -> Path:
        return self.bin_dir / "containerd" if self.bin_dir is not None else CONTAINERD_BINARY

    def _env(self) -> dict[str, str]:
        path = "/usr/sbin:/usr/bin:/sbin:/bin"
        if self.bin_dir is not None:
            path = f"{self.bin_dir}:{path}"  # its own runc shim first
        return {"PATH": path, "HOME": str(self.workdir)}

    def start(self) -> None:
        """Start containerd and wait (bounded) until CRI answers."""
        reason = runtimes_unavailable(self.kind)
        if reason is not None:
            raise RuntimeStartError(reason)
        config = self._write_config()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self._binary()), "--config", str(config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=self._env(),
                cwd=self.workdir,
                start_new_session=True,
            )
        error = self._wait_ready()
        if error:
            self.stop()
            raise RuntimeStartError(f"containerd {self.kind} did not become ready: {error}")

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + _START_TIMEOUT
        error = "not started"
        with CriClient(self.socket) as client:
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    tail = self.log_path.read_text(errors="replace")[-3000:]
                    return f"exited with status {self._proc.returncode}\n{tail}"
                if not self.socket.exists():
                    time.sleep(0.05)
                    continue
                try:
                    client.version(timeout=1.0)
                    client.fs_info()
                except Exception as exc:  # noqa: BLE001 - any error means "not yet"
                    error = repr(exc)
                    time.sleep(0.1)
                    continue
                return ""
        return error

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT)

    def restart(self) -> None:
        """Stop containerd (pods and content kept, as on a node) and start it again."""
        self._terminate()
        self.start()

    def stop(self) -> None:
        """Remove every pod, stop containerd and remove its directories (mounts first)."""
        if self._proc is not None and self._proc.poll() is None:
            self._remove_pods()
        self._terminate()
        self._kill_shims()
        self._unmount_all()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _remove_pods(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.crictl("rmp", "--all", "--force", timeout=60)

    def _kill_shims(self) -> None:
        """Kill processes left running from this runtime's directories (shims, containers)."""
        marker = str(self.workdir)
        for proc_dir in Path("/proc").iterdir():
            if not proc_dir.name.isdigit():
                continue
            try:
                cmdline = (proc_dir / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and "containerd-shim" in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(int(proc_dir.name), 9)

    def _unmount_all(self) -> None:
        marker = str(self.workdir)
        try:
            mounts = Path("/proc/self/mounts").read_text().splitlines()
        except OSError:
            return
        targets = [line.split()[1] for line in mounts if marker in line.split()[1]]
        for target in sorted(targets, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)

    def __enter__(self) -> PodRuntime:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients ----------------------------------------------------------------------------

    def ctr(
        self, *args: str, timeout: float = _CLIENT_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``ctr --address SOCKET --namespace k8s.io ARGS`` (the ctr of the same containerd)."""
        binary = self.bin_dir / "ctr" if self.bin_dir is not None else DEBIAN_CTR
        done = subprocess.run(
            [str(binary), "--address", str(self.socket), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self._env(),
        )
        if check and done.returncode != 0:  # say what ctr said: a failure is otherwise opaque
            raise RuntimeError(f"ctr {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def crictl(
        self,
        *args: str,
        runtime_endpoint: str | None = None,
        image_endpoint: str | None = None,
        timeout: float = _CLIENT_TIMEOUT,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``crictl`` against this runtime, or with its endpoints at pullgate's sockets."""
        argv = [
            str(crictl_binary()),
            "--runtime-endpoint",
            runtime_endpoint or self.endpoint(),
            "--image-endpoint",
            image_endpoint or runtime_endpoint or self.endpoint(),
            "--timeout",
            f"{int(timeout)}s",
            *args,
        ]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout + 10, check=check
        )

    def write_pod_config(self, name: str | None = None) -> Path:
        """A host-network pod sandbox config file for ``crictl runp`` (unique name and uid)."""
        name = name or f"pod-{uuid.uuid4().hex[:8]}"
        config = {
            "metadata": {"name": name, "namespace": "default", "uid": uuid.uuid4().hex},
            "log_directory": str(self.workdir / "logs" / name),
            "linux": {"security_context": {"namespace_options": {"network": 2}}},
        }
        path = self.workdir / f"{name}.pod.json"
        path.write_text(json.dumps(config))
        return path

    def write_container_config(
        self, image: str, name: str | None = None, *, command: Sequence[str] | None = None
    ) -> Path:
        """A container config file for ``crictl create`` (its log at ``<name>.log``)."""
        name = name or f"ctr-{uuid.uuid4().hex[:8]}"
        config: dict[str, Any] = {
            "metadata": {"name": name},
            "image": {"image": image},
            "log_path": f"{name}.log",
            "linux": {},
        }
        if command is not None:
            config["command"] = list(command)
        path = self.workdir / f"{name}.ctr.json"
        path.write_text(json.dumps(config))
        return path

    def run_pod(
        self, *, runtime_endpoint: str | None = None, image_endpoint: str | None = None
    ) -> tuple[str, Path]:
        """``crictl runp`` of a fresh host-network pod: (pod id, its config file)."""
        pod_config = self.write_pod_config()
        out = self.crictl(
            "runp",
            str(pod_config),
            runtime_endpoint=runtime_endpoint,
            image_endpoint=image_endpoint,
        )
        return out.stdout.strip(), pod_config


# --------------------------------------------------------------------------------------------
# Images that really run


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def busybox_layer(extra: Mapping[str, bytes] | None = None) -> bytes:
    """An uncompressed tar with ``/bin/busybox`` (Debian's static build) and ``extra`` files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("bin", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        data = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bin/sh")
        link.type = tarfile.SYMTYPE
        link.linkname = "busybox"
        tar.addfile(link)
        for name, content in sorted((extra or {}).items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


# The sandbox ("pause") command: wait until SIGTERM, then exit 0.
PAUSE_COMMAND = ("/bin/busybox", "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done")


def push_runnable_manifest(
    pusher: Pusher,
    repo: str,
    *,
    command: Sequence[str],
    platform: str = "linux/amd64",
    marker: bytes = b"",
    tag: str | None = None,
) -> Descriptor:
    """One busybox image manifest whose config runs ``command`` (``marker`` makes it unique)."""
    os_, arch, *variant = platform.split("/")
    layer = busybox_layer({"marker": marker + platform.encode()})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg: dict[str, Any] = {
        "architecture": arch,
        "os": os_,
        "config": {"Cmd": list(command), "Env": ["PATH=/bin"]},
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
    ref = tag or "sha256:" + hashlib.sha256(data).hexdigest()
    return pusher.push_manifest(repo, ref, data, MT_MANIFEST)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnableImage:
    """A pushed runnable image: its top-level descriptor and each platform manifest's."""

    reference: str
    top: Descriptor
    platforms: Mapping[str, Descriptor]


def push_runnable_image(
    pusher: Pusher,
    registry_host: str,
    repo: str,
    tag: str,
    *,
    message: str = "hello from pullgate tests",
    platforms: Sequence[str] = ("linux/amd64",),
    index: bool = False,
) -> RunnableImage:
    """A busybox image whose command prints ``message``; an index over ``platforms`` if asked."""
    command = ("/bin/busybox", "echo", message)
    marker = uuid.uuid4().bytes
    if not index:
        (plat,) = platforms
        top = push_runnable_manifest(
            pusher, repo, command=command, platform=plat, marker=marker, tag=tag
        )
        return RunnableImage(
            reference=f"{registry_host}/{repo}:{tag}", top=top, platforms={plat: top}
        )
    manifests = {
        plat: push_runnable_manifest(pusher, repo, command=command, platform=plat, marker=marker)
        for plat in platforms
    }
    top = pusher.push_index(repo, tag, manifests)
    return RunnableImage(reference=f"{registry_host}/{repo}:{tag}", top=top, platforms=manifests)


def push_pause_image(pusher: Pusher, registry_host: str, repo: str = "test/pause") -> str:
    """The sandbox image (tag ``1``); returns its reference for ``sandbox``/``sandbox_image``."""
    push_runnable_manifest(pusher, repo, command=PAUSE_COMMAND, tag="1")
    return f"{registry_host}/{repo}:1"
