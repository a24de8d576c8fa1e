"""The zero-cost CRI proxy: the floor any Python gRPC pass-through reaches on this machine.

The server model of pullgate's CRI front ends (grpcio's synchronous server, a pool of 256
handler threads, a generic handler, one channel to the runtime) with none of pullgate's logic:
every call is taken as a unary call and forwarded as opaque bytes with a blocking call, under
the caller's remaining deadline; no method check, no metadata, no cancellation, no metrics.
``bench/start.py`` runs it as its own process beside ``pullgate serve`` and divides by it.

Usage: ``python bench/zero_proxy.py SOCKET UPSTREAM`` (UPSTREAM: ``unix:///path``); stops on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

THREADS = 256
OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
_NO_DEADLINE = 10.0**9

Unary = Callable[[bytes, grpc.ServicerContext], bytes]


def _identity(data: bytes) -> bytes:
    return data


class PassThrough(grpc.GenericRpcHandler):
    """Every method to the runtime as opaque bytes (one handler per method path, reused)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel
        self._handlers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method: str = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            with self._lock:
                handler = self._handlers.setdefault(method, self._handler(method))
        return handler

    def _handler(self, method: str) -> Any:
        stub = self._channel.unary_unary(
            method, request_serializer=_identity, response_deserializer=_identity
        )

        def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
            left = context.time_remaining()
            response: bytes = stub(request, timeout=None if left > _NO_DEADLINE else left)
            return response

        return grpc.unary_unary_rpc_method_handler(forward)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    socket_path, upstream = argv
    channel = grpc.insecure_channel(upstream, options=OPTIONS)
    executor = ThreadPoolExecutor(THREADS, thread_name_prefix="zero-proxy")
    server = grpc.server(executor, handlers=[PassThrough(channel)], options=OPTIONS)
    if server.add_insecure_port(f"unix:{socket_path}") == 0:
        print(f"cannot listen on {socket_path}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop(None).wait()
    channel.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
