"""HTTP/2 frames as the splice transport reads and writes them (RFC 9113 §4 and §6).

Only what relaying needs: the 9-octet frame header, the field-block fragment inside a
``HEADERS`` or ``CONTINUATION`` payload (padding and priority stripped, §6.2, §6.10), the
flow-controlled length of ``DATA`` (the whole payload, padding included: §6.9.1), and the few
frames the transport writes itself (``RST_STREAM``, ``WINDOW_UPDATE``, ``HEADERS``).
Anything a conforming peer cannot send raises :class:`~pullgate.errors.MalformedInput`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pullgate.errors import MalformedInput

__all__ = [
    "ACK",
    "CANCEL",
    "CONTINUATION",
    "DATA",
    "END_HEADERS",
    "END_STREAM",
    "FRAME_HEADER",
    "GOAWAY",
    "HEADERS",
    "HEADER_BYTES",
    "INITIAL_WINDOW",
    "MAX_WINDOW",
    "PADDED",
    "PING",
    "PREFACE",
    "PRIORITY_FLAG",
    "RST_STREAM",
    "SETTINGS",
    "SETTINGS_HEADER_TABLE_SIZE",
    "SETTINGS_INITIAL_WINDOW_SIZE",
    "STREAM_MASK",
    "WINDOW_UPDATE",
    "Frame",
    "data_fragment",
    "encode_frame",
    "field_fragment",
    "header_frames",
    "read_frame",
    "rst_stream",
    "settings_values",
    "window_increment",
    "window_update",
]

# The client connection preface (RFC 9113 §3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER_BYTES = 9
MAX_WINDOW = 2**31 - 1
INITIAL_WINDOW = 65_535  # both the connection's and (until SETTINGS) each stream's (§6.9.2)

# Frame types (§6).
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Settings identifiers (§6.5.2) and error codes (§7).
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
CANCEL = 0x8

# The frame header: 24-bit length (one octet + two), type, flags, reserved bit + stream id.
FRAME_HEADER = struct.Struct(">BHBBI")
STREAM_MASK = 2**31 - 1
_HEADER = FRAME_HEADER
_RST = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame's header and where it lies in the buffer it was read from."""

    type: int
    flags: int
    stream: int
    start: int  # offset of the frame header
    end: int  # offset just past the payload

    @property
    def length(self) -> int:
        """The payload length."""
        return self.end - self.start - HEADER_BYTES


def read_frame(buf: bytes | bytearray | memoryview, pos: int) -> Frame | None:
    """The frame starting at ``pos`` in ``buf``, or None when it is not all there yet."""
    if len(buf) - pos < HEADER_BYTES:
        return None
    high, low, kind, flags, stream = _HEADER.unpack_from(buf, pos)
    end = pos + HEADER_BYTES + ((high << 16) | low)
    if len(buf) < end:
        return None
    return Frame(kind, flags, stream & MAX_WINDOW, pos, end)  # the reserved bit is ignored


def encode_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame, header and payload."""
    size = len(payload)
    if size >= 1 << 24:
        raise ValueError("frame payload too large")
    return _HEADER.pack(size >> 16, size & 0xFFFF, kind, flags, stream) + payload


def header_frames(stream: int, block: bytes, *, end_stream: bool, max_frame: int = 16_384) -> bytes:
    """A field block as ``HEADERS`` and, past ``max_frame`` octets (the smallest frame size a peer
    may announce, §4.2), ``CONTINUATION`` frames (§6.10); ``END_STREAM`` on the ``HEADERS``."""
    first, rest = block[:max_frame], block[max_frame:]
    flags = (END_STREAM if end_stream else 0) | (0 if rest else END_HEADERS)
    out = encode_frame(HEADERS, flags, stream, first)
    while rest:
        piece, rest = rest[:max_frame], rest[max_frame:]
        out += encode_frame(CONTINUATION, 0 if rest else END_HEADERS, stream, piece)
    return out


def rst_stream(stream: int, code: int = CANCEL) -> bytes:
    """``RST_STREAM`` for ``stream`` with error ``code`` (§6.4)."""
    return encode_frame(RST_STREAM, 0, stream, _RST.pack(code))


def window_update(stream: int, increment: int) -> bytes:
    """``WINDOW_UPDATE`` (§6.9); ``increment`` must be 1 .. 2**31-1."""
    if not 0 < increment <= MAX_WINDOW:
        raise ValueError(f"window increment {increment} out of range")
    return encode_frame(WINDOW_UPDATE, 0, stream, _RST.pack(increment))


def window_increment(payload: bytes | memoryview) -> int:
    """The increment a ``WINDOW_UPDATE`` payload carries.

    Raises:
        MalformedInput: a payload other than four octets (§6.9: FRAME_SIZE_ERROR).
    """
    if len(payload) != 4:
        raise MalformedInput("WINDOW_UPDATE payload is not 4 octets")
    value: int = _RST.unpack(payload)[0]
    return value & MAX_WINDOW


def settings_values(flags: int, payload: bytes | memoryview) -> dict[int, int]:
    """The parameters of a ``SETTINGS`` frame (empty for an ACK), the last of each kept.

    Raises:
        MalformedInput: a length that is not a multiple of six, or an ACK with a payload (§6.5).
    """
    if flags & ACK:
        if len(payload):
            raise MalformedInput("SETTINGS ACK with a payload")
        return {}
    if len(payload) % 6:
        raise MalformedInput("SETTINGS payload is not a multiple of 6 octets")
    return dict(struct.iter_unpack(">HI", payload))


def field_fragment(kind: int, flags: int, payload: bytes | memoryview) -> memoryview:
    """The field-block fragment of a ``HEADERS`` or ``CONTINUATION`` payload: the pad length,
    padding and priority fields of ``HEADERS`` removed (§6.2).

    Raises:
        MalformedInput: padding longer than the payload allows (§6.2: PROTOCOL_ERROR).
    """
    view = memoryview(payload)
    if kind != HEADERS:
        return view
    start, stop = 0, len(view)
    if flags & PADDED:
        if stop < 1:
            raise MalformedInput("PADDED HEADERS without a pad length")
        stop -= view[0]
        start = 1
    if flags & PRIORITY_FLAG:
        start += 5
    if stop < start:
        raise MalformedInput("HEADERS padding or priority longer than the frame")
    return view[start:stop]


def data_fragment(flags: int, payload: bytes | memoryview) -> memoryview:
    """The data of a ``DATA`` payload, padding removed (§6.1).

    Raises:
        MalformedInput: padding longer than the payload allows.
    """
    view = memoryview(payload)
    if not flags & PADDED:
        return view
    if len(view) < 1 or view[0] >= len(view):
        raise MalformedInput("DATA padding longer than the frame")
    return view[1 : len(view) - view[0]]
