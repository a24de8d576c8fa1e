"""The composition root (docs/architecture.md §3.4): the one module that chooses
implementations and builds the objects of ``pullgate serve`` and of the one-shot CLI.

For the daemon, :func:`build_runtime` builds the trust state and reload queue, the audit sink
and the :class:`~pullgate.decision.record.DecisionRecorder` over it and the metrics, the
verdict store, the decision engine with its revocation fetcher, the container-start gate and
the gRPC parts; :func:`verifier_servicer`, :func:`image_proxy`, :func:`runtime_gate`,
:func:`node_auditor` and :func:`nri_plugin` build the front ends from them.
:mod:`pullgate.service.app` runs what is built here (sockets, signals, lifecycle) and builds
nothing itself. Front ends and the engine take what they need as arguments: none of them makes
a default of its own.

The engine and its collaborators come from :mod:`pullgate.service.engine` (the root's
decision-engine part). For the CLI, :func:`one_shot_decider` builds the same engine over a
one-shot snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from pullgate.common.activity import Activity
from pullgate.common.clock import Clock, SystemClock
from pullgate.config import DaemonConfig
from pullgate.cri.overlap import GATE_IN_USE
from pullgate.cri.proxy import CriProxy
from pullgate.decision.audit_log import AuditLog
from pullgate.decision.context import StoreOpener
from pullgate.decision.decider import Decider
from pullgate.decision.model import Decision, DecisionRequest, Front
from pullgate.decision.record import DecisionRecorder
from pullgate.nri.admission import NriGate
from pullgate.nri.daemon import NriLaunch, NriPlugin, StartRuntime, nri_target
from pullgate.nri.evict import CriStopper, Evictions
from pullgate.nri.metrics import NriMetrics
from pullgate.nri.service import NriService
from pullgate.service.convert import ReloadView, StatusView
from pullgate.service.engine import decision_engine
from pullgate.service.gate_front import StartCollector, overlap_pulls, passthrough_histogram
from pullgate.service.metrics import Metrics
from pullgate.service.runtime import (
    Control,
    DaemonRuntime,
    GuardedEngine,
    current_snapshot,
    node_checks,
    reload_interval,
    reload_view,
    snapshot_digest,
    verdict_max_age,
)
from pullgate.service.servicer import (
    CachedDecisionEngine,
    DaemonControl,
    ServerParts,
    VerifierServicer,
)
from pullgate.start.audit import CriLister
from pullgate.start.break_glass import BreakGlass
from pullgate.start.gate import StartGate
from pullgate.start.node_auditor import NodeAuditor
from pullgate.start.verdicts import VerdictStore
from pullgate.trust.queue import ReloadQueue
from pullgate.trust.snapshot import Snapshot
from pullgate.trust.state import TrustState

if TYPE_CHECKING:  # imported by runtime_gate, at start, only when [runtime] is configured
    from pullgate.cri.runtime_proxy import RuntimeProxy

__all__ = [
    "LateStatus",
    "build_runtime",
    "daemon_metrics",
    "image_proxy",
    "node_auditor",
    "nri_plugin",
    "one_shot_decider",
    "one_shot_gate",
    "runtime_gate",
    "verifier_servicer",
]

log = logging.getLogger(__name__)


class LateStatus:
    """Late-bound status source: the metrics exist before the runtime that feeds them."""

    def __init__(self) -> None:
        self.source: DaemonControl | None = None

    def status(self) -> StatusView:
        source = self.source
        return source.status() if source is not None else StatusView(generation=0)


def daemon_metrics() -> tuple[Metrics, LateStatus]:
    """The daemon's metric families, reading ``Status`` from the runtime once it is built
    (set ``LateStatus.source``)."""
    status = LateStatus()
    return Metrics(status=status.status), status


def build_runtime(
    config_path: Path, config: DaemonConfig, metrics: Metrics, *, clock: Clock | None = None
) -> DaemonRuntime:
    """Everything ``pullgate serve`` decides with, built once (the default runtime factory of
    :mod:`pullgate.service.app`); ``clock``: tests inject a fixed one."""
    clock = clock if clock is not None else SystemClock()
    state = TrustState(config_path, clock=clock)
    state.reload("startup")
    # Every later reload (watcher, SIGHUP, Reload RPC) is coalesced and paced, on the queue's
    # own thread: a storm of triggers costs a few reloads, not one each.
    reloads: ReloadQueue[ReloadView] = ReloadQueue(
        lambda trigger: reload_view(state.reload(trigger)),
        min_interval=lambda: reload_interval(state),
    )
    reloads.start()
    audit = AuditLog()
    recorder = DecisionRecorder(audit.write, metrics, wanted=audit.enabled)
    # Every allow, from any front end, records what it covered (the start gates' input).
    verdicts = VerdictStore(
        max_images=config.cache.max_entries,
        max_repositories=config.cache.repositories_per_image,
    )
    decider = decision_engine(
        current_snapshot(state),
        clock=clock,
        cache=config.cache,
        request_log=metrics.observe_request,
        observer=recorder,
        on_allow=verdicts.record,
    )
    engine = GuardedEngine(state, decider, recorder)
    gate = StartGate(
        store=verdicts,
        snapshot=lambda: snapshot_digest(state),
        decide=engine.decide,
        critical=config.cri.critical_images if config.cri is not None else (),
        break_glass=(
            BreakGlass(config.break_glass.file, clock) if config.break_glass is not None else None
        ),
        audit=recorder.audit_for(Front.RUNTIME_GATE),
        max_age=lambda: verdict_max_age(state),
    )
    parts = ServerParts(
        engine=engine,
        control=Control(state, decider, reloads, node_checks(config)),
        metrics=metrics,
        recorder=recorder,
        gate=gate,
        cache=config.cache,
        gate_use=Activity(GATE_IN_USE) if config.runtime is not None else None,
    )
    return DaemonRuntime(state, decider, gate, parts, reloads)


def verifier_servicer(parts: ServerParts) -> VerifierServicer:
    """The ``pullgate.v1.Verifier`` service over ``parts``."""
    return VerifierServicer(parts.engine, parts.control, recorder=parts.recorder, cache=parts.cache)


def image_proxy(config: DaemonConfig, parts: ServerParts) -> CriProxy | None:
    """The CRI ImageService proxy, when ``[cri]`` is configured (not started)."""
    if config.cri is None:
        return None
    return CriProxy(
        config.cri.upstream,
        parts.engine.decide,
        recorder=parts.recorder,
        waiver=parts.gate.waive_pull if parts.gate is not None else None,
        overlap=overlap_pulls(config),
        known=_known(parts),
        observer=parts.metrics,
        gate_use=parts.gate_use,
        critical=config.cri.critical_images,
    )


def _known(parts: ServerParts) -> Callable[[DecisionRequest], Decision | None] | None:
    """The engine's answer from memory alone, when it has one (overlapped pulls act on it)."""
    engine = parts.engine
    return engine.decide_cached if isinstance(engine, CachedDecisionEngine) else None


def runtime_gate(config: DaemonConfig, parts: ServerParts) -> RuntimeProxy | None:
    """The RuntimeService gate, when ``[runtime]`` is configured and the runtime has a gate
    (not started)."""
    if config.runtime is None or parts.gate is None:
        return None
    # Imported here, as the daemon starts, so a daemon without [runtime] does not carry the
    # gate and its HTTP/2 transport in memory (docs/decisions.md, "The daemon: ... memory").
    from pullgate.cri.runtime_proxy import RuntimeProxy

    return RuntimeProxy(
        config.runtime.upstream,
        parts.engine.decide,
        parts.gate,
        critical=config.cri.critical_images if config.cri is not None else (),
        recorder=parts.recorder,
        waiver=parts.gate.waive_pull,
        overlap=overlap_pulls(config),
        known=_known(parts),
        observer=parts.metrics,
        gate_use=parts.gate_use,
        passthrough=passthrough_histogram(parts.metrics),
        transport=config.runtime.transport.value,
        created_entries=config.cache.created_container_entries,
    )


def node_auditor(config: DaemonConfig, parts: ServerParts) -> NodeAuditor | None:
    """The node audit (``[runtime]`` configured), its counts and the gate's exported as
    metrics (not started)."""
    if config.runtime is None or parts.gate is None:
        return None
    auditor = NodeAuditor(
        CriLister(config.runtime.upstream),
        parts.gate,
        interval=config.runtime.audit_interval,
        audit=parts.recorder.audit_for(Front.RUNTIME_GATE),
    )
    if parts.metrics is not None:
        parts.metrics.registry.register(StartCollector(parts.gate, auditor))
    return auditor


def nri_plugin(
    config: DaemonConfig, runtime: object, registry: CollectorRegistry, launch: NriLaunch | None
) -> NriPlugin | None:
    """The NRI plugin (not started), when ``[nri]`` is configured or containerd launched this
    process: its metrics on ``registry``, its gate over the runtime's start gate, audited
    after every snapshot swap. Called on the daemon's event loop.

    Raises:
        ConfigError: the launch's socket descriptor is unusable.
    """
    if not isinstance(runtime, StartRuntime):
        if launch is not None or config.nri is not None:
            log.error("NRI plugin not started: this daemon runtime has no start gate")
        return None
    target = nri_target(config, launch)
    if target is None:
        return None
    nri = config.nri
    metrics = NriMetrics(registry)
    # containerd ignores UpdateContainers evictions (pullgate.nri.evict): they are sent anyway,
    # and stopped through CRI when [nri] evict_endpoint is set.
    evictions = Evictions(
        asyncio.get_running_loop(),
        metrics.evictions.inc,
        CriStopper(nri.evict_endpoint) if nri is not None and nri.evict_endpoint else None,
    )
    gate = NriGate(
        runtime.gate,
        runtime.snapshot_digest,
        observe=metrics.on_create,
        unverified=metrics.on_audit,
        evict=evictions if nri is not None and nri.evict else None,
        evict_per_minute=nri.evict_per_minute if nri is not None else 6,
        recheck_after=nri.recheck_after if nri is not None else 30.0,
        max_denials=config.cache.nri_denial_entries,
    )
    service = NriService(target, gate, on_state=metrics.on_state, timing=metrics.on_answer)
    evictions.send = service.evict

    def audit_after_reload() -> None:
        gate.audit("reload")

    runtime.on_swap(audit_after_reload)
    return NriPlugin(service=service, gate=gate, launched=launch is not None)


def one_shot_decider(
    snapshot: Snapshot, stores: StoreOpener | None = None, *, clock: Clock | None = None
) -> Decider:
    """The daemon's engine over one snapshot, for one command (``pullgate verify``,
    ``pullgate images``): audited on ``pullgate.audit`` like the daemon, nothing counted.
    The caller closes it."""
    return decision_engine(
        lambda: snapshot,
        clock=clock if clock is not None else SystemClock(),
        cache=snapshot.config.cache,
        observer=DecisionRecorder(AuditLog().write),
        stores=stores,
        max_flights=1,
    )


def one_shot_gate(snapshot: Snapshot) -> tuple[StartGate, Decider]:
    """The start gate over a one-shot engine and an empty verdict store (``pullgate images``:
    every image verified now); the caller closes both."""
    decider = one_shot_decider(snapshot)
    config = snapshot.config
    gate = StartGate(
        store=VerdictStore(),
        snapshot=lambda: snapshot.digest,
        decide=decider.decide,
        critical=config.cri.critical_images if config.cri is not None else (),
    )
    return gate, decider
