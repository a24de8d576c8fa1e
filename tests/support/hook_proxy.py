"""A test-only CRI relay between pullgate and the real runtime that runs a hook right after
one call, so a test can force a race at a chosen point: e.g. re-tag an image in containerd
after the gate's ``ImageStatus`` answered and before its ``CreateContainer`` reaches the runtime.

Unary calls only (what pullgate sends upstream in these tests), forwarded as bytes with their
metadata and deadline; the runtime's error status is passed back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from pullgate.cri.runtime.v1 import api_pb2

Hook = Callable[[], None]


def _identity(data: bytes) -> bytes:
    return data


class HookProxy:
    """Serves ``socket`` and relays every unary call to ``upstream`` (a unix socket path).

    :meth:`after_image_status` arms a hook that runs once, after the runtime answered the
    first ``ImageStatus`` of that image and before the answer goes back.
    """

    def __init__(self, socket: Path, upstream: Path) -> None:
        self.socket = socket
        self._channel = grpc.insecure_channel(f"unix:{upstream}")
        self._lock = threading.Lock()
        self._armed: tuple[str, Hook] | None = None
        self.fired = threading.Event()
        self._server = grpc.server(ThreadPoolExecutor(16), handlers=[_Handler(self)])

    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def after_image_status(self, image: str, hook: Hook) -> None:
        with self._lock:
            self._armed = (image, hook)
        self.fired.clear()

    def relay(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        call = self._channel.unary_unary(
            method, request_serializer=_identity, response_deserializer=_identity
        )
        try:
            answer: bytes = call(
                request,
                timeout=context.time_remaining(),
                metadata=tuple((k, v) for k, v in context.invocation_metadata()),
            )
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details() or "")
        if method.endswith("/ImageStatus"):
            self._maybe_fire(request)
        return answer

    def _maybe_fire(self, request: bytes) -> None:
        asked = api_pb2.ImageStatusRequest.FromString(request).image.image
        with self._lock:
            armed = self._armed
            if armed is None or armed[0] != asked:
                return
            self._armed = None
        armed[1]()
        self.fired.set()

    def __enter__(self) -> HookProxy:
        self._server.add_insecure_port(f"unix:{self.socket}")
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop(None)
        self._channel.close()


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, proxy: HookProxy) -> None:
        self._proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method: str = handler_call_details.method

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            return self._proxy.relay(method, request, context)

        return grpc.unary_unary_rpc_method_handler(unary)
