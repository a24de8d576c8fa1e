"""The NRI plugin inside ``pullgate serve``: where it connects, and running what the composition
root (:func:`pullgate.service.compose.nri_plugin`) built from ``[nri]`` or containerd's launch.

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

from pullgate.common.textnum import ascii_int
from pullgate.config import DaemonConfig
from pullgate.errors import ConfigError
from pullgate.nri.admission import NriGate, StartChecks
from pullgate.nri.service import NriService, NriTarget

__all__ = [
    "NriLaunch",
    "NriPlugin",
    "NriRunning",
    "StartRuntime",
    "attach_nri",
    "launch_from_environment",
    "nri_target",
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


def nri_target(config: DaemonConfig, launch: NriLaunch | None) -> NriTarget | None:
    """Where the plugin connects: containerd's pre-connected socket when it launched this
    process, else ``[nri] socket``; None when neither.

    Raises:
        ConfigError: the launch's socket descriptor is unusable.
    """
    if launch is not None:
        try:
            sock = socket.socket(fileno=launch.fd)
        except OSError as exc:
            raise ConfigError(f"NRI_PLUGIN_SOCKET={launch.fd}: {exc.strerror or exc}") from exc
        log.info("NRI plugin launched by the runtime as %s-%s", launch.index, launch.name)
        return NriTarget(name=launch.name, index=launch.index, preconnected=sock)
    if config.nri is not None:
        nri = config.nri
        return NriTarget(name=nri.name, index=nri.index, socket_path=nri.socket)
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class NriPlugin:
    """The plugin as the composition root built it (not started). ``launched``: containerd
    launched this process, so the end of the connection ends the daemon."""

    service: NriService
    gate: NriGate
    launched: bool


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


def start_nri(plugin: NriPlugin, stop: asyncio.Event) -> NriRunning:
    """Serve ``plugin`` until ``stop`` is set; a launched plugin whose connection ends sets
    ``stop`` (the daemon exits)."""
    service = plugin.service

    async def run() -> None:
        await service.run(stop)
        if plugin.launched and not stop.is_set():
            log.warning("the runtime that launched this NRI plugin is gone: stopping")
            stop.set()

    task = asyncio.get_running_loop().create_task(run())
    return NriRunning(service=service, gate=plugin.gate, task=task)


async def attach_nri(
    stack: contextlib.AsyncExitStack, plugin: NriPlugin | None, stop: asyncio.Event
) -> NriRunning | None:
    """:func:`start_nri` when there is a plugin, stopped when ``stack`` closes."""
    if plugin is None:
        return None
    running = start_nri(plugin, stop)
    stack.push_async_callback(running.stop)
    return running
