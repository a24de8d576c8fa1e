"""A verdict that hands a held call to its handler (``TAKE_OVER``): no byte of the request
reaches the runtime, whose stream is reset; the handler's answer reaches the caller, and the
held request's window is given back to it."""

from __future__ import annotations

from pathlib import Path

from pullgate.cri.splice.frames import (
    CANCEL,
    DATA,
    END_STREAM,
    HEADERS,
    RST_STREAM,
    WINDOW_UPDATE,
    encode_frame,
)
from pullgate.cri.splice.routes import PASS_TIMED, TAKE_OVER, Route, RouteKind, TakeOver
from tests.unit.cri.splice_wire import grpc_message, spliced
from tests.unit.cri.test_splice_answer import Handler

CREATE = "/runtime.v1.RuntimeService/CreateContainer"


def test_a_verdict_hands_the_held_call_to_the_handler(tmp_path: Path) -> None:
    handler = Handler()
    judged: list[bytes] = []

    def verdict(message: bytes) -> TakeOver:
        judged.append(message)
        return TAKE_OVER

    def route(path: bytes) -> Route:
        if path == CREATE.encode():
            return Route(RouteKind.DECIDE, verdict=verdict, handler=handler)
        return PASS_TIMED

    message = grpc_message(b"create-by-tag")
    with spliced(tmp_path, route) as wire:
        block = wire.encoder.encode([(":method", "POST"), (":path", CREATE)])
        wire.caller.send(encode_frame(HEADERS, 4, 1, block))
        wire.caller.send(encode_frame(DATA, END_STREAM, 1, message))
        assert wire.runtime.read()[0] == HEADERS
        assert wire.runtime.read() == (RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big"))
        assert wire.runtime.nothing_within(0.2)  # no byte of the request
        assert wire.caller.read()[0] == HEADERS
        assert wire.caller.read() == (DATA, 0, 1, grpc_message(b"image-ref"))
        kind, flags, _, _ = wire.caller.read()
        assert (kind, flags & END_STREAM) == (HEADERS, END_STREAM)
        # The held request's window comes back to the caller with the answer.
        assert wire.caller.read() == (WINDOW_UPDATE, 0, 0, len(message).to_bytes(4, "big"))
    assert judged == [b"create-by-tag"]
    assert handler.seen[0][0] == b"create-by-tag"
    assert handler.ended.is_set()


def test_without_a_handler_a_hand_over_is_refused(tmp_path: Path) -> None:
    def route(path: bytes) -> Route:
        if path == CREATE.encode():
            return Route(RouteKind.DECIDE, verdict=lambda _m: TAKE_OVER)
        return PASS_TIMED

    with spliced(tmp_path, route) as wire:
        block = wire.encoder.encode([(":method", "POST"), (":path", CREATE)])
        wire.caller.send(encode_frame(HEADERS, 4, 1, block))
        wire.caller.send(encode_frame(DATA, END_STREAM, 1, grpc_message(b"x")))
        assert wire.runtime.read()[0] == HEADERS
        assert wire.runtime.read() == (RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big"))
        kind, flags, _, tail = wire.caller.read()
        assert (kind, flags & END_STREAM) == (HEADERS, END_STREAM)
        assert dict(wire.caller_decoder.decode(tail, raw=True))[b"grpc-status"] == b"13"
