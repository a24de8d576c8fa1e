"""The image-verifier plugin and its ``bin_dir``: is pullgate's shim there, and does it run?

docs/containerd.md §2.2-§2.3: containerd 2.x runs every executable in the bindir
verifier's ``bin_dir`` in name order, up to ``max_verifiers``, each within
``per_verifier_timeout``; a non-executable entry blocks every pull.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pullgate.doctor.containerd import ContainerdConfig
from pullgate.doctor.findings import Code, Finding, Severity
from pullgate.errors import PullgateError
from pullgate.shim import DEFAULT_TIMEOUT, parse_duration

SHIM_NAME = "pullgate-containerd-verifier"
DEFAULT_BIN_DIR = Path("/opt/containerd/image-verifier/bin")
BINDIR_PLUGIN = "io.containerd.image-verifier.v1.bindir"


def bindir_checks(cd: ContainerdConfig, cri_runs_verifiers: bool) -> list[Finding]:
    """The verifier plugin and its ``bin_dir`` (§2.2, §2.3); checked on every 2.x, since
    transfer-service pulls outside CRI (``ctr``) run the verifiers too."""
    fix = "imageServiceEndpoint: unix:///run/pullgate/cri.sock   # kubelet config"
    if cd.version >= (2, 0) and cri_runs_verifiers:
        out: list[Finding] = []
    else:
        note = (
            "containerd < 2.0 has no image verifiers"
            if cd.version < (2, 0)
            else ("CRI pulls do not run image verifiers (containerd 2.0, or local pull)")
        )
        out = [
            Finding(
                severity=Severity.INFO,
                code=Code.VERIFIERS_UNAVAILABLE,
                message=f"{note}: enforcement relies on the kubelet using pullgate's CRI socket",
                file=cd.path,
                fix=fix,
            )
        ]
        if cd.version < (2, 0):
            return out
    disabled = cd.doc.get("disabled_plugins")
    if isinstance(disabled, list) and BINDIR_PLUGIN in disabled:
        return [
            *out,
            Finding(
                severity=Severity.ERROR,
                code=Code.VERIFIER_PLUGIN_DISABLED,
                message=f"{BINDIR_PLUGIN} is in disabled_plugins: no verifier runs",
                file=cd.path,
                line=cd.line_of("disabled_plugins"),
                fix=f"disabled_plugins = []   # remove '{BINDIR_PLUGIN}'",
            ),
        ]
    conf = cd.plugin(BINDIR_PLUGIN)
    quote = "'" if cd.schema >= 3 else '"'
    header = f"[plugins.{quote}{BINDIR_PLUGIN}{quote}]"
    raw_dir = conf.get("bin_dir")
    bin_dir = Path(raw_dir) if isinstance(raw_dir, str) and raw_dir else DEFAULT_BIN_DIR
    shim_fix = f'mkdir -p {bin_dir} && ln -s "$(command -v {SHIM_NAME})" {bin_dir / SHIM_NAME}'
    try:
        entries = sorted(os.listdir(bin_dir))
    except OSError:
        entries = []
    for name in entries:
        entry = bin_dir / name
        if not (entry.is_file() and os.access(entry, os.X_OK)):
            out.append(
                Finding(
                    severity=Severity.ERROR,
                    code=Code.BIN_DIR_NOT_EXECUTABLE,
                    message=f"{entry} is not an executable file: containerd fails to run it and "
                    "blocks every pull",
                    file=entry,
                    fix=f"rm -r {entry}   # or: chmod 0755 {entry}",
                )
            )
    shims = [i for i, n in enumerate(entries) if n == SHIM_NAME or _resolves_to_shim(bin_dir / n)]
    max_verifiers = conf.get("max_verifiers", 10)
    if not shims:
        out.append(
            Finding(
                severity=Severity.ERROR,
                code=Code.SHIM_MISSING,
                message=f"{SHIM_NAME} is not in the image-verifier bin_dir {bin_dir}: "
                "containerd pulls are not verified",
                file=bin_dir,
                fix=shim_fix,
            )
        )
    elif isinstance(max_verifiers, int) and 0 <= max_verifiers <= shims[0]:
        out.append(
            Finding(
                severity=Severity.ERROR,
                code=Code.SHIM_NOT_RUN,
                message=f"max_verifiers = {max_verifiers} stops before {SHIM_NAME} "
                f"(entry {shims[0] + 1} of {bin_dir} in name order)",
                file=cd.path,
                line=cd.line_of("max_verifiers", BINDIR_PLUGIN),
                fix=f"{header}\n  max_verifiers = 10",
            )
        )
    out.extend(_timeout_check(cd, conf, header))
    return out


def _resolves_to_shim(path: Path) -> bool:
    try:
        return path.resolve().name == SHIM_NAME
    except (OSError, RuntimeError):
        return False


def _timeout_check(cd: ContainerdConfig, conf: Mapping[str, object], header: str) -> list[Finding]:
    raw = conf.get("per_verifier_timeout", "10s")
    try:
        seconds = parse_duration(raw) if isinstance(raw, str) else 0.0
    except PullgateError:
        seconds = 0.0
    if seconds > DEFAULT_TIMEOUT:
        return []
    return [
        Finding(
            severity=Severity.WARNING,
            code=Code.VERIFIER_TIMEOUT_SHORT,
            message=f"per_verifier_timeout = {str(raw)[:40]!r} does not leave the shim its "
            f"{DEFAULT_TIMEOUT:g}s: slow verdicts become 'signal: killed' errors",
            file=cd.path,
            line=cd.line_of("per_verifier_timeout", BINDIR_PLUGIN),
            fix=f"{header}\n  per_verifier_timeout = '10s'",
        )
    ]
