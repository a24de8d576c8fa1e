"""An in-process stand-in for the runtime's side of one NRI connection (unit tests only)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

from pullgate.nri.frames import (
    PLUGIN_CONN,
    RUNTIME_CONN,
    FrameType,
    MuxReader,
    RpcRequest,
    RpcResponse,
    TtrpcReader,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    mux_frame,
    ttrpc_frame,
)
from pullgate.nri.plugin import PLUGIN_SERVICE


class FakeRuntime:
    """Answers the plugin's calls on connection 2 and calls the plugin on connection 1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.mux = MuxReader()
        self.streams = {PLUGIN_CONN: TtrpcReader(), RUNTIME_CONN: TtrpcReader()}
        self.requests: asyncio.Queue[tuple[int, RpcRequest]] = asyncio.Queue()
        self.responses: dict[int, asyncio.Future[RpcResponse]] = {}
        self.ids = itertools.count(1, 2)
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while chunk := await self.reader.read(65536):
            for conn_id, payload in self.mux.feed(chunk):
                for frame in self.streams[conn_id].feed(payload):
                    if conn_id == RUNTIME_CONN:
                        await self.requests.put((frame.stream_id, decode_request(frame.data)))
                    else:
                        self.responses[frame.stream_id].set_result(decode_response(frame.data))

    async def next_call(self) -> tuple[int, RpcRequest]:
        """The plugin's next call to the runtime."""
        return await asyncio.wait_for(self.requests.get(), 5)

    def answer(self, stream_id: int, payload: bytes = b"", code: int = 0) -> None:
        """Answer a plugin call."""
        data = encode_response(payload, code=code, message="refused" if code else "")
        self.writer.write(mux_frame(RUNTIME_CONN, ttrpc_frame(stream_id, FrameType.RESPONSE, data)))

    async def call(self, method: str, payload: bytes) -> RpcResponse:
        """Call the plugin's service."""
        stream_id = next(self.ids)
        future: asyncio.Future[RpcResponse] = asyncio.get_running_loop().create_future()
        self.responses[stream_id] = future
        data = encode_request(PLUGIN_SERVICE, method, payload)
        self.writer.write(mux_frame(PLUGIN_CONN, ttrpc_frame(stream_id, FrameType.REQUEST, data)))
        return await asyncio.wait_for(future, 5)

    async def close(self) -> None:
        """Drop the connection (as a runtime that stops)."""
        self.writer.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await self.task
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
