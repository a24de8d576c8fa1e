"""A decided stream's side of the splice (:mod:`pullgate.cri.splice.conn` says what the splice
does): its ``DATA`` held until the verdict, which runs on a worker (a memory-only allow is
taken on the spot, :meth:`~pullgate.cri.splice.base.SpliceState._allowed_now`); the held frames
forwarded on an allow; a refusal answered; a call too large to hold, or handed over by its
verdict, answered by the route's handler.
"""

from __future__ import annotations

import logging

from pullgate.cri.splice.answer import CallContext, answer_blocks, run_handler
from pullgate.cri.splice.downstream import Downstream
from pullgate.cri.splice.frames import END_STREAM, Frame, data_fragment, rst_stream, window_update
from pullgate.cri.splice.held import (
    INTERNAL,
    PREFIX,
    Held,
    State,
    exceeds_window,
    message_problem,
)
from pullgate.cri.splice.routes import Refusal, TakeOver
from pullgate.errors import MalformedInput

__all__ = ["DecidedStreams"]

log = logging.getLogger(__name__)


class DecidedStreams(Downstream):
    """The decided streams' handling (the arguments are
    :class:`~pullgate.cri.splice.base.SpliceState`'s)."""

    def _held_data(self, stream: int, held: Held, data: bytes, frame: Frame) -> None:
        """A decided stream's DATA: held (never forwarded here), or dropped once answered."""
        payload = data[frame.start + 9 : frame.end]
        size = len(payload)
        if held.state in (State.ANSWERED, State.CANCELLED):
            self._credit_caller(size)
            return
        if held.state is State.DECIDING:
            raise MalformedInput("DATA after END_STREAM")
        held.counted += size
        self._held_total += size
        held.message += data_fragment(frame.flags, payload)
        if held.answering:
            self._consumed(stream, size)
        else:
            held.flow += size
            held.frames.append(data[frame.start : frame.end])
            if held.route.handler is not None and exceeds_window(held.message, self._up_window):
                self._take_over(stream, held)
        refusal = message_problem(
            held.message,
            done=bool(frame.flags & END_STREAM),
            held_total=self._held_total,
            window=None if held.answering else self._up_window,
        )
        if refusal is not None:
            self._answer(stream, held, refusal)
            return
        if frame.flags & END_STREAM:
            held.state = State.DECIDING
            message = bytes(held.message[PREFIX.size :])
            held.message = bytearray()
            if held.answering:
                self._release(held)
                held.context = CallContext(held.fields)
                self._deciders.submit(self._respond, stream, held, held.context, message)
            elif not self._allowed_now(stream, held, message):
                self._deciders.submit(self._decide, stream, held, message)

    def _take_over(self, stream: int, held: Held) -> None:
        """A decided request too large for the runtime's stream window (it cannot be read
        without forwarding part of it): pullgate answers it with the gate's handler instead,
        reading the rest itself; the runtime's stream is reset."""
        held.answering = held.upstream_closed = True
        self._after.append(rst_stream(stream))
        self._consumed(stream, held.flow)
        held.flow = 0
        held.frames = []

    def _hand_over(self, stream: int, held: Held, message: bytes) -> Refusal | None:
        """A verdict handed a held request to the route's handler (called with the upstream
        lock held): the runtime's stream is reset and the handler answers on a worker; the held
        DATA's window goes back to the caller with the answer. None when handed over, a refusal
        when there is no handler to hand it to."""
        if held.route.handler is None:
            return Refusal(INTERNAL, "pullgate could not decide this call")
        upstream = self._upstream
        if not held.upstream_closed and upstream is not None:
            upstream.sendall(rst_stream(stream))
        held.answering = held.upstream_closed = True
        held.frames = []
        self._release(held)
        held.context = CallContext(held.fields)
        self._deciders.submit(self._respond, stream, held, held.context, message)
        return None

    def _consumed(self, stream: int, size: int) -> None:
        """Request bytes pullgate consumes itself: the caller may send as many more."""
        if size:
            with self._down_lock:
                self._client.sendall(window_update(0, size) + window_update(stream, size))

    def _cancel_answer(self, held: Held) -> None:
        """The caller reset a stream pullgate answers: its handler sees the call end."""
        with self._down_lock:
            state, held.state = held.state, State.CANCELLED
        if state is State.PENDING:
            self._release(held)
        if held.context is not None:
            held.context.end()
        self._credit_caller(held.flow)

    def _respond(self, stream: int, held: Held, context: CallContext, message: bytes) -> None:
        """On a worker: run the gate's handler for an answered call and write its answer."""
        handler = held.route.handler
        try:
            if handler is None:
                response, code, text = None, INTERNAL, "no handler"
            else:
                response, code, text = run_handler(handler, message, context)
            head, tail = answer_blocks(response, code, text, context.initial, context.trailing)
            self._deliver(stream, held, head, response, tail)
        except OSError:
            self.shutdown()
        except Exception:  # never leave the call hanging: the connection goes
            log.exception("runtime gate: stream %d could not be answered", stream)
            self.shutdown()
        finally:
            context.end()

    def _decide(self, stream: int, held: Held, message: bytes) -> None:
        """On a worker: the verdict, then the held frames forwarded or the call refused."""
        verdict = held.route.verdict
        try:
            refusal = verdict(message) if verdict is not None else None
        except Exception:
            log.exception("runtime gate: the verdict on stream %d failed", stream)
            refusal = Refusal(INTERNAL, "pullgate could not decide this call")
        upstream = self._upstream
        try:
            with self._up_lock:
                if held.state is not State.DECIDING:
                    return  # the caller reset the stream meanwhile
                if isinstance(refusal, TakeOver):
                    if held.upstream_closed:  # the runtime ended the call itself
                        refusal = None
                    else:
                        refusal = self._hand_over(stream, held, message)
                        if refusal is None:
                            return
                if refusal is None and not held.upstream_closed:
                    del self._decided[stream]
                    self._release(held)
                    if upstream is not None:
                        upstream.sendall(b"".join(held.frames))
                    return
                if refusal is None:  # the runtime ended the call itself: nothing to forward
                    del self._decided[stream]
                    self._release(held)
                    self._credit_caller(held.flow)
                    return
                self._answer(stream, held, refusal)
        except OSError:
            self.shutdown()
        except Exception:  # never leave the call hanging: the connection goes
            log.exception("runtime gate: stream %d could not be answered", stream)
            self.shutdown()
