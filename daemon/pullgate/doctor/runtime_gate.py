"""Is the kubelet's runtime endpoint pullgate's container-start gate, and can it be?

The kubelet's ``containerRuntimeEndpoint`` (``--container-runtime-endpoint`` in its flag files,
which win, or ``containerRuntimeEndpoint`` in ``config.yaml``) may point at pullgate's
``[runtime]`` socket. Then pullgate must run as a host service (the systemd unit): the kubelet
cannot start the pod that would serve its own runtime endpoint, so a gate served from a
DaemonSet pod leaves the node NotReady after any restart. Findings:

* ``RUNTIME_GATE_NOT_HOST_SERVICE`` (error): the endpoint is pullgate's, and no pullgate
  systemd unit is installed on the host;
* ``RUNTIME_GATE_DOWN`` (error): the endpoint is pullgate's and its socket is not there (the
  kubelet sees the runtime as down);
* ``RUNTIME_GATE_BYPASSED`` (error): pullgate's config has ``[runtime]`` but the kubelet's
  endpoint is something else (the runtime itself, or unset): container starts the operator
  meant to gate are not;
* ``RUNTIME_UPSTREAM_LOOP`` (error): ``[runtime] upstream`` is the gate's own socket;
* ``RUNTIME_UPSTREAM_DOWN`` (error, with the socket checks): nothing listens at ``[runtime]
  upstream``, so every call the gate forwards fails.

Endpoints compare as the kubelet dials them (:mod:`.endpoints`).
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from pullgate.doctor.endpoints import endpoint_path, same_socket
from pullgate.doctor.findings import Code, DoctorPaths, Finding, Severity
from pullgate.doctor.kubelet import KubeletSetting, kubelet_setting

__all__ = ["kubelet_runtime_endpoint", "runtime_gate_checks"]

_FLAG = re.compile(r"--container-runtime-endpoint(?:=|\s+)[\"']?([^\s\"']+)")
_YAML_KEY = re.compile(r"^[\"']?containerRuntimeEndpoint[\"']?\s*:\s*(.*)$")


def kubelet_runtime_endpoint(paths: DoctorPaths) -> KubeletSetting:
    """The kubelet's runtime endpoint (flags win over config)."""
    return kubelet_setting(paths, _FLAG, _YAML_KEY)


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False


def _bypassed(paths: DoctorPaths, endpoint: str | None, source: Path | None) -> Finding:
    """``[runtime]`` is configured and the kubelet's runtime endpoint is not the gate."""
    want = f"unix://{paths.runtime_socket}"
    if source is not None and source != paths.kubelet_config:
        where = f"--container-runtime-endpoint in {source}"
        fix = f"--container-runtime-endpoint={want}   # in {source}"
    else:
        where = f"containerRuntimeEndpoint in {paths.kubelet_config}"
        fix = f"containerRuntimeEndpoint: {want}   # in {paths.kubelet_config}"
    shown = "unset" if endpoint is None else endpoint
    return Finding(
        severity=Severity.ERROR,
        code=Code.RUNTIME_GATE_BYPASSED,
        message=f"[runtime] is configured but the kubelet's runtime endpoint ({where}) is "
        f"{shown}, not pullgate's gate {paths.runtime_socket}: container starts are not gated",
        file=source or paths.kubelet_config,
        fix=f"{fix}, then restart the kubelet\n"
        "(pullgate's [runtime] upstream names the runtime the gate forwards to)",
    )


def _upstream_checks(paths: DoctorPaths) -> list[Finding]:
    """Whether the gate's ``[runtime] upstream`` is a runtime it can forward to."""
    upstream = paths.runtime_upstream
    if not paths.runtime_gate or upstream is None:
        return []
    fix = "upstream = unix:///run/containerd/containerd.sock   # in [runtime]: the runtime's socket"
    if same_socket(upstream, paths.runtime_socket):
        return [
            Finding(
                severity=Severity.ERROR,
                code=Code.RUNTIME_UPSTREAM_LOOP,
                message=f"[runtime] upstream {upstream} is the gate's own socket: every call the "
                "gate forwards comes back to it",
                file=None,
                fix=fix,
            )
        ]
    path = endpoint_path(upstream)
    if paths.check_sockets and (path is None or not _is_socket(Path(path))):
        return [
            Finding(
                severity=Severity.ERROR,
                code=Code.RUNTIME_UPSTREAM_DOWN,
                message=f"nothing listens at [runtime] upstream {upstream}: every call the gate "
                "forwards fails and the kubelet sees the runtime as down",
                file=Path(path) if path else None,
                fix=f"systemctl start containerd, or {fix}",
            )
        ]
    return []


def runtime_gate_checks(paths: DoctorPaths, runtime: KubeletSetting) -> list[Finding]:
    """The findings about the RuntimeService gate (see the module docstring); ``runtime`` is
    :func:`kubelet_runtime_endpoint`'s answer, read once per doctor run."""
    findings = _upstream_checks(paths)
    endpoint, source = runtime.value, runtime.source
    if not same_socket(endpoint, paths.runtime_socket):
        if paths.runtime_gate and runtime.seen:
            findings.append(_bypassed(paths, endpoint, source))
        return findings  # not gated here (the NRI plugin may gate starts instead)
    if not any(unit.is_file() for unit in paths.systemd_units):
        findings.append(
            Finding(
                severity=Severity.ERROR,
                code=Code.RUNTIME_GATE_NOT_HOST_SERVICE,
                message=f"the kubelet's runtime endpoint is pullgate's gate ({endpoint}) but no "
                "pullgate systemd unit is installed: the kubelet cannot start a pod that serves "
                "its own runtime endpoint",
                file=source,
                fix="install pullgate as a host service (the .deb or systemd/pullgate.service), "
                "or point containerRuntimeEndpoint at containerd",
            )
        )
    if paths.check_sockets and not _is_socket(paths.runtime_socket):
        findings.append(
            Finding(
                severity=Severity.ERROR,
                code=Code.RUNTIME_GATE_DOWN,
                message=f"the kubelet's runtime endpoint {endpoint} is not a listening socket: "
                "the kubelet sees the runtime as down",
                file=paths.runtime_socket,
                fix="systemctl start pullgate (with [runtime] in /etc/pullgate/config.toml)",
            )
        )
    return findings
