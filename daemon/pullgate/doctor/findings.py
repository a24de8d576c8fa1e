"""The doctor's data: finding severities and codes, :class:`Finding`, what to inspect.

Also how a finding is rendered for people, and how a node file is read: nothing in
:mod:`pullgate.doctor` raises for a bad file, so an unreadable one comes back as a marked string
its caller turns into a finding (docs/containerd.md §2-§4 name the files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Severity(StrEnum):
    """How bad a finding is; ``error`` makes ``pullgate doctor`` exit 1."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Code(StrEnum):
    """Finding codes: stable, tests and operators match on them."""

    CONTAINERD_CONFIG_MISSING = "CONTAINERD_CONFIG_MISSING"
    CONTAINERD_CONFIG_INVALID = "CONTAINERD_CONFIG_INVALID"
    CONTAINERD_VERSION_ASSUMED = "CONTAINERD_VERSION_ASSUMED"
    CONFIG_PATH_UNSET = "CONFIG_PATH_UNSET"
    CONFIG_PATH_LIST = "CONFIG_PATH_LIST"
    LOCAL_IMAGE_PULL = "LOCAL_IMAGE_PULL"
    VERIFIERS_UNAVAILABLE = "VERIFIERS_UNAVAILABLE"
    VERIFIER_PLUGIN_DISABLED = "VERIFIER_PLUGIN_DISABLED"
    BIN_DIR_NOT_EXECUTABLE = "BIN_DIR_NOT_EXECUTABLE"
    SHIM_MISSING = "SHIM_MISSING"
    SHIM_NOT_RUN = "SHIM_NOT_RUN"
    VERIFIER_TIMEOUT_SHORT = "VERIFIER_TIMEOUT_SHORT"
    KUBELET_CONFIG_MISSING = "KUBELET_CONFIG_MISSING"
    KUBELET_CONFIG_UNREADABLE = "KUBELET_CONFIG_UNREADABLE"
    KUBELET_ENDPOINT_UNSET = "KUBELET_ENDPOINT_UNSET"
    KUBELET_ENDPOINT_MISMATCH = "KUBELET_ENDPOINT_MISMATCH"
    API_SOCKET_MISSING = "API_SOCKET_MISSING"
    CRI_SOCKET_MISSING = "CRI_SOCKET_MISSING"
    NRI_DISABLED = "NRI_DISABLED"
    NRI_NOT_REQUIRED = "NRI_NOT_REQUIRED"
    NRI_TOLERATE_ANNOTATION = "NRI_TOLERATE_ANNOTATION"
    NRI_TIMEOUT_SHORT = "NRI_TIMEOUT_SHORT"
    RUNTIME_GATE_NOT_HOST_SERVICE = "RUNTIME_GATE_NOT_HOST_SERVICE"
    RUNTIME_GATE_DOWN = "RUNTIME_GATE_DOWN"
    RUNTIME_GATE_BYPASSED = "RUNTIME_GATE_BYPASSED"
    PULLGATE_CONFIG_INVALID = "PULLGATE_CONFIG_INVALID"
    RUNTIME_UPSTREAM_LOOP = "RUNTIME_UPSTREAM_LOOP"
    RUNTIME_UPSTREAM_DOWN = "RUNTIME_UPSTREAM_DOWN"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem: what, where (``file``/``line`` when known), and the exact change (``fix``)."""

    severity: Severity
    code: Code
    message: str
    file: Path | None
    fix: str
    line: int | None = None

    def summary(self) -> str:
        """One line, e.g. for ``StatusResponse.problems``."""
        return f"{self.severity.value}: {self.code.value}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorPaths:
    """What to inspect; a None ``containerd_version`` (major, minor) is inferred from the schema."""

    containerd_config: Path = Path("/etc/containerd/config.toml")
    kubelet_config: Path = Path("/var/lib/kubelet/config.yaml")
    kubelet_flags: tuple[Path, ...] = (
        Path("/etc/default/kubelet"),
        Path("/var/lib/kubelet/kubeadm-flags.env"),
    )
    api_socket: Path = Path("/run/pullgate/pullgate.sock")
    cri_socket: Path = Path("/run/pullgate/cri.sock")
    containerd_version: tuple[int, int] | None = None
    check_sockets: bool = True
    nri_plugin: str | None = None  # pullgate's NRI plugin name: check NRI requires it
    nri_p99: float | None = None  # measured NRI answer p99, seconds
    runtime_socket: Path = Path("/run/pullgate/runtime.sock")  # the [runtime] gate
    runtime_gate: bool = False  # pullgate's config has [runtime]: the kubelet must use the gate
    runtime_upstream: str | None = None  # its [runtime] upstream: where the gate forwards
    systemd_units: tuple[Path, ...] = (
        Path("/etc/systemd/system/pullgate.service"),
        Path("/lib/systemd/system/pullgate.service"),
        Path("/usr/lib/systemd/system/pullgate.service"),
    )


def read_config(path: Path) -> str | None:
    """A node file's text; None when absent, a NUL and the error when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"\x00{exc}"  # marker: unreadable


def render_findings(findings: Sequence[Finding]) -> str:
    """Human-readable report: one block per finding, the fix indented."""
    if not findings:
        return "pullgate doctor: no problems found\n"
    blocks = []
    for f in findings:
        where = f"{f.file}:{f.line}" if f.file and f.line else str(f.file or "")
        fix = "\n".join(f"      {ln}" for ln in f.fix.splitlines())
        blocks.append(
            f"{f.severity.value.upper()} {f.code.value} {where}\n  {f.message}\n  fix:\n{fix}"
        )
    return "\n\n".join(blocks) + "\n"
