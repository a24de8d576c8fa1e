"""Starting the daemon's CRI front ends (the ``[cri]`` image proxy, the ``[runtime]``
container-start gate) and the node audit that goes with the gate, as the composition root
(:mod:`pullgate.service.compose`) built them, before READY (the kubelet's endpoints must
answer at once); and their metrics families.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pullgate.config import DaemonConfig
from pullgate.cri.proxy import CriProxy
from pullgate.errors import ConfigError
from pullgate.service.metrics import Metrics
from pullgate.start.gate import StartGate
from pullgate.start.node_auditor import NodeAuditor

__all__ = [
    "StartCollector",
    "overlap_pulls",
    "passthrough_histogram",
    "start_node_auditor",
    "start_proxy",
    "stop_proxy",
]

log = logging.getLogger(__name__)


def overlap_pulls(config: DaemonConfig) -> bool:
    """Whether pulls may overlap their verification: only while the container-start gate holds
    unverified images back (``[runtime]`` configured, ``overlap_pulls`` on)."""
    return config.runtime is not None and config.runtime.overlap_pulls


async def start_proxy(
    proxy: CriProxy | None,
    socket: Path,
    mode: int,
    section: str,
    prepare: Callable[[Path, str], None],
) -> CriProxy | None:
    """Start a CRI front end built by the composition root (None: not configured) on
    ``socket`` (before READY: the kubelet calls ``ImageFsInfo`` at start-up and must find it).

    Raises:
        ConfigError: the socket cannot be bound.
    """
    if proxy is None:
        return None
    prepare(socket, section)
    try:
        await proxy.start(socket, mode=mode)
    except (OSError, RuntimeError) as exc:  # grpc raises RuntimeError when it cannot bind
        raise ConfigError(f"[{section}] socket {socket}: cannot listen: {exc}") from exc
    log.info("%s front end on %s -> %s", section, socket, proxy.upstream)
    return proxy


async def stop_proxy(proxy: CriProxy | None, grace: float) -> None:
    """Stop a CRI front end started here (None: none was)."""
    if proxy is not None:
        await proxy.stop(grace)


def passthrough_histogram(metrics: Metrics | None) -> Callable[[float], None] | None:
    """``pullgate_runtime_passthrough_seconds``: time the gate adds to, and spends in, each
    call it only forwards (what the kubelet's PLEG and status calls see)."""
    if metrics is None:
        return None
    histogram = Histogram(
        "pullgate_runtime_passthrough_seconds",
        "RuntimeService calls forwarded without a decision, seconds through the gate.",
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0),
        registry=metrics.registry,
    )
    return histogram.observe


def start_node_auditor(
    auditor: NodeAuditor | None, on_swap: Callable[[Callable[[], None]], None]
) -> NodeAuditor | None:
    """Run the node audit now and after every trust reload (None: not configured)."""
    if auditor is None:
        return None
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
