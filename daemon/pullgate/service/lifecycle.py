"""Service-manager lifecycle of ``pullgate serve``: the events, READY sent
once, the watchdog ping, sd_notify as a lifecycle hook, and the signals (SIGHUP reloads like the
``Reload`` RPC; SIGTERM/SIGINT stop gracefully).

Lifecycle hooks (``Callable[[Lifecycle], None]``) are how systemd's ``sd_notify`` (READY=1 /
RELOADING=1 / STOPPING=1 / WATCHDOG=1) plugs in; a failing hook is logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from enum import StrEnum

from pullgate.service.convert import ReloadView
from pullgate.service.servicer import DaemonControl, QueuedReloads
from pullgate.service.systemd import SystemdNotifier

__all__ = [
    "Lifecycle",
    "LifecycleHook",
    "ReadyOnce",
    "install_signals",
    "notify",
    "systemd_hook",
    "watchdog",
]

log = logging.getLogger(__name__)


class Lifecycle(StrEnum):
    """Service manager notifications (systemd ``sd_notify`` states)."""

    READY = "READY"
    RELOADING = "RELOADING"
    STOPPING = "STOPPING"
    WATCHDOG = "WATCHDOG"


LifecycleHook = Callable[[Lifecycle], None]


def notify(hooks: Sequence[LifecycleHook], event: Lifecycle) -> None:
    """Tell every hook about ``event`` (a failing hook is logged, the others still run)."""
    for hook in hooks:
        try:
            hook(event)
        except Exception:
            log.exception("lifecycle hook failed on %s", event.value)


class ReadyOnce:
    """Send READY exactly once (from the event loop or a reload thread)."""

    def __init__(self, hooks: Sequence[LifecycleHook]) -> None:
        self._hooks = hooks
        self._lock = threading.Lock()
        self._sent = False

    @property
    def sent(self) -> bool:
        """Whether READY was sent (a valid configuration has enforced since)."""
        with self._lock:
            return self._sent

    def announce(self) -> None:
        """READY, unless it was already sent."""
        with self._lock:
            if self._sent:
                return
            self._sent = True
        notify(self._hooks, Lifecycle.READY)


async def watchdog(hooks: Sequence[LifecycleHook], interval: float) -> None:
    """Ping from the event loop itself, so a wedged loop stops the pings."""
    while True:
        await asyncio.sleep(interval)
        notify(hooks, Lifecycle.WATCHDOG)


def systemd_hook(notifier: SystemdNotifier) -> LifecycleHook:
    """Lifecycle events as sd_notify messages."""

    def hook(event: Lifecycle) -> None:
        if event is Lifecycle.READY:
            notifier.ready()
        elif event is Lifecycle.RELOADING:
            notifier.reloading()
        elif event is Lifecycle.STOPPING:
            notifier.stopping()
        else:
            notifier.watchdog()

    return hook


def install_signals(
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    control: DaemonControl,
    hooks: Sequence[LifecycleHook],
    ready: ReadyOnce,
) -> None:
    """SIGHUP reloads through ``control`` (RELOADING, then READY); SIGTERM and SIGINT set
    ``stop``.

    READY only while a valid configuration enforces: after a SIGHUP of a daemon that was ready,
    READY follows RELOADING whatever the outcome (systemd's notify-reload protocol; a failed
    reload keeps the last good configuration in force). A daemon that never had a valid
    configuration gets its first READY through ``ready`` (:class:`ReadyOnce`), and only when
    this reload left one in force.

    With a :class:`~pullgate.service.servicer.QueuedReloads` control, a SIGHUP that arrives while
    the reload asked for by an earlier one has not started yet is already served by it: it costs
    nothing (no task, no thread, no RELOADING); a storm of signals costs a few reloads.
    """
    queued = control if isinstance(control, QueuedReloads) else None
    waiting: list[Future[ReloadView]] = []  # the last queued SIGHUP reload

    async def reload(result_of: Awaitable[ReloadView]) -> None:
        was_ready = ready.sent
        notify(hooks, Lifecycle.RELOADING)
        generation = 0
        try:
            result = await result_of
        except Exception:
            log.exception("SIGHUP reload: internal error")
        else:
            log.info("SIGHUP reload: %s", "ok" if result.ok else f"failed: {result.error}")
            generation = result.generation
        if was_ready:
            notify(hooks, Lifecycle.READY)
        elif generation > 0:
            ready.announce()

    tasks: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        result_of: Awaitable[ReloadView]
        if queued is not None:
            if waiting and not (waiting[0].running() or waiting[0].done()):
                return  # that reload has not started: it will read what this signal announces
            future = queued.request_reload("sighup")
            waiting[:] = [future]
            result_of = asyncio.wrap_future(future)
        else:
            result_of = asyncio.to_thread(control.reload, "sighup")
        task = loop.create_task(reload(result_of))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
