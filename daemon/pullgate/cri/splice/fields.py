"""Field blocks in the splice transport: reading the caller's, writing pullgate's own.

The caller's field blocks are decoded on the ``hpack`` library's decoder (RFC 7541), every one of
them in order, so the decoder's dynamic table stays the one the runtime's decoder has and
``:path`` can be read (docs/decisions.md says why a library): by :func:`~.blocks.decode_block`,
which reads them as the library does at a fraction of its cost, and by the library itself for a
block that resizes the table. The blocks themselves are forwarded unchanged.

The blocks pullgate writes to the caller (a refusal, an answer of its own) must leave the
caller's dynamic table alone, because the runtime's encoder owns it: they use only an indexed
static entry (``:status: 200``, RFC 7541 §6.1) and literals *without indexing* (§6.2.2), never
an incremental-indexing literal, a dynamic index or a table size update.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hpack import Decoder, HPACKError
from hpack.hpack import encode_integer

from pullgate.cri.splice.blocks import decode_block
from pullgate.errors import MalformedInput

__all__ = [
    "MAX_BLOCK_BYTES",
    "Field",
    "FieldReader",
    "encode_grpc_message",
    "literal_block",
    "status_block",
]

MAX_BLOCK_BYTES = 256 * 1024  # one request's field block, compressed or decoded
_KNOWN_BLOCKS = 64  # indexed-only blocks remembered per connection (a client sends a few shapes)
_STATUS_200 = b"\x88"  # indexed static entry 8, ":status: 200" (RFC 7541 Appendix A)
_CONTENT_TYPE = 31  # the static entry named content-type (RFC 7541 Appendix A)
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord("%")}

Field = tuple[bytes, bytes]


class FieldReader:
    """Decodes one connection's request field blocks in order (fragments of a block are fed as
    they come; a block is decoded at its last fragment)."""

    def __init__(self) -> None:
        self._decoder = Decoder(max_header_list_size=MAX_BLOCK_BYTES)
        self._pending = bytearray()
        # Blocks of indexed fields only, read under the dynamic table as it is now: reading one
        # changes nothing (RFC 7541 §6.1), so the same octets give the same fields until the
        # table changes, and every block that may change it empties this first.
        self._known: dict[bytes, tuple[Field, ...]] = {}

    def allow_table_size(self, size: int) -> None:
        """The runtime advertised ``SETTINGS_HEADER_TABLE_SIZE``: the caller may now use it. A
        smaller size is not enforced here (the caller may still send blocks written before it
        saw the change; the runtime enforces its own limit)."""
        decoder = self._decoder
        decoder.max_allowed_table_size = max(decoder.max_allowed_table_size, size)
        self._known.clear()

    def feed(self, fragment: bytes | memoryview, last: bool) -> list[Field] | None:
        """Add a fragment; at the ``last`` one, the decoded block.

        Raises:
            MalformedInput: an undecodable or oversized block (the connection cannot go on:
                the two dynamic tables may differ).
        """
        if last and not self._pending:  # the usual case: the whole block in one frame
            block = bytes(fragment)
        else:
            self._pending += fragment
            if len(self._pending) > MAX_BLOCK_BYTES:
                raise MalformedInput("field block larger than pullgate reads")
            if not last:
                return None
            block, self._pending = bytes(self._pending), bytearray()
        if len(block) > MAX_BLOCK_BYTES:
            raise MalformedInput("field block larger than pullgate reads")
        known = self._known
        # Every octet one indexed field (index 1-126: a single octet each, §5.1, §6.1).
        indexed_only = bool(block) and min(block) > 0x80 and 0xFF not in block
        if indexed_only:
            seen = known.get(block)
            if seen is not None:
                return list(seen)
        elif known:
            known.clear()  # the block may change the table
        try:
            fields = decode_block(self._decoder, block)
            if fields is None:  # a table size update: the library's own decode
                fields = list(self._decoder.decode(block, raw=True))  # bytes pairs
        except (HPACKError, ValueError, IndexError) as exc:
            raise MalformedInput(f"field block does not decode: {exc}") from exc
        if indexed_only:
            if len(known) >= _KNOWN_BLOCKS:
                known.clear()
            known[block] = tuple(fields)
        return fields

    @property
    def table(self) -> Sequence[Field]:
        """The decoder's dynamic table, newest first (for tests)."""
        return list(self._decoder.header_table.dynamic_entries)


def _string(value: bytes) -> bytes:
    """An HPACK string literal without Huffman coding (RFC 7541 §5.2)."""
    return bytes(encode_integer(len(value), 7)) + value


def literal_block(fields: Iterable[Field]) -> bytes:
    """A field block that never touches the decoder's dynamic table: ``:status: 200`` as the
    static entry, everything else as literals without indexing (RFC 7541 §6.2.2)."""
    out = bytearray()
    for name, value in fields:
        if (name, value) == (b":status", b"200"):
            out += _STATUS_200
            continue
        if name == b"content-type":
            out += encode_integer(_CONTENT_TYPE, 4)  # pattern 0000, 4-bit name index: §6.2.2
        else:
            out += b"\x00" + _string(name)
        out += _string(value)
    return bytes(out)


def encode_grpc_message(text: str) -> bytes:
    """``grpc-message`` as gRPC over HTTP/2 carries it: UTF-8, percent-encoded outside
    printable ASCII and for ``%`` itself
    (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md)."""
    return b"".join(
        bytes((octet,)) if octet in _PLAIN else b"%%%02X" % octet for octet in text.encode()
    )


def status_block(code: int, message: str, *, trailers_only: bool = True) -> bytes:
    """The field block ending a call with gRPC status ``code``: a trailers-only response
    (``:status``, ``content-type``, then the status) or, after a response's headers, trailers."""
    fields: list[Field] = []
    if trailers_only:
        fields += [(b":status", b"200"), (b"content-type", b"application/grpc")]
    fields.append((b"grpc-status", str(code).encode()))
    if message:
        fields.append((b"grpc-message", encode_grpc_message(message)))
    return literal_block(fields)
