"""The NRI wire: a connection multiplexer carrying two ttrpc connections.

One unix stream carries *mux frames*: an 8-byte header (big-endian u32 connection id, big-endian
u32 payload length) and the payload. Connection 1 is the plugin's service (the runtime calls the
plugin); connection 2 is the runtime's service (the plugin calls the runtime); 0 is reserved
(https://github.com/containerd/nri/blob/main/pkg/net/multiplex/mux.go). Each logical connection
is a byte stream of *ttrpc frames*: a 10-byte header (big-endian u32 data length, big-endian u32
stream id, u8 type, u8 flags) and at most 4 MiB of data
(https://github.com/containerd/ttrpc/blob/main/PROTOCOL.md). A request's data is a
``ttrpc.Request``; a response's a ``ttrpc.Response`` (:mod:`pullgate.nri.wire.ttrpc_pb2`).

Mux frames need not align with ttrpc frames, so each logical connection is reassembled
separately (:class:`TtrpcReader`). Every decoder here raises only :class:`WireError` on bad
input, and bounds what it buffers: a frame longer than the limits is an error, not an
allocation.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from google.protobuf.message import DecodeError, EncodeError

from pullgate.errors import MalformedInput
from pullgate.nri.wire import ttrpc_pb2

__all__ = [
    "MAX_DATA",
    "MAX_MUX_PAYLOAD",
    "PLUGIN_CONN",
    "RUNTIME_CONN",
    "Frame",
    "FrameType",
    "MuxReader",
    "RpcRequest",
    "RpcResponse",
    "TtrpcReader",
    "WireError",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "mux_frame",
    "ttrpc_frame",
]

PLUGIN_CONN = 1  # the plugin serves nri.pkg.api.v1alpha1.Plugin; the runtime is the client
RUNTIME_CONN = 2  # the runtime serves nri.pkg.api.v1alpha1.Runtime; the plugin is the client
MAX_DATA = 4 << 20  # ttrpc's message length limit
_MUX = struct.Struct(">II")
_TTRPC = struct.Struct(">IIBB")
MAX_MUX_PAYLOAD = _TTRPC.size + MAX_DATA  # the runtime never sends a longer mux frame


class WireError(MalformedInput):
    """Bytes that are not the NRI wire protocol: the connection cannot continue."""


class FrameType(IntEnum):
    """ttrpc frame types."""

    REQUEST = 1
    RESPONSE = 2
    DATA = 3


@dataclass(frozen=True, slots=True)
class Frame:
    """One ttrpc frame of a logical connection."""

    stream_id: int
    type: FrameType
    flags: int
    data: bytes


def mux_frame(conn_id: int, payload: bytes) -> bytes:
    """One mux frame (header + payload) for ``conn_id``.

    Raises:
        WireError: reserved connection id or payload too long.
    """
    if not 0 < conn_id <= 0xFFFFFFFF or len(payload) > MAX_MUX_PAYLOAD:
        raise WireError(f"cannot frame {len(payload)} bytes for mux connection {conn_id}")
    return _MUX.pack(conn_id, len(payload)) + payload


def ttrpc_frame(stream_id: int, kind: FrameType, data: bytes, flags: int = 0) -> bytes:
    """One ttrpc frame (header + data).

    Raises:
        WireError: data longer than :data:`MAX_DATA` or a field out of range.
    """
    if len(data) > MAX_DATA or not 0 <= stream_id <= 0xFFFFFFFF or not 0 <= flags <= 0xFF:
        raise WireError(f"cannot frame {len(data)} bytes as ttrpc stream {stream_id}")
    return _TTRPC.pack(len(data), stream_id, int(kind), flags) + data


class MuxReader:
    """Splits the trunk's byte stream into ``(connection id, payload)`` pairs."""

    def __init__(self, max_payload: int = MAX_MUX_PAYLOAD) -> None:
        self._buffer = bytearray()
        self._max = max_payload

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        """Add bytes read from the trunk; yield every complete frame.

        Raises:
            WireError: the reserved connection id 0, or a payload longer than the limit.
        """
        self._buffer += data
        while len(self._buffer) >= _MUX.size:
            conn_id, length = _MUX.unpack_from(self._buffer)
            if conn_id == 0:
                raise WireError("mux frame for the reserved connection id 0")
            if length > self._max:
                raise WireError(f"mux frame of {length} bytes exceeds {self._max}")
            end = _MUX.size + length
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[_MUX.size : end])
            del self._buffer[:end]
            yield conn_id, payload

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)


class TtrpcReader:
    """Reassembles one logical connection's ttrpc frames from mux payloads."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Add a mux payload; yield every complete ttrpc frame.

        Raises:
            WireError: data longer than :data:`MAX_DATA` or an unknown frame type.
        """
        self._buffer += data
        while len(self._buffer) >= _TTRPC.size:
            length, stream_id, kind, flags = _TTRPC.unpack_from(self._buffer)
            if length > MAX_DATA:
                raise WireError(f"ttrpc frame of {length} bytes exceeds {MAX_DATA}")
            try:
                frame_type = FrameType(kind)
            except ValueError as exc:
                raise WireError(f"unknown ttrpc frame type {kind}") from exc
            end = _TTRPC.size + length
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[_TTRPC.size : end])
            del self._buffer[:end]
            yield Frame(stream_id, frame_type, flags, payload)

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcRequest:
    """A decoded ``ttrpc.Request``."""

    service: str
    method: str
    payload: bytes
    timeout_nano: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcResponse:
    """A decoded ``ttrpc.Response``: ``code`` 0 with ``payload``, or an error status."""

    code: int
    message: str
    payload: bytes

    @property
    def ok(self) -> bool:
        """The call succeeded (status code OK)."""
        return self.code == 0


def decode_request(data: bytes) -> RpcRequest:
    """Decode a request frame's data.

    Raises:
        WireError: not a ``ttrpc.Request``.
    """
    message = ttrpc_pb2.Request()
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError) as exc:
        raise WireError(f"undecodable ttrpc request: {exc}") from exc
    if not message.service or not message.method:
        raise WireError("ttrpc request without service or method")
    return RpcRequest(
        service=message.service,
        method=message.method,
        payload=message.payload,
        timeout_nano=message.timeout_nano,
    )


def decode_response(data: bytes) -> RpcResponse:
    """Decode a response frame's data.

    Raises:
        WireError: not a ``ttrpc.Response``.
    """
    message = ttrpc_pb2.Response()
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError) as exc:
        raise WireError(f"undecodable ttrpc response: {exc}") from exc
    return RpcResponse(
        code=message.status.code, message=message.status.message, payload=message.payload
    )


def encode_request(service: str, method: str, payload: bytes, timeout_nano: int = 0) -> bytes:
    """A ``ttrpc.Request``'s bytes."""
    message = ttrpc_pb2.Request(
        service=service, method=method, payload=payload, timeout_nano=timeout_nano
    )
    return _serialize(message)


def encode_response(payload: bytes = b"", *, code: int = 0, message: str = "") -> bytes:
    """A ``ttrpc.Response``'s bytes: ``payload`` when ``code`` is 0, else an error status."""
    response = ttrpc_pb2.Response(payload=payload)
    if code:
        response.status.code = code
        response.status.message = message
    return _serialize(response)


def _serialize(message: ttrpc_pb2.Request | ttrpc_pb2.Response) -> bytes:
    try:
        return message.SerializeToString()
    except EncodeError as exc:
        raise WireError(f"cannot encode {type(message).__name__}: {exc}") from exc
