"""Run the pullgate gRPC server on a unix socket in ``tmp_path`` and hand out typed stubs.

A ``make_server(tmp_path)`` harness (each test gets its own server), without pytest-asyncio: the
server's event loop runs in a background thread, tests talk to it over a real
``unix:`` channel with synchronous stubs.

* :func:`serve_parts` serves a given :class:`~pullgate.service.servicer.ServerParts` (fakes);
* :func:`run_daemon` runs the whole daemon (:func:`pullgate.service.app.serve`) for a config
  file, exactly as ``pullgate serve`` does minus signal handlers (those are exercised in a
  subprocess).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection_pb2  # type: ignore[import-untyped]

from pullgate.config import DaemonConfig
from pullgate.service.app import DaemonOptions, RunningServer, Runtime, make_server, serve
from pullgate.service.metrics import Metrics, MetricsServer
from pullgate.service.servicer import ServerParts
from pullgate.v1 import verifier_pb2_grpc

_START_TIMEOUT = 30.0


class HealthClient:
    """Typed ``grpc.health.v1.Health/Check``."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    def check(self, service: str = "") -> int:
        """The ``ServingStatus`` value of ``service``."""
        response = self._check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        return int(response.status)


class ReflectionClient:
    """Typed ``grpc.reflection.v1alpha.ServerReflection`` (list services only)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._info = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )

    def services(self) -> set[str]:
        """Every service name the server advertises."""
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = self._info(iter([request]), timeout=10)
        names: set[str] = set()
        for response in responses:
            names.update(s.name for s in response.list_services_response.service)
        return names


@dataclass
class Client:
    """A channel to a running server plus typed stubs."""

    channel: grpc.Channel
    verifier: verifier_pb2_grpc.VerifierStub
    health: HealthClient
    reflection: ReflectionClient
    socket_path: Path
    metrics_url: str | None = None

    @classmethod
    def connect(cls, socket_path: Path, metrics_url: str | None = None) -> Client:
        channel = grpc.insecure_channel(f"unix:{socket_path}")
        return cls(
            channel=channel,
            verifier=verifier_pb2_grpc.VerifierStub(channel),
            health=HealthClient(channel),
            reflection=ReflectionClient(channel),
            socket_path=socket_path,
            metrics_url=metrics_url,
        )


class _LoopThread:
    """Runs one coroutine in its own event loop on a daemon thread; stops it on demand."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, body: Callable[[asyncio.Event], Coroutine[Any, Any, object]]) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            await body(self.stop_event)

        def target() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 (reported to the test thread)
                self.error = exc
            finally:
                self.ready.set()

        self._thread = threading.Thread(target=target, name="grpc-harness", daemon=True)
        self._thread.start()
        if not self.ready.wait(_START_TIMEOUT):
            raise TimeoutError("server did not start")
        if self.error is not None:
            raise RuntimeError("server failed to start") from self.error

    def stop(self) -> None:
        loop, stop = self.loop, self.stop_event
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(_START_TIMEOUT)
        if self.error is not None:
            raise RuntimeError("server failed") from self.error


@contextlib.contextmanager
def serve_parts(
    tmp_path: Path,
    parts: ServerParts,
    *,
    serving: bool = True,
    socket_mode: int = 0o660,
) -> Iterator[tuple[Client, RunningServer]]:
    """Serve ``parts`` on ``tmp_path/run/pullgate.sock``; yield a client and the server."""
    socket_path = tmp_path / "run" / "pullgate.sock"
    holder: list[RunningServer] = []
    runner = _LoopThread()

    async def body(stop: asyncio.Event) -> None:
        async with make_server(
            socket_path, parts, socket_mode=socket_mode, serving=serving, grace=1.0
        ) as running:
            holder.append(running)
            runner.ready.set()
            await stop.wait()

    runner.start(body)
    client = Client.connect(socket_path)
    try:
        yield client, holder[0]
    finally:
        client.channel.close()
        runner.stop()


RuntimeFactory = Callable[[Path, DaemonConfig, Metrics], Runtime]


@contextlib.contextmanager
def run_daemon(
    config_path: Path, *, runtime_factory: RuntimeFactory | None = None
) -> Iterator[Client]:
    """Run the whole daemon for ``config_path`` (its ``[api] socket`` should be in tmp)."""
    runner = _LoopThread()
    found: list[tuple[RunningServer, MetricsServer | None]] = []

    def on_ready(running: RunningServer, metrics: MetricsServer | None) -> None:
        found.append((running, metrics))
        runner.ready.set()

    async def body(stop: asyncio.Event) -> None:
        options = DaemonOptions(
            config_path=config_path,
            grace=1.0,
            install_signal_handlers=False,
            runtime_factory=runtime_factory,
            ready_callback=on_ready,
        )
        await serve(options, stop)

    runner.start(body)
    running, metrics = found[0]
    client = Client.connect(running.socket_path, metrics.url if metrics else None)
    try:
        yield client
    finally:
        client.channel.close()
        runner.stop()
