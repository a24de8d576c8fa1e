"""Does the kubelet pull through pullgate's CRI socket (docs/containerd.md §3.3)?

The endpoint comes from ``--image-service-endpoint`` in the kubelet's flag files, which win, or
``imageServiceEndpoint`` in its ``config.yaml`` (read line by line: no YAML parser).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pullgate.doctor.endpoints import same_socket
from pullgate.doctor.findings import Code, DoctorPaths, Finding, Severity, read_config

__all__ = ["KubeletSetting", "kubelet_checks", "kubelet_setting"]

_FLAG = re.compile(r"--image-service-endpoint(?:=|\s+)[\"']?([^\s\"']+)")
_YAML_KEY = re.compile(r"^[\"']?imageServiceEndpoint[\"']?\s*:\s*(.*)$")


@dataclass(frozen=True, slots=True)
class KubeletSetting:
    """One kubelet setting as found in its files."""

    value: str | None  # None: not set (or in no readable file)
    source: Path | None  # the file it came from
    seen: bool  # some kubelet file was readable
    unreadable: tuple[tuple[Path, str], ...] = ()  # (file, error): present, not readable


def kubelet_setting(
    paths: DoctorPaths, flag: re.Pattern[str], key: re.Pattern[str]
) -> KubeletSetting:
    """One kubelet setting: ``flag`` (group 1) in its flag files, which win, else ``key``
    (group 1) in its ``config.yaml``."""
    unreadable: list[tuple[Path, str]] = []
    seen = False
    for flags in paths.kubelet_flags:
        text = read_config(flags)
        if text is None:
            continue
        if text.startswith("\x00"):
            unreadable.append((flags, text[1:]))
            continue
        seen = True
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            match = flag.search(line)
            if match:
                return KubeletSetting(match.group(1), flags, True, tuple(unreadable))
    text = read_config(paths.kubelet_config)
    if text is None or text.startswith("\x00"):
        if text is not None:
            unreadable.append((paths.kubelet_config, text[1:]))
        return KubeletSetting(None, None, seen, tuple(unreadable))
    for line in text.splitlines():
        match = key.match(line)
        if match:
            value = match.group(1).split(" #", 1)[0].strip().rstrip(",").strip().strip("\"'")
            return KubeletSetting(value or None, paths.kubelet_config, True, tuple(unreadable))
    return KubeletSetting(None, None, True, tuple(unreadable))


def _unreadable(setting: KubeletSetting) -> list[Finding]:
    """A kubelet file that is there but cannot be read: its endpoints are not checked."""
    return [
        Finding(
            severity=Severity.WARNING,
            code=Code.KUBELET_CONFIG_UNREADABLE,
            message=f"{path} cannot be read ({error}): the kubelet endpoints set there are "
            "not checked",
            file=path,
            fix=f"run pullgate doctor as a user that can read {path}, or fix the file",
        )
        for path, error in setting.unreadable
    ]


def kubelet_checks(
    paths: DoctorPaths, verifiers_enforce: bool, *, runtime_gated: bool = False
) -> list[Finding]:
    """Whether the kubelet pulls through pullgate's CRI socket; an error unless verifiers do.
    ``runtime_gated``: its runtime endpoint is pullgate's gate, which serves image calls too, so
    no ``imageServiceEndpoint`` is needed, and one naming the gate's socket is as good as the CRI
    socket (also when ``[runtime]`` is configured)."""
    setting = kubelet_setting(paths, _FLAG, _YAML_KEY)
    endpoint, source, seen = setting.value, setting.source, setting.seen
    return _unreadable(setting) + _endpoint_checks(
        paths, verifiers_enforce, runtime_gated, endpoint, source, seen
    )


def _endpoint_checks(
    paths: DoctorPaths,
    verifiers_enforce: bool,
    runtime_gated: bool,
    endpoint: str | None,
    source: Path | None,
    seen: bool,
) -> list[Finding]:
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
