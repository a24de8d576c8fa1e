"""One caller connection spliced to one runtime connection, frame by frame.

Frames are forwarded verbatim and in order in both directions, so the connection's settings,
pings, flow control and GOAWAY stay end to end between the caller and the runtime (RFC 9113).
One thread per direction, blocking sockets; a writer lock per socket, so what pullgate writes
itself goes in at frame boundaries. The request direction decodes every field block
(:class:`~pullgate.cri.splice.fields.FieldReader`) and routes each new stream by ``:path``
(:mod:`pullgate.cri.splice.routes`):

* pass-through streams are never held: their frames go out in the batch they arrived in;
* a decided stream's ``HEADERS`` are forwarded at once (the runtime's decoder must see every
  block in order) but its ``DATA`` is held until the verdict, which runs on a worker (unless
  the route's memory-only check allows it on the spot, :meth:`SpliceState._allowed_now`). An
  allow forwards the held frames unchanged; a refusal resets the runtime's stream (``CANCEL``),
  answers the caller with a trailers-only response that leaves its dynamic table alone, and
  gives the caller back the connection window the held ``DATA`` used (§6.9);
* a refused route is answered the same way as soon as its field block is read;
* a verdict may hand a held call to the route's handler (:data:`~.routes.TAKE_OVER`): the
  runtime's stream is reset and the handler answers, as for a request too large to hold.

A decided request too large to hold within the runtime's stream window, and a call routed to
the gate's own handler (``PullImage``), are answered by pullgate: the runtime's stream is reset,
pullgate reads the request itself (giving the caller its window back as it goes) and the
handler's answer is written to the caller (:mod:`pullgate.cri.splice.answer`).

Upstream frames of a stream pullgate answered itself are dropped (their ``DATA`` credited back
to the runtime), except field blocks: the caller's decoder must see those, and a gRPC client
ignores frames of a stream it has closed. A decided request whose message cannot be read
(compressed, more than one message, larger than the gRPC limit) is refused; a malformed frame
or field block closes the connection. Nothing of a decided request reaches the runtime without
an allow.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time

from pullgate.cri.splice.base import RECV_BYTES
from pullgate.cri.splice.decided import DecidedStreams
from pullgate.cri.splice.fields import Field
from pullgate.cri.splice.frames import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME_HEADER,
    HEADER_BYTES,
    HEADERS,
    MAX_WINDOW,
    PADDED,
    PREFACE,
    PRIORITY_FLAG,
    RST_STREAM,
    SETTINGS,
    STREAM_MASK,
    WINDOW_UPDATE,
    Frame,
    field_fragment,
    rst_stream,
    window_increment,
    window_update,
)
from pullgate.cri.splice.held import (
    INTERNAL,
    Held,
    State,
)
from pullgate.cri.splice.routes import Refusal, Route, RouteKind
from pullgate.errors import MalformedInput

__all__ = ["Splice"]

_U32 = struct.Struct(">I")
_WINDOW_UPDATE_BYTES = HEADER_BYTES + 4

log = logging.getLogger(__name__)


class Splice(DecidedStreams):
    """One accepted connection and its upstream connection (see the module docstring; the
    arguments are :class:`~pullgate.cri.splice.base.SpliceState`'s)."""

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect upstream and relay, on threads of its own."""
        threading.Thread(target=self._requests, name="pullgate-splice-req", daemon=True).start()

    def _requests(self) -> None:
        try:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.settimeout(10.0)
            upstream.connect(self._upstream_path)
            upstream.settimeout(None)
        except OSError as exc:
            log.warning("runtime gate: cannot reach the runtime: %s", exc)
            upstream.close()
            self._ended = 1
            self._end()
            return
        self._upstream = upstream
        threading.Thread(target=self._responses, name="pullgate-splice-rsp", daemon=True).start()
        try:
            self._pump_requests(upstream)
        except MalformedInput as exc:
            log.warning("runtime gate: closing a connection: %s", exc.detail)
            self.shutdown()
        except OSError:
            self.shutdown()
        except Exception:  # a bug must cost this connection, never the gate
            log.exception("runtime gate: closing a connection")
            self.shutdown()
        finally:
            self._end()

    # -- caller -> runtime -------------------------------------------------------------------------

    def _pump_requests(self, upstream: socket.socket) -> None:
        data = b""
        while len(data) < len(PREFACE):
            chunk = self._client.recv(RECV_BYTES)
            if not chunk:
                return
            data += chunk
            if not PREFACE.startswith(data[: len(PREFACE)]):
                raise MalformedInput("not an HTTP/2 client connection preface")
        pos = self._request_batch(upstream, data, len(PREFACE), 0)
        while True:
            data = data[pos:]
            chunk = self._client.recv(RECV_BYTES)
            if not chunk:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_WR)
                return
            data = data + chunk if data else chunk
            pos = self._request_batch(upstream, data, 0, 0)

    def _request_batch(self, upstream: socket.socket, data: bytes, pos: int, fwd: int) -> int:
        """Handle the whole frames of ``data`` from ``pos``; forward what passes (bytes from
        ``fwd`` on) with what pullgate sends in between; return where the first incomplete
        frame starts."""
        with self._up_lock:
            out: list[bytes] = []
            after = self._after
            self._batching = True
            try:
                size = len(data)
                unpack = FRAME_HEADER.unpack_from
                decided = self._decided
                while size - pos >= HEADER_BYTES:
                    high, low, kind, flags, stream = unpack(data, pos)
                    end = pos + HEADER_BYTES + ((high << 16) | low)
                    if end > size:
                        break
                    start, pos = pos, end
                    stream &= STREAM_MASK
                    if kind in (HEADERS, CONTINUATION):  # forwarded
                        self._field_block(data, kind, flags, stream, start, end)
                    elif self._block_stream:  # RFC 9113 §6.10: a connection error
                        raise MalformedInput("a frame inside a field block")
                    elif kind == WINDOW_UPDATE and not stream:
                        if not self._debt and end - start == _WINDOW_UPDATE_BYTES:
                            # the usual case of _caller_credit, inline: forwarded as is
                            self._credited += _U32.unpack_from(data, start + 9)[0] & MAX_WINDOW
                        elif self._caller_window(data, start, end):
                            out.append(data[fwd:start])  # replaced
                            fwd = pos
                    elif kind == WINDOW_UPDATE:  # a stream's: dropped once pullgate answers it
                        held = decided.get(stream) if decided else None
                        if held is not None and held.dropping:
                            out.append(data[fwd:start])
                            fwd = pos
                    elif (decided or kind in (RST_STREAM, SETTINGS)) and self._request_frame(
                        data, Frame(kind, flags, stream, start, end)
                    ):
                        out.append(data[fwd:start])  # dropped
                        fwd = pos
                    if after:  # goes after this frame (a reset after the stream's HEADERS)
                        out.append(data[fwd:pos])
                        out.extend(after)
                        after.clear()
                        fwd = pos
            finally:
                self._batching = False
            if not out:
                if fwd < pos:
                    upstream.sendall(data[fwd:pos] if fwd or pos < len(data) else data)
            else:
                out.append(data[fwd:pos])
                upstream.sendall(b"".join(out))
        return pos

    def _caller_window(self, data: bytes, start: int, end: int) -> bool:
        """The caller's connection ``WINDOW_UPDATE``; True: it must not be forwarded as is (the
        runtime is told less, see ``_caller_credit``)."""
        increment = window_increment(data[start + HEADER_BYTES : end])
        told = self._caller_credit(increment)
        if told == increment:
            return False
        if told:
            self._after.append(window_update(0, told))
        return True

    def _request_frame(self, data: bytes, frame: Frame) -> bool:
        """Handle one caller frame other than a field block or a connection ``WINDOW_UPDATE``;
        True: it must not be forwarded."""
        kind, stream = frame.type, frame.stream
        held = self._decided.get(stream) if stream else None
        if held is None:
            if kind == RST_STREAM:
                self._started.pop(stream, None)
                settle = self._settling.pop(stream, None)  # a quick allow's call ends here
                if settle is not None:
                    self._settle([settle])
            elif kind == SETTINGS and stream == 0:
                self._caller_settings(data[frame.start + 9 : frame.end], frame.flags)
            return False
        if kind == DATA:
            self._held_data(stream, held, data, frame)
            return True
        if held.dropping:
            if kind == RST_STREAM and held.state is not State.ANSWERED:
                self._cancel_answer(held)
            return True  # the runtime's stream is reset already
        if kind == RST_STREAM:  # the caller gave up: the runtime's stream is reset too
            del self._decided[stream]
            held.state = State.CANCELLED
            self._release(held)
            self._credit_caller(held.flow)
        return False

    def _field_block(
        self, data: bytes, kind: int, flags: int, stream: int, start: int, end: int
    ) -> None:
        """Decode a request field block (forwarded as is); route a new stream at its end."""
        if kind == HEADERS:
            if self._block_stream:
                raise MalformedInput("HEADERS inside a field block")
            if stream == 0:
                raise MalformedInput("HEADERS on stream 0")
            self._block_stream = stream
            new = self._block_new = stream > self._last_stream
            if new:
                self._last_stream = stream
            elif stream in self._decided:
                raise MalformedInput("trailers on a decided call")
            self._block_new_ended = new and bool(flags & END_STREAM)
            if flags & (PADDED | PRIORITY_FLAG):
                fragment: bytes | memoryview = field_fragment(
                    kind, flags, data[start + HEADER_BYTES : end]
                )
            else:
                fragment = data[start + HEADER_BYTES : end]
        elif stream != self._block_stream or not self._block_stream:
            raise MalformedInput("CONTINUATION outside its field block")
        else:
            fragment = data[start + HEADER_BYTES : end]
        fields = self._reader.feed(fragment, bool(flags & END_HEADERS))
        if fields is None:
            return
        self._block_stream = 0
        if self._block_new:
            path = b""
            for name, value in fields:
                if name == b":path":
                    path = value
                    break
            self._route_stream(stream, self._route(path), fields, ended=self._block_new_ended)

    def _route_stream(self, stream: int, route: Route, fields: list[Field], *, ended: bool) -> None:
        if route.kind is RouteKind.PASS:
            if route.timed and self._observe is not None:
                self._started[stream] = time.perf_counter()
            return
        held = Held(route, fields=fields)
        self._decided[stream] = held  # before its HEADERS reach the runtime
        self._prune()
        if route.kind is RouteKind.ANSWER:  # the runtime's stream is not needed
            held.answering = held.upstream_closed = True
            self._after.append(rst_stream(stream))
        if route.kind is RouteKind.REFUSE:
            self._answer(stream, held, route.refusal or Refusal(INTERNAL, "refused"))
        elif ended:  # a decided call without a request message
            self._answer(stream, held, Refusal(INTERNAL, "the request carries no message"))
