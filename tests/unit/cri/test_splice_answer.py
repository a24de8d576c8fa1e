"""Calls the splice transport answers itself (``PullImage`` on the runtime socket): the runtime's
stream is reset at once, the gate's grpcio handler runs with the caller's metadata and deadline,
its answer (or its abort) reaches the caller without touching the caller's HPACK table, and the
bytes it used of the caller's window are kept from the runtime's view of it."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest

from pullgate.cri.splice.answer import timeout_of
from pullgate.cri.splice.frames import (
    CANCEL,
    DATA,
    END_STREAM,
    HEADERS,
    RST_STREAM,
    WINDOW_UPDATE,
    encode_frame,
    rst_stream,
    window_update,
)
from pullgate.cri.splice.routes import PASS_TIMED, Route, RouteKind
from tests.unit.cri.splice_wire import Wire, grpc_message, spliced

PULL = "/runtime.v1.ImageService/PullImage"
LIST = "/runtime.v1.RuntimeService/ListContainers"


class Handler:
    """A grpcio handler the test controls."""

    def __init__(self, *, abort: bool = False, wait: bool = False) -> None:
        self.abort = abort
        self.release = threading.Event()
        if not wait:
            self.release.set()
        self.seen: list[tuple[bytes, tuple[object, ...], float]] = []
        self.ended = threading.Event()

    def __call__(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        context.add_callback(self.ended.set)
        self.seen.append((request, tuple(context.invocation_metadata()), context.time_remaining()))
        assert self.release.wait(5)
        if self.abort:
            context.abort(grpc.StatusCode.UNKNOWN, "SignatureValidationFailed: NO_SIGNATURE: x")
        context.send_initial_metadata((("x-initial", "i"),))
        context.set_trailing_metadata((("x-trailing-bin", b"\x00\x01"),))
        return b"image-ref"

    def route(self, path: bytes) -> Route:
        if path == PULL.encode():
            return Route(RouteKind.ANSWER, handler=self)
        return PASS_TIMED


def _pull(wire: Wire, stream: int, body: bytes) -> bytes:
    block = wire.encoder.encode(
        [(":method", "POST"), (":path", PULL), ("grpc-timeout", "30S"), ("x-caller", "kubelet")]
    )
    return encode_frame(HEADERS, 4, stream, block) + encode_frame(
        DATA, END_STREAM, stream, grpc_message(body)
    )


def _past_credit(wire: Wire) -> tuple[int, int, int, bytes]:
    """The caller's next frame that is not a window update."""
    frame = wire.caller.read()
    while frame[0] == WINDOW_UPDATE:
        frame = wire.caller.read()
    return frame


def test_the_handler_answers_with_its_message_and_metadata(tmp_path: Path) -> None:
    handler = Handler()
    with spliced(tmp_path, handler.route) as wire:
        wire.caller.send(_pull(wire, 1, b"pull-me"))
        assert wire.runtime.read()[0] == HEADERS
        assert wire.runtime.read() == (RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big"))
        held = len(grpc_message(b"pull-me"))  # consumed by pullgate: the caller may send more
        credit = held.to_bytes(4, "big")
        assert wire.caller.read() == (WINDOW_UPDATE, 0, 0, credit)
        assert wire.caller.read() == (WINDOW_UPDATE, 0, 1, credit)
        table = list(wire.caller_decoder.header_table.dynamic_entries)
        kind, _, _, head = wire.caller.read()
        assert kind == HEADERS
        assert dict(wire.caller_decoder.decode(head, raw=True))[b"x-initial"] == b"i"
        assert wire.caller.read() == (DATA, 0, 1, grpc_message(b"image-ref"))
        kind, flags, _, tail = wire.caller.read()
        assert (kind, flags & END_STREAM) == (HEADERS, END_STREAM)
        trailers = dict(wire.caller_decoder.decode(tail, raw=True))
        assert (trailers[b"grpc-status"], trailers[b"x-trailing-bin"]) == (b"0", b"AAE")
        assert list(wire.caller_decoder.header_table.dynamic_entries) == table
        # What the answer used of the caller's window is not credited to the runtime.
        used = len(grpc_message(b"image-ref"))
        wire.caller.send(window_update(0, used + 100))
        assert wire.runtime.read() == (WINDOW_UPDATE, 0, 0, (100).to_bytes(4, "big"))
        wire.caller.send(window_update(0, 50))
        assert wire.runtime.read() == (WINDOW_UPDATE, 0, 0, (50).to_bytes(4, "big"))
    request_body, metadata, remaining = handler.seen[0]
    assert request_body == b"pull-me"
    assert ("x-caller", "kubelet") in metadata
    assert 25 < remaining <= 30
    assert handler.ended.is_set()


def test_an_abort_is_a_trailers_only_answer(tmp_path: Path) -> None:
    handler = Handler(abort=True)
    with spliced(tmp_path, handler.route) as wire:
        wire.caller.send(_pull(wire, 1, b"unsigned"))
        kind, flags, _, block = _past_credit(wire)
        assert (kind, flags & END_STREAM) == (HEADERS, END_STREAM)
        fields = dict(wire.caller_decoder.decode(block, raw=True))
        assert (fields[b":status"], fields[b"grpc-status"]) == (b"200", b"2")
        assert fields[b"grpc-message"].startswith(b"SignatureValidationFailed: NO_SIGNATURE")
        # Pass-through calls go on, the runtime's answers decode at the caller.
        wire.caller.send(wire.headers(3, LIST, end=True))
        wire.runtime.send(wire.runtime_answer(3, b"ok"))
        kind, _, stream, head = wire.caller.read()
        while kind != HEADERS:
            kind, _, stream, head = wire.caller.read()
        assert (stream, dict(wire.caller_decoder.decode(head, raw=True))[b":status"]) == (
            3,
            b"200",
        )


def test_a_caller_reset_ends_the_handlers_call(tmp_path: Path) -> None:
    handler = Handler(wait=True)
    with spliced(tmp_path, handler.route) as wire:
        wire.caller.send(_pull(wire, 1, b"slow"))
        while not handler.seen:
            threading.Event().wait(0.01)
        wire.caller.send(rst_stream(1))
        assert handler.ended.wait(5)
        handler.release.set()
        assert wire.caller.read()[0] == WINDOW_UPDATE  # the request's window, at once
        assert wire.caller.read()[0] == WINDOW_UPDATE
        assert wire.caller.nothing_within(0.3)  # and no answer


def test_runtime_data_waits_for_the_window_the_answer_used(tmp_path: Path) -> None:
    handler = Handler()
    with spliced(tmp_path, handler.route) as wire:
        wire.caller.send(wire.headers(3, LIST, end=True))
        wire.runtime.read()
        # Before any answered call, the runtime uses the caller's window and the caller
        # reopens it: the splice must count both to find room for its answer later.
        for _ in range(8):
            wire.runtime.send(encode_frame(DATA, 0, 3, b"w" * 16_000))
            assert wire.caller.read()[0] == DATA
            wire.caller.send(window_update(0, 16_000))
            assert wire.runtime.read()[0] == WINDOW_UPDATE
        # The runtime fills what it believes is the caller's whole connection window...
        wire.caller.send(_pull(wire, 5, b"p"))
        for _ in range(5):
            wire.caller.read()  # two window updates, headers, message, trailers
        filler = b"z" * 16_000
        burst = b"".join(encode_frame(DATA, 0, 3, filler) for _ in range(4))
        burst += encode_frame(DATA, 0, 3, b"z" * (65_535 - 64_000))
        wire.runtime.send(burst)
        for _ in range(4):
            assert wire.caller.read()[0] == DATA
        # ... but the answer used some of it: the last frame waits for the caller's credit.
        assert wire.caller.nothing_within(0.3)
        wire.caller.send(window_update(0, 64_000))
        assert wire.caller.read()[0] == DATA


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"30S", 30.0), (b"100m", 0.1), (b"2M", 120.0), (b"1H", 3600.0), (b"5n", 5e-9)],
)
def test_grpc_timeouts_are_read(value: bytes, seconds: float) -> None:
    assert timeout_of(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"S", b"123456789S", b"12X", b"-1S"])
def test_malformed_grpc_timeouts_are_none(value: bytes) -> None:
    assert timeout_of(value) is None


def test_a_closed_connection_ends_the_handlers_call(tmp_path: Path) -> None:
    handler = Handler(wait=True)
    with spliced(tmp_path, handler.route) as wire:
        wire.caller.send(_pull(wire, 1, b"slow"))
        while not handler.seen:
            threading.Event().wait(0.01)
        wire.splice.shutdown()  # as when the kubelet goes away
        assert handler.ended.wait(5)
        handler.release.set()


def test_a_decided_request_larger_than_the_runtimes_window_is_answered_by_the_handler(
    tmp_path: Path,
) -> None:
    handler = Handler()
    verdicts: list[bytes] = []

    def route(path: bytes) -> Route:
        if path == b"/runtime.v1.RuntimeService/CreateContainer":
            return Route(RouteKind.DECIDE, verdict=verdicts.append, handler=handler)
        return PASS_TIMED

    body = bytes(range(256)) * 400  # 102 400 bytes: more than the 65 535-byte stream window
    message = grpc_message(body)
    with spliced(tmp_path, route) as wire:
        block = wire.encoder.encode(
            [(":method", "POST"), (":path", "/runtime.v1.RuntimeService/CreateContainer")]
        )
        wire.caller.send(encode_frame(HEADERS, 4, 1, block))
        sent, window = 0, 65_535
        while sent < len(message):  # a conforming caller: never past the window it was given
            while window == 0:
                kind, _, stream, payload = wire.caller.read()
                if (kind, stream) == (WINDOW_UPDATE, 1):
                    window += int.from_bytes(payload)
            size = min(16_384, window, len(message) - sent)
            last = sent + size == len(message)
            chunk = message[sent : sent + size]
            wire.caller.send(encode_frame(DATA, END_STREAM if last else 0, 1, chunk))
            sent, window = sent + size, window - size
        assert _past_credit(wire)[0] == HEADERS
        assert _past_credit(wire) == (DATA, 0, 1, grpc_message(b"image-ref"))
        assert wire.runtime.read()[0] == HEADERS
        assert wire.runtime.read() == (RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big"))
        assert wire.runtime.nothing_within(0.2)  # no byte of the request
    assert handler.seen[0][0] == body
    assert verdicts == []
