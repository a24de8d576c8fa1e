"""The NRI wire codec: mux frames, ttrpc frames and envelopes; arbitrary bytes fail typed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pullgate.errors import PullgateError, Reason
from pullgate.nri.frames import (
    MAX_DATA,
    PLUGIN_CONN,
    RUNTIME_CONN,
    Frame,
    FrameType,
    MuxReader,
    TtrpcReader,
    WireError,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    mux_frame,
    ttrpc_frame,
)


def test_mux_frame_layout() -> None:
    frame = mux_frame(RUNTIME_CONN, b"abc")
    assert frame == b"\x00\x00\x00\x02\x00\x00\x00\x03abc"


def test_ttrpc_frame_layout() -> None:
    frame = ttrpc_frame(7, FrameType.RESPONSE, b"xy", flags=1)
    assert frame == b"\x00\x00\x00\x02\x00\x00\x00\x07\x02\x01xy"


@given(
    st.lists(st.tuples(st.sampled_from([1, 2, 3]), st.binary(max_size=64)), max_size=8),
    st.integers(min_value=1, max_value=17),
)
def test_mux_reader_reassembles_any_split(frames: list[tuple[int, bytes]], step: int) -> None:
    stream = b"".join(mux_frame(c, p) for c, p in frames)
    reader = MuxReader()
    out: list[tuple[int, bytes]] = []
    for i in range(0, len(stream), step):
        out.extend(reader.feed(stream[i : i + step]))
    assert out == frames
    assert reader.pending == 0


@given(st.lists(st.binary(max_size=64), max_size=6), st.integers(min_value=1, max_value=13))
def test_ttrpc_reader_reassembles_across_mux_payloads(datas: list[bytes], step: int) -> None:
    stream = b"".join(ttrpc_frame(2 * i + 1, FrameType.REQUEST, d) for i, d in enumerate(datas))
    reader = TtrpcReader()
    out: list[Frame] = []
    for i in range(0, len(stream), step):
        out.extend(reader.feed(stream[i : i + step]))
    assert [f.data for f in out] == datas
    assert [f.stream_id for f in out] == [2 * i + 1 for i in range(len(datas))]


def test_reserved_connection_id_is_refused() -> None:
    with pytest.raises(WireError) as info:
        list(MuxReader().feed(b"\x00" * 8))
    assert info.value.reason is Reason.MALFORMED


def test_oversized_frames_are_refused_before_buffering() -> None:
    header = (PLUGIN_CONN).to_bytes(4, "big") + (MAX_DATA + 11).to_bytes(4, "big")
    with pytest.raises(WireError):
        list(MuxReader().feed(header))
    ttrpc = (MAX_DATA + 1).to_bytes(4, "big") + b"\x00\x00\x00\x01\x01\x00"
    with pytest.raises(WireError):
        list(TtrpcReader().feed(ttrpc))


def test_unknown_ttrpc_frame_type_is_refused() -> None:
    with pytest.raises(WireError):
        list(TtrpcReader().feed(b"\x00\x00\x00\x00\x00\x00\x00\x01\x09\x00"))


def test_request_round_trip() -> None:
    data = encode_request("svc", "Method", b"\x01\x02", timeout_nano=5)
    request = decode_request(data)
    assert (request.service, request.method, request.payload, request.timeout_nano) == (
        "svc",
        "Method",
        b"\x01\x02",
        5,
    )


def test_request_without_method_is_refused() -> None:
    with pytest.raises(WireError):
        decode_request(encode_request("svc", "", b""))


def test_response_round_trip() -> None:
    ok = decode_response(encode_response(b"pay"))
    assert ok.ok
    assert ok.payload == b"pay"
    failed = decode_response(encode_response(code=2, message="no"))
    assert not failed.ok
    assert (failed.code, failed.message) == (2, "no")


@settings(max_examples=400)
@given(st.binary(max_size=512), st.integers(min_value=1, max_value=64))
def test_arbitrary_trunk_bytes_raise_only_typed_errors(data: bytes, step: int) -> None:
    mux = MuxReader()
    streams = {PLUGIN_CONN: TtrpcReader(), RUNTIME_CONN: TtrpcReader()}
    failure: PullgateError | None = None
    try:
        for i in range(0, len(data), step):
            for conn_id, payload in mux.feed(data[i : i + step]):
                reader = streams.get(conn_id)
                if reader is None:
                    continue
                for frame in reader.feed(payload):
                    if frame.type is FrameType.REQUEST:
                        decode_request(frame.data)
                    else:
                        decode_response(frame.data)
    except PullgateError as exc:  # anything else propagates and fails the test
        failure = exc
    if failure is not None:
        assert isinstance(failure, WireError)
        assert failure.reason is Reason.MALFORMED


@settings(max_examples=400)
@given(st.binary(max_size=256))
def test_arbitrary_envelope_bytes_raise_only_typed_errors(data: bytes) -> None:
    failures: list[WireError] = []
    for decode in (decode_request, decode_response):
        try:
            decode(data)
        except WireError as exc:  # anything else propagates and fails the test
            failures.append(exc)
    assert all(f.reason is Reason.MALFORMED for f in failures)
