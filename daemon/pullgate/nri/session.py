"""One NRI connection: the plugin's ttrpc server on connection 1, its client on connection 2.

:class:`Session` reads mux frames from the unix stream, reassembles each logical connection's
ttrpc frames, serves every request that arrives on :data:`~pullgate.nri.frames.PLUGIN_CONN`
(answered at once on the reading loop: the handler decides from memory only; the answer goes back
on the same stream id) and matches responses on
:data:`~pullgate.nri.frames.RUNTIME_CONN` to the calls :meth:`Session.call` made (odd stream
ids, as ttrpc clients use). Only unary calls exist here; a ``DATA`` frame is a protocol error.

A request whose handler raises is answered with an error status, never with an empty (allowing)
response. Any :class:`~pullgate.nri.frames.WireError` ends the session: the runtime then sees the
plugin gone, which with ``required_plugins`` fails later creates (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable

from pullgate.errors import Reason, VerificationInconclusive
from pullgate.nri.frames import (
    PLUGIN_CONN,
    RUNTIME_CONN,
    Frame,
    FrameType,
    MuxReader,
    RpcRequest,
    RpcResponse,
    TtrpcReader,
    WireError,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    mux_frame,
    ttrpc_frame,
)

__all__ = ["CODE_INTERNAL", "CODE_UNIMPLEMENTED", "Handler", "NriUnavailable", "Session"]

log = logging.getLogger(__name__)

CODE_UNKNOWN = 2
CODE_UNIMPLEMENTED = 12
CODE_INTERNAL = 13
_READ_CHUNK = 256 * 1024

Handler = Callable[[RpcRequest], bytes]
"""Serves one request of the plugin service from memory: returns ``ttrpc.Response`` bytes."""


class NriUnavailable(VerificationInconclusive):
    """A call to the runtime failed: timed out, refused, or the connection is gone."""

    def __init__(self, detail: str, reason: Reason = Reason.RUNTIME_UNAVAILABLE) -> None:
        super().__init__(reason, detail)


class Session:
    """The multiplexed connection to the runtime (see the module docstring)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        timing: Callable[[str, float], None] | None = None,
    ) -> None:
        self._timing = timing  # (method, seconds from request decoded to answer written)
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._mux = MuxReader()
        self._streams = {PLUGIN_CONN: TtrpcReader(), RUNTIME_CONN: TtrpcReader()}
        self._next_id = itertools.count(1, 2)
        self._pending: dict[int, asyncio.Future[RpcResponse]] = {}
        self._closed = False

    async def run(self) -> None:
        """Serve until the runtime closes the connection.

        Raises:
            WireError: the runtime sent something that is not the protocol.
        """
        try:
            while True:
                chunk = await self._reader.read(_READ_CHUNK)
                if not chunk:
                    return
                for conn_id, payload in self._mux.feed(chunk):
                    stream = self._streams.get(conn_id)
                    if stream is None:
                        continue  # a connection nobody listens on, as the runtime's mux does
                    for frame in stream.feed(payload):
                        self._dispatch(conn_id, frame)
        finally:
            await self.close()

    def _dispatch(self, conn_id: int, frame: Frame) -> None:
        if conn_id == PLUGIN_CONN and frame.type is FrameType.REQUEST:
            arrived = time.perf_counter()
            request = decode_request(frame.data)
            self._serve(frame.stream_id, request, arrived)
        elif conn_id == RUNTIME_CONN and frame.type is FrameType.RESPONSE:
            future = self._pending.pop(frame.stream_id, None)
            if future is not None and not future.done():
                try:
                    future.set_result(decode_response(frame.data))
                except WireError as exc:
                    future.set_exception(exc)
                    raise
        else:
            raise WireError(f"unexpected ttrpc {frame.type.name} frame on connection {conn_id}")

    def _serve(self, stream_id: int, request: RpcRequest, arrived: float) -> None:
        """Answer at once, on the reading loop: handlers decide from memory only."""
        try:
            answer = self._handler(request)
        except Exception as exc:  # an answer must go back; an error status denies
            log.exception("NRI %s.%s failed", request.service, request.method)
            answer = encode_response(code=CODE_INTERNAL, message=f"pullgate: internal error: {exc}")
        self._send(PLUGIN_CONN, ttrpc_frame(stream_id, FrameType.RESPONSE, answer))
        if self._timing is not None:
            self._timing(request.method, time.perf_counter() - arrived)

    def _send(self, conn_id: int, data: bytes) -> None:
        if self._closed or self._writer.is_closing():
            return
        self._writer.write(mux_frame(conn_id, data))

    async def call(self, service: str, method: str, payload: bytes, timeout: float) -> bytes:
        """Call the runtime's service; its response payload.

        Raises:
            NriUnavailable: timed out, the runtime answered with an error status, or the
                connection is closed.
        """
        if self._closed:
            raise NriUnavailable(f"{method}: the NRI connection is closed")
        stream_id = next(self._next_id)
        future: asyncio.Future[RpcResponse] = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = future
        data = encode_request(service, method, payload, timeout_nano=int(timeout * 1e9))
        self._send(RUNTIME_CONN, ttrpc_frame(stream_id, FrameType.REQUEST, data))
        try:
            async with asyncio.timeout(timeout):
                response = await future
        except TimeoutError as exc:
            raise NriUnavailable(f"{method}: no answer in {timeout:.1f}s", Reason.TIMEOUT) from exc
        except WireError as exc:
            raise NriUnavailable(f"{method}: {exc}") from exc
        finally:
            self._pending.pop(stream_id, None)
        if not response.ok:
            raise NriUnavailable(f"{method}: code {response.code}: {response.message}")
        return response.payload

    async def close(self) -> None:
        """Close the connection; pending calls fail."""
        if self._closed:
            return
        self._closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NriUnavailable("the NRI connection closed"))
        self._pending.clear()
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()
