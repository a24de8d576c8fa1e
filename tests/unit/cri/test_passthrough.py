"""Pass-through (undecided) unary calls of the CRI front ends: cancelled with the caller's call,
a runtime's broken answer refused, and no thread started per call."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from pullgate.cri.proxy import CriProxy
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.decision.record import DecisionRecorder

FS_INFO = "/runtime.v1.ImageService/ImageFsInfo"
SLOW = "/runtime.v1.ImageService/Slow"
TWO = "/runtime.v1.ImageService/AnswerTwice"
NONE = "/runtime.v1.ImageService/AnswerNothing"


def _identity(data: bytes) -> bytes:
    return data


def _never(request: DecisionRequest) -> Decision:
    raise AssertionError(f"a pass-through call asked for a decision on {request.reference}")


class Runtime(grpc.GenericRpcHandler):
    """Echoes ``ImageFsInfo``; ``Slow`` waits to be cancelled (recorded); ``AnswerTwice`` and
    ``AnswerNothing`` break the unary contract."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.cancelled: list[str] = []

    def service(self, details: grpc.HandlerCallDetails) -> Any:
        method = details.method

        async def unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            self.started.append(method)
            if method == SLOW:
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    self.cancelled.append(method)
                    raise
            return request

        async def broken(
            request: bytes, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[bytes]:
            for _ in range(2 if method == TWO else 0):
                yield request

        if method in (TWO, NONE):
            return grpc.unary_stream_rpc_method_handler(broken)
        return grpc.unary_unary_rpc_method_handler(unary)


Scenario = Callable[[grpc.aio.Channel, Runtime], Awaitable[None]]


def _run(scenario: Scenario) -> Runtime:
    runtime = Runtime()

    async def main() -> None:
        tag = uuid.uuid4().hex[:10]
        upstream, front = Path(f"/tmp/pg-up-{tag}.sock"), Path(f"/tmp/pg-front-{tag}.sock")
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((runtime,))
        server.add_insecure_port(f"unix:{upstream}")
        await server.start()
        proxy = CriProxy(str(upstream), _never, recorder=DecisionRecorder(None))
        await proxy.start(front, mode=0o600)
        try:
            async with grpc.aio.insecure_channel(f"unix:{front}") as channel:
                await scenario(channel, runtime)
        finally:
            await proxy.stop(0)
            await server.stop(0)
            upstream.unlink(missing_ok=True)
            front.unlink(missing_ok=True)

    asyncio.run(main())
    return runtime


def _stub(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(
        method, request_serializer=_identity, response_deserializer=_identity
    )


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def test_a_pass_through_call_the_caller_cancels_is_cancelled_at_the_runtime() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: Runtime) -> None:
        call = _stub(channel, SLOW)(b"x")
        await _until(lambda: runtime.started == [SLOW])
        call.cancel()
        await _until(lambda: runtime.cancelled == [SLOW])

    assert _run(scenario).cancelled == [SLOW]


@pytest.mark.parametrize("method", [TWO, NONE])
def test_a_unary_call_not_answered_with_one_message_is_an_internal_error(method: str) -> None:
    codes: list[grpc.StatusCode] = []

    async def scenario(channel: grpc.aio.Channel, runtime: Runtime) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await _stub(channel, method)(b"x", timeout=10)
        codes.append(excinfo.value.code())
        assert await _stub(channel, FS_INFO)(b"still served", timeout=10) == b"still served"

    _run(scenario)
    assert codes == [grpc.StatusCode.INTERNAL]


def test_sequential_pass_through_calls_start_no_channel_thread_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # grpc's futures start a channel polling thread whenever no other call is in flight: one
    # per call for the kubelet's one-at-a-time relists. Forwarded calls complete on the handler
    # thread instead (a new handler thread now and then is fine).
    started: list[str] = []

    async def scenario(channel: grpc.aio.Channel, runtime: Runtime) -> None:
        stub = _stub(channel, FS_INFO)
        for _ in range(3):
            await stub(b"warm", timeout=10)
        start = threading.Thread.start

        def recording(thread: threading.Thread) -> None:
            target = getattr(thread, "_target", None)
            started.append(getattr(target, "__name__", repr(target)))
            start(thread)

        monkeypatch.setattr(threading.Thread, "start", recording)
        try:
            for i in range(20):
                assert await stub(str(i).encode(), timeout=10) == str(i).encode()
        finally:
            monkeypatch.undo()

    _run(scenario)
    assert len(started) < 10, started
