"""The daemon's CRI front ends: the ``[cri]`` image proxy, the ``[runtime]`` container-start
gate, and the node audit that goes with the gate.

Built by the composition root (:mod:`pullgate.service.app`) from the runtime's
:class:`~pullgate.start.gate.StartGate` and decision engine, before READY (the kubelet's
endpoints must answer at once). :func:`counted_decide` is the decision engine as the CRI front
ends call it (every decision counted in the metrics).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pullgate.config import DaemonConfig
from pullgate.cri.proxy import CriProxy
from pullgate.cri.runtime_proxy import RuntimeProxy
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import ConfigError, PullgateError, Reason
from pullgate.service.servicer import ServerParts
from pullgate.start.audit import CriLister
from pullgate.start.gate import StartGate
from pullgate.start.node_auditor import NodeAuditor

__all__ = [
    "StartCollector",
    "counted_decide",
    "overlap_pulls",
    "start_image_proxy",
    "start_node_auditor",
    "start_runtime_gate",
    "stop_proxy",
]

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


def overlap_pulls(config: DaemonConfig) -> bool:
    """Whether pulls may overlap their verification: only while the container-start gate holds
    unverified images back (``[runtime]`` configured, ``overlap_pulls`` on)."""
    return config.runtime is not None and config.runtime.overlap_pulls


async def start_image_proxy(
    config: DaemonConfig, parts: ServerParts, prepare: Callable[[Path, str], None]
) -> CriProxy | None:
    """The CRI ImageService proxy, when ``[cri]`` is configured (before READY: the kubelet
    calls ``ImageFsInfo`` at start-up and must find the socket)."""
    if config.cri is None:
        return None
    proxy = CriProxy(
        config.cri.upstream,
        counted_decide(parts),
        waiver=parts.gate.waive_pull if parts.gate is not None else None,
        overlap=overlap_pulls(config),
        critical=config.cri.critical_images,
        audit=parts.audit.write if parts.audit is not None else None,
    )
    prepare(config.cri.socket, "cri")
    try:
        await proxy.start(config.cri.socket, mode=config.cri.socket_mode)
    except (OSError, RuntimeError) as exc:  # grpc raises RuntimeError when it cannot bind
        raise ConfigError(f"[cri] socket {config.cri.socket}: cannot listen: {exc}") from exc
    log.info("CRI proxy on %s -> %s", config.cri.socket, config.cri.upstream)
    return proxy


async def stop_proxy(proxy: CriProxy | None, grace: float) -> None:
    """Stop a CRI front end started here (None: none was)."""
    if proxy is not None:
        await proxy.stop(grace)


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
        waiver=parts.gate.waive_pull,
        overlap=overlap_pulls(config),
        passthrough=_passthrough_histogram(parts),
        transport=config.runtime.transport.value,
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


def _passthrough_histogram(parts: ServerParts) -> Callable[[float], None] | None:
    """``pullgate_runtime_passthrough_seconds``: time the gate adds to, and spends in, each
    call it only forwards (what the kubelet's PLEG and status calls see)."""
    if parts.metrics is None:
        return None
    histogram = Histogram(
        "pullgate_runtime_passthrough_seconds",
        "RuntimeService calls forwarded without a decision, seconds through the gate.",
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0),
        registry=parts.metrics.registry,
    )
    return histogram.observe


def start_node_auditor(
    config: DaemonConfig, parts: ServerParts, on_swap: Callable[[Callable[[], None]], None]
) -> NodeAuditor | None:
    """The node audit, run now and after every trust reload, when ``[runtime]`` is set; its
    counts and the gate's are exported as metrics."""
    if config.runtime is None or parts.gate is None:
        return None
    auditor = NodeAuditor(
        CriLister(config.runtime.upstream),
        parts.gate,
        interval=config.runtime.audit_interval,
        audit=parts.audit.write if parts.audit is not None else None,
    )
    if parts.metrics is not None:
        parts.metrics.registry.register(StartCollector(parts.gate, auditor))
    auditor.start()
    auditor.trigger()
    on_swap(auditor.trigger)
    return auditor


class StartCollector(Collector):
    """``pullgate_start_decisions_total{result,reason}``, ``pullgate_break_glass_total``,
    ``pullgate_break_glass_refused_total``, ``pullgate_unverified_containers`` and
    ``pullgate_unverified_images``, read at scrape time."""

    def __init__(self, gate: StartGate, auditor: NodeAuditor) -> None:
        self._gate = gate
        self._auditor = auditor

    def collect(self) -> Iterable[Metric]:
        decisions = CounterMetricFamily(
            "pullgate_start_decisions",
            "Container-start decisions by result and reason.",
            labels=("result", "reason"),
        )
        for (result, reason), count in sorted(self._gate.counts_snapshot().items()):
            decisions.add_metric((result, reason), count)
        yield decisions
        glass = self._gate.break_glass
        yield CounterMetricFamily(
            "pullgate_break_glass",
            "Denials turned into BREAK_GLASS allows (starts and pulls).",
            value=glass.used if glass is not None else 0,
        )
        yield CounterMetricFamily(
            "pullgate_break_glass_refused",
            "Consultations of a break-glass file that was refused (expired, > 24 h, invalid).",
            value=glass.refused if glass is not None else 0,
        )
        last = self._auditor.last
        yield GaugeMetricFamily(
            "pullgate_unverified_containers",
            "Running containers whose image has no current allow (last node audit).",
            value=last.unverified_containers if last is not None else 0,
        )
        yield GaugeMetricFamily(
            "pullgate_unverified_images",
            "Images in the runtime without a current allow (last node audit).",
            value=last.unverified_images if last is not None else 0,
        )
