"""The splice transport on one connection (socketpair caller with a real HPACK encoder, runtime on
a unix socket): pass-through frames go through verbatim and at once; a decided call's DATA
reaches the runtime only after an allow; a refusal resets the runtime's stream, answers the
caller without touching its HPACK table and returns its window; the connection goes on."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pullgate.cri.splice.frames import (
    CANCEL,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PADDED,
    PRIORITY_FLAG,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    encode_frame,
    read_frame,
    rst_stream,
    window_update,
)
from pullgate.cri.splice.held import INTERNAL, RESOURCE_EXHAUSTED, UNIMPLEMENTED
from pullgate.cri.splice.routes import PASS_TIMED, Refusal, Route, RouteKind
from tests.unit.cri.splice_wire import Wire, grpc_message, spliced

CREATE = "/runtime.v1.RuntimeService/CreateContainer"
LIST = "/runtime.v1.RuntimeService/ListContainers"
DENIED = Refusal(2, "SignatureValidationFailed: NO_SIGNATURE: unsigned (fix: sign it)")


class Gate:
    """A verdict the test releases: allow, or refuse with ``DENIED``."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.release = threading.Event()
        self.allow = True

    def verdict(self, message: bytes) -> Refusal | None:
        self.seen.append(message)
        assert self.release.wait(5)
        return None if self.allow else DENIED

    def route(self, path: bytes) -> Route:
        if path == CREATE.encode():
            return Route(RouteKind.DECIDE, verdict=self.verdict)
        return PASS_TIMED


def _status(wire: Wire, frame: tuple[int, int, int, bytes]) -> dict[bytes, bytes]:
    kind, flags, _, payload = frame
    assert kind == HEADERS
    assert flags & END_STREAM
    return dict(wire.caller_decoder.decode(payload, raw=True))


def test_pass_through_frames_are_forwarded_verbatim_both_ways(tmp_path: Path) -> None:
    took: list[float] = []
    with spliced(tmp_path, observe=took.append) as wire:
        request = wire.headers(1, LIST) + encode_frame(DATA, END_STREAM, 1, grpc_message(b"q"))
        wire.caller.send(request)
        got = wire.runtime.read_bytes(len(request))
        assert got == request
        answer = wire.runtime_answer(1, b"list")
        wire.runtime.send(answer)
        assert wire.caller.read_bytes(len(answer)) == answer
    assert len(took) == 1


def test_decided_data_waits_for_the_allow_while_other_calls_pass(tmp_path: Path) -> None:
    gate = Gate()
    with spliced(tmp_path, gate.route) as wire:
        create = wire.headers(1, CREATE)
        held = encode_frame(DATA, 0, 1, grpc_message(b"create")[:4])
        held += encode_frame(DATA, END_STREAM, 1, grpc_message(b"create")[4:])
        wire.caller.send(create + held)
        assert wire.runtime.read_bytes(len(create)) == create  # HEADERS at once
        listing = wire.headers(3, LIST) + encode_frame(DATA, END_STREAM, 3, grpc_message(b""))
        wire.caller.send(listing)
        assert wire.runtime.read_bytes(len(listing)) == listing  # not behind the decision
        wire.runtime.send(wire.runtime_answer(3, b"ok"))
        wire.caller.read(), wire.caller.read(), wire.caller.read()
        assert wire.runtime.nothing_within(0.2)
        gate.release.set()
        assert wire.runtime.read_bytes(len(held)) == held  # verbatim, after the allow
    assert gate.seen == [b"create"]


def test_a_refusal_resets_the_runtime_answers_the_caller_and_the_connection_goes_on(
    tmp_path: Path,
) -> None:
    gate = Gate()
    gate.allow = False
    gate.release.set()
    with spliced(tmp_path, gate.route) as wire:
        padded = bytes([7]) + grpc_message(b"x" * 10) + b"\0" * 7
        wire.caller.send(
            wire.headers(1, CREATE) + encode_frame(DATA, END_STREAM | PADDED, 1, padded)
        )
        assert wire.runtime.read()[0] == HEADERS
        assert wire.runtime.read() == (RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big"))
        table = list(wire.caller_decoder.header_table.dynamic_entries)
        trailers = _status(wire, wire.caller.read())
        assert trailers[b"grpc-status"] == b"2"
        assert trailers[b"grpc-message"].startswith(b"SignatureValidationFailed: NO_SIGNATURE")
        assert list(wire.caller_decoder.header_table.dynamic_entries) == table
        kind, _, stream, payload = wire.caller.read()
        assert (kind, stream, int.from_bytes(payload)) == (WINDOW_UPDATE, 0, len(padded))
        # The runtime's late frames of that stream are dropped, their DATA credited back.
        wire.runtime.send(encode_frame(DATA, END_STREAM, 1, b"late") + rst_stream(1))
        assert wire.runtime.read() == (WINDOW_UPDATE, 0, 0, (4).to_bytes(4, "big"))
        # Both HPACK tables still agree: the next call and its answer decode on both ends.
        wire.caller.send(wire.headers(3, LIST, end=True))
        kind, _, _, block = wire.runtime.read()
        wire.runtime_decoder.decode(_block(wire, 1), raw=True)  # the refused call's, in order
        fields = dict(wire.runtime_decoder.decode(block, raw=True))
        assert fields[b":path"] == LIST.encode()
        wire.runtime.send(wire.runtime_answer(3, b"ok"))
        head = wire.caller.read()
        assert dict(wire.caller_decoder.decode(head[3], raw=True))[b":status"] == b"200"


def _block(wire: Wire, index: int) -> bytes:
    """The field block of the ``index``-th HEADERS frame the runtime received."""
    raw, pos, seen = bytes(wire.runtime.raw), 24, 0
    while (frame := read_frame(raw, pos)) is not None:
        if frame.type == HEADERS:
            seen += 1
            if seen == index:
                return raw[pos + 9 : frame.end]
        pos = frame.end
    raise AssertionError("no such block")


def test_continuation_padding_and_priority_are_read_for_the_route(tmp_path: Path) -> None:
    gate = Gate()
    gate.allow = False
    gate.release.set()
    with spliced(tmp_path, gate.route) as wire:
        block = wire.encoder.encode([(":method", "POST"), (":path", CREATE), ("x-pad", "y" * 40)])
        first = bytes([3]) + b"\x00\x00\x00\x00\x10" + block[:5] + b"\0\0\0"
        request = (
            encode_frame(HEADERS, PADDED | PRIORITY_FLAG, 1, first)
            + encode_frame(CONTINUATION, 0, 1, block[5:20])
            + encode_frame(CONTINUATION, END_HEADERS, 1, block[20:])
            + encode_frame(DATA, END_STREAM, 1, grpc_message(b"m"))
        )
        wire.caller.send(request)
        for kind in (HEADERS, CONTINUATION, CONTINUATION, RST_STREAM):
            assert wire.runtime.read()[0] == kind
        assert _status(wire, wire.caller.read())[b"grpc-status"] == b"2"
    assert gate.seen == [b"m"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x01" + (1).to_bytes(4, "big") + b"z", UNIMPLEMENTED),  # compressed
        (grpc_message(b"a") + grpc_message(b"b"), INTERNAL),  # two messages
        (b"", INTERNAL),  # no message
        (b"\x00" + (70_000).to_bytes(4, "big"), RESOURCE_EXHAUSTED),  # past the stream window
    ],
)
def test_an_unreadable_decided_request_is_refused_and_never_forwarded(
    tmp_path: Path, data: bytes, code: int
) -> None:
    gate = Gate()
    gate.release.set()
    with spliced(tmp_path, gate.route) as wire:
        wire.caller.send(wire.headers(1, CREATE) + encode_frame(DATA, END_STREAM, 1, data))
        assert wire.runtime.read()[0] == HEADERS
        assert wire.runtime.read()[0] == RST_STREAM
        assert _status(wire, wire.caller.read())[b"grpc-status"] == str(code).encode()
        assert wire.runtime.nothing_within(0.2)
    assert gate.seen == []


def test_a_reset_by_the_caller_drops_the_held_data(tmp_path: Path) -> None:
    gate = Gate()
    with spliced(tmp_path, gate.route) as wire:
        data = encode_frame(DATA, END_STREAM, 1, grpc_message(b"c"))
        wire.caller.send(wire.headers(1, CREATE) + data + rst_stream(1))
        assert wire.runtime.read()[0] == HEADERS
        assert wire.runtime.read() == (RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big"))
        kind, _, stream, payload = wire.caller.read()
        assert (kind, stream, int.from_bytes(payload)) == (WINDOW_UPDATE, 0, len(data) - 9)
        gate.release.set()  # an allow after the reset forwards nothing
        assert wire.runtime.nothing_within(0.3)


def test_a_refused_route_is_answered_at_once(tmp_path: Path) -> None:
    def route(path: bytes) -> Route:
        return Route(RouteKind.REFUSE, refusal=Refusal(7, "refused"))

    with spliced(tmp_path, route) as wire:
        wire.caller.send(wire.headers(1, "/containerd.v1.X/Y"))
        assert _status(wire, wire.caller.read())[b"grpc-status"] == b"7"
        assert wire.runtime.read()[0] == HEADERS
        assert wire.runtime.read()[0] == RST_STREAM
        wire.caller.send(encode_frame(DATA, END_STREAM, 1, grpc_message(b"x")))
        assert wire.caller.read()[0] == WINDOW_UPDATE  # dropped and credited
        assert wire.runtime.nothing_within(0.2)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x04" + bytes([HEADERS, END_HEADERS]) + b"\x00\x00\x00\x01" + b"\xff\xff\xff\xff",
        encode_frame(CONTINUATION, END_HEADERS, 1, b"\x82"),  # no HEADERS before it
        encode_frame(HEADERS, END_HEADERS | PADDED, 1, b"\x09\x82"),  # padding past the end
        encode_frame(SETTINGS, 0, 0, b"\x00\x01\x00"),
    ],
)
def test_a_malformed_request_closes_the_connection(tmp_path: Path, garbage: bytes) -> None:
    with spliced(tmp_path) as wire:
        wire.caller.send(garbage)
        assert wire.caller.closed()


@pytest.mark.parametrize("start", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n"])
def test_a_connection_without_the_preface_is_closed(tmp_path: Path, start: bytes) -> None:
    with spliced(tmp_path, preface=False) as wire:
        wire.caller.send(start)  # the second is shorter than the preface: refused as it is
        assert wire.caller.closed()


def test_the_runtimes_header_table_size_is_followed(tmp_path: Path) -> None:
    gate = Gate()
    gate.allow = False
    gate.release.set()
    with spliced(tmp_path, gate.route) as wire:
        wire.runtime.send(encode_frame(SETTINGS, 0, 0, b"\x00\x01\x00\x00\x20\x00"))  # 8192
        assert wire.caller.read()[0] == SETTINGS
        wire.encoder.header_table_size = 8192
        block = wire.encoder.encode([(":path", CREATE), ("x-big", "v" * 5000)])
        wire.caller.send(
            encode_frame(HEADERS, END_HEADERS, 1, block)
            + encode_frame(DATA, END_STREAM, 1, grpc_message(b"m"))
        )
        assert _status(wire, wire.caller.read())[b"grpc-status"] == b"2"
    assert gate.seen == [b"m"]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=12))
def test_pass_through_bytes_arrive_verbatim_however_they_are_cut(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int]
) -> None:
    gate = Gate()
    gate.release.set()
    with spliced(tmp_path_factory.mktemp("cut"), gate.route) as wire:
        stream = b""
        for number in (1, 3, 5):
            stream += wire.headers(number, LIST)
            stream += encode_frame(DATA, PADDED | END_STREAM, number, b"\x02" + b"q" * 30 + b"\0\0")
        stream += window_update(0, 1000)
        at = 0
        for cut in cuts:  # the caller's bytes in pieces, frame boundaries ignored
            wire.caller.send(stream[at : at + cut])
            at += cut
            time.sleep(0.001)
        wire.caller.send(stream[at:])
        assert wire.runtime.read_bytes(len(stream)) == stream
