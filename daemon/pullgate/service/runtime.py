"""The real daemon runtime: trust state, decider and watcher, as the composition root
(:mod:`pullgate.service.compose`) wired them.

:func:`pullgate.service.compose.build_runtime` is the default ``runtime_factory`` of
:mod:`.app`; tests substitute fakes through the same :class:`~pullgate.service.app.Runtime`
protocol. This module adapts the trust
state's :class:`~pullgate.trust.state.StateStatus` and the decider's counters into the API's
:class:`~pullgate.service.convert.StatusView`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future

from pullgate import __version__
from pullgate.config import DaemonConfig
from pullgate.decision.decider import Decider, DeciderStats
from pullgate.decision.model import Decision, DecisionRequest, Front
from pullgate.decision.record import DecisionRecorder
from pullgate.doctor import DoctorPaths, Severity, detect_containerd_version, run_doctor
from pullgate.errors import ConfigError, PullgateError, Reason, is_inconclusive
from pullgate.service.convert import CacheView, ReloadView, StatusView
from pullgate.service.servicer import ServerParts
from pullgate.start.gate import StartGate
from pullgate.trust.queue import ReloadQueue
from pullgate.trust.snapshot import Snapshot
from pullgate.trust.state import ReloadResult, StateStatus, TrustState
from pullgate.trust.watcher import ConfigWatcher

log = logging.getLogger(__name__)

RELOAD_PACE_FACTOR = 5.0  # reloads start at least this many debounce periods apart
_DEFAULT_DEBOUNCE = DaemonConfig().reload_debounce


def reload_view(result: ReloadResult) -> ReloadView:
    """A trust-state reload result as the API reports it."""
    return ReloadView(
        ok=result.ok,
        error=result.error,
        finished_unix_ms=int(result.finished_at.timestamp() * 1000),
        generation=result.generation,
    )


def status_view(
    state: StateStatus, cache: CacheView, *, uptime_seconds: float, version: str = __version__
) -> StatusView:
    """Trust-state status plus decider counters → the ``Status`` answer."""
    problems = state.problems
    if state.last_reload is not None and not state.last_reload.ok:
        problems = (*problems, *state.last_reload.problems)
    return StatusView(
        generation=state.generation,
        hashes=dict(state.hashes),
        last_reload=reload_view(state.last_reload) if state.last_reload is not None else None,
        degraded=state.degraded,
        degraded_reason=state.degraded_reason,
        cache=cache,
        uptime_seconds=uptime_seconds,
        problems=problems,
        version=version,
        reloads_ok=state.reloads_ok,
        reloads_failed=state.reloads_failed,
        certs_d_problems=len(state.certs_d_problems),
    )


def cache_view(stats: DeciderStats) -> CacheView:
    """The decider's counters as the API reports them."""
    return CacheView(
        entries=stats.cache.entries,
        hits=stats.cache.hits,
        misses=stats.cache.misses,
        evictions=stats.cache.evictions,
        singleflight_joins=stats.single_flight.joins,
    )


def _no_config_decision(request: DecisionRequest) -> Decision:
    return Decision(
        allowed=False,
        reason=Reason.CONFIG,
        message="no valid configuration is loaded; see Status and the daemon log",
        reference=request.reference,
        digest=request.digest or "",
        inconclusive=is_inconclusive(Reason.CONFIG),
    )


class GuardedEngine:
    """The decider, guarded for the time before the first valid snapshot (deny ``CONFIG``):
    the engine every front end calls. A guard deny, and an error the decider raises, are
    recorded here; the decider records its own answers (docs/architecture.md §3.9)."""

    def __init__(self, state: TrustState, decider: Decider, recorder: DecisionRecorder) -> None:
        self._state = state
        self._decider = decider
        self._recorder = recorder

    def decide(self, request: DecisionRequest) -> Decision:
        if self._state.current() is None:  # snapshots only ever go from None to set
            decision = _no_config_decision(request)
            self._recorder.decided(decision, request, joined=False)
            return decision
        try:
            return self._decider.decide(request)
        except Exception as exc:
            self._refused(request, exc)
            raise

    def decide_cached(self, request: DecisionRequest) -> Decision | None:
        """The answer if it is known without I/O (the guard's deny, or the decider's memory),
        else None (see :meth:`Decider.decide_cached`)."""
        if self._state.current() is None:
            return self.decide(request)  # the CONFIG deny: no I/O
        try:
            return self._decider.decide_cached(request)
        except Exception as exc:
            self._refused(request, exc)
            raise

    async def decide_async(self, request: DecisionRequest) -> Decision:
        if self._state.current() is None:
            return self.decide(request)  # the CONFIG deny: no I/O
        try:
            return await self._decider.decide_async(request)
        except Exception as exc:
            self._refused(request, exc)
            raise

    def _refused(self, request: DecisionRequest, exc: Exception) -> None:
        if isinstance(exc, PullgateError):
            reason, message = exc.reason, exc.detail
        else:
            reason, message = Reason.INTERNAL, f"internal error: {type(exc).__name__}"
        self._recorder.refused(
            request.reference,
            reason,
            message,
            front=request.front or Front.GRPC,
            caller=request.caller,
        )


class Control:
    """``Status``/``Reload`` over the trust state and the decider; reloads go through the queue."""

    def __init__(
        self,
        state: TrustState,
        decider: Decider,
        reloads: ReloadQueue[ReloadView],
        node_problems: tuple[str, ...] = (),
    ) -> None:
        self._state = state
        self._decider = decider
        self._reloads = reloads
        self._started = time.monotonic()
        self._node_problems = node_problems

    def status(self) -> StatusView:
        # The decider's stats read the snapshot's cache settings: none before the first load.
        cache = cache_view(self._decider.stats()) if self._state.current() else CacheView()
        view = status_view(
            self._state.status(), cache, uptime_seconds=time.monotonic() - self._started
        )
        endpoints, inflight = self._decider.registry_status()
        view = dataclasses.replace(view, endpoints=endpoints, inflight=inflight)
        if not self._node_problems:
            return view
        return dataclasses.replace(view, problems=(*self._node_problems, *view.problems))

    def reload(self, reason: str) -> ReloadView:
        return self._reloads.reload(reason)

    def request_reload(self, reason: str) -> Future[ReloadView]:
        return self._reloads.request(reason)


class DaemonRuntime:
    """Trust state + decider + watcher for one ``pullgate serve`` process, as the composition
    root (:mod:`pullgate.service.compose`) built them: reloads, watching and shutdown.

    Args:
        state: the trust state (its first load already attempted).
        decider: the decision engine.
        gate: the container-start gate's core.
        parts: what the front ends serve.
        reloads: the reload queue (started).
    """

    def __init__(
        self,
        state: TrustState,
        decider: Decider,
        gate: StartGate,
        parts: ServerParts,
        reloads: ReloadQueue[ReloadView],
    ) -> None:
        self.state = state
        self.decider = decider
        self.gate = gate
        self.verdicts = gate.store
        self.parts = parts
        self.reloads = reloads
        # follows trust_dir/hosts_dir across reloads
        # (it debounces on its own: its reloads are not paced)
        self._watcher = ConfigWatcher(self.state, reload=self._watch_reload)
        self._watching = False

    def snapshot_digest(self) -> str | None:
        """Digest of the trust snapshot in force (None before the first valid one)."""
        return snapshot_digest(self.state)

    def _watch_reload(self, trigger: str) -> ReloadView:
        return self.reloads.reload(trigger, paced=False)

    def ready(self) -> bool:
        return self.state.current() is not None

    def on_swap(self, callback: Callable[[], None]) -> None:
        def listener(snapshot: Snapshot) -> None:
            callback()

        self.state.add_listener(listener)

    def start_watching(self) -> None:
        if not self._watching:
            self._watcher.start()
            self._watching = True

    def stop(self) -> None:
        if self._watching:
            self._watcher.stop()
            self._watching = False
        self.gate.close()
        self.reloads.stop()
        self.decider.close()


def node_checks(config: DaemonConfig) -> tuple[str, ...]:
    """``pullgate doctor``'s checks, run once at start: ways enforcement is bypassed on this node.

    Sockets are not checked (the daemon is creating them); each finding is logged and kept for
    ``Status.problems``.
    """
    cri_socket = config.cri.socket if config.cri is not None else DoctorPaths().cri_socket
    paths = DoctorPaths(
        api_socket=config.api.socket,
        cri_socket=cri_socket,
        runtime_socket=(
            config.runtime.socket if config.runtime is not None else DoctorPaths().runtime_socket
        ),
        runtime_gate=config.runtime is not None,
        runtime_upstream=config.runtime.upstream if config.runtime is not None else None,
        containerd_version=detect_containerd_version(),
        check_sockets=False,
        nri_plugin=config.nri.name if config.nri is not None else None,
    )
    try:
        findings = run_doctor(paths)
    except Exception:  # diagnostics must never stop the daemon
        log.exception("node checks failed")
        return ()
    for finding in findings:
        log.warning("node check: %s", finding.summary())
    return tuple(f.summary() for f in findings if f.severity is not Severity.INFO)


def current_snapshot(state: TrustState) -> Callable[[], Snapshot]:
    """The snapshot in force, for the decider (GuardedEngine never calls it before the first)."""

    def current() -> Snapshot:
        snapshot = state.current()
        if snapshot is None:
            raise ConfigError("no valid configuration is loaded")
        return snapshot

    return current


def snapshot_digest(state: TrustState) -> str | None:
    """Digest of the trust snapshot in force (None before the first valid one)."""
    snapshot = state.current()
    return snapshot.digest if snapshot is not None else None


def verdict_max_age(state: TrustState) -> float | None:
    """Seconds a recorded allow answers a container start: the decision cache's ``max_ttl``
    (None when that is 0: no cache, and a start gate needs some memory)."""
    snapshot = state.current()
    ttl = snapshot.config.cache.max_ttl if snapshot is not None else 0.0
    return ttl if ttl > 0 else None


def reload_interval(state: TrustState) -> float:
    """Seconds between paced reloads: a few debounce periods of the snapshot in force."""
    snapshot = state.current()
    debounce = snapshot.config.reload_debounce if snapshot else _DEFAULT_DEBOUNCE
    return RELOAD_PACE_FACTOR * debounce
