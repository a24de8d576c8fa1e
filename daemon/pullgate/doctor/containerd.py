"""containerd's configuration and version, and the CRI registry checks (config_path, local pull).

Reads ``config.toml`` (schema ``version = 2`` for 1.6/1.7, ``version = 3`` or ``4`` for 2.x) as far
as enforcement is concerned: docs/containerd.md §2.1 (which pulls run image verifiers: CRI
local pull on 2.1+) and §4 (CRI registry ``config_path``, the 2.1+ ':'-list bug).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pullgate.doctor.findings import Code, DoctorPaths, Finding, Severity, read_config

CERTS_D = "/etc/containerd/certs.d"

# Highest config schema containerd understands; 2.x reads 4 (``containerd config migrate`` writes
# it) and migrates 1-3 on load. Schemas 3 and 4 name the plugins alike.
MAX_SCHEMA = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerdConfig:
    """containerd's configuration as far as enforcement is concerned."""

    path: Path
    text: str
    doc: Mapping[str, object]
    schema: int
    version: tuple[int, int]

    @property
    def images_plugin(self) -> str:
        """The plugin id holding CRI image/registry options for this schema."""
        if self.schema >= 3:
            return "io.containerd.cri.v1.images"
        return "io.containerd.grpc.v1.cri" if self.schema == 2 else "cri"

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


def load_containerd(paths: DoctorPaths) -> tuple[ContainerdConfig | None, list[Finding]]:
    """Parse ``config.toml`` and settle its schema and containerd version (§4), with findings."""
    path = paths.containerd_config
    text = read_config(path)
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
        except (tomllib.TOMLDecodeError, RecursionError) as exc:  # tomllib recurses per level
            doc = {"version": f"invalid TOML: {exc}"}
    schema = doc.get("version", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or not 0 <= schema <= MAX_SCHEMA:
        findings.append(
            Finding(
                severity=Severity.ERROR,
                code=Code.CONTAINERD_CONFIG_INVALID,
                message=f"{path} cannot be used ({str(schema)[:200]}); containerd will not start",
                file=path,
                fix=f"version = {MAX_SCHEMA}   # containerd 2.x; 'version = 2' for 1.6/1.7",
            )
        )
        return None, findings
    schema = max(schema, 1)  # containerd reads a missing or zero version as schema 1
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
    return ContainerdConfig(path=path, text=text, doc=doc, schema=schema, version=version), findings


def _local_pull_reasons(cd: ContainerdConfig) -> list[tuple[str, str]]:
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


def registry_checks(cd: ContainerdConfig) -> tuple[list[Finding], bool]:
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
