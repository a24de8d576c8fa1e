"""The splice's field-block decoder reads every block as the ``hpack`` library's decoder does:
the same fields, the same dynamic table after it, and an error exactly where the library errs,
for encoder-made block sequences (evictions, resizes, never-indexed fields, Huffman or not), for
garbage and for hand-made adversarial blocks (references to evicted entries, resizes in the
middle, truncated strings, overlong integers). A block it cannot read is a connection error."""

from __future__ import annotations

import pytest
from hpack import Decoder, Encoder, HPACKError
from hpack.hpack import encode_integer
from hypothesis import given, settings
from hypothesis import strategies as st

from pullgate.cri.splice.fields import MAX_BLOCK_BYTES, Field, FieldReader
from pullgate.errors import MalformedInput

Outcome = list[Field] | None  # None: an error


class Both:
    """The splice's reader and the library's decoder, fed the same blocks."""

    def __init__(self) -> None:
        self.reader = FieldReader()
        self.library = Decoder(max_header_list_size=MAX_BLOCK_BYTES)

    def allow(self, size: int) -> None:
        self.reader.allow_table_size(size)
        self.library.max_allowed_table_size = max(self.library.max_allowed_table_size, size)

    def feed(self, block: bytes) -> Outcome:
        """The block's fields (None: an error), asserting both agree and keep one table."""
        try:
            want: Outcome = [(bytes(n), bytes(v)) for n, v in self.library.decode(block, raw=True)]
        except (HPACKError, ValueError, IndexError):
            want = None
        try:
            got: Outcome = self.reader.feed(block, last=True)
        except MalformedInput:
            got = None
        assert got == want
        if want is not None:
            assert list(self.reader.table) == list(self.library.header_table.dynamic_entries)
        return got


names = st.sampled_from(
    [":path", ":authority", "content-type", "grpc-timeout", "user-agent", "te", "x-a", "x-b"]
)
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
field_lists = st.lists(
    st.tuples(names, values, st.booleans()), min_size=1, max_size=10
)  # (name, value, never indexed)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(field_lists, st.booleans(), st.none() | st.integers(0, 600)),
        min_size=1,
        max_size=25,
    )
)
def test_encoder_made_sequences_decode_as_the_library_does(
    blocks: list[tuple[list[tuple[str, str, bool]], bool, int | None]],
) -> None:
    encoder = Encoder()
    both = Both()
    for fields, huffman, resize in blocks:
        if resize is not None:  # a table size update starts the next block
            encoder.header_table_size = resize
        block = encoder.encode(fields, huffman=huffman)
        assert both.feed(block) == [(n.encode(), v.encode()) for n, v, _ in fields]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=6))
def test_garbage_errs_where_the_library_errs(blocks: list[bytes]) -> None:
    both = Both()
    for block in blocks:
        if both.feed(block) is None:
            return


@settings(max_examples=300, deadline=None)
@given(
    field_lists,
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_corrupted_blocks_err_where_the_library_errs(
    fields: list[tuple[str, str, bool]], flips: list[tuple[int, int]]
) -> None:
    encoder = Encoder()
    encoder.header_table_size = 200  # small: evictions on most blocks
    both = Both()
    both.feed(encoder.encode(fields))
    block = bytearray(encoder.encode([*fields, ("grpc-timeout", "1999m", False)]))
    for at, octet in flips:
        block[at % len(block)] = octet
    if both.feed(bytes(block)) is not None:
        both.feed(encoder.encode(fields))  # the tables still agree on what follows


def _grpc_go_calls() -> Both:
    """A grpc-go client's blocks: a new ``grpc-timeout`` literal with indexing every call."""
    encoder, both = Encoder(), Both()
    for i in range(200):
        path = "/runtime.v1.RuntimeService/" + ("ListContainers", "PodSandboxStatus")[i % 2]
        block = encoder.encode(
            [(":method", "POST"), (":path", path), ("grpc-timeout", f"{119_000 + i}m")]
        )
        assert both.feed(block) is not None
    return both


def test_a_reference_to_an_evicted_entry_is_an_error() -> None:
    both = _grpc_go_calls()
    live = len(both.reader.table)
    assert 0 < live < 200  # entries were evicted
    assert both.feed(_indexed(61 + live)) is not None  # the oldest live entry
    assert both.feed(_indexed(62 + live)) is None  # evicted: past the table's end


def _indexed(index: int) -> bytes:
    """An indexed field representation (RFC 7541 §6.1)."""
    out = encode_integer(index, 7)
    out[0] |= 0x80
    return bytes(out)


@pytest.mark.parametrize(
    "block",
    [
        b"\x80",  # index 0
        b"\xff\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # an overlong integer
        b"\x82\x3f\xe1\x1f",  # a table size update after a field
        b"\x3f\xe2\x1f\x82",  # a resize past what the runtime allowed (4096)
        b"\x40\x05:path\x0b/too-short",  # a truncated value
        b"\x40\x85\xff\xff\xff\xff\xff\x01a",  # Huffman with an EOS in it
        b"\x44",  # a literal without its value
    ],
)
def test_adversarial_blocks_are_errors(block: bytes) -> None:
    assert Both().feed(block) is None
    with pytest.raises(MalformedInput):
        FieldReader().feed(block, last=True)


def test_table_size_updates_at_the_start_are_followed() -> None:
    both = Both()
    both.allow(8192)
    assert both.feed(b"\x3f\xe1\x3f\x82") == [(b":method", b"GET")]  # 8192: allowed now
    encoder = Encoder()
    encoder.header_table_size = 8192
    encoder.encode([("x", "y")])
    encoder.header_table_size = 64  # two updates in one block: the smaller, then the final
    block = encoder.encode([("x-a", "v" * 20)])
    assert both.feed(block) == [(b"x-a", b"v" * 20)]
    assert both.feed(b"\x20\x82") == [(b":method", b"GET")]  # to 0: the table empties
    assert both.reader.table == []


def test_an_entry_larger_than_the_table_empties_it() -> None:
    both = _grpc_go_calls()
    assert both.reader.table
    big = b"v" * 4100
    assert both.feed(b"\x40\x03x-a" + bytes(encode_integer(len(big), 7)) + big) is not None
    assert both.reader.table == []


def test_an_oversized_header_list_is_an_error() -> None:
    value = b"v" * 4000  # one dynamic entry, referred to again and again (RFC 7541 §6.1)
    both = Both()
    assert both.feed(b"\x40\x03x-a" + bytes(encode_integer(len(value), 7)) + value) is not None
    assert both.feed(b"\xbe" * 64) is not None  # 64 x 4035 octets: under 256 KiB decoded
    assert both.feed(b"\xbe" * 65) is None


def test_a_remembered_indexed_block_is_read_anew_once_the_table_changes() -> None:
    """Indexed-only blocks are remembered while the table stays as it is; a block that adds an
    entry (shifting every dynamic index), a resize or an eviction makes them read anew."""
    encoder, both = Encoder(), Both()
    fields = [(":method", "POST"), (":path", "/runtime.v1.RuntimeService/ListContainers")]
    both.feed(encoder.encode(fields))  # literals: the table learns them
    indexed = encoder.encode(fields)
    assert min(indexed) > 0x80  # indexed only
    first = both.feed(indexed)
    assert both.feed(indexed) == first  # remembered, and still the library's answer
    both.feed(b"\x40\x01x\x01y")  # a new entry: every dynamic index moves by one
    moved = both.feed(indexed)
    assert moved is not None
    assert moved != first
    both.feed(b"\x00\x01z\x01w")  # a literal without indexing: the table stays
    assert both.feed(indexed) == moved
    both.feed(b"\x40\x01x" + bytes(encode_integer(4000, 7)) + b"v" * 4000)  # evicts the rest
    assert both.feed(indexed) == [(b":method", b"POST"), (b"x", b"v" * 4000)]


def test_a_remembered_indexed_block_is_read_anew_after_a_resize() -> None:
    encoder, both = Encoder(), Both()
    fields = [(":path", "/runtime.v1.RuntimeService/ListContainers")]
    both.feed(encoder.encode(fields))
    indexed = encoder.encode(fields)
    assert both.feed(indexed) == [(b":path", b"/runtime.v1.RuntimeService/ListContainers")]
    assert both.feed(b"\x20") == []  # the table resized to 0: emptied
    assert both.feed(indexed) is None
