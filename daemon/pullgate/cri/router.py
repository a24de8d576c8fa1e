"""Which handler answers each call on the CRI proxy's socket: ``PullImage``
to the gate, every other ``runtime.v1.ImageService`` method straight through (as opaque bytes,
unary or server-streaming), anything else to a refusal that reads nothing
(:mod:`pullgate.cri.methods` says what is served and why).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn, Protocol

import grpc

from pullgate.cri.methods import (
    CRI_SERVICE,
    PULL_IMAGE,
    SERVER_STREAMING,
    is_cri_method,
    normalise_method,
)
from pullgate.errors import MalformedInput


class Routed(Protocol):
    """What the router hands calls to (:class:`pullgate.cri.proxy.CriProxy`)."""

    def pull_image(self, request: bytes, context: grpc.ServicerContext) -> bytes: ...

    def forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes: ...

    def forward_stream(
        self, method: str, request: bytes, context: grpc.ServicerContext
    ) -> Iterator[bytes]: ...

    def refuse(self, raw: object, why: str, context: grpc.ServicerContext) -> NoReturn: ...


Unary = Callable[[bytes, grpc.ServicerContext], bytes]


class Router(grpc.GenericRpcHandler):
    """Routes every method: PullImage to the gate, other CRI methods straight through, the rest
    to a refusal.

    Args:
        proxy: what calls are handed to.
        services: the services served (default: ``runtime.v1.ImageService`` only).
        gated: method path -> handler, for the methods that are decided, not just forwarded
            (default: ``PullImage`` to ``proxy.pull_image``).
    """

    def __init__(
        self,
        proxy: Routed,
        services: tuple[str, ...] = (CRI_SERVICE,),
        gated: Mapping[str, Unary] | None = None,
    ) -> None:
        self._proxy = proxy
        self._services = services
        self._gated: Mapping[str, Unary] = (
            gated if gated is not None else {PULL_IMAGE: proxy.pull_image}
        )

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        raw: object = handler_call_details.method
        proxy = self._proxy
        try:
            method = normalise_method(raw)
        except MalformedInput as exc:
            return _refusal(proxy, raw, f"malformed method path: {exc}")
        if not any(is_cri_method(method, service) for service in self._services):
            served = " or ".join(self._services)
            return _refusal(proxy, raw, f"{method} is not a method of the {served} service")
        gated = self._gated.get(method)
        if gated is not None:
            return grpc.unary_unary_rpc_method_handler(gated)
        if method in SERVER_STREAMING:

            def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
                return proxy.forward_stream(method, request, context)

            return grpc.unary_stream_rpc_method_handler(stream)

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            return proxy.forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(unary)


def _refusal(proxy: Routed, raw: object, why: str) -> Any:
    """A handler that refuses the call with ``PERMISSION_DENIED`` without reading it.

    Stream-stream, so any call shape (unary or streaming) is answered at once.
    """

    def refuse(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        proxy.refuse(raw, why, context)

    return grpc.stream_stream_rpc_method_handler(refuse)
