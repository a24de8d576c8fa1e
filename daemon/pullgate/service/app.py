"""Running ``pullgate serve``: what :mod:`pullgate.service.compose` (the composition root,
docs/architecture.md §3.4) built, started in order and stopped on a signal.

Start-up order:

1. read the daemon config for the process-level settings (API socket and mode, metrics
   address). If it cannot be read the daemon still starts with the defaults, so an operator
   can fix the file and the watcher picks the fix up;
2. build the trust state and attempt the initial load. A failed first load leaves the daemon
   running: health ``NOT_SERVING``, ``Status`` degraded with the error, every ``Verify``
   denied by the decider (it has no snapshot), and the watcher keeps watching for a fix;
3. the decider, fed by ``state.current`` (one reference read per decision);
4. the metrics endpoint, then the ``grpc.aio`` server on ``unix:<socket>`` (parent directory
   created, stale socket removed, mode applied after bind) with ``pullgate.v1.Verifier``,
   ``grpc.health.v1.Health`` and server reflection;
5. the directory watcher; lifecycle hooks get ``READY``.

Signals: SIGHUP reloads exactly like the ``Reload`` RPC; SIGTERM/SIGINT stop gracefully
(hooks get ``STOPPING``, health turns ``NOT_SERVING``, ``server.stop(grace)``, watcher and
metrics stopped, socket removed). Process-level settings (socket path, metrics address) are
read once; a reload changes trust material, certs.d and per-statement settings only.

Lifecycle events, the sd_notify hook and the signal handlers are in
:mod:`pullgate.service.lifecycle`; :func:`run` reads systemd's environment and plugs the hook in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection  # type: ignore[import-untyped]

from pullgate.common import heap
from pullgate.config import DaemonConfig, load_config, load_process_settings
from pullgate.errors import ConfigError
from pullgate.nri.daemon import NriLaunch, attach_nri, launch_from_environment
from pullgate.service import compose
from pullgate.service.gate_front import start_node_auditor, start_proxy, stop_proxy
from pullgate.service.health import HEALTH_SERVICE, VERIFIER_SERVICE, Health
from pullgate.service.lifecycle import (
    Lifecycle,
    LifecycleHook,
    ReadyOnce,
    install_signals,
    notify,
    systemd_hook,
    watchdog,
)
from pullgate.service.metrics import Metrics, MetricsServer, start_metrics_server
from pullgate.service.servicer import ServerParts, verifier_handlers
from pullgate.service.systemd import SystemdNotifier

log = logging.getLogger(__name__)

DEFAULT_GRACE = 5.0  # seconds in-flight RPCs get on SIGTERM
_WORKERS = 64  # threads for decisions, reloads and status (asyncio.to_thread)


# ---------------------------------------------------------------------------- gRPC server


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningServer:
    """A started server: its target (``unix:<path>``), socket and health flag."""

    target: str
    socket_path: Path
    health: Health
    server: grpc.aio.Server


def prepare_socket_path(path: Path, section: str = "api") -> None:
    """Create the parent directory and remove a stale socket left by a previous run.

    Raises:
        ConfigError: the path exists and is not a socket (never delete someone's file), or the
            directory cannot be made (``section`` names the configuration table).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"[{section}] socket {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISSOCK(info.st_mode):
        raise ConfigError(f"[{section}] socket {path}: exists and is not a socket")
    path.unlink()


@contextlib.asynccontextmanager
async def make_server(
    socket_path: Path,
    parts: ServerParts,
    *,
    socket_mode: int = 0o660,
    serving: bool = False,
    grace: float = DEFAULT_GRACE,
) -> AsyncIterator[RunningServer]:
    """Serve ``pullgate.v1.Verifier`` + health + reflection on a unix socket.

    Args:
        socket_path: where to bind (parent created, a stale socket replaced).
        parts: the engine, status/reload control, recorder and metrics.
        socket_mode: permission bits applied right after bind.
        serving: initial health status.
        grace: seconds in-flight RPCs get when the context exits.

    Yields:
        The running server.

    Raises:
        ConfigError: the socket cannot be bound.
    """
    prepare_socket_path(socket_path)
    health = Health()
    await health.set_serving(serving)
    server = grpc.aio.server()
    servicer = compose.verifier_servicer(parts)
    handlers = verifier_handlers(servicer)  # Verify answers with (memoised) bytes
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(VERIFIER_SERVICE, handlers),)
    )
    server.add_registered_method_handlers(VERIFIER_SERVICE, handlers)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    reflection.enable_server_reflection(
        (VERIFIER_SERVICE, HEALTH_SERVICE, reflection.SERVICE_NAME), server
    )
    target = f"unix:{socket_path}"
    try:
        server.add_insecure_port(target)
    except RuntimeError as exc:
        raise ConfigError(f"[api] socket {socket_path}: cannot bind") from exc
    await server.start()
    try:
        os.chmod(socket_path, socket_mode)
        log.info("serving pullgate.v1.Verifier on %s (mode %o)", target, socket_mode)
        yield RunningServer(target=target, socket_path=socket_path, health=health, server=server)
    finally:
        await health.shutdown()
        await server.stop(grace)
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()


# ---------------------------------------------------------------------------- the daemon


class Runtime(Protocol):
    """The daemon's stateful parts, built from the config file (see :func:`build_runtime`)."""

    @property
    def parts(self) -> ServerParts:
        """What the gRPC server serves."""
        ...

    def ready(self) -> bool:
        """True once a valid trust snapshot is loaded."""
        ...

    def on_swap(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every successful snapshot swap (any thread)."""
        ...

    def start_watching(self) -> None:
        """Start the directory watcher."""
        ...

    def stop(self) -> None:
        """Stop the watcher and release resources (idempotent)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonOptions:
    """Process-level options of one daemon run."""

    config_path: Path
    hooks: Sequence[LifecycleHook] = ()
    grace: float = DEFAULT_GRACE
    watchdog_interval: float | None = None  # seconds between WATCHDOG lifecycle events
    install_signal_handlers: bool = True
    runtime_factory: Callable[[Path, DaemonConfig, Metrics], Runtime] | None = None
    ready_callback: Callable[[RunningServer, MetricsServer | None], None] | None = None
    nri_launch: NriLaunch | None = None  # containerd launched this process as its NRI plugin


def initial_config(path: Path) -> DaemonConfig:
    """The process-level config: the file's; when it is unusable, its ``[api]``, ``[cri]`` and
    ``[metrics]`` tables if those are valid on their own, else the defaults (logged). No
    verification runs on it: decisions wait for a snapshot that loads."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("configuration error: %s", problem)
    salvaged = load_process_settings(path)
    if salvaged is not None:
        log.error(
            "starting with the file's [api]/[cri]/[metrics] settings; every pull is denied "
            "until a valid configuration loads"
        )
        return salvaged
    log.error("starting with default [api]/[metrics] settings; waiting for a valid config")
    return DaemonConfig(source=path)


async def serve(options: DaemonOptions, stop: asyncio.Event) -> int:
    """Run the daemon until ``stop`` is set (or SIGTERM/SIGINT when handlers are installed).

    Returns:
        The process exit code (0 after a clean stop).

    Raises:
        ConfigError: the API socket or metrics address cannot be bound.
    """
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(_WORKERS, thread_name_prefix="pullgate"))
    config = initial_config(options.config_path)
    factory = options.runtime_factory or _default_runtime_factory()
    metrics, runtime_metrics = compose.daemon_metrics()
    runtime = factory(options.config_path, config, metrics)
    runtime_metrics.source = runtime.parts.control
    metrics_server: MetricsServer | None = None
    try:
        # Without a valid configuration, failing to bind must not cost the API socket.
        metrics_server = start_metrics_server(
            metrics, config.metrics.address, fatal=runtime.ready()
        )
        async with (
            contextlib.AsyncExitStack() as stack,
            make_server(
                config.api.socket,
                runtime.parts,
                socket_mode=config.api.socket_mode,
                serving=runtime.ready(),
                grace=options.grace,
            ) as running,
        ):
            runtime.on_swap(lambda: _mark_serving(running.health))
            if runtime.ready():
                await running.health.set_serving(True)
            parts = runtime.parts
            fronts = (
                ("cri", config.cri, compose.image_proxy(config, parts)),
                ("runtime", config.runtime, compose.runtime_gate(config, parts)),
            )
            for section, table, proxy in fronts:
                if table is not None:
                    started = await start_proxy(
                        proxy, table.socket, table.socket_mode, section, prepare_socket_path
                    )
                    stack.push_async_callback(stop_proxy, started, options.grace)
            auditor = start_node_auditor(compose.node_auditor(config, parts), runtime.on_swap)
            if auditor is not None:
                stack.callback(auditor.stop)
            plugin = compose.nri_plugin(config, runtime, metrics.registry, options.nri_launch)
            await attach_nri(stack, plugin, stop)
            runtime.start_watching()
            # READY only once a valid configuration enforces: a node that cannot enforce must
            # look like a failed start to the service manager, not like a running service.
            ready = ReadyOnce(options.hooks)
            if options.install_signal_handlers:
                install_signals(loop, stop, runtime.parts.control, options.hooks, ready)
            if runtime.ready():
                ready.announce()
            else:
                runtime.on_swap(ready.announce)
            # Start-up state stays out of the collector's full passes; re-done after each swap
            # so a replaced configuration's cycles are collected (pullgate.common.heap).
            runtime.on_swap(_settle_heap)
            _settle_heap()
            if options.watchdog_interval:
                stack.push_async_callback(
                    _cancel,
                    asyncio.create_task(watchdog(options.hooks, options.watchdog_interval)),
                )
            if options.ready_callback is not None:
                options.ready_callback(running, metrics_server)
            await stop.wait()
            notify(options.hooks, Lifecycle.STOPPING)
            log.info("stopping (grace %.1fs)", options.grace)
    finally:
        if options.install_signal_handlers:
            for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        runtime.stop()
        if metrics_server is not None:
            metrics_server.stop()
    return 0


def _settle_heap() -> None:
    heap.settle()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _mark_serving(health: Health) -> None:
    health.set_serving_threadsafe(True)


def _default_runtime_factory() -> Callable[[Path, DaemonConfig, Metrics], Runtime]:
    return compose.build_runtime


def _configure_logging() -> None:
    """stderr without timestamps (journald adds them); pullgate at INFO, audit lines included."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    ours = logging.getLogger("pullgate")
    if ours.level == logging.NOTSET or ours.level > logging.INFO:
        ours.setLevel(min(logging.INFO, root.level or logging.INFO))


def run(config_path: Path, *, hooks: Sequence[LifecycleHook] = ()) -> int:
    """``pullgate serve``: run the daemon in the foreground until SIGTERM/SIGINT.

    Returns:
        The exit code (0 clean stop, 2 when the socket or metrics address cannot be bound).
    """
    _configure_logging()

    # The composition root is where the service manager's environment is read.
    notifier = SystemdNotifier.from_environment(os.environ)
    options = DaemonOptions(
        config_path=config_path,
        hooks=(*hooks, systemd_hook(notifier)) if notifier.enabled else tuple(hooks),
        watchdog_interval=notifier.watchdog_interval(),
    )

    async def main() -> int:
        launch = launch_from_environment(os.environ)
        return await serve(dataclasses.replace(options, nri_launch=launch), asyncio.Event())

    try:
        return asyncio.run(main())
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("cannot start: %s", problem)
        return 2
