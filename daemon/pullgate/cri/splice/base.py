"""The state a spliced connection shares between its two relay threads and its verdicts, and
the runtime -> caller direction (:mod:`pullgate.cri.splice.conn` says what the splice does).

Locks: ``_up_lock`` serialises writes to the runtime and the held-stream state; ``_down_lock``
serialises writes to the caller and a stream's ``ANSWERED`` state, so whatever pullgate writes goes
in at frame boundaries. Only the request thread ever takes ``_down_lock`` while holding
``_up_lock``; nothing takes them the other way round.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from pullgate.cri.splice.fields import FieldReader, status_block
from pullgate.cri.splice.frames import (
    CONTINUATION,
    DATA,
    END_STREAM,
    FRAME_HEADER,
    HEADER_BYTES,
    HEADERS,
    INITIAL_WINDOW,
    RST_STREAM,
    SETTINGS,
    SETTINGS_HEADER_TABLE_SIZE,
    SETTINGS_INITIAL_WINDOW_SIZE,
    STREAM_MASK,
    encode_frame,
    header_frames,
    rst_stream,
    settings_values,
    window_update,
)
from pullgate.cri.splice.held import PREFIX, RESOURCE_EXHAUSTED, Held, State
from pullgate.cri.splice.routes import Refusal, Route
from pullgate.cri.splice.settle import Settler
from pullgate.errors import MalformedInput

__all__ = ["MAX_FRAME", "RECV_BYTES", "SpliceState"]

log = logging.getLogger(__name__)

_ANSWERED_KEPT = 1024  # streams pullgate answered whose late frames are still dropped
RECV_BYTES = 65_536  # below malloc's mmap threshold: a larger buffer costs a mmap per recv
MAX_FRAME = 16_384  # the smallest SETTINGS_MAX_FRAME_SIZE a peer may announce (RFC 9113 §6.5.2)
WINDOW_WAIT = 30.0  # seconds an answer or a runtime DATA frame waits for the caller's window
SETTLE_WAIT = 1.0  # seconds the runtime's answer to a quick allow waits for it to be settled


def _poll(room: threading.Condition, ready: Callable[[], bool]) -> bool:
    """Wait (``room`` held) until ``ready``, polling: a caller's window update is not always
    signalled (see ``_caller_credit``)."""
    deadline = time.monotonic() + WINDOW_WAIT
    while not ready():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        room.wait(min(left, 0.05))
    return True


class SpliceState:
    """What both relay threads and the verdicts share (see the module docstring).

    Args:
        client: the accepted socket.
        upstream: the runtime's socket path.
        route: ``:path`` -> what to do with the call.
        deciders: where verdicts run (never on a relay thread).
        settler: where quick allows are settled (None: at once, on the relay thread).
        observe: receives the seconds each timed pass-through call took.
        on_close: called once, when both directions have ended.
    """

    def __init__(
        self,
        client: socket.socket,
        upstream: str,
        route: Callable[[bytes], Route],
        deciders: Executor,
        *,
        settler: Settler | None = None,
        observe: Callable[[float], None] | None = None,
        on_close: Callable[[Any], None] | None = None,
    ) -> None:
        self._client = client
        self._upstream_path = upstream
        self._upstream: socket.socket | None = None
        self._route = route
        self._deciders = deciders
        self._settler = settler
        self._settling: dict[int, threading.Lock] = {}  # quick allows being settled, by stream
        self._observe = observe
        self._on_close = on_close
        self._up_lock = threading.Lock()  # writes to the runtime; held-stream state
        self._down_lock = threading.Lock()  # writes to the caller; ANSWERED state
        self._reader = FieldReader()
        self._decided: dict[int, Held] = {}
        self._started: dict[int, float] = {}
        self._held_total = 0
        self._up_window = INITIAL_WINDOW  # the runtime's SETTINGS_INITIAL_WINDOW_SIZE
        self._last_stream = 0
        self._block_stream = 0  # stream of the field block being read (0: none)
        self._block_new = False
        self._block_new_ended = False
        self._after: list[bytes] = []  # sent to the runtime after the current caller frame
        self._batching = False  # the request thread is inside a batch (holds the upstream lock)
        self._ended = 0
        self._end_lock = threading.Lock()
        # The caller's receive windows (RFC 9113 §6.9), kept because pullgate's own answers use
        # them too: the connection's, as the caller sees it, and a new stream's.
        self._credited = INITIAL_WINDOW  # the caller's connection window opened so far
        self._received = 0  # DATA bytes written to the caller (the window it used)
        self._caller_stream_window = INITIAL_WINDOW
        self._debt = 0  # answer bytes the runtime does not know the caller received
        self._room = threading.Condition(self._down_lock)

    def shutdown(self) -> None:
        """End both directions now (wakes the relay threads)."""
        for sock in (self._client, self._upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _end(self) -> None:
        with self._end_lock:
            self._ended += 1
            last = self._ended == 2
        if not last:
            return
        for sock in (self._client, self._upstream):
            if sock is not None:
                sock.close()
        for held in list(self._decided.values()):  # answered calls still running end here
            if held.context is not None:
                held.context.end()
        if self._on_close is not None:
            self._on_close(self)

    def _release(self, held: Held) -> None:
        self._held_total -= held.counted
        held.counted = 0

    def _answer(self, stream: int, held: Held, refusal: Refusal) -> None:
        """Refuse a decided stream (called with the upstream lock held): the runtime's stream
        is reset, the caller gets the refusal (unless the runtime already ended the call) and
        its window back for the held DATA."""
        self._release(held)
        held.frames = []
        held.message = bytearray()
        upstream = self._upstream
        block = status_block(refusal.code, refusal.message)
        with self._down_lock:
            held.state = State.ANSWERED
            out = b""
            if not held.upstream_closed:
                out = header_frames(stream, block, end_stream=True)
            if held.flow:
                out += window_update(0, held.flow)
            if out:
                self._client.sendall(out)
        if held.upstream_closed or upstream is None:
            return
        if self._batching:  # after the caller's frame being handled, not before it
            self._after.append(rst_stream(stream))
        else:
            upstream.sendall(rst_stream(stream))

    def _allowed_now(self, stream: int, held: Held, message: bytes) -> bool:
        """The route's memory-only allow (request thread, upstream lock held, in a batch): on an
        allow the held frames go to the runtime right after the caller's current frame, and the
        allow is settled (counted, audited) by the settler, before the caller can see the end of
        the runtime's answer to it. False: the worker's verdict decides, as without a quick
        check."""
        quick = held.route.quick
        if quick is None:
            return False
        try:
            settle = quick(message)
        except Exception:
            log.exception("runtime gate: the quick check on stream %d failed", stream)
            return False
        if settle is None:
            return False
        del self._decided[stream]
        self._release(held)
        if held.upstream_closed:  # the runtime ended the call itself: nothing to forward
            self._credit_caller(held.flow)
        else:
            self._after.extend(held.frames)
        held.frames = []
        settling = self._settling
        if len(settling) > _ANSWERED_KEPT:  # answers the runtime never sent
            for done in [s for s, lock in list(settling.items()) if not lock.locked()]:
                settling.pop(done, None)
        if self._settler is None:
            Settler.settle_now(settle)
        else:
            settling[stream] = self._settler.submit(settle)
        return True

    def _credit_caller(self, flow: int) -> None:
        if flow:
            with self._down_lock:
                self._client.sendall(window_update(0, flow))

    def _prune(self) -> None:
        if len(self._decided) <= _ANSWERED_KEPT:
            return
        done = (State.ANSWERED, State.CANCELLED)
        for stream in [s for s, h in self._decided.items() if h.state in done][
            : len(self._decided) - _ANSWERED_KEPT
        ]:
            del self._decided[stream]

    # -- runtime -> caller -------------------------------------------------------------------------

    def _responses(self) -> None:
        try:
            self._pump_responses()
        except (MalformedInput, OSError) as exc:
            log.debug("runtime gate: connection ended: %s", exc)
            self.shutdown()
        except Exception:  # a bug must cost this connection, never the gate
            log.exception("runtime gate: closing a connection")
            self.shutdown()
        finally:
            self._end()

    def _pump_responses(self) -> None:
        upstream = self._upstream
        if upstream is None:
            return
        data = b""
        pos = 0
        while True:
            data = data[pos:]
            chunk = upstream.recv(RECV_BYTES)
            if not chunk:
                with contextlib.suppress(OSError):
                    self._client.shutdown(socket.SHUT_WR)
                return
            data = data + chunk if data else chunk
            pos, credit = self._response_batch(data)
            if credit:
                with self._up_lock:
                    upstream.sendall(window_update(0, credit))

    def _response_batch(self, data: bytes) -> tuple[int, int]:
        """Forward the whole frames of ``data`` but those of streams pullgate answered;
        returns the end of the last whole frame and the DATA bytes dropped."""
        took: list[float] = []
        with self._down_lock:
            if not self._decided and not self._settling and not self._debt:  # the usual case
                pos, credit = self._passing_batch(data, took), 0
                if pos:
                    self._client.sendall(data if pos == len(data) else data[:pos])
            else:
                pos, credit = self._mixed_batch(data, took)
        if took and self._observe is not None:
            now = time.perf_counter()
            for begun in took:
                self._observe(now - begun)
        return pos, credit

    def _mixed_batch(self, data: bytes, took: list[float]) -> tuple[int, int]:
        """``_response_batch`` with streams held, answered or being settled, or pullgate's
        answers using the caller's window (with ``_down_lock`` held)."""
        pos = fwd = credit = 0
        size = len(data)
        out: list[bytes] = []
        decided, started, settling = self._decided, self._started, self._settling
        unpack = FRAME_HEADER.unpack_from
        while size - pos >= HEADER_BYTES:
            high, low, kind, flags, stream = unpack(data, pos)
            start = pos
            pos = start + HEADER_BYTES + ((high << 16) | low)
            if pos > size:
                pos = start
                break
            if kind == SETTINGS:
                self._runtime_settings(data[start + HEADER_BYTES : pos], flags)
                continue
            stream &= STREAM_MASK
            ends = kind == RST_STREAM or (kind <= HEADERS and flags & END_STREAM)
            if ends and started:
                begun = started.pop(stream, None)
                if begun is not None:
                    took.append(begun)
            if ends and settling:
                pending = settling.pop(stream, None)
                if pending is not None and pending.locked():  # a quick allow's record
                    out.append(data[fwd:start])
                    self._client.sendall(b"".join(out))
                    out.clear()
                    fwd = start
                    if pending.acquire(timeout=SETTLE_WAIT):
                        pending.release()
            held = decided.get(stream) if decided else None
            if held is not None:
                if held.dropping and kind not in (HEADERS, CONTINUATION):
                    if kind == DATA:
                        credit += pos - start - HEADER_BYTES
                    out.append(data[fwd:start])
                    fwd = pos
                    continue
                if ends:
                    held.upstream_closed = True
            if kind == DATA:
                length = pos - start - HEADER_BYTES
                if self._debt and length > self._credited - self._received:
                    out.append(data[fwd:start])
                    self._client.sendall(b"".join(out))
                    out.clear()
                    fwd = start
                    self._wait_for_room(length)
                self._received += length
        if out:
            out.append(data[fwd:pos])
            self._client.sendall(b"".join(out))
        elif fwd < pos:
            self._client.sendall(data[fwd:pos] if fwd or pos < size else data)
        return pos, credit

    def _passing_batch(self, data: bytes, took: list[float]) -> int:
        """``_response_batch`` when no stream is held, answered or being settled and
        pullgate's answers owe the runtime nothing (with ``_down_lock`` held): every frame goes
        through, read only for the runtime's SETTINGS, the DATA the caller receives and the end
        of timed calls; returns the end of the last whole frame."""
        pos, size, received = 0, len(data), 0
        started = self._started
        unpack = FRAME_HEADER.unpack_from
        while size - pos >= HEADER_BYTES:
            high, low, kind, flags, stream = unpack(data, pos)
            end = pos + HEADER_BYTES + ((high << 16) | low)
            if end > size:
                break
            if kind == DATA:
                received += end - pos - HEADER_BYTES
                ends = flags & END_STREAM
            elif kind == HEADERS:
                ends = flags & END_STREAM
            elif kind == SETTINGS:
                self._runtime_settings(data[pos + HEADER_BYTES : end], flags)
                ends = 0
            else:
                ends = kind == RST_STREAM
            if ends and started:
                begun = started.pop(stream & STREAM_MASK, None)
                if begun is not None:
                    took.append(begun)
            pos = end
        self._received += received
        return pos

    def _wait_for_room(self, length: int) -> None:
        """With ``_down_lock`` held: wait until the caller can take ``length`` more bytes (the
        runtime counts on a window that pullgate's own answers used part of).

        Raises:
            OSError: the caller's window stayed shut.
        """
        if not self._room.wait_for(
            lambda: length <= self._credited - self._received or not self._debt, WINDOW_WAIT
        ):
            raise OSError("the caller's flow-control window stayed shut")

    def _caller_credit(self, increment: int) -> int:
        """The caller opened its connection window by ``increment``: the part of it the runtime
        is told (less what pullgate's answers used, which the runtime never sent)."""
        if not self._debt:  # the usual case: no lock (only this thread adds to it)
            self._credited += increment
            return increment
        with self._room:
            self._credited += increment
            absorbed = min(self._debt, increment)
            self._debt -= absorbed
            self._room.notify_all()
        return increment - absorbed

    def _deliver(
        self, stream: int, held: Held, head: bytes | None, body: bytes | None, tail: bytes
    ) -> None:
        """Write a call's answer (headers, message, trailers) once the caller's windows have
        room for the message; return the held request's window."""
        payload = b"" if body is None else PREFIX.pack(0, len(body)) + body
        size = len(payload)
        with self._room:
            if size > self._caller_stream_window or not _poll(
                self._room,
                lambda: held.state is not State.DECIDING or size <= self._credited - self._received,
            ):
                head, size = None, 0
                tail = status_block(RESOURCE_EXHAUSTED, "the caller's flow-control window is shut")
            if held.state is not State.DECIDING:
                return  # the caller reset the stream meanwhile
            held.state = State.ANSWERED
            out = bytearray()
            if head is not None:
                out += header_frames(stream, head, end_stream=False)
                for at in range(0, size, MAX_FRAME):
                    out += encode_frame(DATA, 0, stream, payload[at : at + MAX_FRAME])
            out += header_frames(stream, tail, end_stream=True)
            if held.flow:
                out += window_update(0, held.flow)
            self._received += size
            self._debt += size  # before the caller can see the answer and credit it
            self._client.sendall(out)

    def _caller_settings(self, payload: bytes, flags: int) -> None:
        window = settings_values(flags, payload).get(SETTINGS_INITIAL_WINDOW_SIZE)
        if window is not None:
            with self._room:
                self._caller_stream_window = window

    def _runtime_settings(self, payload: bytes, flags: int) -> None:
        values = settings_values(flags, payload)
        size = values.get(SETTINGS_HEADER_TABLE_SIZE)
        if size is not None:
            self._reader.allow_table_size(size)
        window = values.get(SETTINGS_INITIAL_WINDOW_SIZE)
        if window is not None:
            self._up_window = window
