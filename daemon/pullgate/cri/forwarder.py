"""Forwarding CRI calls to the runtime unchanged: the machinery both CRI front ends share.

:class:`Forwarder` sends one call upstream with the caller's metadata, deadline and cancellation
and passes the runtime's answer back (:mod:`pullgate.cri.relay` says what is relayed), for unary
and server-streaming calls alike, and makes the proxies' own control calls (``ImageStatus``,
``RemoveImage``, listings) with their own timeout.

A forwarded unary call runs on the handler thread itself: it is sent on a second channel to the
runtime (:data:`RELAY_OPTIONS`) as a call with one request and any number of answers, which
grpc completes on the calling thread and which can still be cancelled from the caller's
side. Identical on the wire to a unary call, it avoids grpc's future, whose channel starts a
new polling thread for every call when calls do not overlap (the kubelet's relists do not):
that thread cost each pass-through call about a third of a millisecond (docs/decisions.md).

The image proxy (:class:`pullgate.cri.proxy.CriProxy`) and the RuntimeService gate
(:class:`pullgate.cri.runtime_proxy.RuntimeProxy`) inherit it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import grpc
import grpc.experimental

from pullgate.cri.methods import CRI_SERVICE, SHOWN_PATH
from pullgate.cri.relay import (
    abort,
    answer_metadata,
    cancel_with,
    forwardable,
    identity,
    pass_back,
    remaining,
)

__all__ = ["RELAY_OPTIONS", "Forwarder", "within"]

log = logging.getLogger(__name__)

# The forwarding channel's own option: its calls with one request and a stream of answers are
# completed on the calling thread (no channel polling thread, no hand-over).
RELAY_OPTIONS = ((grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1),)


def _open(channel: grpc.Channel, method: str, request: bytes, context: grpc.ServicerContext) -> Any:
    """Start ``method`` upstream as a stream of opaque answers, with the caller's metadata and
    deadline, cancelled with the caller's call."""
    stub = channel.unary_stream(method, request_serializer=identity, response_deserializer=identity)
    call = stub(
        request,
        metadata=forwardable(context.invocation_metadata()),
        timeout=remaining(context),
    )
    cancel_with(context, call)
    return call


class _NotUnary(grpc.RpcError):
    """The runtime answered a unary call with other than one message (a broken runtime)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"the runtime answered {count} messages to a unary call")
        self._details = str(self)

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.INTERNAL

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> tuple[()]:
        return ()

    def trailing_metadata(self) -> tuple[()]:
        return ()


class Forwarder:
    """Calls to the runtime over one channel (set by the subclass when it starts), and the
    refusal of calls that must not reach it."""

    _channel: grpc.Channel | None = None
    _relay: grpc.Channel | None = None  # unary forwards (RELAY_OPTIONS)
    _control_timeout: float = 30.0
    _audit: Callable[[dict[str, Any]], None]
    _lock: threading.Lock
    served = CRI_SERVICE  # named in refusals

    def _upstream(self) -> grpc.Channel:
        if self._channel is None:
            raise RuntimeError("CriProxy is not started")
        return self._channel

    def _close_after(
        self, executor: ThreadPoolExecutor | None, rechecks: threading.Thread | None
    ) -> None:
        """Close the channels once the handler threads and the re-check thread are done."""
        if executor is not None:
            executor.shutdown(wait=True)
        if rechecks is not None:
            rechecks.join()
        self._close_channel()

    def _close_channel(self) -> None:
        with self._lock:
            channel, self._channel = self._channel, None
            relay, self._relay = self._relay, None
        for each in (channel, relay):
            if each is not None:
                each.close()

    def _control(self, method: str, request: bytes) -> bytes:
        """One control call of the pin check (``ImageStatus``/``RemoveImage``): no caller
        metadata, the proxy's own timeout.

        Raises:
            grpc.RpcError: the runtime answered with an error status.
        """
        stub = self._upstream().unary_unary(
            method, request_serializer=identity, response_deserializer=identity
        )
        response: bytes = stub(request, timeout=self._control_timeout)
        return response

    def _send(
        self,
        method: str,
        request: bytes,
        context: grpc.ServicerContext,
        sent: Callable[[], object] | None = None,
    ) -> tuple[bytes, grpc.Call]:
        """One unary call upstream with the caller's metadata, deadline and cancellation (a pull
        the kubelet gives up on stops at the runtime too); nothing is answered to the caller yet.
        ``sent`` is called once the call is under way (before its answer is waited for).

        Raises:
            grpc.FutureCancelledError: the caller cancelled.
            grpc.RpcError: the runtime answered with an error status.
        """
        relay = self._relay
        if relay is None:
            raise RuntimeError("CriProxy is not started")
        call = _open(relay, method, request, context)
        if sent is not None:
            sent()
        try:
            answers: list[bytes] = list(call)
        except grpc.RpcError:
            if not context.is_active():  # cancelled with the caller's call
                raise grpc.FutureCancelledError() from None
            raise
        if len(answers) != 1:
            raise _NotUnary(len(answers))
        return answers[0], call

    def forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Forward one unary call unchanged; the upstream status and metadata are passed back."""
        try:
            response, call = self._send(method, request, context)
        except grpc.FutureCancelledError:
            abort(context, grpc.StatusCode.CANCELLED, "cancelled by the caller")
        except grpc.RpcError as err:
            pass_back(err, context)
        answer_metadata(call, context)
        return response

    def forward_stream(
        self, method: str, request: bytes, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """Forward one server-streaming call unchanged (cancelled with the caller's call)."""
        call = _open(self._upstream(), method, request, context)
        try:
            initial = forwardable(call.initial_metadata())  # waits for the runtime's headers
            if initial:
                context.send_initial_metadata(initial)
            yield from call
        except grpc.RpcError as err:
            pass_back(err, context)
        context.set_trailing_metadata(forwardable(call.trailing_metadata()))

    def refuse(self, raw: object, why: str, context: grpc.ServicerContext) -> NoReturn:
        """Refuse a call that is not a ``runtime.v1.ImageService`` method (logged and audited)."""
        abort(context, grpc.StatusCode.PERMISSION_DENIED, self.refusal_text(raw, why))

    def refusal_text(self, raw: object, why: str) -> str:
        """Log and audit the refusal of a call outside the served services; the caller's
        ``PERMISSION_DENIED`` message."""
        shown = (raw if isinstance(raw, str) else repr(raw))[:SHOWN_PATH]
        log.warning("CRI proxy refused method %r: %s", shown, why)
        self._emit_audit(
            {
                "event": "cri.refused",
                "decision": "deny",
                "method": shown,
                "detail": why,
                "caller": "cri",
            }
        )
        return f"pullgate CRI proxy refuses {shown!r}: {why}; only {self.served} is served"

    def _emit_audit(self, record: dict[str, Any]) -> None:
        """One audit record to the sink; a failing sink is logged with the record, never raised."""
        try:
            self._audit(record)
        except Exception:  # an audit sink must not break a pull
            log.exception("audit sink failed for %s", json.dumps(record, sort_keys=True))


async def within(deadline: float, wait: Callable[[], object]) -> bool:
    """Run the blocking ``wait`` on a thread until ``deadline``; False if it was still waiting."""
    try:
        await asyncio.wait_for(asyncio.to_thread(wait), max(deadline - time.monotonic(), 0.001))
    except TimeoutError:
        return False
    return True
