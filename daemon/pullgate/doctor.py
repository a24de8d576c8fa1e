"""``pullgate doctor``: every known way enforcement on this node is silently bypassed or broken.

Reads containerd's ``config.toml`` (schema ``version = 2`` for 1.6/1.7, ``version = 3`` for 2.x),
the kubelet's ``config.yaml`` and flag files, and the verifier ``bin_dir``, and reports each problem
as a :class:`Finding` carrying the exact line to change. The facts are those of
containerd-integration.md: §2.1-2.3 (image verifiers: which pulls run them, ``bin_dir`` rules),
§3.3 (kubelet ``imageServiceEndpoint``), §4 (CRI registry ``config_path``, the 2.1+ list bug).
Nothing here raises for a bad file: an unreadable or unparsable file is itself a finding.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from pullgate.errors import PullgateError
from pullgate.shim import DEFAULT_TIMEOUT, parse_duration

SHIM_NAME = "pullgate-containerd-verifier"
DEFAULT_BIN_DIR = Path("/opt/containerd/image-verifier/bin")
CERTS_D = "/etc/containerd/certs.d"
BINDIR_PLUGIN = "io.containerd.image-verifier.v1.bindir"
_FLAG = re.compile(r"--image-service-endpoint(?:=|\s+)[\"']?([^\s\"']+)")
_YAML_KEY = re.compile(r"^[\"']?imageServiceEndpoint[\"']?\s*:\s*(.*)$")


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
    KUBELET_ENDPOINT_UNSET = "KUBELET_ENDPOINT_UNSET"
    KUBELET_ENDPOINT_MISMATCH = "KUBELET_ENDPOINT_MISMATCH"
    API_SOCKET_MISSING = "API_SOCKET_MISSING"
    CRI_SOCKET_MISSING = "CRI_SOCKET_MISSING"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Containerd:
    """containerd's configuration as far as enforcement is concerned."""

    path: Path
    text: str
    doc: Mapping[str, object]
    schema: int
    version: tuple[int, int]

    @property
    def images_plugin(self) -> str:
        """The plugin id holding CRI image/registry options for this schema."""
        return {3: "io.containerd.cri.v1.images", 2: "io.containerd.grpc.v1.cri"}.get(
            self.schema, "cri"
        )

    def header(self, *sub: str) -> str:
        """The TOML table header for ``plugins.<images plugin>[.sub…]``, quoted per schema."""
        quote = "'" if self.schema >= 3 else '"'
        plugin = self.images_plugin if self.schema == 1 else f"{quote}{self.images_plugin}{quote}"
        return "[" + ".".join(("plugins", plugin, *sub)) + "]"

    def plugin(self, name: str) -> Mapping[str, object]:
        """``plugins.<name>`` as a table (empty when absent or not a table)."""
        return _table(_table(self.doc, "plugins"), name)

    def line_of(self, key: str, after: str = "") -> int | None:
        """1-based line of the first ``key =`` (after a header line containing ``after``)."""
        lines = self.text.splitlines()
        start = next((i for i, ln in enumerate(lines) if after and after in ln), 0)
        pattern = re.compile(rf"^\s*['\"]?{re.escape(key)}['\"]?\s*=")
        return next((i + 1 for i in range(start, len(lines)) if pattern.match(lines[i])), None)


def _table(doc: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"\x00{exc}"  # marker: unreadable


def _load_containerd(paths: DoctorPaths) -> tuple[_Containerd | None, list[Finding]]:
    path = paths.containerd_config
    text = _read(path)
    findings: list[Finding] = []
    doc: Mapping[str, object] = {}
    if text is None:
        findings.append(
            Finding(
                severity=Severity.WARNING,
                code=Code.CONTAINERD_CONFIG_MISSING,
                message=f"{path} does not exist: containerd runs with its built-in defaults",
                file=path,
                fix=f"containerd config default > {path}  # then apply the fixes below",
            )
        )
        text = ""
    elif text.startswith("\x00"):
        text = ""
        doc = {"version": "unreadable"}
    else:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            doc = {"version": f"invalid TOML: {exc}"}
    schema = doc.get("version", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema not in (1, 2, 3):
        findings.append(
            Finding(
                severity=Severity.ERROR,
                code=Code.CONTAINERD_CONFIG_INVALID,
                message=f"{path} cannot be used ({str(schema)[:200]}); containerd will not start",
                file=path,
                fix="version = 3   # containerd 2.x; 'version = 2' for 1.6/1.7",
            )
        )
        return None, findings
    version = paths.containerd_version
    if version is None:
        version = (2, 1) if schema >= 3 else (1, 7)
        findings.append(
            Finding(
                severity=Severity.INFO,
                code=Code.CONTAINERD_VERSION_ASSUMED,
                message=f"containerd version not given; assuming {version[0]}.{version[1]} "
                f"from 'version = {schema}' in {path}",
                file=path,
                fix="pullgate doctor --containerd-version X.Y",
            )
        )
    return _Containerd(path=path, text=text, doc=doc, schema=schema, version=version), findings


def _local_pull_reasons(cd: _Containerd) -> list[tuple[str, str]]:
    """(key, replacement line) for every option forcing CRI local pull on 2.1+ (§2.1)."""
    images = cd.plugin(cd.images_plugin)
    registry = _table(images, "registry")
    reasons: list[tuple[str, str]] = []
    if images.get("use_local_image_pull") is True:
        reasons.append(("use_local_image_pull", "use_local_image_pull = false"))
    for key in ("mirrors", "configs", "auths"):
        if registry.get(key):
            reasons.append((key, f"# delete {cd.header('registry', key)}… (use certs.d)"))
    if images.get("disable_snapshot_annotations") is False:
        reasons.append(("disable_snapshot_annotations", "disable_snapshot_annotations = true"))
    if images.get("discard_unpacked_layers") is True:
        reasons.append(("discard_unpacked_layers", "discard_unpacked_layers = false"))
    mcd = images.get("max_concurrent_downloads")
    if mcd is not None and mcd != 3:
        reasons.append(("max_concurrent_downloads", "max_concurrent_downloads = 3"))
    if images.get("image_pull_with_sync_fs") is True:
        reasons.append(("image_pull_with_sync_fs", "image_pull_with_sync_fs = false"))
    return reasons


def _registry_checks(cd: _Containerd) -> tuple[list[Finding], bool]:
    """config_path and local-pull findings; also whether CRI pulls run image verifiers."""
    out: list[Finding] = []
    registry = _table(cd.plugin(cd.images_plugin), "registry")
    raw = registry.get("config_path", "")
    config_path = raw if isinstance(raw, str) else ""
    header = cd.header("registry")
    line = cd.line_of("config_path", f"{cd.images_plugin}")
    fix_line = f"{header}\n  config_path = '{CERTS_D}'"
    local = _local_pull_reasons(cd) if cd.version >= (2, 1) else []
    transfer = cd.version >= (2, 1) and not local
    if cd.version < (2, 0) and not config_path:
        out.append(
            Finding(
                severity=Severity.ERROR,
                code=Code.CONFIG_PATH_UNSET,
                message="CRI registry config_path is unset: containerd ignores certs.d/hosts.toml "
                "and resolves images differently from pullgate",
                file=cd.path,
                line=line,
                fix=fix_line,
            )
        )
    default_list = not config_path and not registry.get("mirrors")
    if cd.version >= (2, 1) and (":" in config_path or default_list):
        what = f"'{config_path}' is" if config_path else "unset means the default list, which is"
        out.append(
            Finding(
                # While local pull is forced the list works, but the fix above re-exposes it.
                severity=Severity.ERROR if transfer else Severity.WARNING,
                code=Code.CONFIG_PATH_LIST,
                message=f"CRI registry config_path {what} a ':'-separated list; containerd >= 2.1 "
                "transfer pulls treat it as one directory and silently ignore every hosts.toml",
                file=cd.path,
                line=line,
                fix=fix_line + "   # exactly one directory",
            )
        )
    for key, replacement in local:
        out.append(
            Finding(
                severity=Severity.ERROR,
                code=Code.LOCAL_IMAGE_PULL,
                message=f"'{key}' makes CRI fall back to local pull: image verifiers never run",
                file=cd.path,
                line=cd.line_of(key),
                fix=f"{cd.header()}\n  {replacement}",
            )
        )
    return out, transfer


def _bindir_checks(cd: _Containerd, cri_runs_verifiers: bool) -> list[Finding]:
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


def _timeout_check(cd: _Containerd, conf: Mapping[str, object], header: str) -> list[Finding]:
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


def _kubelet_endpoint(paths: DoctorPaths) -> tuple[str | None, Path | None, bool]:
    """(endpoint, file it came from, whether any kubelet file exists). Flags win over config."""
    seen = False
    for flags in paths.kubelet_flags:
        text = _read(flags)
        if text is None or text.startswith("\x00"):
            continue
        seen = True
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            match = _FLAG.search(line)
            if match:
                return match.group(1), flags, True
    text = _read(paths.kubelet_config)
    if text is None or text.startswith("\x00"):
        return None, None, seen
    for line in text.splitlines():
        match = _YAML_KEY.match(line)
        if match:
            value = match.group(1).split(" #", 1)[0].strip().rstrip(",").strip().strip("\"'")
            return value or None, paths.kubelet_config, True
    return None, None, True


def _kubelet_checks(paths: DoctorPaths, verifiers_enforce: bool) -> list[Finding]:
    endpoint, source, seen = _kubelet_endpoint(paths)
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
    if endpoint.removeprefix("unix://") != str(paths.cri_socket):
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


def _socket_checks(paths: DoctorPaths) -> list[Finding]:
    out: list[Finding] = []
    for path, code, what in (
        (paths.api_socket, Code.API_SOCKET_MISSING, "pullgate.v1 API (used by the verifier shim)"),
        (paths.cri_socket, Code.CRI_SOCKET_MISSING, "CRI ImageService (used by the kubelet)"),
    ):
        try:
            ok = stat.S_ISSOCK(path.stat().st_mode)
        except OSError:
            ok = False
        if not ok:
            out.append(
                Finding(
                    severity=Severity.ERROR,
                    code=code,
                    message=f"no socket at {path}: the {what} is not being served",
                    file=path,
                    fix="systemctl start pullgate   # and check 'journalctl -u pullgate'",
                )
            )
    return out


def run_doctor(paths: DoctorPaths) -> list[Finding]:
    """Every finding for this node, errors first."""
    cd, findings = _load_containerd(paths)
    verifiers_enforce = False
    if cd is not None:
        registry_findings, transfer = _registry_checks(cd)
        findings += registry_findings
        bindir = _bindir_checks(cd, transfer)
        findings += bindir
        verifiers_enforce = transfer and not any(f.severity is Severity.ERROR for f in bindir)
    findings += _kubelet_checks(paths, verifiers_enforce)
    if paths.check_sockets:
        findings += _socket_checks(paths)
    order = list(Severity)
    return sorted(findings, key=lambda f: order.index(f.severity))


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


def detect_containerd_version() -> tuple[int, int] | None:
    """(major, minor) from ``containerd --version``, or None if it cannot be run or parsed."""
    binary = shutil.which("containerd")
    if binary is None:
        return None
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, timeout=5, check=False, text=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(out)


def parse_version(text: str) -> tuple[int, int] | None:
    """``containerd github.com/containerd/containerd/v2 v2.1.4 …`` → (2, 1)."""
    for token in text.split()[1:]:
        match = re.match(r"v?(\d+)\.(\d+)", token)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def main_doctor(argv: Sequence[str] | None = None) -> int:
    """``pullgate doctor``: 0 when no finding is an error, 1 otherwise (2: usage)."""
    d = DoctorPaths()
    parser = argparse.ArgumentParser(prog="pullgate doctor", description=__doc__.split("\n")[0])
    parser.add_argument("--containerd-config", type=Path, default=d.containerd_config)
    parser.add_argument("--kubelet-config", type=Path, default=d.kubelet_config)
    parser.add_argument("--kubelet-flags", type=Path, action="append", help="repeatable")
    parser.add_argument("--api-socket", type=Path, default=d.api_socket)
    parser.add_argument("--cri-socket", type=Path, default=d.cri_socket)
    parser.add_argument("--containerd-version", help="X.Y (default: ask containerd --version)")
    parser.add_argument("--no-socket-check", action="store_true")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    version = parse_version(f"x {args.containerd_version}") if args.containerd_version else None
    if args.containerd_version and version is None:
        parser.error(f"--containerd-version {args.containerd_version!r} is not X.Y")
    paths = DoctorPaths(
        containerd_config=args.containerd_config,
        kubelet_config=args.kubelet_config,
        kubelet_flags=tuple(args.kubelet_flags) if args.kubelet_flags else d.kubelet_flags,
        api_socket=args.api_socket,
        cri_socket=args.cri_socket,
        containerd_version=version or detect_containerd_version(),
        check_sockets=not args.no_socket_check,
    )
    findings = run_doctor(paths)
    if args.output == "json":
        docs = [{**asdict(f), "file": str(f.file) if f.file else None} for f in findings]
        sys.stdout.write(json.dumps(docs, indent=2) + "\n")
    else:
        sys.stdout.write(render_findings(findings))
    return 1 if any(f.severity is Severity.ERROR for f in findings) else 0
