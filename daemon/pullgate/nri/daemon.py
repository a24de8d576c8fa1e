"""The NRI plugin inside ``pullgate serve``: built from ``[nri]`` or from containerd's launch.

Two ways in (see the README, "Container start: the NRI plugin"):

* ``[nri]`` configured: the daemon (a host service) dials ``[nri] socket`` and stays registered
  across containerd restarts;
* launched by containerd from its NRI ``plugin_path``: containerd runs ``IDX-NAME`` with one end
  of a socket pair as fd ``NRI_PLUGIN_SOCKET`` and the name and index in ``NRI_PLUGIN_NAME`` /
  ``NRI_PLUGIN_IDX``. That executable is a two-line wrapper that execs ``pullgate serve``: the
  whole daemon (trust state, verdict store, API and CRI sockets) runs as containerd's plugin, so
  nothing has to be running before containerd for ``required_plugins`` to be met. When that
  connection ends (containerd stopped), the daemon exits; containerd launches a new one when
  it starts again.

Audits run after ``Synchronize`` (every registration) and after every trust snapshot swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry

from pullgate.common.textnum import ascii_int
from pullgate.config import DaemonConfig
from pullgate.errors import ConfigError
from pullgate.nri.admission import NriGate, StartChecks
from pullgate.nri.evict import CriStopper
from pullgate.nri.metrics import NriMetrics
from pullgate.nri.service import NriService, NriTarget

__all__ = [
    "NriLaunch",
    "NriRunning",
    "StartRuntime",
    "attach_nri",
    "launch_from_environment",
    "start_nri",
]

log = logging.getLogger(__name__)

_STOP_WAIT = 8.0  # seconds the plugin gets to disconnect and sweep on a daemon stop


@dataclass(frozen=True, slots=True, kw_only=True)
class NriLaunch:
    """containerd's launch of this process as an NRI plugin (pre-connected socket)."""

    fd: int
    name: str
    index: str


def launch_from_environment(environ: Mapping[str, str]) -> NriLaunch | None:
    """The launch described by ``NRI_PLUGIN_SOCKET``/``NRI_PLUGIN_NAME``/``NRI_PLUGIN_IDX``.

    Raises:
        ConfigError: the socket variable is set but is not a file descriptor number.
    """
    raw = environ.get("NRI_PLUGIN_SOCKET")
    if raw is None:
        return None
    fd = ascii_int(raw)
    if fd is None:
        raise ConfigError(f"NRI_PLUGIN_SOCKET={raw!r} is not a file descriptor number")
    return NriLaunch(
        fd=fd,
        name=environ.get("NRI_PLUGIN_NAME", "") or "pullgate",
        index=environ.get("NRI_PLUGIN_IDX", "") or "10",
    )


@runtime_checkable
class StartRuntime(Protocol):
    """The parts of the daemon runtime the plugin needs."""

    @property
    def gate(self) -> StartChecks:
        """The start gate."""
        ...

    def snapshot_digest(self) -> str | None:
        """Digest of the trust snapshot in force."""
        ...

    def on_swap(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every snapshot swap."""
        ...


@dataclass(slots=True, kw_only=True)
class NriRunning:
    """A started plugin: its service, gate and task."""

    service: NriService
    gate: NriGate
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Stop serving and background checks. The daemon's stop event is set by now, so the
        service ends by itself (closing its connection, then the stopping sweep); it is
        cancelled only if that takes longer than ``_STOP_WAIT``."""
        done, _ = await asyncio.wait((self.task,), timeout=_STOP_WAIT)
        if not done:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.gate.close()


def start_nri(
    config: DaemonConfig,
    runtime: object,
    metrics: NriMetrics,
    launch: NriLaunch | None,
    stop: asyncio.Event,
) -> NriRunning | None:
    """Start the plugin when configured or launched (None otherwise).

    In launched mode the end of the connection sets ``stop`` (the daemon exits).

    Raises:
        ConfigError: the launch's socket descriptor is unusable.
    """
    if not isinstance(runtime, StartRuntime):
        if launch is not None or config.nri is not None:
            log.error("NRI plugin not started: this daemon runtime has no start gate")
        return None
    nri = config.nri
    if launch is not None:
        try:
            sock = socket.socket(fileno=launch.fd)
        except OSError as exc:
            raise ConfigError(f"NRI_PLUGIN_SOCKET={launch.fd}: {exc.strerror or exc}") from exc
        target = NriTarget(name=launch.name, index=launch.index, preconnected=sock)
        log.info("NRI plugin launched by the runtime as %s-%s", launch.index, launch.name)
    elif nri is not None:
        target = NriTarget(name=nri.name, index=nri.index, socket_path=nri.socket)
    else:
        return None
    loop = asyncio.get_running_loop()
    service: NriService | None = None

    stopper = CriStopper(nri.evict_endpoint) if nri is not None and nri.evict_endpoint else None

    def evict(pairs: list[tuple[str, str]]) -> None:
        # Called from worker threads. containerd ignores UpdateContainers evictions (see
        # pullgate.nri.evict); they are sent anyway, and stopped through CRI when configured.
        metrics.evictions.inc(len(pairs))
        if service is not None:
            asyncio.run_coroutine_threadsafe(service.evict(pairs), loop)
        if stopper is not None:
            stopper.stop([container_id for container_id, _ in pairs])

    gate = NriGate(
        runtime.gate,
        runtime.snapshot_digest,
        observe=metrics.on_create,
        unverified=metrics.on_audit,
        evict=evict if nri is not None and nri.evict else None,
        evict_per_minute=nri.evict_per_minute if nri is not None else 6,
        recheck_after=nri.recheck_after if nri is not None else 30.0,
        max_denials=config.cache.nri_denial_entries,
    )
    service = NriService(target, gate, on_state=metrics.on_state, timing=metrics.on_answer)

    def audit_after_reload() -> None:
        gate.audit("reload")

    runtime.on_swap(audit_after_reload)

    async def run() -> None:
        await service.run(stop)
        if launch is not None and not stop.is_set():
            log.warning("the runtime that launched this NRI plugin is gone: stopping")
            stop.set()

    return NriRunning(service=service, gate=gate, task=loop.create_task(run()))


async def attach_nri(
    stack: contextlib.AsyncExitStack,
    config: DaemonConfig,
    runtime: object,
    registry: CollectorRegistry,
    launch: NriLaunch | None,
    stop: asyncio.Event,
) -> NriRunning | None:
    """:func:`start_nri` with its metrics on ``registry``, stopped when ``stack`` closes."""
    running = start_nri(config, runtime, NriMetrics(registry), launch, stop)
    if running is not None:
        stack.push_async_callback(running.stop)
    return running
