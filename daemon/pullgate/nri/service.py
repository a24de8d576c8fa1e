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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pullgate.errors import PullgateError
from pullgate.nri.frames import WireError
from pullgate.nri.plugin import (
    RUNTIME_SERVICE,
    Admission,
    Gatekeeper,
    PluginService,
    evict_request,
    register_request,
)
from pullgate.nri.session import NriUnavailable, Session
from pullgate.nri.wire import api_pb2

__all__ = ["NriService", "NriState", "NriTarget"]

log = logging.getLogger(__name__)

_REGISTER_TIMEOUT = 5.0  # containerd's default plugin_registration_timeout
_FIRST_BACKOFF = 0.1
_SWEEP_DELAY = 0.2  # seconds between closing the connection and the sweeping registration
_SWEEP_TIMEOUT = 5.0


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
            if self._target.socket_path is not None and stop.is_set():
                await self._sweep(self._target.socket_path)
            self._set_state(NriState.STOPPED)

    async def _sweep(self, path: Path) -> None:
        """Make containerd forget the closed connection now (graceful stop only).

        containerd drops a closed plugin only when the next NRI event (or registration)
        happens, and that next event is handled as if the plugin were still there: a create
        right after pullgate stopped would pass ``required_plugins``. A short-lived second
        plugin (``<name>-stopping``, index 99, refusing every create while it lives) registers,
        which makes containerd drop the closed one, then disconnects.
        """
        await asyncio.sleep(_SWEEP_DELAY)  # let containerd see the main connection close
        try:
            async with asyncio.timeout(_SWEEP_TIMEOUT):
                reader, writer = await asyncio.open_unix_connection(str(path))
                plugin = PluginService(_Refuser())
                session = Session(reader, writer, plugin.handle)
                served = asyncio.create_task(session.run())
                try:
                    name = f"{self._target.name}-stopping"
                    await session.call(
                        RUNTIME_SERVICE, "RegisterPlugin", register_request(name, "99"), 2.0
                    )
                    while not plugin.synchronized and not served.done():
                        await asyncio.sleep(0.01)
                finally:
                    await session.close()
                    with contextlib.suppress(asyncio.CancelledError, WireError, OSError):
                        await served
        except (OSError, TimeoutError, NriUnavailable) as exc:
            log.warning("NRI: could not make the runtime drop the closed plugin: %s", exc)
            return
        log.info("NRI: the runtime dropped plugin %s (graceful stop)", self._target.name)

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


class _Refuser:
    """The stopping plugin's gatekeeper: every create and start refused, nothing else kept."""

    def admit(self, pod: api_pb2.PodSandbox, container: api_pb2.Container) -> Admission:
        return Admission(allowed=False, message="pullgate is stopping; retry")

    def admit_start(self, pod: api_pb2.PodSandbox, container: api_pb2.Container) -> Admission:
        return self.admit(pod, container)

    def synchronized(self, containers: Sequence[api_pb2.Container], *, complete: bool) -> None:
        return None

    def created(self, container: api_pb2.Container) -> None:
        return None

    def removed(self, container: api_pb2.Container) -> None:
        return None

    def configured(self, request: api_pb2.ConfigureRequest) -> None:
        return None
