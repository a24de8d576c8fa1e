"""A spliced connection between two in-process ends: a caller (real HPACK encoder, raw frames)
over a socketpair, and a runtime listening on a unix socket in a temp directory. Both ends read
and write raw frames, so tests see exactly what the splice forwards, holds and injects."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hpack import Decoder, Encoder

from pullgate.cri.splice.conn import Splice
from pullgate.cri.splice.frames import (
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PREFACE,
    SETTINGS,
    encode_frame,
    read_frame,
)
from pullgate.cri.splice.routes import PASS_TIMED, Route
from pullgate.cri.splice.settle import Settler

TIMEOUT = 5.0

Frame = tuple[int, int, int, bytes]  # type, flags, stream, payload


@dataclass
class End:
    """One end: reads whole frames (raw bytes kept for verbatim checks)."""

    sock: socket.socket
    buf: bytes = b""
    raw: bytearray = field(default_factory=bytearray)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> Frame:
        while True:
            frame = read_frame(self.buf, 0)
            if frame is not None:
                out = (frame.type, frame.flags, frame.stream, self.buf[9 : frame.end])
                self.raw += self.buf[: frame.end]
                self.buf = self.buf[frame.end :]
                return out
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def read_bytes(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        self.raw += out
        return out

    def nothing_within(self, seconds: float) -> bool:
        """True when no byte arrives within ``seconds``."""
        if self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(TIMEOUT)
        self.buf += chunk
        return False

    def closed(self) -> bool:
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (TimeoutError, OSError):
            return False


@dataclass
class Wire:
    caller: End
    runtime: End
    encoder: Encoder  # the caller's
    runtime_encoder: Encoder
    caller_decoder: Decoder  # decodes what the caller receives
    runtime_decoder: Decoder  # decodes what the runtime receives
    splice: Splice

    def headers(self, stream: int, path: str, *, end: bool = False, extra: int = 0) -> bytes:
        block = self.encoder.encode(
            [(":method", "POST"), (":scheme", "http"), (":path", path), ("te", "trailers")]
        )
        return encode_frame(
            HEADERS, END_HEADERS | (END_STREAM if end else 0) | extra, stream, block
        )

    def runtime_answer(self, stream: int, message: bytes) -> bytes:
        """What a runtime answers to a unary call: headers, one message, trailers."""
        head = self.runtime_encoder.encode(
            [(":status", "200"), ("content-type", "application/grpc")]
        )
        tail = self.runtime_encoder.encode([("grpc-status", "0")])
        return (
            encode_frame(HEADERS, END_HEADERS, stream, head)
            + encode_frame(DATA, 0, stream, grpc_message(message))
            + encode_frame(HEADERS, END_HEADERS | END_STREAM, stream, tail)
        )


def grpc_message(body: bytes) -> bytes:
    return b"\x00" + len(body).to_bytes(4, "big") + body


@contextmanager
def spliced(
    tmp: Path,
    route: Callable[[bytes], Route] = lambda path: PASS_TIMED,
    observe: Callable[[float], None] | None = None,
    *,
    preface: bool = True,
) -> Iterator[Wire]:
    """A started splice with the preface and both SETTINGS exchanged (``preface`` False:
    nothing sent yet)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = tmp / "runtime.sock"
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(TIMEOUT)
    caller, gate_side = socket.socketpair()
    caller.settimeout(TIMEOUT)
    deciders = ThreadPoolExecutor(4)
    settler = Settler()
    closed = threading.Event()
    splice = Splice(
        gate_side,
        str(path),
        route,
        deciders,
        settler=settler,
        observe=observe,
        on_close=lambda _: closed.set(),
    )
    splice.start()
    accepted, _ = listener.accept()
    accepted.settimeout(TIMEOUT)
    wire = Wire(End(caller), End(accepted), Encoder(), Encoder(), Decoder(), Decoder(), splice)
    try:
        if not preface:
            yield wire
            return
        wire.caller.send(PREFACE + encode_frame(SETTINGS, 0, 0))
        assert wire.runtime.read_bytes(len(PREFACE)) == PREFACE
        assert wire.runtime.read() == (SETTINGS, 0, 0, b"")
        wire.runtime.send(encode_frame(SETTINGS, 0, 0))
        assert wire.caller.read() == (SETTINGS, 0, 0, b"")
        yield wire
    finally:
        splice.shutdown()
        closed.wait(TIMEOUT)
        deciders.shutdown(wait=True)
        settler.close()
        for sock in (caller, accepted, listener):
            sock.close()
