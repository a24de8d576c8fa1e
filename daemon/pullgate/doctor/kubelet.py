"""Does the kubelet pull through pullgate's CRI socket (docs/containerd.md §3.3)?

The endpoint comes from ``--image-service-endpoint`` in the kubelet's flag files, which win, or
``imageServiceEndpoint`` in its ``config.yaml`` (read line by line: no YAML parser).
"""

from __future__ import annotations

import re
from pathlib import Path

from pullgate.doctor.endpoints import same_socket
from pullgate.doctor.findings import Code, DoctorPaths, Finding, Severity, read_config

__all__ = ["kubelet_checks", "kubelet_setting"]

_FLAG = re.compile(r"--image-service-endpoint(?:=|\s+)[\"']?([^\s\"']+)")
_YAML_KEY = re.compile(r"^[\"']?imageServiceEndpoint[\"']?\s*:\s*(.*)$")


def kubelet_setting(
    paths: DoctorPaths, flag: re.Pattern[str], key: re.Pattern[str]
) -> tuple[str | None, Path | None, bool]:
    """(value, file it came from, whether any kubelet file is readable) of one kubelet
    setting: ``flag`` (group 1) in its flag files, which win, else ``key`` (group 1) in its
    ``config.yaml``."""
    seen = False
    for flags in paths.kubelet_flags:
        text = read_config(flags)
        if text is None or text.startswith("\x00"):
            continue
        seen = True
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            match = flag.search(line)
            if match:
                return match.group(1), flags, True
    text = read_config(paths.kubelet_config)
    if text is None or text.startswith("\x00"):
        return None, None, seen
    for line in text.splitlines():
        match = key.match(line)
        if match:
            value = match.group(1).split(" #", 1)[0].strip().rstrip(",").strip().strip("\"'")
            return value or None, paths.kubelet_config, True
    return None, None, True


def kubelet_checks(
    paths: DoctorPaths, verifiers_enforce: bool, *, runtime_gated: bool = False
) -> list[Finding]:
    """Whether the kubelet pulls through pullgate's CRI socket; an error unless verifiers do.
    ``runtime_gated``: its runtime endpoint is pullgate's gate, which serves image calls too, so
    no ``imageServiceEndpoint`` is needed, and one naming the gate's socket is as good as the CRI
    socket (also when ``[runtime]`` is configured)."""
    endpoint, source, seen = kubelet_setting(paths, _FLAG, _YAML_KEY)
    if endpoint is None and runtime_gated:
        return []
    if (runtime_gated or paths.runtime_gate) and same_socket(endpoint, paths.runtime_socket):
        return []  # the gate's socket: ImageService served there as on the CRI socket
    want = f"unix://{paths.cri_socket}"
    fix = f"imageServiceEndpoint: {want}   # in {paths.kubelet_config}, then restart the kubelet"
    severity = Severity.WARNING if verifiers_enforce else Severity.ERROR
    if not seen:
        return [
            Finding(
                severity=Severity.INFO,
                code=Code.KUBELET_CONFIG_MISSING,
                message=f"no kubelet configuration found at {paths.kubelet_config}",
                file=paths.kubelet_config,
                fix=fix,
            )
        ]
    if endpoint is None:
        return [
            Finding(
                severity=severity,
                code=Code.KUBELET_ENDPOINT_UNSET,
                message="the kubelet has no imageServiceEndpoint: it pulls from the runtime "
                "directly, past pullgate's CRI proxy",
                file=paths.kubelet_config,
                fix=fix,
            )
        ]
    if not same_socket(endpoint, paths.cri_socket):
        where = "--image-service-endpoint" if source != paths.kubelet_config else "config"
        return [
            Finding(
                severity=severity,
                code=Code.KUBELET_ENDPOINT_MISMATCH,
                message=f"the kubelet's image service is {endpoint} ({where}), not pullgate's "
                f"CRI socket {paths.cri_socket}",
                file=source,
                fix=f"--image-service-endpoint={want}" if where != "config" else fix,
            )
        ]
    return []
