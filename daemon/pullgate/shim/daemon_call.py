"""The shim's one unary ``pullgate.v1.Verifier/Verify`` call, spoken by hand over ``AF_UNIX``.

HTTP/2 framing (RFC 9113) with request headers as HPACK literals (RFC 7541 §6.2.2), and the
``VerifyRequest``/``VerifyResponse`` protobuf fields encoded by hand (field numbers from
``protos/pullgate/v1/verifier.proto``). Response headers are never decoded: the verdict is read
only from a complete gRPC message followed by the end of the stream; anything else (trailers-only
error, reset, GOAWAY, EOF, timeout) is a :class:`~pullgate.shim.vocabulary.DaemonUnavailable`.
Uses ``_socket``, not ``socket``, and no ``struct`` (start-up cost, see the package docstring).
"""

# No ``from __future__ import annotations`` (start-up cost; see pullgate.shim.vocabulary).
import _socket
import time

from pullgate.shim.vocabulary import (
    CALLER,
    MAX_RESPONSE,
    METHOD_PATH,
    DaemonUnavailable,
    ShimArgs,
    ShimReason,
    Verdict,
)

# ---------------------------------------------------------------------------------- protobuf


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_verify_request(*, reference: str, digest: str, caller: str) -> bytes:
    """Serialise ``VerifyRequest{reference=1, digest=2, caller=5}``."""
    out = bytearray()
    for number, text in ((1, reference), (2, digest), (5, caller)):
        if text:
            raw = text.encode("utf-8", "surrogateescape")
            out += _varint(number << 3 | 2) + _varint(len(raw)) + raw
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise DaemonUnavailable(
                ShimReason.DAEMON_UNAVAILABLE, "daemon sent a malformed response"
            )
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_verify_response(data: bytes) -> Verdict:
    """Parse the ``VerifyResponse`` fields allowed=1, reason=2, message=3, digest=4.

    Raises:
        DaemonUnavailable: DAEMON_UNAVAILABLE, for bytes that are not a valid message.
    """
    fields: dict[int, object] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            fields[number] = value
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise DaemonUnavailable(
                    ShimReason.DAEMON_UNAVAILABLE, "daemon sent a truncated response"
                )
            fields[number] = data[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > len(data):
                raise DaemonUnavailable(
                    ShimReason.DAEMON_UNAVAILABLE, "daemon sent a truncated response"
                )
        else:
            raise DaemonUnavailable(
                ShimReason.DAEMON_UNAVAILABLE, "daemon sent a malformed response"
            )

    def text(number: int) -> str:
        value = fields.get(number, b"")
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""

    allowed = fields.get(1, 0)
    return Verdict(
        allowed=isinstance(allowed, int) and allowed != 0,
        reason=text(2),
        message=text(3),
        digest=text(4),
    )


# ---------------------------------------------------------------------------------- HTTP/2 + gRPC

_DATA, _HEADERS, _RST, _SETTINGS, _PING, _GOAWAY, _WINDOW, _CONT = 0, 1, 3, 4, 6, 7, 8, 9
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_WINDOW_SIZE = 1 << 20
# Added to the deadline the daemon is told: the shim's own deadline must expire first, so a slow
# daemon is reported as TIMEOUT rather than as its DEADLINE_EXCEEDED status (which would arrive as
# an error reply, DAEMON_UNAVAILABLE, when both deadlines expire within the same millisecond).
_SERVER_GRACE_MS = 200


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big")


def _hpack_int(value: int) -> bytes:
    """HPACK integer with a 7-bit prefix and the Huffman bit clear (RFC 7541 §5.1)."""
    if value < 127:
        return bytes((value,))
    out = bytearray((127,))
    value -= 127
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _header_block(headers: tuple[tuple[str, str], ...]) -> bytes:
    """Every field as "literal without indexing, new name" (RFC 7541 §6.2.2)."""
    out = bytearray()
    for name, value in headers:
        raw_name, raw_value = name.encode(), value.encode("utf-8", "surrogateescape")
        out += b"\x00" + _hpack_int(len(raw_name)) + raw_name
        out += _hpack_int(len(raw_value)) + raw_value
    return bytes(out)


def request_bytes(message: bytes, timeout: float) -> bytes:
    """Everything the client sends: preface, settings, window, headers, one gRPC message."""
    # SETTINGS_ENABLE_PUSH (0x2) = 0; SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 1 MiB.
    settings = b"\x00\x02" + bytes(4) + b"\x00\x04" + _WINDOW_SIZE.to_bytes(4, "big")
    headers = _header_block(
        (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", METHOD_PATH),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", f"{max(1, int(timeout * 1000)) + _SERVER_GRACE_MS}m"),
            ("user-agent", "pullgate-containerd-verifier"),
        )
    )
    body = b"\x00" + len(message).to_bytes(4, "big") + message
    out = bytearray(_PREFACE)
    out += _frame(_SETTINGS, 0, 0, settings) + settings
    window = _WINDOW_SIZE.to_bytes(4, "big")
    out += _frame(_WINDOW, 0, 0, window) + window
    out += _frame(_HEADERS, _END_HEADERS, 1, headers) + headers
    for start in range(0, len(body), 16384):
        chunk = body[start : start + 16384]
        flags = _END_STREAM if start + 16384 >= len(body) else 0
        out += _frame(_DATA, flags, 1, chunk) + chunk
    return bytes(out)


class _Conn:
    """A blocking unix-socket connection where every operation honours one deadline."""

    def __init__(self, path: str, deadline: float) -> None:
        self.path = path
        self.deadline = deadline
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.buf = b""

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)

    def connect(self) -> None:
        self._arm()
        self.sock.connect(self.path)

    def send(self, data: bytes) -> None:
        self._arm()
        self.sock.sendall(data)

    def recv_exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._arm()
            chunk = self.sock.recv(65536)
            if not chunk:
                raise DaemonUnavailable(
                    ShimReason.DAEMON_UNAVAILABLE,
                    "pullgate daemon closed the connection without an answer",
                )
            self.buf += chunk
        data, self.buf = self.buf[:size], self.buf[size:]
        return data


def _read_reply(conn: _Conn) -> bytes:
    """Collect the DATA of stream 1 until the stream ends; return the one gRPC message."""
    protocol = DaemonUnavailable(
        ShimReason.DAEMON_UNAVAILABLE, "pullgate daemon answered with an error"
    )
    body = bytearray()
    while True:
        header = conn.recv_exact(9)
        length = int.from_bytes(header[:3], "big")
        kind, flags = header[3], header[4]
        stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        if length > 16384:
            raise protocol
        payload = conn.recv_exact(length)
        if kind == _SETTINGS and not flags & _ACK:
            conn.send(_frame(_SETTINGS, _ACK, 0))
        elif kind == _PING and not flags & _ACK:
            conn.send(_frame(_PING, _ACK, 0, payload) + payload)
        elif kind in (_RST, _GOAWAY) and stream in (0, 1):
            raise protocol
        elif kind == _DATA and stream == 1:
            if flags & _PADDED:
                pad = payload[0] if payload else 0
                payload = payload[1 : len(payload) - pad] if 1 + pad <= len(payload) else b""
            body += payload
            if len(body) > MAX_RESPONSE or flags & _END_STREAM:
                raise protocol  # too large, or a gRPC stream must end with trailers
        elif kind == _HEADERS and stream == 1 and flags & _END_STREAM:
            break
    # A trailers-only response (an error status) carries no message at all.
    if len(body) < 5 or body[0] != 0 or int.from_bytes(body[1:5], "big") != len(body) - 5:
        raise protocol
    return bytes(body[5:])


def call_verify(args: ShimArgs, deadline: float) -> Verdict:
    """One unary ``Verify`` call over the daemon's unix socket, bounded by ``deadline``.

    Raises:
        DaemonUnavailable: TIMEOUT when the daemon is slow, DAEMON_UNAVAILABLE when it is absent or
            answers with an error or garbage.
    """
    message = encode_verify_request(reference=args.name, digest=args.digest, caller=CALLER)
    conn = _Conn(args.socket, deadline)
    try:
        conn.connect()
        conn.send(request_bytes(message, deadline - time.monotonic()))
        return decode_verify_response(_read_reply(conn))
    except TimeoutError as exc:
        raise DaemonUnavailable(
            ShimReason.TIMEOUT,
            f"pullgate daemon at {args.socket} did not answer within {args.timeout:g}s",
        ) from exc
    except OSError as exc:
        raise DaemonUnavailable(
            ShimReason.DAEMON_UNAVAILABLE,
            f"pullgate daemon unreachable at {args.socket}: {exc.strerror or exc}",
        ) from exc
    finally:
        conn.sock.close()
