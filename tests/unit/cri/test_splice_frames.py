"""The splice transport's frame parser and field-block writer: parsing finds every frame of a
byte stream whatever the chunking, strips padding and priority as RFC 9113 says, refuses what
no conforming peer sends; pullgate's own field blocks decode with a real HPACK decoder and never
touch its dynamic table."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import pytest
from hpack import Decoder, Encoder
from hypothesis import given
from hypothesis import strategies as st

from pullgate.cri.splice.fields import FieldReader, encode_grpc_message, literal_block, status_block
from pullgate.cri.splice.frames import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PADDED,
    PRIORITY_FLAG,
    data_fragment,
    encode_frame,
    field_fragment,
    header_frames,
    read_frame,
    settings_values,
    window_increment,
)
from pullgate.errors import MalformedInput, Reason

frames = st.lists(
    st.tuples(
        st.integers(0, 0xFF),
        st.integers(0, 0xFF),
        st.integers(0, 2**31 - 1),
        st.binary(max_size=300),
    ),
    max_size=8,
)


def _parse_chunked(stream: bytes, cuts: list[int]) -> list[tuple[int, int, int, bytes]]:
    """Parse as a relay does: chunks arrive, whole frames are taken, the rest waits."""
    found: list[tuple[int, int, int, bytes]] = []
    pending = b""
    edges = sorted({min(c, len(stream)) for c in cuts} | {len(stream)})
    last = 0
    for edge in edges:
        pending += stream[last:edge]
        last = edge
        pos = 0
        while (frame := read_frame(pending, pos)) is not None:
            found.append((frame.type, frame.flags, frame.stream, pending[pos + 9 : frame.end]))
            pos = frame.end
        pending = pending[pos:]
    assert pending == b""
    return found


@given(frames, st.lists(st.integers(0, 3000), max_size=10))
def test_every_frame_is_found_whatever_the_chunking(
    sent: list[tuple[int, int, int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(*frame) for frame in sent)
    assert _parse_chunked(stream, cuts) == sent


@given(st.binary(max_size=64), st.integers(0, 40), st.booleans())
def test_headers_padding_and_priority_are_stripped(block: bytes, pad: int, priority: bool) -> None:
    payload = bytes([pad]) + (b"\x80\x00\x00\x03\x10" if priority else b"") + block + b"\0" * pad
    flags = PADDED | (PRIORITY_FLAG if priority else 0)
    assert bytes(field_fragment(HEADERS, flags, payload)) == block


@given(st.binary(max_size=64), st.integers(0, 255))
def test_padding_longer_than_the_frame_is_malformed(block: bytes, pad: int) -> None:
    payload = bytes([pad]) + block
    if pad <= len(block):
        assert bytes(data_fragment(PADDED, payload)) == block[: len(block) - pad]
        assert bytes(field_fragment(HEADERS, PADDED, payload)) == block[: len(block) - pad]
    else:
        with pytest.raises(MalformedInput) as err:
            data_fragment(PADDED, payload)
        assert err.value.reason is Reason.MALFORMED
        with pytest.raises(MalformedInput):
            field_fragment(HEADERS, PADDED, payload)


def test_empty_padded_frames_are_malformed() -> None:
    with pytest.raises(MalformedInput):
        data_fragment(PADDED, b"")
    with pytest.raises(MalformedInput):
        field_fragment(HEADERS, PADDED | PRIORITY_FLAG, b"\x00\x00")
    assert bytes(data_fragment(0, b"abc")) == b"abc"
    assert read_frame(encode_frame(DATA, 0, 1, b"abc")[:-1], 0) is None


def test_settings_and_window_update_payloads_are_checked() -> None:
    assert settings_values(0, b"\x00\x04\x00\x01\x00\x00\x00\x01\x00\x00\x10\x00") == {
        4: 65536,
        1: 4096,
    }
    for flags, payload in ((0, b"\x00" * 5), (1, b"\x00" * 6)):
        with pytest.raises(MalformedInput):
            settings_values(flags, payload)
    assert window_increment(b"\x80\x00\x00\x07") == 7  # the reserved bit is ignored
    with pytest.raises(MalformedInput):
        window_increment(b"\x00\x01")


names = st.binary(min_size=1, max_size=20).map(lambda b: b.lower())


@given(st.lists(st.tuples(names, st.binary(max_size=300)), max_size=6))
def test_pullgates_blocks_decode_and_leave_the_dynamic_table_alone(
    fields: list[tuple[bytes, bytes]],
) -> None:
    # The caller's decoder already holds entries of the runtime's encoder.
    runtime = Encoder()
    caller = Decoder()
    caller.decode(runtime.encode([(b"x-before", b"1"), (b"content-type", b"application/grpc")]))
    table = list(caller.header_table.dynamic_entries)
    block = literal_block([(b":status", b"200"), (b"content-type", b"text/x"), *fields])
    decoded = caller.decode(block, raw=True)
    assert decoded == [(b":status", b"200"), (b"content-type", b"text/x"), *fields]
    assert list(caller.header_table.dynamic_entries) == table
    # ... and the runtime's next block still decodes.
    assert caller.decode(runtime.encode([(b"x-before", b"1")]), raw=True) == [(b"x-before", b"1")]


@given(st.text(max_size=200))
def test_grpc_message_is_percent_encoded(text: str) -> None:
    encoded = encode_grpc_message(text)
    assert all(0x20 <= octet < 0x7F for octet in encoded)
    assert unquote_to_bytes(encoded.decode()) == text.encode()


def test_status_block_is_a_trailers_only_response() -> None:
    fields = Decoder().decode(status_block(2, "SignatureValidationFailed: x %"), raw=True)
    assert fields == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"2"),
        (b"grpc-message", b"SignatureValidationFailed: x %25"),
    ]


def test_field_reader_keeps_the_runtimes_table_and_refuses_garbage() -> None:
    client = Encoder()
    reader = FieldReader()
    first = client.encode([(":path", "/a.B/C"), ("x-k", "v")])
    assert reader.feed(first[:3], False) is None
    assert reader.feed(first[3:], True) == [(b":path", b"/a.B/C"), (b"x-k", b"v")]
    assert (b"x-k", b"v") in reader.table
    assert reader.feed(client.encode([("x-k", "v")]), True) == [(b"x-k", b"v")]
    with pytest.raises(MalformedInput):
        reader.feed(b"\xff\xff\xff\xff", True)  # an index past any table


def test_a_larger_table_the_runtime_allows_is_followed() -> None:
    client = Encoder()
    client.header_table_size = 8192
    block = client.encode([(":path", "/a.B/C"), ("x-big", "v" * 5000)])
    with pytest.raises(MalformedInput):
        FieldReader().feed(block, True)  # 8192 before the runtime allowed it
    reader = FieldReader()
    reader.allow_table_size(8192)
    reader.allow_table_size(4096)  # a later, smaller limit is the runtime's to enforce
    assert reader.feed(block, True) == [(b":path", b"/a.B/C"), (b"x-big", b"v" * 5000)]


@given(st.binary(max_size=40_000), st.booleans())
def test_a_large_field_block_is_split_into_continuations(block: bytes, end: bool) -> None:
    frames = _parse_chunked(header_frames(7, block, end_stream=end), [])
    assert frames[0][0] == HEADERS
    assert bool(frames[0][1] & END_STREAM) is end
    assert all(kind == CONTINUATION for kind, *_ in frames[1:])
    assert all(len(payload) <= 16_384 for *_, payload in frames)
    assert [bool(flags & END_HEADERS) for _, flags, _, _ in frames] == [False] * (
        len(frames) - 1
    ) + [True]
    assert b"".join(payload for *_, payload in frames) == block
