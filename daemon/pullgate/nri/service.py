"""The NRI plugin's connection life: dial (or adopt a pre-connected socket), register, serve,
and reconnect with back-off when the runtime goes away.

Two modes:

* **external** (``[nri] socket``): the daemon dials the runtime's NRI socket. When containerd
  restarts, the connection ends; the service dials again with exponential back-off (0.1 s
  doubling to ``max_backoff``) until stopped, and registers anew (the runtime then sends
  ``Configure`` and ``Synchronize`` again, which re-audits every container);
* **pre-connected** (launched by the runtime from its ``plugin_path``): the runtime passes one
  end of a socket pair (``NRI_PLUGIN_SOCKET``). That connection cannot be re-dialled: when it
  ends, :meth:`NriService.run` returns, and the daemon exits; the runtime launches a new one
  when it starts again.

Every state change is logged at INFO (WARNING when the gate is lost) and counted in
``pullgate_nri_state_changes_total{state}``; ``pullgate_nri_state{state}`` is 1 for the current
state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pullgate.errors import PullgateError
from pullgate.nri.frames import WireError
from pullgate.nri.plugin import (
    RUNTIME_SERVICE,
    Gatekeeper,
    PluginService,
    evict_request,
    register_request,
)
from pullgate.nri.session import NriUnavailable, Session

__all__ = ["NriService", "NriState", "NriTarget"]

log = logging.getLogger(__name__)

_REGISTER_TIMEOUT = 5.0  # containerd's default plugin_registration_timeout
_FIRST_BACKOFF = 0.1


class NriState(StrEnum):
    """Where the plugin's connection stands."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    REGISTERED = "registered"
    SYNCHRONIZED = "synchronized"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class NriTarget:
    """Where to reach the runtime: a socket path to dial, or a pre-connected socket."""

    name: str
    index: str
    socket_path: Path | None = None
    preconnected: socket.socket | None = None
    max_backoff: float = 5.0


class NriService:
    """Keeps the plugin registered with the runtime (see the module docstring)."""

    def __init__(
        self,
        target: NriTarget,
        gate: Gatekeeper,
        *,
        on_state: Callable[[NriState], None] | None = None,
        timing: Callable[[str, float], None] | None = None,
    ) -> None:
        self._timing = timing
        self._target = target
        self._gate = gate
        self._on_state = on_state
        self._state = NriState.DISCONNECTED
        self._session: Session | None = None
        self.registrations = 0

    @property
    def state(self) -> NriState:
        """The current state."""
        return self._state

    def _set_state(self, state: NriState, detail: str = "") -> None:
        if state is self._state:
            return
        self._state = state
        level = logging.WARNING if state is NriState.DISCONNECTED else logging.INFO
        log.log(
            level,
            "NRI plugin %s-%s: %s%s",
            self._target.index,
            self._target.name,
            state.value,
            f" ({detail})" if detail else "",
        )
        if self._on_state is not None:
            self._on_state(state)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay registered until ``stop`` is set (pre-connected: until the connection ends)."""
        backoff = _FIRST_BACKOFF
        try:
            while not stop.is_set():
                synchronized = await self._connect_once(stop)
                if self._target.preconnected is not None:
                    return
                if synchronized:
                    backoff = _FIRST_BACKOFF
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await stop.wait()
                backoff = min(backoff * 2, self._target.max_backoff)
        finally:
            self._set_state(NriState.STOPPED)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._target.preconnected is not None:
            return await asyncio.open_unix_connection(sock=self._target.preconnected)
        return await asyncio.open_unix_connection(str(self._target.socket_path))

    async def _connect_once(self, stop: asyncio.Event) -> bool:
        """One connection, served until it ends; whether it got as far as synchronized."""
        self._set_state(NriState.CONNECTING)
        try:
            reader, writer = await self._open()
        except OSError as exc:
            self._set_state(NriState.DISCONNECTED, f"cannot connect: {exc.strerror or exc}")
            return False
        plugin = PluginService(self._gate)
        session = Session(reader, writer, plugin.handle, self._timing)
        self._session = session
        served = asyncio.create_task(session.run())
        stopping = asyncio.create_task(stop.wait())
        detail = "the runtime closed the connection"
        registering = asyncio.create_task(
            session.call(
                RUNTIME_SERVICE,
                "RegisterPlugin",
                register_request(self._target.name, self._target.index),
                _REGISTER_TIMEOUT,
            )
        )
        try:
            await asyncio.wait((registering, served, stopping), return_when=asyncio.FIRST_COMPLETED)
            if not registering.done():
                registering.cancel()
                raise NriUnavailable("stopped or disconnected before registration")
            registering.result()
            self.registrations += 1
            self._set_state(NriState.REGISTERED)
            while not served.done() and not stopping.done():
                await asyncio.wait(
                    (served, stopping), timeout=0.05, return_when=asyncio.FIRST_COMPLETED
                )
                if plugin.synchronized:
                    self._set_state(NriState.SYNCHRONIZED)
            if served.done() and served.exception() is not None:
                detail = f"protocol error: {served.exception()}"
        except NriUnavailable as exc:
            detail = f"registration failed: {exc}"
        finally:
            stopping.cancel()
            self._session = None
            await session.close()
            with contextlib.suppress(asyncio.CancelledError, WireError, OSError):
                await served
        if plugin.shutdown_requested:
            detail = "the runtime shut down"
        synchronized = plugin.synchronized
        self._set_state(NriState.DISCONNECTED, "stopping" if stop.is_set() else detail)
        return synchronized

    async def evict(self, evictions: list[tuple[str, str]], timeout: float = 2.0) -> bool:
        """Ask the runtime to stop containers (``UpdateContainers.evict``); whether it accepted."""
        session = self._session
        if session is None or not evictions:
            return False
        try:
            payload = evict_request(evictions)
            await session.call(RUNTIME_SERVICE, "UpdateContainers", payload, timeout)
        except PullgateError as exc:
            log.warning("NRI eviction of %d container(s) failed: %s", len(evictions), exc)
            return False
        return True
