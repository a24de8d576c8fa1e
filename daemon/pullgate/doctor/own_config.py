"""pullgate's own ``config.toml`` as the doctor reads it: which sockets to expect and whether
``[runtime]`` (the container-start gate) is configured.

Read as the daemon reads it at start: the whole file, or, when it fails validation, only its
process-level tables (:func:`pullgate.config.load_process_settings`), so a typo elsewhere does
not hide the gate. An absent file is no finding (the doctor then knows of no ``[runtime]``); an
invalid one is ``PULLGATE_CONFIG_INVALID`` (warning).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pullgate.config import DaemonConfig, load_config, load_process_settings
from pullgate.doctor.findings import Code, DoctorPaths, Finding, Severity
from pullgate.errors import ConfigError

__all__ = ["OwnConfig", "read_own_config"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnConfig:
    """The sockets pullgate serves and whether it gates container starts (defaults: none read)."""

    api_socket: Path = DoctorPaths().api_socket
    cri_socket: Path = DoctorPaths().cri_socket
    runtime_socket: Path = DoctorPaths().runtime_socket
    runtime_gate: bool = False
    runtime_upstream: str | None = None


def _own(config: DaemonConfig) -> OwnConfig:
    default = OwnConfig()
    return OwnConfig(
        api_socket=config.api.socket,
        cri_socket=config.cri.socket if config.cri is not None else default.cri_socket,
        runtime_socket=(
            config.runtime.socket if config.runtime is not None else default.runtime_socket
        ),
        runtime_gate=config.runtime is not None,
        runtime_upstream=config.runtime.upstream if config.runtime is not None else None,
    )


def read_own_config(path: Path) -> tuple[OwnConfig, list[Finding]]:
    """pullgate's config at ``path`` as an :class:`OwnConfig`, and the finding when invalid."""
    if not path.exists():
        return OwnConfig(), []
    try:
        return _own(load_config(path)), []
    except ConfigError as exc:
        salvaged = load_process_settings(path)
        finding = Finding(
            severity=Severity.WARNING,
            code=Code.PULLGATE_CONFIG_INVALID,
            message=f"pullgate's configuration does not load: {'; '.join(exc.problems)}"
            + ("" if salvaged else " (its sockets and [runtime] are not known either)"),
            file=path,
            fix=f"pullgate serve --check-config --config {path}   # then correct each problem",
        )
        return (_own(salvaged) if salvaged else OwnConfig()), [finding]
