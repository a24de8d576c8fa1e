"""The state a spliced connection shares between its two relay threads and its verdicts
(:mod:`pullgate.cri.splice.conn` says what the splice does; the runtime -> caller direction is
:mod:`pullgate.cri.splice.downstream`).

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
    DATA,
    INITIAL_WINDOW,
    SETTINGS_HEADER_TABLE_SIZE,
    SETTINGS_INITIAL_WINDOW_SIZE,
    encode_frame,
    header_frames,
    rst_stream,
    settings_values,
    window_update,
)
from pullgate.cri.splice.held import PREFIX, RESOURCE_EXHAUSTED, Held, State
from pullgate.cri.splice.routes import Refusal, Route
from pullgate.cri.splice.settle import Settle, Settler, settle_now

__all__ = ["MAX_FRAME", "RECV_BYTES", "SpliceState"]

log = logging.getLogger(__name__)

_ANSWERED_KEPT = 1024  # streams pullgate answered whose late frames are still dropped
RECV_BYTES = 65_536  # below malloc's mmap threshold: a larger buffer costs a mmap per recv
MAX_FRAME = 16_384  # the smallest SETTINGS_MAX_FRAME_SIZE a peer may announce (RFC 9113 §6.5.2)
WINDOW_WAIT = 30.0  # seconds an answer or a runtime DATA frame waits for the caller's window


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
        # quick allows forwarded whose runtime answer has not ended yet, by stream
        self._settling: dict[int, Settle] = {}
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
        with self._down_lock:  # allows whose answers never came: they were acted on
            unanswered = list(self._settling.values())
            self._settling.clear()
        self._settle(unanswered)
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
        allow is settled (counted, audited) by the settler once the runtime's answer to it has
        gone to the caller, or the call or the connection ended without one. False: the
        worker's verdict decides, as without a quick check."""
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
        if len(settling) >= _ANSWERED_KEPT:  # answers the runtime never ended: settled now
            with self._down_lock:
                oldest = [settling.pop(s) for s in list(settling)[: len(settling) // 2]]
            self._settle(oldest)
        settling[stream] = settle  # settled once the runtime's answer has gone out
        return True

    def _settle(self, allows: list[Settle]) -> None:
        """Hand quick allows whose calls ended to the settler (settled here without one)."""
        settler = self._settler
        for settle in allows:
            if settler is None:
                settle_now(settle)
            else:
                settler.submit(settle)

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
