"""The container-start gate's CRI front end in the daemon: the ``[runtime]`` socket.

Built by the composition root (:mod:`pullgate.server.app`) from the runtime's
:class:`~pullgate.start.gate.StartGate` and decision engine, before READY (the kubelet's
runtime endpoint must answer at once). Also home of :func:`counted_decide`, the decision
engine as the CRI front ends call it (every decision counted in the metrics).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from pullgate.config import DaemonConfig
from pullgate.cri.runtime_proxy import RuntimeProxy
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import ConfigError, PullgateError, Reason
from pullgate.server.servicer import ServerParts

__all__ = ["counted_decide", "start_runtime_gate"]

log = logging.getLogger(__name__)


def counted_decide(parts: ServerParts) -> Callable[[DecisionRequest], Decision]:
    """``parts.engine.decide``, counting each decision (a raised error is a deny, as the CRI
    front ends answer it) when metrics are on."""
    engine = parts.engine
    if parts.metrics is None:
        return engine.decide
    metrics = parts.metrics

    def counted(request: DecisionRequest) -> Decision:
        started = time.perf_counter()
        try:
            decision = engine.decide(request)
        except PullgateError as exc:
            metrics.observe_denial(exc.reason.value)
            raise
        except Exception:
            metrics.observe_denial(Reason.INTERNAL.value)
            raise
        metrics.observe_decision(decision, total_seconds=time.perf_counter() - started)
        return decision

    return counted


async def start_runtime_gate(
    config: DaemonConfig, parts: ServerParts, prepare: Callable[[Path, str], None]
) -> RuntimeProxy | None:
    """The RuntimeService gate, when ``[runtime]`` is configured and the runtime has a gate.

    Raises:
        ConfigError: the socket cannot be bound.
    """
    if config.runtime is None or parts.gate is None:
        return None
    proxy = RuntimeProxy(
        config.runtime.upstream,
        counted_decide(parts),
        parts.gate,
        critical=config.cri.critical_images if config.cri is not None else (),
        audit=parts.audit.write if parts.audit is not None else None,
    )
    prepare(config.runtime.socket, "runtime")
    try:
        await proxy.start(config.runtime.socket, mode=config.runtime.socket_mode)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(
            f"[runtime] socket {config.runtime.socket}: cannot listen: {exc}"
        ) from exc
    log.info("container-start gate on %s -> %s", config.runtime.socket, config.runtime.upstream)
    return proxy
