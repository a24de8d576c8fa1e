"""Every call on a long spliced connection is routed by the ``:path`` its caller sent, whatever
the field blocks look like: a grpc-go caller's new ``grpc-timeout`` literal each call, a small
table evicting on every block, table size updates, padded and prioritised ``HEADERS``, blocks
split into ``CONTINUATION`` frames. A decided call's request never reaches the runtime."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from pullgate.cri.splice.frames import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PADDED,
    PING,
    PRIORITY_FLAG,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    encode_frame,
    field_fragment,
    rst_stream,
)
from pullgate.cri.splice.routes import PASS_TIMED, Refusal, Route, RouteKind
from tests.unit.cri.splice_wire import Wire, grpc_message, spliced

SERVICE = "/runtime.v1.RuntimeService/"
PASSING = [SERVICE + m for m in ("ListContainers", "PodSandboxStatus", "ContainerStatus")]
GATED = [SERVICE + m for m in ("CreateContainer", "StartContainer")]


class Recorder:
    """Routes the gated paths to a refusing verdict; records every path it is asked about."""

    def __init__(self) -> None:
        self.paths: list[bytes] = []
        self.verdicts = 0
        self._lock = threading.Lock()

    def verdict(self, message: bytes) -> Refusal:
        with self._lock:
            self.verdicts += 1
        return Refusal(7, "refused")

    def route(self, path: bytes) -> Route:
        self.paths.append(path)
        if path.decode() in GATED:
            return Route(RouteKind.DECIDE, verdict=self.verdict)
        return PASS_TIMED


def _header_frames(rng: random.Random, stream: int, block: bytes) -> list[bytes]:
    """``block`` as HEADERS (padded, prioritised or not) and maybe CONTINUATIONs."""
    cuts = sorted(rng.sample(range(1, len(block)), min(rng.randint(0, 2), len(block) - 1)))
    pieces = [block[a:b] for a, b in zip([0, *cuts], [*cuts, len(block)], strict=True)]
    flags, first = 0, pieces[0]
    if rng.random() < 0.3:
        flags |= PRIORITY_FLAG
        first = b"\x00\x00\x00\x00\x10" + first
    if rng.random() < 0.3:
        flags |= PADDED
        first = b"\x03" + first + b"\x00\x00\x00"
    frames = [first, *pieces[1:]]
    out = []
    for i, payload in enumerate(frames):
        last = END_HEADERS if i == len(frames) - 1 else 0
        kind = HEADERS if i == 0 else CONTINUATION
        out.append(encode_frame(kind, (flags if i == 0 else 0) | last, stream, payload))
    return out


def _call(wire: Wire, rng: random.Random, stream: int, path: str) -> None:
    fields: list[tuple[str, str, bool]] = [
        (":method", "POST", False),
        (":scheme", "http", False),
        (":path", path, False),
        (":authority", "/run/containerd/containerd.sock", False),
        ("content-type", "application/grpc", False),
        ("user-agent", "grpc-go/1.72.0", rng.random() < 0.1),  # sometimes never indexed
        ("te", "trailers", False),
        ("grpc-timeout", f"{rng.randint(100_000, 119_999)}m", False),
    ]
    headers = _header_frames(rng, stream, wire.encoder.encode(fields, huffman=rng.random() < 0.7))
    body = grpc_message(b"request %d" % stream)
    wire.caller.send(b"".join(headers) + encode_frame(DATA, END_STREAM, stream, body))
    forwarded = b""
    for sent in headers:  # forwarded verbatim: the runtime's decoder reads the same path
        kind, flags, got, payload = wire.runtime.read()
        assert encode_frame(kind, flags, got, payload) == sent
        forwarded += field_fragment(kind, flags, payload)
    assert dict(wire.runtime_decoder.decode(forwarded, raw=True))[b":path"] == path.encode()
    next_frame = wire.runtime.read()
    if path in GATED:
        assert next_frame[0] == RST_STREAM  # refused: the request never reaches the runtime
        while (answer := wire.caller.read())[0] == WINDOW_UPDATE:
            pass
        assert answer[0] == HEADERS
    else:
        assert next_frame == (DATA, END_STREAM, stream, body)


def test_every_call_is_routed_by_the_path_it_sent(tmp_path: Path) -> None:
    rng = random.Random(16)
    recorder = Recorder()
    sent: list[bytes] = []
    with spliced(tmp_path, recorder.route) as wire:
        wire.runtime.send(encode_frame(SETTINGS, 0, 0, b"\x00\x01\x00\x00\x20\x00"))  # 8192
        assert wire.caller.read()[0] == SETTINGS
        wire.runtime_decoder.max_allowed_table_size = 8192
        for call in range(240):
            if call % 60 == 0:  # a table size update starts the next block
                wire.encoder.header_table_size = rng.choice((0, 150, 512, 4096, 8192))
            path = rng.choice(PASSING + GATED)
            _call(wire, rng, 2 * call + 1, path)
            sent.append(path.encode())
    assert recorder.paths == sent
    assert recorder.verdicts == sum(path.decode() in GATED for path in sent)


def test_a_frame_inside_a_field_block_closes_the_connection(tmp_path: Path) -> None:
    """A gated call's DATA sent before its field block ends (its route is not known yet) is a
    connection error (RFC 9113 §6.10), never forwarded."""
    recorder = Recorder()
    with spliced(tmp_path, recorder.route) as wire:
        block = wire.encoder.encode([(":method", "POST"), (":path", GATED[0])])
        wire.caller.send(
            encode_frame(HEADERS, 0, 1, block[:3])
            + encode_frame(DATA, END_STREAM, 1, grpc_message(b"create"))
            + encode_frame(CONTINUATION, END_HEADERS, 1, block[3:])
        )
        assert wire.caller.closed()
        kinds = []
        try:
            while True:
                kinds.append(wire.runtime.read()[0])
        except (EOFError, OSError):
            pass
        assert DATA not in kinds
    assert recorder.paths == []


def test_a_pass_through_call_ends_its_timing_however_the_runtime_ends_it(tmp_path: Path) -> None:
    """Trailers with END_STREAM, DATA with END_STREAM and RST_STREAM each end a timed call once;
    a frame that ends nothing (a PING ACK, whose flag has END_STREAM's value) does not."""
    took: list[float] = []
    with spliced(tmp_path, observe=took.append) as wire:
        endings = [
            encode_frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x88"),
            encode_frame(DATA, END_STREAM, 3, grpc_message(b"r")),
            rst_stream(5),
        ]
        for n, ending in enumerate(endings):
            stream = 2 * n + 1
            wire.caller.send(wire.headers(stream, PASSING[0], end=True))
            assert wire.runtime.read()[0] == HEADERS
            wire.runtime.send(encode_frame(PING, ACK, 0, bytes(8)) + ending)
            assert wire.caller.read()[0] == PING
            assert wire.caller.read()[2] == stream
            deadline = time.monotonic() + 5
            while len(took) < n + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(took) == n + 1
