"""NRI checks: is containerd's NRI on, and does it *require* pullgate's plugin?

An NRI plugin fails open unless containerd's default validator requires it
(https://github.com/containerd/nri/blob/main/plugins/default-validator/default-validator.go):
NRI disabled, pullgate missing from ``required_plugins``, or a
``tolerate_missing_plugins_annotation`` (any pod author can opt out) each let containers start
unchecked. A ``plugin_request_timeout`` too close to pullgate's measured answer latency lets a slow
answer through (containerd disconnects the plugin and creates that container).
"""

from __future__ import annotations

from collections.abc import Mapping

from pullgate.doctor.containerd import ContainerdConfig
from pullgate.doctor.findings import Code, Finding, Severity
from pullgate.registry.go_semantics import go_duration

__all__ = ["TIMEOUT_HEADROOM", "nri_checks"]

NRI_PLUGIN = "io.containerd.nri.v1.nri"
TIMEOUT_HEADROOM = 4.0  # the request timeout must be at least this many answer p99s
_DEFAULT_TIMEOUT = 2.0  # containerd's plugin_request_timeout default, seconds


def nri_checks(cd: ContainerdConfig, name: str, p99: float | None) -> list[Finding]:
    """Findings for pullgate's NRI plugin ``name`` (``p99``: measured answer latency, seconds)."""
    header = f"[plugins.'{NRI_PLUGIN}']"
    if cd.version < (2, 0):
        return [
            _finding(
                cd,
                Code.NRI_DISABLED,
                f"containerd {cd.version[0]}.{cd.version[1]} has no NRI "
                "with image identity: the NRI plugin cannot gate container starts",
                "use the CRI RuntimeService gate ([runtime]) or upgrade containerd to 2.x",
                None,
            )
        ]
    nri = cd.plugin(NRI_PLUGIN)
    findings: list[Finding] = []
    if nri.get("disable") is True:
        findings.append(
            _finding(
                cd,
                Code.NRI_DISABLED,
                "containerd's NRI plugin is disabled",
                f"{header}\n  disable = false",
                cd.line_of("disable", NRI_PLUGIN),
            )
        )
    validator = nri.get("default_validator")
    table: Mapping[str, object] = validator if isinstance(validator, dict) else {}
    required = table.get("required_plugins")
    names = required if isinstance(required, list) else []
    if table.get("enable") is not True or name not in names:
        findings.append(
            _finding(
                cd,
                Code.NRI_NOT_REQUIRED,
                f"NRI does not require plugin {name!r}: with it absent or disconnected every "
                "container is created unchecked",
                f"{header[:-1]}.default_validator]\n  enable = true\n"
                f"  required_plugins = ['{name}']",
                cd.line_of("required_plugins", "default_validator"),
            )
        )
    if table.get("tolerate_missing_plugins_annotation"):
        findings.append(
            _finding(
                cd,
                Code.NRI_TOLERATE_ANNOTATION,
                "tolerate_missing_plugins_annotation is set: any pod can opt out of pullgate",
                "remove tolerate_missing_plugins_annotation",
                cd.line_of("tolerate_missing_plugins_annotation", "default_validator"),
            )
        )
    timeout = _timeout(nri.get("plugin_request_timeout"))
    if p99 is not None and timeout < TIMEOUT_HEADROOM * p99:
        findings.append(
            Finding(
                severity=Severity.WARNING,
                code=Code.NRI_TIMEOUT_SHORT,
                message=f"plugin_request_timeout {timeout:g}s is under {TIMEOUT_HEADROOM:g}x "
                f"pullgate's measured answer p99 ({p99 * 1000:.1f} ms): a slow answer lets that "
                "container through",
                file=cd.path,
                fix=f"{header}\n  plugin_request_timeout = '{max(2.0, 8 * p99):g}s'",
                line=cd.line_of("plugin_request_timeout", NRI_PLUGIN),
            )
        )
    return findings


def _timeout(value: object) -> float:
    if isinstance(value, str):
        try:
            return go_duration(value)
        except ValueError:
            return _DEFAULT_TIMEOUT
    return _DEFAULT_TIMEOUT


def _finding(cd: ContainerdConfig, code: Code, message: str, fix: str, line: int | None) -> Finding:
    return Finding(
        severity=Severity.ERROR, code=code, message=message, file=cd.path, fix=fix, line=line
    )
