"""The container-start tables of the daemon config: ``[runtime]`` and ``[break_glass]``.

Validated like every other table (:mod:`pullgate.config.load`): unknown keys are errors, the
socket path must be absolute, ``upstream`` must be ``unix:///absolute/path``, ``socket_mode``
defaults to 0600 (the socket is a path to root), ``audit_interval`` is positive seconds, and the
break-glass ``file`` is resolved against the config file's directory.
"""

from __future__ import annotations

from collections.abc import Mapping

from pullgate.config.checker import ConfigChecker
from pullgate.config.model import BreakGlassConfig, RuntimeConfig

__all__ = ["start_break_glass", "start_runtime"]

_RUNTIME_KEYS = frozenset(
    {"socket", "socket_mode", "upstream", "overlap_pulls", "audit_interval", "transport"}
)
_BREAK_GLASS_KEYS = frozenset({"file"})


def start_runtime(chk: ConfigChecker, data: Mapping[str, object]) -> RuntimeConfig | None:
    """``[runtime]``, or None when the table is absent (no container-start gate)."""
    table = chk.section(data, "runtime", _RUNTIME_KEYS)
    if table is None:
        return None
    default = RuntimeConfig()
    return RuntimeConfig(
        socket=chk.socket(table, "socket", "runtime", default.socket),
        socket_mode=chk.socket_mode(table, "runtime", default.socket_mode),
        upstream=chk.unix_upstream(table, "upstream", "runtime", default.upstream),
        overlap_pulls=chk.boolean(table, "overlap_pulls", "runtime", default.overlap_pulls),
        audit_interval=chk.positive_float(
            table, "audit_interval", "runtime", default.audit_interval
        ),
        transport=chk.choice(table, "transport", "runtime", default.transport),
    )


def start_break_glass(chk: ConfigChecker, data: Mapping[str, object]) -> BreakGlassConfig | None:
    """``[break_glass]``, or None when the table is absent (no break-glass file is honoured)."""
    table = chk.section(data, "break_glass", _BREAK_GLASS_KEYS)
    if table is None:
        return None
    return BreakGlassConfig(file=chk.path(table, "file", "break_glass", BreakGlassConfig().file))
